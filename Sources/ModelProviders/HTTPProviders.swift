import Foundation
import HTTP
import JSON

/// Where a provider is and how it authenticates.
public struct ProviderEndpoint: Sendable, Hashable {
    /// The provider's name, as model ids prefix it (`openai:gpt-4o-mini`).
    public var name: String
    public var baseURL: String
    public var apiKey: String?
    /// The environment variable the key comes from, named in errors (never the key itself).
    public var apiKeyVariable: String?
    public var timeout: Duration = .seconds(600)

    public init(name: String, baseURL: String, apiKey: String? = nil, apiKeyVariable: String? = nil) {
        self.name = name
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.apiKeyVariable = apiKeyVariable
    }
}

extension ProviderEndpoint {
    /// `error` with the key taken out of its message: a provider's error body may quote the key
    /// it refused, and the message goes to results, metadata, the call log and the log.
    func redacting(_ error: ModelError) -> ModelError {
        guard let apiKey, !apiKey.isEmpty, error.message.contains(apiKey) else { return error }
        var redacted = error
        redacted.message = error.message.replacingOccurrences(of: apiKey, with: "[redacted]")
        return redacted
    }
}

extension ModelError {
    /// The error with the quota the response's headers announced.
    func with(_ rateLimit: RateLimitHeaders?) -> ModelError {
        var error = self
        error.rateLimit = error.rateLimit ?? rateLimit
        return error
    }
}

