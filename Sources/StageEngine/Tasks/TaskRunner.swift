import Foundation
import JSON
import Logging
import ModelProviders
import Synchronization
import Threads

/// How to run a task: its input and the run's overrides.
public struct TaskRunOptions: Sendable {
    /// The seed: `context.data.seed`, and the first stage's chained input.
    public var input: JSONValue
    /// Model routing (`runTask`'s `modelConfig`): the models stages may use, and the default.
    public var modelConfig: ModelConfig
    /// Refinement cycles allowed; the task's own `maxRefinements` when nil.
    public var maxRefinements: Int?
    /// A limit on the whole run; a stage still running when it passes fails with `TaskTimeoutError`.
    public var timeout: Duration?
    /// The run's id (default: a UTC timestamp and a random suffix).
    public var runId: String?
    /// The run's work directory relative to the workspace (default `data/tasks/<task>/<runId>`).
    public var workDir: String?
    /// The connected client, for `client` stages.
    public var clientStages: (any ClientStageExecutor)?
    /// Told of every stage start and end, refinement cycle and model call, in order.
    public var observer: TaskObserver?
    /// The budget the run's model calls spend (`budgets.job` in stagerunner.yaml); a job's
    /// tasks spend their job's.
    public var budgetScope: String?
    /// How model calls use the response cache (default: the workspace's `cache.default`, else `use`).
    public var cache: CachePolicy?

    public init(
        input: JSONValue = .object([:]),
        modelConfig: ModelConfig = .init(),
        maxRefinements: Int? = nil,
        timeout: Duration? = nil,
        runId: String? = nil,
        workDir: String? = nil,
        clientStages: (any ClientStageExecutor)? = nil,
        observer: TaskObserver? = nil
    ) {
        self.input = input
        self.modelConfig = modelConfig
        self.maxRefinements = maxRefinements
        self.timeout = timeout
        self.runId = runId
        self.workDir = workDir
        self.clientStages = clientStages
        self.observer = observer
    }
}

extension WorkspaceEngine {
    /// The task file at `file` (relative to the workspace), compiled; kept until it or one of
    /// its templates or schemas changes on disk.
    public func loadTask(_ file: String) async throws(TaskDefinitionError) -> TaskDefinition {
        try await state.task(file, parsers: parsers)
    }

    /// What the handlers of a run of `task` may use: the workspace, models (through the cache
    /// and budgets), parsers, the client, and the call log for their calls.
    func taskEnvironment(
        _ task: TaskDefinition,
        options: TaskRunOptions,
        runId: String,
        _ snapshot: WorkspaceState.Snapshot
    ) -> TaskEnvironment {
        TaskEnvironment(
            workspace: workspace,
            taskDirectory: task.directory,
            router: snapshot.router,
            parsers: parsers,
            clientStages: options.clientStages,
            defaultModel: task.model,
            callModel: {
                [self, budgetScope = options.budgetScope, cache = options.cache] client, request throws(ModelError) in
                try await callModel(
                    client,
                    request,
                    budgetScope: budgetScope,
                    cache: cache ?? snapshot.configuration.cache?.default ?? .use,
                    snapshot
                )
            },
            metrics: MetricsRecorder(observer: options.observer) { [self, task = task.name] metric in
                await logTaskCall(metric, task: task, runId: runId)
            },
            logger: logger
        )
    }

    /// Runs `task` by the task runner's rules (protocol/README.md §8.7): the eleven stages in order, missing handlers
    /// skipped, the `{output, flags}` contract and flag types checked, outputs chained (validation
    /// stages excluded), and validation failures starting critique-and-refine cycles.
    ///
    /// Stage failures are results (`ok: false`), not thrown errors; only cancellation throws.
    public func runTask(
        _ task: TaskDefinition,
        options: TaskRunOptions = .init()
    ) async throws(CancellationError) -> TaskResult {
        let snapshot = await state.currentConfiguration()
        let runId = options.runId ?? Self.newRunId()
        let environment = taskEnvironment(task, options: options, runId: runId, snapshot)
        let workDir = options.workDir ?? "data/tasks/\(task.name)/\(runId)"
        // Recorded while it lasts, so that what a crash leaves in the run's folder is found.
        let record =
            task.handlers.values.contains { $0 is WriteStageHandler || $0 is CommandStageHandler }
            ? RunRecords.record(workDir, in: workspace) : nil
        defer { if let record { RunRecords.remove(record) } }
        var execution = TaskExecution(
            task: task,
            environment: environment,
            context: TaskContext(
                taskName: task.name,
                runId: runId,
                workDir: workDir,
                seed: options.input,
                modelConfig: options.modelConfig
            ),
            maxRefinements: options.maxRefinements ?? task.maxRefinements,
            observer: options.observer,
            deadline: options.timeout.map { ContinuousClock.now + $0 },
            taskTimeout: options.timeout
        )
        let result = await execution.run()
        if Task.isCancelled { throw CancellationError() }
        return result
    }

