import JSONRPC
import Logging
import StageEngine

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The StageRunner service: binds the JSON-RPC methods to the engine.
///
/// It holds no engine logic of its own; each method decodes its params, calls the engine and
/// encodes the result, so that the Swift API, the RPC method and the CLI share one implementation.
public final class RPCServer: Sendable {
    public let options: ServerOptions
    let lifecycle: Lifecycle
    let logger: Logger
    let engine: SessionEngine
    let subscriptions = SubscriptionRegistry()
    /// What an editor has open (the standard LSP document methods).
    let documents = OpenDocuments()
    public init(options: ServerOptions, logger: Logger = Logger(label: "stagerunner")) {
        self.options = options
        self.logger = logger
        lifecycle = Lifecycle(workspace: options.workspace, requireInitialize: options.requireInitialize)
        engine = SessionEngine(lifecycle: lifecycle, logger: logger, maxRunningJobs: options.maxRunningJobs)
    }

    /// Creates the connection that serves this server over a pair of descriptors; call `start()` on it.
    public func connect(input: Int32, output: Int32) -> Connection {
        var configuration = Connection.Configuration()
        configuration.framing = options.framing
        configuration.maximumMessageSize = options.maximumMessageSize
        configuration.admission = { [lifecycle] method in lifecycle.admit(method) }
        let connection = Connection(
            input: input,
            output: output,
            methods: makeMethodTable(),
            configuration: configuration,
            logger: logger
        )
        // Jobs outlive their requests: at the end of input and on SIGTERM they finish, on SIGINT
        // and `exit` they are cancelled; subscribers see their last state before the output closes.
        connection.onClose { [self] reason in
            let cancel: Bool
            switch reason {
            case .signal(SIGINT), .exitNotification: cancel = true
            default: cancel = false
            }
            await finishJobs(cancel: cancel)
            await subscriptions.waitUntilDelivered()
        }
        // A SIGINT after SIGTERM (or after the end of input): the jobs being finished are cancelled.
        connection.onCancel { [self] in await finishJobs(cancel: true) }
        return connection
    }

    /// Ends the jobs of the session before the process exits: they finish, or are cancelled when
    /// `cancel` (SIGINT, or `exit`) asks it. Their status documents are on disk afterwards.
    func finishJobs(cancel: Bool) async {
        await engine.openedJobs?.finishAll(cancel: cancel)
        await engine.openedRunner?.checkpointDatabases()
    }

    /// The process exit status for a connection that closed this way: 0 after a clean end
    /// (input closed, a signal, or `exit` after `shutdown`), 1 otherwise (`exit` without
    /// `shutdown`, as LSP specifies, or a broken pipe).
    public func exitStatus(for reason: Connection.CloseReason) -> Int32 {
        switch reason {
        case .endOfInput: return 0
        case .exitNotification: return lifecycle.shutdownReceived ? 0 : 1
        case .signal: return 0
        // A client that asked for `shutdown` may stop reading before its `exit` is read (an
        // editor quitting closes the pipes at once): that is the end it asked for.
        case .outputFailed: return lifecycle.shutdownReceived ? 0 : 1
        case .inputFailed: return 1
        }
    }

    /// The methods this server serves. The table (owned by the connection) keeps the server alive.
    func makeMethodTable() -> MethodTable {
        var table = MethodTable()
        table.register(immediate: "initialize") { [self] context throws(ResponseError) in
            try initialize(context)
        }
        table.onNotification("initialized") { _ in }
        table.register("shutdown", execution: .concurrent) { [self] context in try await shutdown(context) }
        table.onNotification("exit") { [self] context in exit(context) }
        table.register(immediate: "ping") { context throws(ResponseError) in try Self.ping(context) }
        table.register("runStage") { [self] context in try await runStage(context) }
        table.register("renderPrompt") { [self] context in try await renderPrompt(context) }
        table.register("listTemplates") { [self] context in try await listTemplates(context) }
        table.register("runTask") { [self] context in try await runTask(context) }
        table.register("runPipeline") { [self] context in try await runPipeline(context) }
        table.register("getStatus") { [self] context in try await getStatus(context) }
        table.register("listJobs") { [self] context in try await listJobs(context) }
        table.register("cancelJob") { [self] context in try await cancelJob(context) }
        table.register("retryTask") { [self] context in try await retryTask(context) }
        table.register("resumeJob") { [self] context in try await resumeJob(context) }
        table.register("getArtifact") { [self] context in try await getArtifact(context) }
        table.register("subscribeStatus") { [self] context in try await subscribeStatus(context) }
        table.register("unsubscribeStatus") { [self] context in try await unsubscribeStatus(context) }
        table.register("validateWorkspace") { [self] context in try await validateWorkspace(context) }
        registerLanguageMethods(in: &table)
        if options.enableTestMethods { TestMethods.register(in: &table) }
        return table
    }
}
