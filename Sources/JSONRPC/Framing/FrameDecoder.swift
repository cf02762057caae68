#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits an incoming byte stream into frames, in either framing, whatever the chunk boundaries.
///
/// Frames are handed out as buffers that are valid only during the callback, so that a frame
/// which arrives whole in one read is never copied. A frame over `maximumMessageSize` is
/// reported and skipped without being buffered; a broken header is reported and the decoder
/// resynchronises on the next `Content-Length` header.
public struct FrameDecoder {
    /// What the decoder found.
    public enum Event {
        /// A complete frame body, valid only during the callback.
        case frame(UnsafeBufferPointer<UInt8>)
        /// A complete frame body the decoder assembled from several reads: its bytes can be
        /// taken without a copy, so a large message is held once.
        case assembled(AssembledFrame)
        /// A frame that could not be read; answer it with this error and `id: null`.
        case error(ResponseError)
        /// The framing was detected from the first byte (`auto` mode only; comes before any frame).
        case detected(Framing)
    }

    /// Longest header block accepted, in bytes.
    public static let maximumHeaderSize = 8192

    enum State {
        case detecting
        case header
        case body(length: Int)
        case skipping(remaining: Int)
        /// Looking for the next `Content-Length` after a broken header.
        case resynchronizing
        case discardingLine
    }

    /// The framing in use, once known.
    public private(set) var framing: Framing?
    public let maximumMessageSize: Int
    var state: State
    /// Bytes received but not yet consumed.
    var buffer: [UInt8] = []

    public init(mode: FramingMode, maximumMessageSize: Int) {
        self.maximumMessageSize = maximumMessageSize
        switch mode {
        case .auto:
            framing = nil
            state = .detecting
        case .lsp:
            framing = .lsp
            state = .header
        case .ndjson:
            framing = .ndjson
            state = .header
        }
    }