    /// `20261122T014501Z-3fa9`: sortable by time, unique enough for runs started together.
    static func newRunId() -> String {
        var time = time_t(Date().timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&time, &parts)
        let stamp = String(
            format: "%04d%02d%02dT%02d%02d%02dZ",
            parts.tm_year + 1900,
            parts.tm_mon + 1,
            parts.tm_mday,
            parts.tm_hour,
            parts.tm_min,
            parts.tm_sec
        )
        return stamp + "-" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    }
}

/// One run of a task: the stages in order, repeated as refinement cycles while validation fails
/// and cycles remain, over a mutable context.
struct TaskExecution {
    let task: TaskDefinition
    let environment: TaskEnvironment
    var context: TaskContext
    let maxRefinements: Int
    let observer: TaskObserver?
    let deadline: ContinuousClock.Instant?
    let taskTimeout: Duration?

    /// Why a refinement cycle starts, as its `refinement-trigger` log entry says: a validation
    /// stage failed, or set `validationFailed`.
    enum RefinementReason: String {
        case validationError = "validation-error"
        case validationFailedFlag = "validation-failed-flag"
    }

    mutating func run() async -> TaskResult {
        var hadValidationHandler = false
        // Each refinement cycle restarts at promptTemplating from what preProcessing (or
        // ingestion, or the seed) produced in the first pass.
        var cycleInput = context.seed
        repeat {
            var refinement: RefinementReason?
            var preRefined = false
            if context.refinementCount > 0 {
                // `refined` speaks of the current cycle: a stage of this cycle that already refined
                // (say, inference prompted with the critique) sets it to skip pre-refinement.
                context.flags.removeValue(forKey: "refined")
                context.output = cycleInput
            }
            stages: for stage in TaskStage.allCases {
                context.currentStage = stage
                if context.refinementCount > 0 && stage.runsOnlyInFirstCycle {
                    skip(stage, reason: "refinement-cycle")
                    continue
                }
                guard let handler = task.handlers[stage] else {
                    skip(stage, reason: "no-handler")
                    continue
                }
                if stage.isRefinement {
                    if preRefined {
                        skip(stage, reason: "already-pre-refined")
                        continue
                    }
                    if context.flags["validationFailed"] == .bool(false) {
                        skip(stage, reason: "validation-passed")
                        continue
                    }
                }
                if stage.isValidation {
                    hadValidationHandler = true
                    if context.refinementCount > 0 && !preRefined && context.flags["refined"] != .bool(true) {
                        preRefined = true
                        for early in [TaskStage.critique, .refine] {
                            guard let earlyHandler = task.handlers[early] else { continue }
                            context.currentStage = early
                            if case .failure(let error) = await execute(early, earlyHandler, preRefinement: true) {
                                return await failure(stage: early.rawValue, error)
                            }
                        }
                        context.currentStage = stage
                    }
                }
                switch await execute(stage, handler, preRefinement: false) {
                case .success:
                    if stage.runsOnlyInFirstCycle { cycleInput = context.output }
                    if stage.isValidation && context.flags["validationFailed"] == .bool(true)
                        && context.refinementCount < maxRefinements
                    {
                        refinement = .validationFailedFlag
                        break stages
                    }
                case .failure(let error):
                    if stage.isValidation && error.kind != .timeout && error.kind != .taskTimeout
                        && error.kind != .cancelled && context.refinementCount < maxRefinements
                    {
                        context.flags["lastValidationError"] = error.json
                        context.flags["validationFailed"] = .bool(true)
                        refinement = .validationError
                        break stages
                    }
                    return await failure(stage: stage.rawValue, error)
                }
            }
            guard let refinement else { break }
            context.refinementCount += 1
            context.logs.append(
                TaskLogEntry(
                    stage: "refinement-trigger",
                    reason: refinement.rawValue,
                    refinementCycle: context.refinementCount
                )
            )
            await observer?(.refinementStarted(cycle: context.refinementCount, reason: refinement.rawValue))
        } while true

        if hadValidationHandler, context.flags["validationFailed"] == .bool(true) {
            let detail = Self.describe(context.flags["lastValidationError"])
            return await failure(
                stage: "final-validation",
                TaskError(
                    .validation,
                    "validation still fails after \(context.refinementCount) refinement cycle(s)"
                        + (detail.map { ": \($0)" } ?? ""),
                    data: context.flags["lastValidationError"]
                )
            )
        }
        return TaskResult(
            ok: true,
            logs: context.logs,
            context: context,
            refinementAttempts: context.refinementCount,
            llmMetrics: await environment.metrics.metrics
        )
    }

    /// The message of a `lastValidationError` flag.
    static func describe(_ error: JSONValue?) -> String? {
        switch error {
        case .string(let message): return message
        case .object(let members): return members["message"]?.stringValue
        default: return nil
        }
    }

    mutating func skip(_ stage: TaskStage, reason: String) {
        context.logs.append(
            TaskLogEntry(stage: stage.rawValue, skipped: true, reason: reason, refinementCycle: context.refinementCount)
        )
    }

    func failure(stage: String, _ error: TaskError) async -> TaskResult {
        TaskResult(
            ok: false,
            failedStage: stage,
            error: error,
            logs: context.logs,
            context: context,
            refinementAttempts: context.refinementCount,
            llmMetrics: await environment.metrics.metrics
        )
    }

