import JSON

/// Decodes frames into messages, following the JSON-RPC 2.0 specification to the letter:
/// invalid JSON anywhere in a frame is a parse error for the whole frame; a structurally wrong
/// message is an Invalid Request answered with its id when the id could be read, else `null`.
public enum MessageDecoder {
    /// Decodes one frame.
    public static func decode(_ frame: UnsafeBufferPointer<UInt8>) -> FrameContent {
        decode(frame) { range in RawJSON(validated: Array(UnsafeBufferPointer(rebasing: frame[range]))) }
    }

    /// Decodes one frame the caller hands over. The `params` (or `result`) of a single large
    /// message become the frame's own storage, trimmed in place, so the message is held once
    /// rather than twice while its handler runs.
    public static func decode(owning frame: inout [UInt8]) -> FrameContent {
        var claimed: Range<Int>?
        let content = frame.withUnsafeBufferPointer { bytes in
            decode(bytes) { range in
                if claimed == nil && range.count >= claimThreshold
                    && bytes.first(where: { $0 > 0x20 }) == UInt8(ascii: "{")
                {
                    claimed = range
                    return .null
                }
                return RawJSON(validated: Array(UnsafeBufferPointer(rebasing: bytes[range])))
            }
        }
        guard let claimed else { return content }
        frame.removeSubrange(claimed.upperBound...)
        frame.removeSubrange(..<claimed.lowerBound)
        var taken: [UInt8] = []
        swap(&taken, &frame)
        let raw = RawJSON(validated: taken)
        switch content {
        case .single(.success(.request(let request))):
            return .single(.success(.request(Request(id: request.id, method: request.method, params: raw))))
        case .single(.success(.notification(let notification))):
            return .single(.success(.notification(Notification(method: notification.method, params: raw))))
        case .single(.success(.response(let response))):
            return .single(.success(.response(Response(id: response.id, outcome: .success(raw)))))
        default:
            return content
        }
    }

    /// Below this a value is copied out of its frame: trimming in place moves the whole frame.
    static let claimThreshold = 64 * 1024

    static func decode(_ frame: UnsafeBufferPointer<UInt8>, raw: (Range<Int>) -> RawJSON) -> FrameContent {
        var parser = JSONParser(bytes: frame)
        parser.skipWhitespace()
        guard !parser.isAtEnd else {
            return .single(.failure(RejectedMessage(id: .null, error: .parseError(parser.failure("empty message")))))
        }
        do {
            if parser.current == UInt8(ascii: "[") {
                let elements = try decodeBatch(&parser, raw: raw)
                try parser.expectEnd()
                if elements.isEmpty {
                    return .single(.failure(RejectedMessage(id: .null, error: .invalidRequest("empty batch"))))
                }
                return .batch(elements)
            }
            let message = try decodeElement(&parser, raw: raw)
            try parser.expectEnd()
            return .single(message)
        } catch {
            return .single(.failure(RejectedMessage(id: .null, error: .parseError(error))))
        }
    }

    /// Decodes one frame held in an array.
    public static func decode(_ frame: [UInt8]) -> FrameContent {
        frame.withUnsafeBufferPointer { decode($0) }
    }

    static func decodeBatch(
        _ parser: inout JSONParser,
        raw: (Range<Int>) -> RawJSON
    ) throws(JSONParseError) -> [Result<Message, RejectedMessage>] {
        try parser.enterContainer()
        defer { parser.depth -= 1 }
        parser.index += 1
        var elements: [Result<Message, RejectedMessage>] = []
        parser.skipWhitespace()
        if !parser.isAtEnd && parser.current == UInt8(ascii: "]") {
            parser.index += 1
            return elements
        }
        while true {
            parser.skipWhitespace()
            elements.append(try decodeElement(&parser, raw: raw))
            parser.skipWhitespace()
            if try parser.endOfContainer(UInt8(ascii: "]"), "',' or ']' in a batch") { return elements }
        }
    }

