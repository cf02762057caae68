import JSON
import JSONRPC
import Logging
import StageEngine
import Synchronization

/// `initialize` parameters. Every field is optional so that a minimal client can send `{}`.
struct InitializeParams: Decodable, Sendable {
    struct ClientInfo: Decodable, Sendable {
        var name: String
        var version: String?
    }

    var processId: Int?
    var clientInfo: ClientInfo?
    var protocolVersion: String?
    var capabilities: JSONValue?
    var workspaceRoot: String?
}

/// `initialize` result.
struct InitializeResult: Encodable, Sendable {
    struct ServerInfo: Encodable, Sendable {
        var name: String
        var version: String
    }

    struct Capabilities: Encodable, Sendable {
        var methods: [String]
        var notifications: [String]
        var batches: Bool
        var cancellation: Bool
        var framing: String
        var maxMessageSize: Int
    }

    struct WorkspaceInfo: Encodable, Sendable {
        var root: String
    }

    var protocolVersion: String
    var serverInfo: ServerInfo
    var capabilities: Capabilities
    var workspace: WorkspaceInfo
}

extension StageRunnerServer {
    func initialize(_ context: RequestContext) throws(ResponseError) -> RawJSON {
        let params = try context.decodeParams(InitializeParams.self)
        if let version = params.protocolVersion, !ProtocolVersion.isCompatible(version) {
            throw .invalidParams(
                field: "params.protocolVersion",
                problem: "'\(version)' is not supported: this server speaks protocol \(ProtocolVersion.current)"
            )
        }
        var workspace = lifecycle.workspace
        if let root = params.workspaceRoot {
            do {
                workspace = try Workspace(path: root)
            } catch {
                throw .invalidParams(field: "params.workspaceRoot", problem: "\(error)")
            }
        }
        let stageHandlers = try Self.stageHandlers(params.capabilities)
        let problem: ResponseError? = lifecycle.state.withLock { state in
            guard state.phase == .starting else {
                return .invalidRequest(
                    "'initialize' was already received",
                    hint: "send 'initialize' once per connection, as the first request"
                )
            }
            state.phase = .initialized
            state.workspace = workspace
            state.stageHandlers = stageHandlers
            return nil
        }
        if let problem { throw problem }
        context.connection.logger.info(
            "initialized",
            metadata: ["client": "\(params.clientInfo?.name ?? "unnamed")", "workspace": "\(workspace.root)"]
        )
        let result = InitializeResult(
            protocolVersion: ProtocolVersion.current,
            serverInfo: .init(name: "stagerunner", version: StageRunnerVersion.current),
            capabilities: .init(
                methods: context.connection.methods.requestMethods,
                notifications: context.connection.methods.notificationMethods + ["$/cancelRequest"],
                batches: true,
                cancellation: true,
                framing: (context.connection.framing ?? .lsp).rawValue,
                maxMessageSize: options.maximumMessageSize
            ),
            workspace: .init(root: workspace.root)
        )
        do {
            return try RawJSON(encoding: result)
        } catch {
            throw .internalError("could not encode the initialize result: \(error)")
        }
    }

    /// `capabilities.stageHandlers`: the names of the task stages the client runs itself.
    static func stageHandlers(_ capabilities: JSONValue?) throws(ResponseError) -> Set<String> {
        guard let declared = capabilities?["stageHandlers"], declared != .null else { return [] }
        guard case .array(let names) = declared else {
            throw .invalidParams(
                field: "params.capabilities.stageHandlers",
                problem: "must be an array of handler names"
            )
        }
        var handlers: Set<String> = []
        for (index, name) in names.enumerated() {
            guard case .string(let text) = name, !text.isEmpty else {
                throw .invalidParams(
                    field: "params.capabilities.stageHandlers[\(index)]",
                    problem: "must be a non-empty string, not \(name)"
                )
            }
            handlers.insert(text)
        }
        return handlers
    }

    func shutdown(_ context: RequestContext) async throws -> RawJSON {
        // The phase already changed on the intake (Lifecycle.admit). Answer only once the work already under way is done (this handler is one of the running).
        await context.connection.waitUntilIdle(ignoring: 1)
        return .null
    }

    /// `exit` after `shutdown` lets the work `shutdown` is waiting for finish (a script may pipe
    /// both at once); `exit` alone cancels what is running.
    func exit(_ context: NotificationContext) {
        let cancel = !lifecycle.shutdownReceived
        Task { await context.connection.close(cancelInFlight: cancel, reason: .requested("exit")) }
    }
}