    /// Feeds a chunk; calls `handle` for every frame or error completed by it.
    public mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>, _ handle: (Event) -> Void) {
        guard !chunk.isEmpty else { return }
        if buffer.isEmpty {
            // Zero-copy path: decode straight from the chunk, keep only the unfinished tail.
            let consumed = process(chunk, atEnd: false, handle)
            if consumed < chunk.count { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[consumed...])) }
        } else if let completed = completeBufferedFrame(with: chunk, handle) {
            // The frame begun in earlier reads is complete; what follows it is decoded in place.
            feed(UnsafeBufferPointer(rebasing: chunk[completed...]), handle)
        } else {
            let incomplete = stillIncomplete(adding: chunk)
            buffer.append(contentsOf: chunk)
            // A large message arrives in many reads: each one that cannot complete it is only
            // appended, not searched again from the start (which made a 60 MB line quadratic).
            guard !incomplete else { return }
            // Taken out of `self` while it is read, so that the read needs no copy of it.
            var pending: [UInt8] = []
            swap(&pending, &buffer)
            let consumed = pending.withUnsafeBufferPointer { process($0, atEnd: false, handle) }
            if consumed < pending.count {
                pending.removeFirst(consumed)
                buffer = pending
            }
        }
    }

    /// Whether appending `chunk` to the buffered bytes certainly completes nothing: the buffer
    /// holds the start of a body that `chunk` does not finish, or of an NDJSON line that `chunk`
    /// does not end (while the line is within the size limit, which `process` reports).
    private mutating func stillIncomplete(adding chunk: UnsafeBufferPointer<UInt8>) -> Bool {
        switch state {
        case .body(let length):
            if buffer.count + chunk.count < length {
                // One allocation for the whole body rather than doublings.
                if buffer.capacity < length { buffer.reserveCapacity(length) }
                return true
            }
            return false
        case .header where framing == .ndjson:
            return buffer.count + chunk.count <= maximumMessageSize && firstIndex(of: 0x0A, in: chunk, from: 0) == nil
        default:
            return false
        }
    }

    /// Completes the frame whose start is buffered when `chunk` holds its end: appends only the
    /// rest of the frame to the buffer and hands the buffer over whole, so a frame that arrived
    /// in many reads is never copied again. Returns how much of `chunk` was used, or nil when
    /// this is not that case (the general path handles it).
    private mutating func completeBufferedFrame(
        with chunk: UnsafeBufferPointer<UInt8>,
        _ handle: (Event) -> Void
    ) -> Int? {
        switch state {
        case .body(let length):
            // The buffer holds the start of the body, and only that.
            let missing = length - buffer.count
            guard missing > 0, chunk.count >= missing else { return nil }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<missing]))
            state = .header
            handle(.assembled(AssembledFrame(takingFrom: &buffer)))
            return missing
        case .header where framing == .ndjson:
            // The buffer holds the start of a line, and only that.
            guard let newline = firstIndex(of: 0x0A, in: chunk, from: 0),
                buffer.count + newline <= maximumMessageSize
            else { return nil }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<newline]))
            if buffer.last == 0x0D { buffer.removeLast() }
            let indent = buffer.prefix(while: isWhitespace).count
            if indent > 0 { buffer.removeFirst(indent) }
            let line = AssembledFrame(takingFrom: &buffer)
            // Blank lines between messages are allowed.
            if !line.bytes.isEmpty { handle(.assembled(line)) }
            return newline + 1
        default:
            return nil
        }
    }

    /// Signals the end of input: a final unterminated line is a message; a partial frame is reported.
    public mutating func finish(_ handle: (Event) -> Void) {
        let pending = buffer
        buffer = []
        let consumed = pending.withUnsafeBufferPointer { process($0, atEnd: true, handle) }
        let rest = pending.count - consumed
        switch state {
        case .body(let length):
            handle(
                .error(
                    .framingError(
                        "input ended \(length - rest) bytes short of the \(length)-byte body announced by Content-Length",
                        hint: "Content-Length must count the bytes of the UTF-8 body exactly"
                    )
                )
            )
        case .header where rest > 0 && framing == .lsp:
            handle(
                .error(
                    .framingError(
                        "input ended inside a header block",
                        hint: "end the headers with an empty line: Content-Length: N\\r\\n\\r\\n"
                    )
                )
            )
        default:
            break
        }
    }

    /// Consumes as much of `bytes` as possible and returns how many bytes were used.
    mutating func process(_ bytes: UnsafeBufferPointer<UInt8>, atEnd: Bool, _ handle: (Event) -> Void) -> Int {
        var position = 0
        while position < bytes.count {
            switch state {
            case .detecting:
                while position < bytes.count && isWhitespace(bytes[position]) { position += 1 }
                guard position < bytes.count else { return position }
                let first = bytes[position]
                let detected: Framing = (first == UInt8(ascii: "C") || first == UInt8(ascii: "c")) ? .lsp : .ndjson
                framing = detected
                state = .header
                handle(.detected(detected))
            case .header:
                guard let framing else { return position }
                let advance: Int?
                switch framing {
                case .lsp: advance = readHeaders(bytes, from: position, atEnd: atEnd, handle)
                case .ndjson: advance = readLine(bytes, from: position, atEnd: atEnd, handle)
                }
                guard let advance else { return position }
                position = advance
            case .body(let length):
                guard bytes.count - position >= length else { return position }
                handle(.frame(UnsafeBufferPointer(rebasing: bytes[position..<position + length])))
                position += length
                state = .header
            case .skipping(let remaining):
                let available = min(remaining, bytes.count - position)
                position += available
                state = remaining - available == 0 ? .header : .skipping(remaining: remaining - available)
            case .resynchronizing:
                if let found = findContentLength(bytes, from: position) {
                    position = found
                    state = .header
                } else {
                    // Keep a short tail: the header name may straddle two chunks.
                    let keep = min(bytes.count - position, Self.contentLengthName.count - 1)
                    return atEnd ? bytes.count : bytes.count - keep
                }
            case .discardingLine:
                guard let newline = firstIndex(of: 0x0A, in: bytes, from: position) else { return bytes.count }
                position = newline + 1
                state = .header
            }
        }
        return position
    }

    // MARK: - NDJSON

    /// Reads one line; returns the position after it, or nil when the line is incomplete.
    mutating func readLine(
        _ bytes: UnsafeBufferPointer<UInt8>,
        from start: Int,
        atEnd: Bool,
        _ handle: (Event) -> Void
    ) -> Int? {
        var end: Int
        var next: Int
        if let newline = firstIndex(of: 0x0A, in: bytes, from: start) {
            end = newline
            next = newline + 1
        } else {
            if bytes.count - start > maximumMessageSize {
                handle(.error(.messageTooLarge(size: nil, limit: maximumMessageSize)))
                state = .discardingLine
                return bytes.count
            }
            guard atEnd else { return nil }
            end = bytes.count
            next = bytes.count
        }
        if end > start && bytes[end - 1] == 0x0D { end -= 1 }
        var first = start
        while first < end && isWhitespace(bytes[first]) { first += 1 }
        guard first < end else { return next }  // blank lines between messages are allowed
        if end - start > maximumMessageSize {
            handle(.error(.messageTooLarge(size: end - start, limit: maximumMessageSize)))
        } else {
            handle(.frame(UnsafeBufferPointer(rebasing: bytes[first..<end])))
        }
        return next
    }

    // MARK: - LSP headers

    static let contentLengthName = Array("content-length".utf8)

    /// Reads a header block; returns the position after it, or nil when it is incomplete.
    mutating func readHeaders(
        _ bytes: UnsafeBufferPointer<UInt8>,
        from start: Int,
        atEnd: Bool,
        _ handle: (Event) -> Void
    ) -> Int? {
        var lineStart = start
        // Whitespace between frames (a trailing newline some clients add) is not a header.
        while lineStart < bytes.count && isWhitespace(bytes[lineStart]) { lineStart += 1 }
        let blockStart = lineStart
        var contentLength: Int?
        var problem: String?
        while true {
            let newline = firstIndex(of: 0x0A, in: bytes, from: lineStart)
            if (newline ?? bytes.count) - blockStart > Self.maximumHeaderSize {
                handle(
                    .error(
                        .framingError("header block longer than \(Self.maximumHeaderSize) bytes", hint: Self.headerHint)
                    )
                )
                state = .resynchronizing
                return blockStart + 1
            }
            guard let newline else { return atEnd && blockStart == bytes.count ? bytes.count : nil }
            var lineEnd = newline
            if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd == lineStart {
                // Empty line: end of the header block.
                let next = newline + 1
                if let problem {
                    handle(.error(.framingError(problem, hint: Self.headerHint)))
                    state = .resynchronizing
                    return next
                }
                guard let length = contentLength else {
                    handle(.error(.framingError("missing Content-Length header", hint: Self.headerHint)))
                    state = .resynchronizing
                    return next
                }
                if length > maximumMessageSize {
                    handle(.error(.messageTooLarge(size: length, limit: maximumMessageSize)))
                    state = .skipping(remaining: length)
                } else if length == 0 {
                    handle(
                        .error(
                            .framingError(
                                "empty message body (Content-Length: 0)",
                                hint: "send one JSON value per message"
                            )
                        )
                    )
                    state = .header
                } else {
                    state = .body(length: length)
                }
                return next
            }
            if problem == nil {
                problem = parseHeaderLine(
                    UnsafeBufferPointer(rebasing: bytes[lineStart..<lineEnd]),
                    into: &contentLength
                )
            }
            lineStart = newline + 1
        }
    }

    static let headerHint = "frame each message as Content-Length: <bytes>\\r\\n\\r\\n<JSON body>"

    /// Parses `Name: value`; returns a problem, or nil when the line is fine (unknown headers are).
    func parseHeaderLine(_ line: UnsafeBufferPointer<UInt8>, into contentLength: inout Int?) -> String? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            return "malformed header line '\(printable(line))' (expected 'Name: value')"
        }
        let name = UnsafeBufferPointer(rebasing: line[..<colon])
        guard name.count == Self.contentLengthName.count,
            zip(name, Self.contentLengthName).allSatisfy({ lowercased($0) == $1 })
        else { return nil }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd && (line[valueStart] == 0x20 || line[valueStart] == 0x09) { valueStart += 1 }
        while valueEnd > valueStart && (line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09) { valueEnd -= 1 }
        let value = UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd])
        guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return "invalid Content-Length '\(printable(value))' (expected a non-negative whole number of bytes)"
        }
        contentLength = value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        return nil
    }

    func findContentLength(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        let name = Self.contentLengthName
        guard bytes.count >= name.count else { return nil }
        var position = start
        while position + name.count <= bytes.count {
            if lowercased(bytes[position]) == name[0] {
                var matches = true
                for offset in 1..<name.count where lowercased(bytes[position + offset]) != name[offset] {
                    matches = false
                    break
                }
                if matches { return position }
            }
            position += 1
        }
        return nil
    }

    func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    func firstIndex(of target: UInt8, in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + start, Int32(target), bytes.count - start) else { return nil }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    func printable(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let text = String(decoding: bytes.prefix(60), as: UTF8.self)
        return String(text.unicodeScalars.map { $0.value < 0x20 ? "?" : Character($0) })
    }
}

/// A frame body assembled from several reads, handed over rather than copied.
public final class AssembledFrame {
    /// The body; empty once taken.
    public private(set) var bytes: [UInt8]

    init(takingFrom buffer: inout [UInt8]) {
        bytes = []
        swap(&bytes, &buffer)
    }

    /// Takes the body out, leaving this empty: the caller then owns the only reference, so it
    /// can trim or keep the bytes without a copy.
    public func take() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &bytes)
        return taken
    }
}