/// Helpers both HTTP providers share.
package enum ProviderCall {
    /// Sends `body` and returns the completion, streamed or not. `onText` sees streamed text.
    /// No error leaves with the key in its message.
    static func run(
        _ endpoint: ProviderEndpoint,
        path: String,
        headers: [(name: String, value: String)],
        body: [String: JSONValue],
        stream: Bool,
        onText: (@Sendable (String) -> Void)?,
        decode: (Data) throws(ModelError) -> Completion,
        decodeStream: (inout StreamState, ServerSentEvents.Event) throws(ModelError) -> Void
    ) async throws(ModelError) -> Completion {
        do {
            return try await exchange(
                endpoint,
                path: path,
                headers: headers,
                body: body,
                stream: stream,
                onText: onText,
                decode: decode,
                decodeStream: decodeStream
            )
        } catch {
            var located = endpoint.redacting(error)
            located.provider = located.provider ?? endpoint.name
            located.url = located.url ?? HTTPRequest.displayed(endpoint.baseURL + path)
            throw located
        }
    }

    private static func exchange(
        _ endpoint: ProviderEndpoint,
        path: String,
        headers: [(name: String, value: String)],
        body: [String: JSONValue],
        stream: Bool,
        onText: (@Sendable (String) -> Void)?,
        decode: (Data) throws(ModelError) -> Completion,
        decodeStream: (inout StreamState, ServerSentEvents.Event) throws(ModelError) -> Void
    ) async throws(ModelError) -> Completion {
        let client: HTTPClient
        do {
            client = try HTTPClient.shared()
        } catch {
            throw ModelError(.unavailable, error.message)
        }
        var request = HTTPRequest(url: endpoint.baseURL + path, headers: headers)
        request.totalTimeout = endpoint.timeout
        // The project's writer (keys sorted): Foundation's JSONSerialization costs more than the transfer.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        JSONWriter.write(.object(body), into: &bytes)
        request.body = Data(bytes)
        var status = 0
        var responseHeaders: [String: String] = [:]
        var collected = Data()
        var events = ServerSentEvents()
        var state = StreamState()
        // A streamed request answered with one plain body (a server that ignores `stream`) is
        // read as a plain answer.
        var eventStream = false
        do {
            receiving: for try await event in client.stream(request) {
                switch event {
                case .head(let code, let fields):
                    status = code
                    responseHeaders = fields
                    eventStream =
                        stream && code == 200
                        && (fields["content-type"]?.lowercased().contains("text/event-stream") ?? false)
                case .body(let chunk):
                    guard eventStream else {
                        collected.append(chunk)
                        // An error's body is read for its message only: a few KB of it.
                        if status != 200 && collected.count >= errorBodyLimit { break receiving }
                        continue
                    }
                    let messages: [ServerSentEvents.Event]
                    do {
                        messages = try events.feed(chunk)
                    } catch {
                        throw ModelError(
                            .tooLarge,
                            "\(endpoint.name) streamed an event larger than \(error.limit) bytes; "
                                + "the answer was abandoned"
                        )
                    }
                    for message in messages {
                        let before = state.text.utf8.count
                        try decodeStream(&state, message)
                        // Counted in bytes: String.count would walk the whole text at every event.
                        if let onText, state.text.utf8.count > before {
                            onText(String(decoding: state.text.utf8.dropFirst(before), as: UTF8.self))
                        }
                        // `[DONE]` or `message_stop` ends the answer, whatever the connection
                        // does next: leaving the loop ends the transfer.
                        if state.finished { break receiving }
                    }
                }
            }
        } catch let error as HTTPError {
            throw map(error, endpoint).with(RateLimitHeaders.parse(responseHeaders))
        } catch let error as ModelError {
            throw error.with(RateLimitHeaders.parse(responseHeaders))
        } catch {
            throw ModelError(.network, "\(error)")
        }
        let rateLimit = RateLimitHeaders.parse(responseHeaders)
        // A cancelled task's stream ends instead of throwing: say so rather than blame the provider.
        if Task.isCancelled { throw ModelError(.cancelled, "the request was cancelled") }
        guard status == 200 else {
            throw providerError(status: status, body: collected, headers: responseHeaders, endpoint, url: request.url)
                .with(rateLimit)
        }
        var completion: Completion
        if eventStream {
            guard state.finished else {
                // The connection ended early (curl sees a plain end of data): the network's fault.
                throw ModelError(
                    .network,
                    "\(endpoint.name)'s event stream ended before the answer was complete; retry the request"
                )
                .with(rateLimit)
            }
            completion = Completion(
                text: state.text,
                finishReason: state.finishReason ?? .other,
                usage: state.usageReported
                    ? .init(promptTokens: state.promptTokens, completionTokens: state.completionTokens) : nil,
                cost: nil,
                provider: endpoint.name,
                model: state.model ?? ""
            )
        } else {
            completion = try decode(collected)
        }
        completion.rateLimit = rateLimit
        completion.url = HTTPRequest.displayed(request.url)
        return completion
    }

    /// Usage from a body's counts: unknown (nil) when it has neither; a count that is missing
    /// beside the other is 0.
    package static func usage(prompt: Int?, completion: Int?) -> TokenUsage? {
        guard prompt != nil || completion != nil else { return nil }
        return .init(promptTokens: prompt ?? 0, completionTokens: completion ?? 0)
    }

    /// The bytes of an error response's body that are read: enough for any provider's message.
    static let errorBodyLimit = 16 << 10

    /// What a streamed answer has accumulated so far.
    struct StreamState {
        var text = ""
        var finishReason: FinishReason?
        var promptTokens = 0
        var completionTokens = 0
        /// An event carried token counts: without one, usage is unknown, not 0.
        var usageReported = false
        var model: String?
        var finished = false
    }

    static func map(_ error: HTTPError, _ endpoint: ProviderEndpoint) -> ModelError {
        switch error.kind {
        case .timeout: return ModelError(.timeout, "\(endpoint.name) did not answer in time: \(error.message)")
        case .cancelled: return ModelError(.cancelled, "the request was cancelled")
        case .unavailable: return ModelError(.unavailable, error.message)
        case .responseTooLarge:
            return ModelError(.tooLarge, "\(endpoint.name)'s answer was too large: \(error.message)")
        case .network, .tls:
            return ModelError(
                .network,
                "cannot reach \(endpoint.name) at \(HTTPRequest.displayed(endpoint.baseURL)): \(error.message)"
            )
        }
    }

    /// The provider's own words from an error body, in the shapes providers use:
    /// `{"error": {"message": …}}` (OpenAI, Anthropic), `{"error": "…"}`, `{"detail": …}` (FastAPI
    /// servers, LiteLLM), `{"message": …}`; else the start of the body. At most 500 characters.
    static func message(fromErrorBody body: Data) -> String {
        let object = Array(body).withUnsafeBufferPointer { try? JSONParser.parse($0) }
        var text: String?
        if let error = object?["error"] {
            text = error["message"]?.stringValue ?? error.stringValue
        }
        if text == nil, let detail = object?["detail"] {
            text = detail.stringValue ?? detail["message"]?.stringValue ?? detail.compactText
        }
        text = text ?? object?["message"]?.stringValue
        let chosen =
            text
            ?? String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return chosen.count > 500 ? String(chosen.prefix(500)) + "…" : chosen
    }

    /// A typed error for a non-200 answer, with the provider's own message when it gave one.
    static func providerError(
        status: Int,
        body: Data,
        headers: [String: String],
        _ endpoint: ProviderEndpoint,
        url: String
    )
        -> ModelError
    {
        let detail = message(fromErrorBody: body)
        let said = detail.isEmpty ? "" : ": \(detail)"
        let retryAfter = RetryPolicy.parse(headers)
        switch status {
        case 401:
            let variable = endpoint.apiKeyVariable.map { "check \($0)" } ?? "check the provider's API key"
            return ModelError(
                .authentication,
                "\(endpoint.name) refused the API key (HTTP 401)\(said); \(variable)",
                httpStatus: status
            )
        case 403:
            return ModelError(
                .permission,
                "\(endpoint.name) does not allow this request with this key (HTTP 403)\(said)",
                httpStatus: status
            )
        case 404:
            return ModelError(
                .notFound,
                "\(endpoint.name) has no such model or endpoint: HTTP 404 for \(HTTPRequest.displayed(url))\(said)",
                httpStatus: status
            )
        case 408:
            return ModelError(
                .timeout,
                "\(endpoint.name) timed out waiting for the request (HTTP 408)\(said)",
                retryAfter: retryAfter,
                httpStatus: status
            )
        case 429:
            let wait = headers["retry-after"].map { " (retry after \($0) s)" } ?? ""
            return ModelError(
                .rateLimit,
                "\(endpoint.name) is rate limiting requests (HTTP 429)\(wait)\(said)",
                retryAfter: retryAfter,
                httpStatus: status
            )
        case 503, 529:
            return ModelError(
                .overloaded,
                "\(endpoint.name) is overloaded (HTTP \(status))\(said); retry later",
                retryAfter: retryAfter,
                httpStatus: status
            )
        case 400, 413, 422:
            let lowered = detail.lowercased()
            if lowered.contains("context") && (lowered.contains("length") || lowered.contains("window"))
                || lowered.contains("too many tokens") || lowered.contains("prompt is too long")
            {
                return ModelError(
                    .contextLength,
                    "the prompt is too long for the model (HTTP \(status))\(said)",
                    httpStatus: status
                )
            }
            return ModelError(
                .invalidRequest,
                "\(endpoint.name) rejected the request (HTTP \(status))\(said)",
                httpStatus: status
            )
        case 500...599:
            return ModelError(
                .server,
                "\(endpoint.name) failed (HTTP \(status))\(said); retry later",
                retryAfter: retryAfter,
                httpStatus: status
            )
        default:
            return ModelError(.server, "\(endpoint.name) answered HTTP \(status)\(said)", httpStatus: status)
        }
    }

    static func malformed(_ endpoint: ProviderEndpoint, _ what: String) -> ModelError {
        ModelError(.malformed, "\(endpoint.name) sent a malformed answer (\(what))")
    }

    /// The JSON object of a body or an event. Invalid UTF-8 is refused, streamed or not, as JSON
    /// requires: a provider that sends it is broken, and replacing bytes would change the answer.
    static func object(_ data: Data, _ endpoint: ProviderEndpoint) throws(ModelError) -> JSONValue {
        let object: JSONValue
        do {
            object = try Array(data).withUnsafeBufferPointer { bytes throws(JSONParseError) in
                try JSONParser.parse(bytes)
            }
        } catch {
            throw malformed(endpoint, "not JSON: \(error)")
        }
        guard case .object = object else { throw malformed(endpoint, "not a JSON object") }
        return object
    }
}