    /// Decodes one value that should be a message object. Syntax errors throw (they spoil the
    /// whole frame); structural problems become a rejected message.
    static func decodeElement(
        _ parser: inout JSONParser,
        raw: (Range<Int>) -> RawJSON
    ) throws(JSONParseError) -> Result<Message, RejectedMessage> {
        guard !parser.isAtEnd, parser.current == UInt8(ascii: "{") else {
            let found = parser.isAtEnd ? "nothing" : describeValue(at: parser)
            try parser.skipValue()
            return .failure(RejectedMessage(id: .null, error: .invalidRequest("expected an object, found \(found)")))
        }
        try parser.enterContainer()
        defer { parser.depth -= 1 }
        parser.index += 1

        var version: JSONValue?
        var idValue: JSONValue?
        var method: JSONValue?
        var params: Range<Int>?
        var result: Range<Int>?
        var error: JSONValue?

        parser.skipWhitespace()
        if !parser.isAtEnd && parser.current == UInt8(ascii: "}") {
            parser.index += 1
        } else {
            while true {
                parser.skipWhitespace()
                guard !parser.isAtEnd, parser.current == UInt8(ascii: "\"") else {
                    throw parser.unexpected("a string key")
                }
                let key = try parser.parseString()
                parser.skipWhitespace()
                try parser.consume(UInt8(ascii: ":"), "':' after an object key")
                parser.skipWhitespace()
                switch key {
                case "jsonrpc": version = try parser.parseValue()
                case "id": idValue = try parser.parseValue()
                case "method": method = try parser.parseValue()
                case "params": params = try rawRange(&parser)
                case "result": result = try rawRange(&parser)
                case "error": error = try parser.parseValue()
                default: try parser.skipValue()
                }
                parser.skipWhitespace()
                if try parser.endOfContainer(UInt8(ascii: "}"), "',' or '}' in an object") { break }
            }
        }

        // From here on the JSON is valid; only the shape can be wrong.
        var id: RequestID?
        if let idValue {
            guard let valid = RequestID(json: idValue) else {
                return .failure(
                    RejectedMessage(id: .null, error: .invalidRequest("\"id\" must be a string, an integer or null"))
                )
            }
            id = valid
        }
        // A method name without an id makes a notification, however malformed the rest is: it is
        // never answered, so a client's `exit` or `$/cancelRequest` cannot draw a response. (A
        // `method` that is not a string is answered, as the specification's examples show.)
        var isNotification = false
        if case .string? = method, idValue == nil { isNotification = true }
        func reject(_ problem: String) -> Result<Message, RejectedMessage> {
            .failure(RejectedMessage(id: id ?? .null, error: .invalidRequest(problem), isNotification: isNotification))
        }
        guard version == .string("2.0") else { return reject("\"jsonrpc\" must be exactly \"2.0\"") }

        if let method {
            guard case .string(let name) = method else { return reject("\"method\" must be a string") }
            var rawParams: RawJSON?
            if let params {
                // `null` is how several client libraries spell "no params" (Emacs Lisp's nil,
                // pygls's None): it means the same as leaving params out.
                let first = parser.bytes[params.lowerBound]
                if first == UInt8(ascii: "n") {
                    rawParams = nil
                } else if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") {
                    rawParams = raw(params)
                } else {
                    return reject("\"params\" must be an object, an array or null")
                }
            }
            if let id { return .success(.request(Request(id: id, method: name, params: rawParams))) }
            return .success(.notification(Notification(method: name, params: rawParams)))
        }

        guard let id else { return reject("a message needs \"method\" (request or notification) or \"id\" (response)") }
        switch (result, error) {
        case (let result?, nil):
            return .success(.response(Response(id: id, outcome: .success(raw(result)))))
        case (nil, let error?):
            guard let decoded = decodeErrorObject(error) else {
                return reject("\"error\" must be an object with an integer \"code\" and a string \"message\"")
            }
            return .success(.response(Response(id: id, outcome: .failure(decoded))))
        case (nil, nil):
            return reject("a response needs \"result\" or \"error\"")
        case (.some, .some):
            return reject("a response must not have both \"result\" and \"error\"")
        }
    }

    static func rawRange(_ parser: inout JSONParser) throws(JSONParseError) -> Range<Int> {
        let start = parser.index
        try parser.skipValue()
        return start..<parser.index
    }

    static func decodeErrorObject(_ value: JSONValue) -> ResponseError? {
        guard case .object(let members) = value, case .integer(let code)? = members["code"],
            case .string(let message)? = members["message"], let code = Int(exactly: code)
        else { return nil }
        return ResponseError(code: code, message: message, data: members["data"])
    }

    static func describeValue(at parser: borrowing JSONParser) -> String {
        switch parser.current {
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        default: return "a number"
        }
    }
}
