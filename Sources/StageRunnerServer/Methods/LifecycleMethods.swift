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

    /// An LSP workspace folder.
    struct WorkspaceFolder: Decodable, Sendable {
        var uri: String
        var name: String?
    }

    var processId: Int?
    var clientInfo: ClientInfo?
    var protocolVersion: String?
    var capabilities: JSONValue?
    var workspaceRoot: String?
    // What LSP clients send instead of `workspaceRoot`; typed clients (on lsprotocol, say) can
    // send nothing else, except through `initializationOptions`.
    var initializationOptions: JSONValue?
    var rootUri: String?
    var rootPath: String?
    var workspaceFolders: [WorkspaceFolder]?
}

/// `initialize` result.
struct InitializeResult: Encodable, Sendable {
    struct ServerInfo: Encodable, Sendable {
        var name: String
        var version: String
    }

    /// What this server offers, in StageRunner's terms.
    struct StageRunnerCapabilities: Encodable, Sendable {
        var methods: [String]
        var notifications: [String]
        var batches: Bool
        var cancellation: Bool
        var framing: String
        var maxMessageSize: Int
    }

    /// The StageRunner capabilities at the top, where StageRunner's own clients read them, and
    /// again under `experimental.stagerunner`, where typed LSP clients keep what they do not know.
    /// For an LSP client, the standard capabilities too (`hoverProvider`, …).
    struct Capabilities: Encodable, Sendable {
        var stagerunner: StageRunnerCapabilities
        var standard: [String: JSONValue] = [:]

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            try stagerunner.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(["stagerunner": stagerunner], forKey: Key(stringValue: "experimental"))
            for (name, value) in standard { try container.encode(value, forKey: Key(stringValue: name)) }
        }
    }

    struct WorkspaceInfo: Encodable, Sendable {
        var root: String
    }

    var protocolVersion: String
    var serverInfo: ServerInfo
    var capabilities: Capabilities
    var workspace: WorkspaceInfo
}

extension RPCServer {
    func initialize(_ context: RequestContext) throws(ResponseError) -> RawJSON {
        let params = try context.decodeParams(InitializeParams.self)
        if let version = params.protocolVersion, !ProtocolVersion.isCompatible(version) {
            throw .invalidParams(
                field: "params.protocolVersion",
                problem: "'\(version)' is not supported: this server speaks protocol \(ProtocolVersion.current)"
            )
        }
        var workspace = lifecycle.workspace
        if let (field, root) = try Self.requestedWorkspace(params) {
            do {
                workspace = try Workspace(path: root)
            } catch {
                throw .invalidParams(field: field, problem: "\(error)")
            }
        }
        let stageHandlers = try Self.stageHandlers(params)
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
            state.showsDocuments = params.capabilities?["window"]?["showDocument"]?["support"] == .bool(true)
            state.languageClient = Self.isLanguageClient(params.capabilities)
            if case .array(let formats)? = params.capabilities?["textDocument"]?["hover"]?["contentFormat"] {
                state.hoverMarkdown = formats.first == "markdown"
            }
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
                stagerunner: .init(
                    methods: context.connection.methods.requestMethods,
                    notifications: context.connection.methods.notificationMethods + ["$/cancelRequest"],
                    batches: true,
                    cancellation: true,
                    framing: (context.connection.framing ?? .lsp).rawValue,
                    maxMessageSize: options.maximumMessageSize
                ),
                standard: Self.isLanguageClient(params.capabilities) ? Self.languageCapabilities : [:]
            ),
            workspace: .init(root: workspace.root)
        )
        do {
            return try RawJSON(encoding: result)
        } catch {
            throw .internalError("could not encode the initialize result: \(error)")
        }
    }

    /// The workspace directory the client asked for, and the member that named it: the first
    /// of `workspaceRoot`, `initializationOptions.workspaceRoot`, `rootUri`, `rootPath` and the
    /// first of `workspaceFolders`; nil when none is given.
    static func requestedWorkspace(_ params: InitializeParams) throws(ResponseError) -> (String, String)? {
        if let root = params.workspaceRoot { return ("params.workspaceRoot", root) }
        switch params.initializationOptions?["workspaceRoot"] {
        case .string(let root)?: return ("params.initializationOptions.workspaceRoot", root)
        case nil, .null?: break
        case let other?:
            throw .invalidParams(
                field: "params.initializationOptions.workspaceRoot",
                problem: "must be a string, not \(other.typeName)"
            )
        }
        if let uri = params.rootUri { return ("params.rootUri", try localPath(uri, field: "params.rootUri")) }
        if let path = params.rootPath { return ("params.rootPath", path) }
        if let folder = params.workspaceFolders?.first {
            let field = "params.workspaceFolders[0].uri"
            return (field, try localPath(folder.uri, field: field))
        }
        return nil
    }

    /// The path of a `file:` URI (`file:///home/a%20b`, `file://localhost/…`), percent-decoded.
    static func localPath(_ uri: String, field: String) throws(ResponseError) -> String {
        do {
            return try FileURI.path(of: uri)
        } catch {
            throw .invalidParams(field: field, problem: error.problem)
        }
    }

    /// The names of the task stages the client runs itself: `capabilities.stageHandlers`, or
    /// `initializationOptions.stageHandlers` for typed LSP clients whose capabilities are fixed.
    static func stageHandlers(_ params: InitializeParams) throws(ResponseError) -> Set<String> {
        var field = "params.capabilities.stageHandlers"
        var declared = params.capabilities?["stageHandlers"]
        if declared == nil || declared == .null {
            field = "params.initializationOptions.stageHandlers"
            declared = params.initializationOptions?["stageHandlers"]
        }
        guard let declared, declared != .null else { return [] }
        guard case .array(let names) = declared else {
            throw .invalidParams(field: field, problem: "must be an array of handler names")
        }
        var handlers: Set<String> = []
        for (index, name) in names.enumerated() {
            guard case .string(let text) = name, !text.isEmpty else {
                throw .invalidParams(field: "\(field)[\(index)]", problem: "must be a non-empty string, not \(name)")
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
        Task { await context.connection.close(cancelInFlight: cancel, reason: .exitNotification) }
    }
}
