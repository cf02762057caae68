import CCurl
import Foundation
import Synchronization
import Threads

/// An HTTP request for a model provider.
public struct HTTPRequest: Sendable {
    public var method = "POST"
    public var url: String
    public var headers: [(name: String, value: String)] = []
    public var body: Data?
    /// Limit for establishing the connection.
    public var connectTimeout: Duration = .seconds(10)
    /// Limit for the whole transfer.
    public var totalTimeout: Duration = .seconds(600)
    /// The transfer fails when fewer than `lowSpeedBytes` arrive per second for `lowSpeedTime`:
    /// a provider that stops sending is noticed long before the total timeout.
    public var lowSpeedBytes = 1
    public var lowSpeedTime: Duration = .seconds(60)
    /// Largest response body accepted.
    public var maximumResponseBytes = 64 << 20

    public init(url: String, body: Data? = nil, headers: [(name: String, value: String)] = []) {
        self.url = url
        self.body = body
        self.headers = headers
    }

    /// `url` as messages show it: scheme, host, port and path, never a user name, a password or a
    /// query, which can carry credentials.
    public static func displayed(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(a malformed URL)" }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "(a malformed URL)"
    }
}

/// A response: status, headers (names lowercased) and, unless streamed, the body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data
}

/// Why a transfer failed before a response arrived.
public struct HTTPError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case timeout
        case network
        case tls
        case responseTooLarge = "response_too_large"
        case cancelled
        case unavailable
    }

    public var kind: Kind
    public var message: String

    public var description: String { message }
}

/// What a streamed transfer delivers.
public enum HTTPStreamEvent: Sendable {
    /// Status and headers, before any body bytes.
    case head(status: Int, headers: [String: String])
    case body(Data)
}

/// HTTP through libcurl: one multi handle, driven by one dedicated thread, carries every transfer
/// (no thread per request); connections are reused across requests to the same host, HTTP/2 is
/// used when the server offers it, TLS is verified against the system's CA store, and the
/// standard proxy variables (`https_proxy`, `no_proxy`, …) are honoured. Cancelling the awaiting
/// task aborts its transfer at once.
public final class HTTPClient: @unchecked Sendable {
    /// The client of the process, created on first use (which loads libcurl).
    public static func shared() throws(HTTPError) -> HTTPClient {
        try sharedClient.get()
    }

    private static let sharedClient: Result<HTTPClient, HTTPError> = {
        if let problem = sr_curl_load() {
            return .failure(HTTPError(kind: .unavailable, message: String(cString: problem)))
        }
        return .success(HTTPClient())
    }()

