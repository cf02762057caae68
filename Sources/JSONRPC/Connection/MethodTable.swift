import JSON
import Synchronization

/// How a method's handler is scheduled relative to other messages.
public enum Execution: Sendable, Hashable {
    /// Runs synchronously on the intake as soon as the request is read, before the next message.
    /// For cheap handlers that never block (`ping`): no task, no thread hop.
    case immediate
    /// Runs as a task, one at a time, in the order the requests arrived (state changes).
    case ordered
    /// Runs as a task concurrently with everything else; responses may come back out of order.
    case concurrent
}

/// What a request handler sees.
public struct RequestContext: Sendable {
    public let id: RequestID
    public let method: String
    /// The connection the request came on: send notifications or server-to-client requests here.
    public let connection: Connection
    let afterResponseActions = AfterResponseActions()
    private let heldParams: HeldParams

    init(id: RequestID, method: String, params: RawJSON?, connection: Connection) {
        self.id = id
        self.method = method
        self.heldParams = HeldParams(params)
        self.connection = connection
    }

    /// The params as sent (nil when absent), until ``decodeParams(_:)`` releases them.
    public var params: RawJSON? {
        heldParams.state.withLock { state in
            if case .held(let params) = state { return params }
            return nil
        }
    }

    /// Runs `action` once the response to this request is queued for the peer: notifications it
    /// sends then come after the response (a subscription's first change after its id). In a
    /// batch, actions run when this request's answer is ready, before the batch's response.
    public func afterResponse(_ action: @escaping @Sendable () -> Void) {
        afterResponseActions.add(action)
    }

    /// Decodes `params` as `T`; absent params, `null` and `[]` decode like `{}` (see ``namedParams()``).
    ///
    /// The params' text is released once decoded, so a large request is not held twice while
    /// its handler runs: decode them once.
    public func decodeParams<T: Decodable>(_ type: T.Type) throws(ResponseError) -> T {
        let decoded = try namedParams().decode(T.self)
        heldParams.state.withLock { $0 = .released }
        return decoded
    }

    /// The params as an object, for methods that take their params by name.
    ///
    /// Client libraries spell "no params" in four ways: absent, `null` (Emacs Lisp's nil),
    /// `[]` (Lua cannot tell an empty table from an empty list) and `{}`. All four are `{}` here.
    /// An array that carries values is `-32602`: positional params are not accepted.
    public func namedParams() throws(ResponseError) -> RawJSON {
        let held = heldParams.state.withLock { $0 }
        guard case .held(let params) = held else {
            throw ResponseError.internalError("the params of '\(method)' were read after they were released")
        }
        guard let params else { return .emptyObject }
        guard params.bytes.first == UInt8(ascii: "[") else { return params }
        guard case .array(let values) = params.value(), !values.isEmpty else { return .emptyObject }
        throw ResponseError.invalidParams(
            field: "params",
            problem: "is an array of \(values.count) value\(values.count == 1 ? "" : "s") (positional params), "
                + "but '\(method)' takes its params by name: send an object such as {\"name\": value}"
        )
    }
}

/// A request's params until its handler has decoded them.
final class HeldParams: Sendable {
    enum State: Sendable {
        case held(RawJSON?)
        case released
    }

    let state: Mutex<State>

    init(_ params: RawJSON?) {
        state = Mutex(.held(params))
    }
}

/// What a notification handler sees.
public struct NotificationContext: Sendable {
    public let method: String
    public let params: RawJSON?
    public let connection: Connection
}

/// The methods a connection serves.
public struct MethodTable: Sendable {
    enum Body: Sendable {
        case synchronous(@Sendable (RequestContext) throws(ResponseError) -> RawJSON)
        case asynchronous(@Sendable (RequestContext) async throws -> RawJSON)
    }

    struct Entry: Sendable {
        let execution: Execution
        let body: Body
    }

    var requests: [String: Entry] = [:]
    var notifications: [String: @Sendable (NotificationContext) -> Void] = [:]
    /// Methods served but left out of ``requestMethods`` and ``notificationMethods``: those a
    /// client discovers otherwise (the standard LSP methods, through LSP capabilities).
    var unlisted: Set<String> = []

    public init() {}

    /// Registers a cheap, non-blocking handler that runs inline on the intake.
    public mutating func register(
        immediate method: String,
        _ handler: @escaping @Sendable (RequestContext) throws(ResponseError) -> RawJSON
    ) {
        requests[method] = Entry(execution: .immediate, body: .synchronous(handler))
    }

    /// Registers a handler that runs as a task. Throwing a ``ResponseError`` answers with it;
    /// `CancellationError` answers -32800; anything else is an internal error.
    public mutating func register(
        _ method: String,
        execution: Execution = .concurrent,
        listed: Bool = true,
        _ handler: @escaping @Sendable (RequestContext) async throws -> RawJSON
    ) {
        precondition(execution != .immediate, "immediate handlers are synchronous: use register(immediate:)")
        requests[method] = Entry(execution: execution, body: .asynchronous(handler))
        if !listed { unlisted.insert(method) }
    }

    /// Registers a notification handler. It runs on the intake, in order, and must not block;
    /// start a task from it for longer work.
    public mutating func onNotification(
        _ method: String,
        listed: Bool = true,
        _ handler: @escaping @Sendable (NotificationContext) -> Void
    ) {
        notifications[method] = handler
        if !listed { unlisted.insert(method) }
    }

    /// The request methods, sorted (the unlisted ones left out).
    public var requestMethods: [String] { requests.keys.filter { !unlisted.contains($0) }.sorted() }

    /// The notification methods handled, sorted (the unlisted ones left out).
    public var notificationMethods: [String] { notifications.keys.filter { !unlisted.contains($0) }.sorted() }
}

/// The actions a handler asked to run after its response.
final class AfterResponseActions: Sendable {
    private let actions = Mutex<[@Sendable () -> Void]>([])

    func add(_ action: @escaping @Sendable () -> Void) {
        actions.withLock { $0.append(action) }
    }

    func run() {
        for action in actions.withLock({ list in
            defer { list = [] }
            return list
        }) {
            action()
        }
    }
}
