import JSON
import Logging
import ModelProviders
import OutputParsing

/// Runs one stage of a task: a built-in handler from a task file, or code of the caller's own.
public protocol TaskStageHandler: Sendable {
    /// What the handler does, for logs and errors (`command python3 ingest.py`).
    var summary: String { get }

    /// Runs the stage. Cancellation (a stage timeout, a cancelled task) must end it promptly.
    func run(_ invocation: StageInvocation) async throws -> StageOutput

    /// What would stop the stage, found without running it (a dry run): a program that is not
    /// there, a model whose provider cannot be used, a client handler nobody declared.
    /// `invocation` holds the run's first context (the input, no outputs yet).
    func problems(_ invocation: StageInvocation) -> [String]

    /// Whether cancelling the handler can end it early. A handler that only computes, or makes
    /// a write that must finish, runs to its end whatever happens: it runs without a timer, and
    /// its timeout is judged when it returns. Default: true.
    var isInterruptible: Bool { get }
}

extension TaskStageHandler {
    /// Handlers that need nothing beyond what loading the task checked have no problems to find.
    public func problems(_ invocation: StageInvocation) -> [String] { [] }

    public var isInterruptible: Bool { true }
}

/// A handler written in Swift: how a Swift program implements a stage without a task file.
public struct ClosureStageHandler: TaskStageHandler {
    public let summary: String
    let body: @Sendable (StageInvocation) async throws -> StageOutput

    public init(
        _ summary: String = "swift closure",
        _ body: @escaping @Sendable (StageInvocation) async throws -> StageOutput
    ) {
        self.summary = summary
        self.body = body
    }

    public func run(_ invocation: StageInvocation) async throws -> StageOutput { try await body(invocation) }
}

/// One call of a stage handler.
public struct StageInvocation: Sendable {
    /// The stage being run.
    public var stage: TaskStage
    /// The context as it stands before the stage.
    public var context: TaskContext
    /// The stage runs ahead of validation in a refinement cycle (pre-refinement).
    public var preRefinement: Bool
    /// What the handler may use: the workspace, models, parsers, the connected client.
    public var environment: TaskEnvironment
}

/// A client that implements stages itself (the server's `executeStage` request).
public protocol ClientStageExecutor: Sendable {
    /// The handler names the client declared when it connected.
    var handlerNames: Set<String> { get }

    /// Asks the client to run `stage` with its handler `handler`; returns its `{output, flags}`.
    func executeStage(handler: String, stage: TaskStage, context: JSONValue) async throws -> JSONValue
}

/// The services a task run offers its handlers.
public struct TaskEnvironment: Sendable {
    public var workspace: Workspace
    /// The directory of the task file, relative to the workspace: handlers resolve their files there.
    public var taskDirectory: String
    /// Model routing for `llm` and `prompt` stages.
    public var router: ModelRouter
    /// Parsers for `parse` stages.
    public var parsers: ParserRegistry
    /// The connected client, when there is one, for `client` stages.
    public var clientStages: (any ClientStageExecutor)?
    /// The task's default model (its `model`), used when the context names `default`.
    public var defaultModel: String?
    /// Makes a model call through the response cache and within the budgets, as stages do.
    let callModel: @Sendable (any ModelClient, CompletionRequest) async throws(ModelError) -> Completion
    let metrics: MetricsRecorder
    let logger: Logger

    /// The model a stage uses: its own, else the context's current model, else the task's.
    func model(stageModel: String?, context: TaskContext) -> String {
        var model =
            stageModel ?? (context.currentModel == "default" ? nil : context.currentModel) ?? defaultModel ?? "default"
        if !model.contains(":"), let provider = context.modelConfig.defaultProvider, router.aliases[model] == nil {
            model = "\(provider):\(model)"
        }
        return model
    }
}

/// Collects the model calls of a run, from whichever handler makes them, and passes each on to
/// the call log and the run's observer.
actor MetricsRecorder {
    private(set) var metrics: [LLMMetric] = []
    let observer: TaskObserver?
    let callLog: (@Sendable (LLMMetric) async -> Void)?

    init(observer: TaskObserver? = nil, callLog: (@Sendable (LLMMetric) async -> Void)? = nil) {
        self.observer = observer
        self.callLog = callLog
    }

    func record(_ metric: LLMMetric) async {
        metrics.append(metric)
        await callLog?(metric)
        await observer?(.modelCall(metric))
    }
}