    /// Runs one handler under its timeout, checks its result and merges it into the context.
    mutating func execute(
        _ stage: TaskStage,
        _ handler: any TaskStageHandler,
        preRefinement: Bool
    ) async -> Result<Void, TaskError> {
        await observer?(.stageStarted(stage, refinementCycle: context.refinementCount, preRefinement: preRefinement))
        let invocation = StageInvocation(
            stage: stage,
            context: context,
            preRefinement: preRefinement,
            environment: environment
        )
        let start = ContinuousClock.now
        var limit = task.timeouts[stage] ?? task.stageTimeout
        var limitIsTaskDeadline = false
        if let deadline {
            let remaining = deadline - start
            if remaining <= limit {
                limit = max(remaining, .zero)
                limitIsTaskDeadline = true
            }
        }
        let outcome: Result<StageOutput, TaskError>
        do {
            outcome = .success(try await Self.run(handler, invocation, limit: limit))
        } catch let error as StageTimedOut {
            _ = error
            outcome = .failure(
                limitIsTaskDeadline
                    ? TaskError(
                        .taskTimeout,
                        "the task ran past its timeout of \(Self.seconds(taskTimeout ?? .zero)) during stage \(stage.rawValue)"
                    )
                    : TaskError(
                        .timeout,
                        "stage \(stage.rawValue) (\(handler.summary)) ran past its timeout of \(Self.seconds(limit))"
                            + "; raise it with 'timeout' on the stage or 'stageTimeout' on the task"
                    )
            )
        } catch {
            outcome = .failure(
                Task.isCancelled ? TaskError(.cancelled, "the task was cancelled") : TaskError(normalizing: error)
            )
        }
        let ms = Double((ContinuousClock.now - start) / .microseconds(1)) / 1000
        var result: Result<Void, TaskError>
        switch outcome {
        case .success(let output):
            do throws(TaskError) {
                try task.flagSchemas.check(output.flags, stage: stage, current: context.flags)
                context.data[stage.rawValue] = output.output
                context.flags.merge(output.flags) { _, new in new }
                if !stage.isValidation { context.output = output.output }
                result = .success(())
            } catch {
                result = .failure(error)
            }
        case .failure(let error):
            result = .failure(error)
        }
        var entry = TaskLogEntry(stage: stage.rawValue, ms: ms, refinementCycle: context.refinementCount)
        entry.preRefinement = preRefinement ? true : nil
        switch result {
        case .success: entry.ok = true
        case .failure(let error):
            entry.ok = false
            entry.error = error
        }
        context.logs.append(entry)
        await observer?(.stageFinished(entry))
        return result
    }

    struct StageTimedOut: Error {}

    /// Set by the timer when a stage runs past its limit.
    final class TimeoutFlag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    /// Runs the handler; past `limit` it is cancelled and `StageTimedOut` thrown. A handler that
    /// cancelling cannot stop runs in the stage's own task and is judged when it returns.
    static func run(
        _ handler: any TaskStageHandler,
        _ invocation: StageInvocation,
        limit: Duration
    ) async throws -> StageOutput {
        guard handler.isInterruptible else {
            let start = ContinuousClock.now
            do {
                return try await handler.run(invocation)
            } catch {
                if ContinuousClock.now - start > limit { throw StageTimedOut() }
                throw error
            }
        }
        // A task of its own, so that the timer can cancel the stage without cancelling the run.
        let work = Task { try await handler.run(invocation) }
        let timedOut = TimeoutFlag()
        let alarm = DeadlineTimer.shared.schedule(after: limit) {
            timedOut.set()
            work.cancel()
        }
        defer { DeadlineTimer.shared.cancel(alarm) }
        let result = await withTaskCancellationHandler {
            await work.result
        } onCancel: {
            work.cancel()
        }
        if case .success(let output) = result { return output }
        if timedOut.isSet { throw StageTimedOut() }
        return try result.get()
    }

    static func seconds(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.3g s", seconds)
    }
}

extension WorkspaceEngine {
    /// A task's model call in the call log, like a stage's: the log holds every call made, with
    /// the task's name where a stage's call has its generation.
    func logTaskCall(_ metric: LLMMetric, task: String, runId: String) async {
        let status = metric.failed ? "error" : metric.finishReason == "length" ? "truncated" : "success"
        let record = CallRecord(
            createdAt: Timestamp.now(),
            runId: runId,
            stage: metric.stage,
            genId: task,
            templateId: nil,
            model: metric.model,
            provider: metric.provider,
            promptVersion: nil,
            parameters: "{}",
            status: status,
            error: metric.error,
            latencyMs: metric.durationMs,
            promptTokens: metric.promptTokens,
            completionTokens: metric.completionTokens,
            costUsd: metric.failed ? nil : metric.cost,
            cached: metric.cached,
            retries: metric.retries,
            retryErrors: CallRecord.retryErrors(metric.retryErrors),
            errorKind: metric.errorKind
        )
        do {
            _ = try await callLog.record(record)
        } catch {
            logCallLogFailure(error)
        }
    }
}