/// The OpenAI chat-completions API, and every server that speaks it (OpenAI, OpenRouter, Ollama,
/// vLLM, llama.cpp server, LM Studio, Groq, DeepSeek, Together, …).
public struct OpenAICompatibleProvider: ModelClient {
    public let endpoint: ProviderEndpoint
    /// Stream the answer (server-sent events) instead of waiting for it whole.
    public var streaming: Bool
    public var onText: (@Sendable (String) -> Void)?

    public var provider: String { endpoint.name }

    public init(endpoint: ProviderEndpoint, streaming: Bool = false, onText: (@Sendable (String) -> Void)? = nil) {
        self.endpoint = endpoint
        self.streaming = streaming
        self.onText = onText
    }

    public func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        var body: [String: JSONValue] = [
            "model": .string(request.model),
            "messages": .array(
                request.messages.map { .object(["role": .string($0.role.rawValue), "content": .string($0.content)]) }
            ),
        ]
        if let maxTokens = request.maxTokens { body["max_tokens"] = .integer(Int64(maxTokens)) }
        if let temperature = request.temperature { body["temperature"] = .double(temperature) }
        if streaming {
            body["stream"] = true
            body["stream_options"] = ["include_usage": true]
        }
        var headers: [(name: String, value: String)] = []
        if let key = endpoint.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        let endpoint = endpoint
        return try await ProviderCall.run(
            endpoint,
            path: "/chat/completions",
            headers: headers,
            body: body,
            stream: streaming,
            onText: onText,
            decode: { data throws(ModelError) in
                let object = try ProviderCall.object(data, endpoint)
                guard let choice = object["choices"]?.arrayValue?.first,
                    let message = choice["message"]?.objectValue
                else { throw ProviderCall.malformed(endpoint, "no choices[0].message") }
                let usage = object["usage"]?.objectValue
                return Completion(
                    text: message["content"]?.stringValue ?? "",
                    finishReason: Self.finishReason(choice["finish_reason"]?.stringValue),
                    usage: ProviderCall.usage(
                        prompt: usage?["prompt_tokens"]?.intValue,
                        completion: usage?["completion_tokens"]?.intValue
                    ),
                    cost: nil,
                    provider: endpoint.name,
                    model: object["model"]?.stringValue ?? request.model
                )
            },
            decodeStream: { state, event throws(ModelError) in
                if event.bytes.elementsEqual("[DONE]".utf8) {
                    state.finished = true
                    return
                }
                let object = try ProviderCall.object(Data(event.bytes), endpoint)
                if let message = object["error"]?.objectValue?["message"]?.stringValue {
                    throw ModelError(.server, "\(endpoint.name) failed while streaming: \(message)")
                }
                state.model = state.model ?? object["model"]?.stringValue
                if let choice = object["choices"]?.arrayValue?.first {
                    if let delta = choice["delta"]?.objectValue, let text = delta["content"]?.stringValue {
                        state.text += text
                    }
                    if let reason = choice["finish_reason"]?.stringValue {
                        state.finishReason = Self.finishReason(reason)
                    }
                }
                if let usage = object["usage"]?.objectValue,
                    usage["prompt_tokens"]?.intValue != nil || usage["completion_tokens"]?.intValue != nil
                {
                    state.promptTokens = usage["prompt_tokens"]?.intValue ?? state.promptTokens
                    state.completionTokens = usage["completion_tokens"]?.intValue ?? state.completionTokens
                    state.usageReported = true
                }
            }
        )
    }

    static func finishReason(_ reason: String?) -> FinishReason {
        switch reason {
        case "stop": return .stop
        case "length": return .length
        case "content_filter": return .contentFilter
        case "tool_calls", "function_call": return .toolCalls
        default: return .other
        }
    }
}

