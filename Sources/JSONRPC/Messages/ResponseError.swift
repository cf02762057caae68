import JSON

/// A JSON-RPC error object: what went wrong, with `data` that says where and how to fix it.
///
/// The codes are the JSON-RPC 2.0 set, the LSP lifecycle and cancellation codes, and the
/// application range -32000…-32099 (documented in `protocol/README.md`).
public struct ResponseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(code): \(message)" }

    /// The error object as JSON.
    public var json: JSONValue {
        var members: [String: JSONValue] = ["code": .integer(Int64(code)), "message": .string(message)]
        if let data { members["data"] = data }
        return .object(members)
    }

    public enum Code {
        public static let parseError = -32700
        public static let invalidRequest = -32600
        public static let methodNotFound = -32601
        public static let invalidParams = -32602
        public static let internalError = -32603
        public static let serverNotInitialized = -32002
        public static let requestCancelled = -32800
        public static let contentModified = -32801
        public static let requestFailed = -32803
    }

    /// The bytes are not JSON (or not UTF-8).
    public static func parseError(_ problem: JSONParseError) -> ResponseError {
        ResponseError(
            code: Code.parseError,
            message: "Parse error: \(problem.reason) at byte \(problem.offset)",
            data: ["offset": .integer(Int64(problem.offset)), "hint": "send exactly one UTF-8 JSON value per message"]
        )
    }

    /// The frame itself is broken (bad `Content-Length`, say), so its body could not be read.
    public static func framingError(_ problem: String, hint: String) -> ResponseError {
        ResponseError(code: Code.parseError, message: "Parse error: \(problem)", data: ["hint": .string(hint)])
    }

    /// A frame larger than the server accepts; it was skipped without being buffered.
    public static func messageTooLarge(size: Int?, limit: Int) -> ResponseError {
        var data: [String: JSONValue] = [
            "limit": .integer(Int64(limit)),
            "hint": "send smaller messages, or start the server with a larger --max-message-size",
        ]
        let sizeText: String
        if let size {
            data["size"] = .integer(Int64(size))
            sizeText = "\(size) bytes"
        } else {
            sizeText = "more than \(limit) bytes"
        }
        return ResponseError(
            code: Code.invalidRequest,
            message: "Invalid Request: message of \(sizeText) exceeds the limit of \(limit) bytes",
            data: .object(data)
        )
    }

    /// The JSON is fine but it is not a valid Request object, or not one acceptable now.
    public static func invalidRequest(_ problem: String, hint: String = requestShapeHint) -> ResponseError {
        ResponseError(code: Code.invalidRequest, message: "Invalid Request: \(problem)", data: ["hint": .string(hint)])
    }

    /// What a well-formed request looks like.
    public static let requestShapeHint = #"a request is {"jsonrpc":"2.0","id":1,"method":"ping","params":{}}"#

    /// No such method; `data.available` lists the methods that exist.
    public static func methodNotFound(_ method: String, available: [String]) -> ResponseError {
        ResponseError(
            code: Code.methodNotFound,
            message: "Method not found: '\(method)'",
            data: ["method": .string(method), "available": .array(available.sorted().map { .string($0) })]
        )
    }

    /// A parameter is missing or wrong; `field` is a path such as `params.clientInfo.name`.
    public static func invalidParams(field: String, problem: String) -> ResponseError {
        ResponseError(
            code: Code.invalidParams,
            message: "Invalid params: \(field) \(problem)",
            data: ["field": .string(field), "problem": .string(problem)]
        )
    }

    /// A bug or an unexpected failure inside the server.
    public static func internalError(_ problem: String) -> ResponseError {
        ResponseError(code: Code.internalError, message: "Internal error: \(problem)")
    }

    /// The request was cancelled (by `$/cancelRequest`, or because the server is exiting).
    public static func requestCancelled(_ reason: String = "the request was cancelled") -> ResponseError {
        ResponseError(code: Code.requestCancelled, message: "Request cancelled: \(reason)")
    }

    /// The server was started with `--require-initialize` and has not been initialized.
    public static func serverNotInitialized(_ method: String) -> ResponseError {
        ResponseError(
            code: Code.serverNotInitialized,
            message: "Server not initialized: '\(method)' arrived before 'initialize'",
            data: ["hint": "send 'initialize' first"]
        )
    }

    /// A valid request that failed for a reason of the domain (a stage failed, say).
    public static func requestFailed(_ problem: String, data: JSONValue? = nil) -> ResponseError {
        ResponseError(code: Code.requestFailed, message: "Request failed: \(problem)", data: data)
    }
}
