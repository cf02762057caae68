import JSON

/// Model routing of a task run (`runTask`'s `modelConfig`): which models the stages may use and
/// which one they use unless a stage names its own.
public struct ModelConfig: Sendable, Hashable {
    /// The provider put before model ids that name none; the workspace's default if nil.
    public var defaultProvider: String?
    /// The model stages use; `default` means the task's or the workspace's default.
    public var defaultModel: String?
    /// The models a stage may switch between.
    public var models: [String]?

    public init(defaultProvider: String? = nil, defaultModel: String? = nil, models: [String]? = nil) {
        self.defaultProvider = defaultProvider
        self.defaultModel = defaultModel
        self.models = models
    }

    var json: JSONValue {
        var members = JSONObject()
        if let defaultModel { members["defaultModel"] = .string(defaultModel) }
        if let defaultProvider { members["defaultProvider"] = .string(defaultProvider) }
        if let models { members["models"] = .array(models.map(JSONValue.string)) }
        return .object(members)
    }
}

/// The state a task run threads through its stages: what every handler sees (protocol/README.md
/// section 8.7).
public struct TaskContext: Sendable, Hashable {
    /// The task's name.
    public var taskName: String
    /// The run's id, also the name of its work directory.
    public var runId: String
    /// The run's work directory, relative to the workspace (artifacts and stage logs).
    public var workDir: String
    /// The input the task was started with (`context.data.seed`).
    public var seed: JSONValue
    /// Each executed stage's output, by stage name, plus `seed`.
    public var data: [String: JSONValue]
    /// Control flags merged from stage results.
    public var flags: [String: JSONValue] = [:]
    /// The log so far.
    public var logs: [TaskLogEntry] = []
    /// The stage being considered.
    public var currentStage: TaskStage?
    /// The chained input of the current stage: the last successful non-validation output.
    public var output: JSONValue
    /// Refinement cycles started so far.
    public var refinementCount = 0
    /// Model routing: the models stages may use, and the one they use by default.
    public var modelConfig: ModelConfig
    /// `modelConfig.models`, or `["default"]`.
    public var availableModels: [String]
    /// `modelConfig.defaultModel`, or `"default"`.
    public var currentModel: String

    public init(taskName: String, runId: String, workDir: String, seed: JSONValue, modelConfig: ModelConfig) {
        self.taskName = taskName
        self.runId = runId
        self.workDir = workDir
        self.seed = seed
        data = ["seed": seed]
        output = seed
        self.modelConfig = modelConfig
        availableModels = modelConfig.models ?? ["default"]
        currentModel = modelConfig.defaultModel ?? "default"
    }

    /// The context as handlers receive it (a command's stdin, a client's `executeStage`, a
    /// template's variables) and as the result payload carries it.
    /// `meta`: the task's name, the run's id and folder, model routing.
    public var meta: JSONValue {
        // JSON objects below are built with their keys in order, as JSONWriter writes them.
        .object(
            [
                "modelConfig": modelConfig.json,
                "runId": .string(runId),
                "taskName": .string(taskName),
                "workDir": .string(workDir),
            ] as JSONObject
        )
    }

    public var json: JSONValue { json(logs: .array(logs.map(\.json))) }

    /// ``json`` with its `logs` already written as JSON.
    func json(logs: JSONValue) -> JSONValue {
        .object(
            [
                "availableModels": .array(availableModels.map(JSONValue.string)),
                "currentModel": .string(currentModel),
                "currentStage": currentStage.map { .string($0.rawValue) } ?? .null,
                "data": .object(data),
                "flags": .object(flags),
                "logs": logs,
                "meta": meta,
                "output": output,
                "refinementCount": .integer(Int64(refinementCount)),
            ] as JSONObject
        )
    }
}

/// One entry of a task's log: a stage that ran or was skipped, or a `refinement-trigger`.
public struct TaskLogEntry: Sendable, Hashable {
    /// The stage name, or `refinement-trigger`.
    public var stage: String
    /// Set when the stage ran: whether it succeeded.
    public var ok: Bool?
    /// Set when the stage did not run.
    public var skipped: Bool?
    /// How long the stage ran, in milliseconds.
    public var ms: Double?
    /// Why the stage was skipped, or why a refinement cycle started.
    public var reason: String?
    /// The refinement cycle the entry belongs to (0 for the first pass).
    public var refinementCycle: Int
    /// The normalized error of a failed stage.
    public var error: TaskError?
    /// The stage (`critique` or `refine`) ran as pre-refinement, ahead of the first validation
    /// stage of a refinement cycle.
    public var preRefinement: Bool?

