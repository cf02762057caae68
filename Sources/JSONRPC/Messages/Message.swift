/// A request from the peer: it expects exactly one response.
public struct Request: Sendable, Hashable {
    public var id: RequestID
    public var method: String
    public var params: RawJSON?

    public init(id: RequestID, method: String, params: RawJSON? = nil) {
        self.id = id
        self.method = method
        self.params = params
    }
}

/// A notification: no id, no response.
public struct Notification: Sendable, Hashable {
    public var method: String
    public var params: RawJSON?

    public init(method: String, params: RawJSON? = nil) {
        self.method = method
        self.params = params
    }
}

/// A response to a request this side sent.
public struct Response: Sendable, Hashable {
    public var id: RequestID
    public var outcome: Result<RawJSON, ResponseError>

    public init(id: RequestID, outcome: Result<RawJSON, ResponseError>) {
        self.id = id
        self.outcome = outcome
    }
}

/// One decoded message.
public enum Message: Sendable, Hashable {
    case request(Request)
    case notification(Notification)
    case response(Response)
}

/// A message that could not be accepted: the error to answer with, and the id to answer to
/// (`null` when the id itself could not be read).
public struct RejectedMessage: Error, Sendable, Hashable {
    public var id: RequestID
    public var error: ResponseError
    /// The message had a `method` and no `id`: a notification, which is never answered
    /// (JSON-RPC 2.0 §4.1), not even with an error; the connection logs it instead.
    public var isNotification: Bool

    public init(id: RequestID, error: ResponseError, isNotification: Bool = false) {
        self.id = id
        self.error = error
        self.isNotification = isNotification
    }
}

/// What one frame held.
public enum FrameContent: Sendable, Hashable {
    /// A single message (or the reason it was rejected).
    case single(Result<Message, RejectedMessage>)
    /// A batch: its elements in order. An empty array is rejected as a whole (`single`).
    case batch([Result<Message, RejectedMessage>])
}