/// Anthropic's Messages API.
public struct AnthropicProvider: ModelClient {
    public let endpoint: ProviderEndpoint
    public var streaming: Bool
    public var onText: (@Sendable (String) -> Void)?
    /// Anthropic requires max_tokens; this is sent when the request names none.
    public var defaultMaxTokens = 4096

    public var provider: String { endpoint.name }

    public init(endpoint: ProviderEndpoint, streaming: Bool = false, onText: (@Sendable (String) -> Void)? = nil) {
        self.endpoint = endpoint
        self.streaming = streaming
        self.onText = onText
    }

    public func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        let system = request.messages.filter { $0.role == .system }.map(\.content).joined(separator: "\n\n")
        var body: [String: JSONValue] = [
            "model": .string(request.model),
            "max_tokens": .integer(Int64(request.maxTokens ?? defaultMaxTokens)),
            "messages": .array(
                request.messages.filter { $0.role != .system }.map {
                    .object(["role": .string($0.role.rawValue), "content": .string($0.content)])
                }
            ),
        ]
        if !system.isEmpty { body["system"] = .string(system) }
        if let temperature = request.temperature { body["temperature"] = .double(temperature) }
        if streaming { body["stream"] = true }
        var headers: [(name: String, value: String)] = [("anthropic-version", "2023-06-01")]
        if let key = endpoint.apiKey { headers.append(("x-api-key", key)) }
        let endpoint = endpoint
        return try await ProviderCall.run(
            endpoint,
            // Anthropic's own base URL has no /v1; a base URL written with it works too.
            path: endpoint.baseURL.hasSuffix("/v1") ? "/messages" : "/v1/messages",
            headers: headers,
            body: body,
            stream: streaming,
            onText: onText,
            decode: { data throws(ModelError) in
                let object = try ProviderCall.object(data, endpoint)
                guard let content = object["content"]?.arrayValue else {
                    throw ProviderCall.malformed(endpoint, "no content")
                }
                let usage = object["usage"]?.objectValue
                return Completion(
                    text: content.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }
                        .joined(),
                    finishReason: Self.finishReason(object["stop_reason"]?.stringValue),
                    usage: ProviderCall.usage(
                        prompt: usage?["input_tokens"]?.intValue,
                        completion: usage?["output_tokens"]?.intValue
                    ),
                    cost: nil,
                    provider: endpoint.name,
                    model: object["model"]?.stringValue ?? request.model
                )
            },
            decodeStream: { state, event throws(ModelError) in
                let object = try ProviderCall.object(Data(event.bytes), endpoint)
                switch object["type"]?.stringValue {
                case "message_start":
                    let message = object["message"]?.objectValue
                    state.model = message?["model"]?.stringValue
                    if let tokens = message?["usage"]?.objectValue?["input_tokens"]?.intValue {
                        state.promptTokens = tokens
                        state.usageReported = true
                    }
                case "content_block_delta":
                    if let delta = object["delta"]?.objectValue, let text = delta["text"]?.stringValue {
                        state.text += text
                    }
                case "message_delta":
                    if let reason = object["delta"]?.objectValue?["stop_reason"]?.stringValue {
                        state.finishReason = Self.finishReason(reason)
                    }
                    // Some servers (LiteLLM's proxy) report 0 input tokens in message_start and
                    // the real count here: whichever event carries a count, the last one wins.
                    let usage = object["usage"]?.objectValue
                    if let tokens = usage?["output_tokens"]?.intValue {
                        state.completionTokens = tokens
                        state.usageReported = true
                    }
                    if let tokens = usage?["input_tokens"]?.intValue, tokens > 0 {
                        state.promptTokens = tokens
                        state.usageReported = true
                    }
                case "message_stop":
                    state.finished = true
                case "error":
                    let message = object["error"]?.objectValue?["message"]?.stringValue ?? "unknown error"
                    let type = object["error"]?.objectValue?["type"]?.stringValue
                    throw ModelError(Self.errorKind(type), "\(endpoint.name) failed while streaming: \(message)")
                default:
                    break  // ping, content_block_start/stop
                }
            }
        )
    }

    /// The kind of an error event's `type`, as Anthropic names them.
    static func errorKind(_ type: String?) -> ModelError.Kind {
        switch type {
        case "overloaded_error": return .overloaded
        case "rate_limit_error": return .rateLimit
        case "invalid_request_error": return .invalidRequest
        case "authentication_error": return .authentication
        case "permission_error": return .permission
        case "not_found_error": return .notFound
        case "request_too_large": return .tooLarge
        default: return .server
        }
    }

    static func finishReason(_ reason: String?) -> FinishReason {
        switch reason {
        case "end_turn", "stop_sequence": return .stop
        case "max_tokens": return .length
        case "tool_use": return .toolCalls
        case "refusal": return .contentFilter
        default: return .other
        }
    }
}

extension JSONValue {
    /// The value when it is an object.
    fileprivate var objectValue: JSONValue? {
        if case .object = self { return self }
        return nil
    }

    fileprivate var arrayValue: [JSONValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    fileprivate var intValue: Int? { integerValue.map { Int($0) } }

    /// The value as compact JSON text, at most 500 bytes of it.
    fileprivate var compactText: String {
        var bytes: [UInt8] = []
        JSONWriter.write(self, into: &bytes)
        return String(decoding: bytes.prefix(500), as: UTF8.self)
    }
}