    public init(
        stage: String,
        ok: Bool? = nil,
        skipped: Bool? = nil,
        ms: Double? = nil,
        reason: String? = nil,
        refinementCycle: Int,
        error: TaskError? = nil,
        preRefinement: Bool? = nil
    ) {
        self.stage = stage
        self.ok = ok
        self.skipped = skipped
        self.ms = ms
        self.reason = reason
        self.refinementCycle = refinementCycle
        self.error = error
        self.preRefinement = preRefinement
    }

    public var json: JSONValue {
        var members = JSONObject()
        if let error { members["error"] = error.json }
        if let ms { members["ms"] = .double((ms * 1000).rounded() / 1000) }
        if let ok { members["ok"] = .bool(ok) }
        if let preRefinement { members["preRefinement"] = .bool(preRefinement) }
        if let reason { members["reason"] = .string(reason) }
        members["refinementCycle"] = .integer(Int64(refinementCycle))
        if let skipped { members["skipped"] = .bool(skipped) }
        members["stage"] = .string(stage)
        return .object(members)
    }
}

/// One model call of a task run (an entry of `llmMetrics`), annotated with its task and stage.
public struct LLMMetric: Sendable, Hashable {
    public var task: String
    public var stage: String
    public var provider: String
    public var model: String
    /// The tokens the provider reported; nil when it reported none (or the call failed).
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// US dollars; nil when the model's price is unknown.
    public var cost: Double?
    public var durationMs: Double
    public var finishReason: String?
    public var cached: Bool
    public var retries: Int
    /// The call failed; `error` says why, `errorKind` in a word (``ModelError/Kind``).
    public var failed: Bool
    public var error: String?
    public var errorKind: String?
    /// Why each retried attempt failed.
    public var retryErrors: [String] = []

    /// Both counts, when the provider reported them.
    public var totalTokens: Int? {
        guard let promptTokens, let completionTokens else { return nil }
        return promptTokens + completionTokens
    }

    public var json: JSONValue {
        var members = JSONObject()
        members["cached"] = .bool(cached)
        members["completionTokens"] = completionTokens.map { .integer(Int64($0)) } ?? .null
        members["cost"] = cost.map(JSONValue.double) ?? .null
        members["durationMs"] = .double((durationMs * 1000).rounded() / 1000)
        if let error { members["error"] = .string(error) }
        if let errorKind { members["errorKind"] = .string(errorKind) }
        if failed { members["failed"] = .bool(true) }
        if let finishReason { members["finishReason"] = .string(finishReason) }
        members["model"] = .string(model)
        members["promptTokens"] = promptTokens.map { .integer(Int64($0)) } ?? .null
        members["provider"] = .string(provider)
        members["retries"] = .integer(Int64(retries))
        members["stage"] = .string(stage)
        members["task"] = .string(task)
        members["totalTokens"] = totalTokens.map { .integer(Int64($0)) } ?? .null
        return .object(members)
    }
}

/// What a task run returns: the result of `runTask` (protocol/README.md section 8.7).
public struct TaskResult: Sendable, Hashable {
    /// The task succeeded.
    public var ok: Bool
    /// The stage that failed, or `final-validation`.
    public var failedStage: String?
    /// Why it failed.
    public var error: TaskError?
    public var logs: [TaskLogEntry]
    public var context: TaskContext
    /// Refinement cycles run.
    public var refinementAttempts: Int
    /// Every model call, failed ones marked `failed`.
    public var llmMetrics: [LLMMetric]

    /// The payload as `runTask` answers it: `{ok, logs, context, refinementAttempts,
    /// llmMetrics}`, or `{ok: false, failedStage, error, logs, context, refinementAttempts,
    /// llmMetrics}` (a failure carries its metrics too, so that its cost is known).
    public var json: JSONValue {
        let logs = JSONValue.array(self.logs.map(\.json))
        var members = JSONObject()
        // The context's log is the run's: written once.
        members["context"] = context.json(logs: self.logs == context.logs ? logs : .array(context.logs.map(\.json)))
        if let error { members["error"] = error.json }
        if let failedStage { members["failedStage"] = .string(failedStage) }
        members["llmMetrics"] = .array(llmMetrics.map(\.json))
        members["logs"] = logs
        members["ok"] = .bool(ok)
        members["refinementAttempts"] = .integer(Int64(refinementAttempts))
        return .object(members)
    }
}

/// What happens during a task run, as it happens: what a status document or a progress display
/// follows.
public enum TaskEvent: Sendable, Hashable {
    /// A stage's handler starts (after any skips before it).
    case stageStarted(TaskStage, refinementCycle: Int, preRefinement: Bool)
    /// A stage's handler finished; the entry says how.
    case stageFinished(TaskLogEntry)
    /// A refinement cycle starts.
    case refinementStarted(cycle: Int, reason: String)
    /// A model call ended (failed calls included).
    case modelCall(LLMMetric)
}

/// Receives a run's events in order; the run waits for each call, so keep it quick.
public typealias TaskObserver = @Sendable (TaskEvent) async -> Void