    private let multi: UnsafeMutableRawPointer
    /// Transfers handed to the transfer thread: to start, and to stop.
    private let handover = Mutex<(incoming: [Transfer], cancelled: [Transfer])>(([], []))
    // Used by the transfer thread only.
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]

    private init() {
        multi = sr_curl_multi_init()!
        startThread { [self] in run() }
    }

    /// Sends the request and returns the whole response.
    public func send(_ request: HTTPRequest) async throws(HTTPError) -> HTTPResponse {
        var status = 0
        var headers: [String: String] = [:]
        var body = Data()
        for try await event in stream(request) {
            switch event {
            case .head(let code, let fields):
                status = code
                headers = fields
            case .body(let chunk):
                body.append(chunk)
            }
        }
        // A cancelled task's stream ends instead of throwing.
        if Task.isCancelled { throw HTTPError(kind: .cancelled, message: "the request was cancelled") }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// Sends the request and delivers the response as it arrives.
    public func stream(_ request: HTTPRequest) -> HTTPEventStream {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPStreamEvent.self)
        let transfer = Transfer(request: request, continuation: continuation)
        continuation.onTermination = { [weak self, transfer] reason in
            if case .cancelled = reason { self?.cancel(transfer) }
        }
        handover.withLock { $0.incoming.append(transfer) }
        sr_curl_multi_wakeup(multi)
        return HTTPEventStream(base: stream)
    }

    private func cancel(_ transfer: Transfer) {
        handover.withLock { $0.cancelled.append(transfer) }
        sr_curl_multi_wakeup(multi)
    }

    // MARK: - The transfer thread

    private func run() {
        while true {
            let (starting, stopping) = handover.withLock { handover in
                defer { handover = ([], []) }
                return handover
            }
            for transfer in starting { start(transfer) }
            for transfer in stopping {
                finish(transfer, error: HTTPError(kind: .cancelled, message: "the request was cancelled"))
            }
            var running: Int32 = 0
            sr_curl_multi_perform(multi, &running)
            var handle: UnsafeMutableRawPointer?
            var result = CURLE_OK
            while sr_curl_multi_next_done(multi, &handle, &result) != 0 {
                guard let handle, let transfer = active[handle] else { continue }
                finish(transfer, error: result == CURLE_OK ? nil : error(result, transfer))
            }
            sr_curl_multi_poll(multi, 1000)
        }
    }

    private func start(_ transfer: Transfer) {
        guard let handle = sr_curl_easy_init() else {
            transfer.continuation.finish(throwing: HTTPError(kind: .unavailable, message: "curl_easy_init failed"))
            return
        }
        transfer.handle = handle
        let request = transfer.request
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        sr_curl_easy_setopt_string(handle, CURLOPT_URL, request.url)
        // A base URL names a provider: never a local file or another protocol's server.
        sr_curl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        sr_curl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        sr_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        sr_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request.connectTimeout))
        sr_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(request.totalTimeout))
        sr_curl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, request.lowSpeedBytes)
        sr_curl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, milliseconds(request.lowSpeedTime) / 1000))
        sr_curl_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS)
        sr_curl_easy_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, "")  // whatever libcurl can decode
        if let body = request.body {
            sr_curl_easy_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            body.withUnsafeBytes { raw in
                // COPYPOSTFIELDS: libcurl keeps its own copy, so the Data may go.
                _ = sr_curl_easy_setopt_pointer(
                    handle,
                    CURLOPT_COPYPOSTFIELDS,
                    UnsafeMutableRawPointer(mutating: raw.baseAddress)
                )
            }
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers { list = sr_curl_slist_append(list, "\(name): \(value)") }
        if request.body != nil && !request.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            list = sr_curl_slist_append(list, "Content-Type: application/json")
        }
        list = sr_curl_slist_append(list, "Expect:")  // no 100-continue round trip
        transfer.headerList = list
        sr_curl_easy_setopt_pointer(handle, CURLOPT_HTTPHEADER, list)
        sr_curl_easy_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback)
        sr_curl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        sr_curl_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, bodyCallback)
        sr_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        active[handle] = transfer
        sr_curl_multi_add_handle(multi, handle)
    }

    private func finish(_ transfer: Transfer, error: HTTPError?) {
        guard let handle = transfer.handle else { return }  // already finished
        transfer.handle = nil
        active[handle] = nil
        sr_curl_multi_remove_handle(multi, handle)
        sr_curl_easy_cleanup(handle)
        sr_curl_slist_free_all(transfer.headerList)
        transfer.headerList = nil
        if let error {
            transfer.continuation.finish(throwing: error)
        } else {
            transfer.deliverHead()  // a response with no body still has a head
            transfer.continuation.finish()
        }
    }

    private func error(_ code: CURLcode, _ transfer: Transfer) -> HTTPError {
        let detail = String(cString: sr_curl_easy_strerror(code))
        if transfer.tooLarge {
            return HTTPError(
                kind: .responseTooLarge,
                message: "the response exceeded \(transfer.request.maximumResponseBytes) bytes"
            )
        }
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return HTTPError(kind: .timeout, message: "timed out: \(detail)")
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE:
            return HTTPError(kind: .tls, message: "TLS failed: \(detail)")
        default:
            return HTTPError(kind: .network, message: "\(detail) (\(host(transfer.request.url)))")
        }
    }

    private func host(_ url: String) -> String { URL(string: url)?.host ?? HTTPRequest.displayed(url) }

    private func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds) * 1000 + Int(duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// The events of one streamed transfer. Cancelling the consuming task aborts the transfer.
public struct HTTPEventStream: AsyncSequence, Sendable {
    public typealias Element = HTTPStreamEvent
    let base: AsyncThrowingStream<HTTPStreamEvent, any Error>

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<HTTPStreamEvent, any Error>.AsyncIterator

        public mutating func next() async throws(HTTPError) -> HTTPStreamEvent? {
            do {
                return try await base.next()
            } catch let error as HTTPError {
                throw error
            } catch {
                throw HTTPError(kind: .cancelled, message: "the request was cancelled")
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator()) }
}

/// One transfer's state, shared between the transfer thread and libcurl's callbacks (which run
/// on that same thread).
final class Transfer: @unchecked Sendable {
    let request: HTTPRequest
    let continuation: AsyncThrowingStream<HTTPStreamEvent, any Error>.Continuation
    var handle: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var status = 0
    var headers: [String: String] = [:]
    var headSent = false
    var received = 0
    var tooLarge = false

    init(request: HTTPRequest, continuation: AsyncThrowingStream<HTTPStreamEvent, any Error>.Continuation) {
        self.request = request
        self.continuation = continuation
    }

    func deliverHead() {
        guard !headSent else { return }
        headSent = true
        continuation.yield(.head(status: status, headers: headers))
    }
}

private let headerCallback: sr_curl_data_callback = { data, size, count, context in
    let length = size * count
    guard let data, let context else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    // Bytes, not Foundation's trimming: this runs for every header line of every response.
    let bytes = UnsafeRawBufferPointer(start: data, count: length).bindMemory(to: UInt8.self)
    func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
    var start = 0
    var end = bytes.count
    while start < end && isSpace(bytes[start]) { start += 1 }
    while end > start && isSpace(bytes[end - 1]) { end -= 1 }
    let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
    if line.starts(with: Array("HTTP/".utf8)) {
        // A new status line (after a redirect or 100 Continue) starts a new set of headers.
        let parts = line.split(separator: 0x20)
        transfer.status = parts.count > 1 ? Int(String(decoding: parts[1], as: UTF8.self)) ?? 0 : 0
        transfer.headers = [:]
    } else if let colon = line.firstIndex(of: 0x3A) {
        let name = String(decoding: line[..<colon].map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
        var valueStart = colon + 1
        while valueStart < line.count && isSpace(line[valueStart]) { valueStart += 1 }
        transfer.headers[name] = String(decoding: line[valueStart...], as: UTF8.self)
    }
    return length
}

private let bodyCallback: sr_curl_data_callback = { data, size, count, context in
    let length = size * count
    guard let data, let context else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    transfer.received += length
    if transfer.received > transfer.request.maximumResponseBytes {
        transfer.tooLarge = true
        return 0  // makes libcurl abort the transfer
    }
    transfer.deliverHead()
    transfer.continuation.yield(.body(Data(bytes: data, count: length)))
    return length
}
