import Foundation
import JSON
import Logging
import ModelProviders

/// One run of a job: its tasks in order from a given one, each with its retries, every
/// transition written to the status document as it happens.
struct JobExecution {
    let job: JobManager.Job
    let runner: WorkspaceEngine
    let clientStages: (any ClientStageExecutor)?
    let logger: Logger

    var store: JobStatusStore { job.store }
    var jobId: String { store.jobId }

    func run(from first: Int) async {
        let spent = await store.document.json
        await runner.budgets.open(
            job: jobId,
            tokens: Int(spent["tokenUsage"]?["totalTokens"]?.integerValue ?? 0),
            cost: spent["cost"]?.numberValue ?? 0
        )
        await store.update(.job(.running)) { document in
            document.setState(.running)
            if document.json["startedAt"] == nil { document.set(.string(Timestamp.now()), "startedAt") }
            document.set(nil, "cancelled")
        }
        var outputs: [String: JSONValue] = [:]
        /// Finished tasks whose output cannot be read back, and why.
        var unreadable: [String: String] = [:]
        for (index, step) in job.pipeline.steps.enumerated() {
            let state = await store.document.taskState(step.name)
            if index < first || state == .done {
                // Finished earlier: its output still feeds the tasks after it.
                switch readPayload(step.name) {
                case .success(let payload): outputs[step.name] = payload["context"]?["output"] ?? nil
                case .failure(let reason): unreadable[step.name] = reason.message
                }
                continue
            }
            if let payload = savedPayload(step.name) {
                // Its result is on disk although the document did not say so yet (a crash between
                // the two writes): finished, so not run again; the document takes what it records.
                outputs[step.name] = payload["context"]?["output"] ?? nil
                await markDone(step.name, payload: payload, seconds: Self.stageSeconds(payload), recovered: true)
                continue
            }
            let source: String? =
                switch step.input {
                case .seed: nil
                case .task(let name): name
                case .previous: index == 0 ? nil : job.pipeline.steps[index - 1].name
                }
            if let source, let reason = unreadable[source] {
                // Never null in its place: the task would run on an input its producer did not give.
                await failed(
                    step.name,
                    stage: "input",
                    TaskError(
                        .stage,
                        "its input, the output of task \(source) (jobs/\(jobId)/tasks/\(source)/output.json), "
                            + "cannot be read: \(reason); retry task \(source)"
                    ),
                    started: ContinuousClock.now
                )
                return
            }
            let input: JSONValue = source.map { outputs[$0] ?? nil } ?? job.input
            guard let output = await runTask(step, input: input) else { return }
            outputs[step.name] = output
        }
        await store.update(.job(.done)) { document in
            document.setState(.done)
            document.set(nil, "current")
            document.set(nil, "currentStage")
            document.set(.string(Timestamp.now()), "endedAt")
            document.updateProgress(currentTaskStageIndex: nil)
        }
    }

    /// The result payload of a task that succeeded, from its `output.json`.
    func savedPayload(_ task: String) -> JSONValue? {
        guard case .text(let text) = runner.workspace.loadText("jobs/\(jobId)/tasks/\(task)/output.json"),
            let payload = try? JSONParser.parse(Array(text.utf8)), payload["ok"] == true
        else { return nil }
        return payload
    }

    /// The result payload of a task that is done, from its `output.json`, or why it cannot be read.
    func readPayload(_ task: String) -> Result<JSONValue, TaskError> {
        switch runner.workspace.loadText("jobs/\(jobId)/tasks/\(task)/output.json") {
        case .missing: return .failure(TaskError(.stage, "the file is missing"))
        case .notUTF8: return .failure(TaskError(.stage, "it is not UTF-8 text"))
        case .text(let text):
            do {
                return .success(try JSONParser.parse(Array(text.utf8)))
            } catch {
                return .failure(TaskError(.stage, "\(error)"))
            }
        }
    }

    /// The time a saved result's stages took (its log's `ms`), for a task whose own timing was lost.
    static func stageSeconds(_ payload: JSONValue) -> Double {
        guard case .array(let logs)? = payload["logs"] else { return 0 }
        return logs.compactMap { $0["ms"]?.numberValue }.reduce(0, +) / 1000
    }

    /// Records a task as done: its end, time, refinement cycles, artifacts and files.
    func markDone(_ task: String, payload: JSONValue, seconds: Double, recovered: Bool = false) async {
        let logs = "jobs/\(jobId)/tasks/\(task)/execution-logs.json"
        if recovered && !runner.workspace.isFile(logs) {
            // The crash came between the result and its log: the log is in the result.
            try? await ArtifactFile.write(
                Array((payload["logs"] ?? []).prettyDescription.utf8) + [10],
                to: runner.workspace.path(logs)
            )
        }
        let artifacts = Self.files(in: runner.workspace, folder: "jobs/\(jobId)/tasks/\(task)").map {
            "tasks/\(task)/\($0)"
        }
        await store.update(.taskDone(task: task, recovered: recovered)) { document in
            document.setTaskState(task, .done)
            document.setTask(task, "currentStage", nil)
            document.setTask(task, "retrying", false)
            document.setTask(task, "endedAt", .string(Timestamp.now()))
            document.setTask(task, "executionTime", .double((seconds * 1e6).rounded() / 1e3))
            document.setTask(task, "refinementAttempts", payload["refinementAttempts"] ?? 0)
            document.setTask(task, "artifacts", .array(artifacts.map(JSONValue.string)))
            document.setTask(
                task,
                "files",
                ["output": .string("tasks/\(task)/output.json"), "logs": .string("tasks/\(task)/execution-logs.json")]
            )
            document.updateProgress(currentTaskStageIndex: nil)
        }
    }

    /// Runs one task with its retries; returns its output, or nil when the job ended there.
    func runTask(_ step: PipelineDefinition.Step, input: JSONValue) async -> JSONValue? {
        let policy = job.pipeline.retry
        var attempt = 0
        while true {
            attempt += 1
            let started = ContinuousClock.now
            await store.update(.taskRunning(task: step.name, attempt: attempt)) { document in
                let attempts = document.task(step.name)?["attempts"]?.integerValue ?? 0
                document.setTaskState(step.name, .running)
                document.setTask(step.name, "attempts", .integer(attempts + 1))
                document.setTask(step.name, "startedAt", .string(Timestamp.now()))
                document.setTask(step.name, "currentStage", nil)
                document.setTask(step.name, "failedStage", nil)
                document.setTask(step.name, "error", nil)
                document.setTask(step.name, "retrying", false)
                document.set(.string(step.name), "current")
                document.set(nil, "currentStage")
            }
            let result: TaskResult
            do {
                let task = try await runner.loadTask(step.file)
                var options = TaskRunOptions(
                    input: input,
                    modelConfig: job.pipeline.modelConfig,
                    maxRefinements: job.pipeline.maxRefinements,
                    runId: jobId,
                    workDir: "jobs/\(jobId)/tasks/\(step.name)",
                    clientStages: clientStages,
                    observer: observer(for: step.name)
                )
                options.budgetScope = jobId
                result = try await runner.runTask(task, options: options)
            } catch is CancellationError {
                await cancelled(step.name)
                return nil
            } catch let error as TaskDefinitionError {
                await failed(step.name, stage: "task-file", TaskError(.stage, error.description), started: started)
                return nil
            } catch {
                await failed(step.name, stage: "task-file", TaskError(normalizing: error), started: started)
                return nil
            }
            if Task.isCancelled {
                await cancelled(step.name)
                return nil
            }
            let folder = "jobs/\(jobId)/tasks/\(step.name)"
            // What is written must read back: a result nested past the parser's limit would reach
            // the next task as null.
            let depth = result.json.nestingDepth
            if depth > JSONParser.defaultMaximumDepth {
                await failed(
                    step.name,
                    stage: "output",
                    TaskError(
                        .contract,
                        "the task's result nests \(depth) levels deep, past the \(JSONParser.defaultMaximumDepth) "
                            + "that output.json may have to be read back; return an output that nests less"
                    ),
                    started: started
                )
                return nil
            }
            do {
                try await ArtifactFile.write(
                    Array(result.json.prettyDescription.utf8) + [10],
                    to: runner.workspace.path("\(folder)/output.json")
                )
                try await ArtifactFile.write(
                    Array(JSONValue.array(result.logs.map(\.json)).prettyDescription.utf8) + [10],
                    to: runner.workspace.path("\(folder)/execution-logs.json")
                )
            } catch {
                await failed(
                    step.name,
                    stage: "output",
                    TaskError(.write, "cannot save the task's result: \(error)"),
                    started: started
                )
                return nil
            }
            let seconds = Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6
            if result.ok {
                await markDone(step.name, payload: result.json, seconds: seconds)
                return result.context.output
            }
            let error = result.error ?? TaskError(.stage, "the task failed")
            let stage = result.failedStage ?? "unknown"
            if attempt < policy.attempts {
                let delay = policy.delay(before: attempt)
                let next = Date().addingTimeInterval(
                    Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
                )
                await store.update(.taskRetrying(task: step.name, failedStage: stage)) { document in
                    document.setTask(step.name, "retrying", true)
                    document.setTask(step.name, "nextRetryAt", .string(Timestamp.string(next)))
                    document.setTask(step.name, "lastRetryError", error.json)
                    document.setTask(step.name, "currentStage", nil)
                }
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    await cancelled(step.name)
                    return nil
                }
                continue
            }
            await failed(
                step.name,
                stage: stage,
                error,
                started: started,
                refinementAttempts: result.refinementAttempts
            )
            return nil
        }
    }

    /// The status changes of a task run's events.
    func observer(for task: String) -> TaskObserver {
        { [store] event in
            switch event {
            case .stageStarted(let stage, let cycle, let preRefinement):
                await store.update(
                    .stageStarted(task: task, stage: stage, refinementCycle: cycle, preRefinement: preRefinement)
                ) { document in
                    document.set(.string(task), "current")
                    document.set(.string(stage.rawValue), "currentStage")
                    document.setTask(task, "currentStage", .string(stage.rawValue))
                    document.updateProgress(currentTaskStageIndex: TaskStage.allCases.firstIndex(of: stage))
                }
            case .stageFinished(let entry):
                let event = StatusEvent.stageFinished(
                    task: task,
                    stage: entry.stage,
                    succeeded: entry.ok == true,
                    refinementCycle: entry.refinementCycle,
                    milliseconds: entry.ms
                )
                await store.update(event) { _ in }
            case .refinementStarted(let cycle, let reason):
                await store.update(.taskRefining(task: task, cycle: cycle, reason: reason)) { document in
                    document.setTask(task, "refinementAttempts", .integer(Int64(cycle)))
                }
            case .modelCall(let metric):
                await store.update(.usage(task: task, stage: metric.stage)) { document in
                    document.addUsage(task: task, metric)
                }
            }
        }
    }

    func failed(
        _ task: String,
        stage: String,
        _ error: TaskError,
        started: ContinuousClock.Instant,
        refinementAttempts: Int? = nil
    ) async {
        let seconds = Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6
        var details = error.json
        details = details.setting("stage", .string(stage))
        await store.update(.taskFailed(task: task, failedStage: stage)) { document in
            document.setTaskState(task, .failed)
            document.setTask(task, "currentStage", .string(stage))
            document.setTask(task, "failedStage", .string(stage))
            document.setTask(task, "error", details)
            document.setTask(task, "endedAt", .string(Timestamp.now()))
            document.setTask(task, "executionTime", .double((seconds * 1e6).rounded() / 1e3))
            if let refinementAttempts {
                document.setTask(task, "refinementAttempts", .integer(Int64(refinementAttempts)))
            }
        }
        await store.update(.job(.failed, task: task, failedStage: stage)) { document in
            document.setState(.failed)
            document.set(.string(task), "current")
            document.set(.string(stage), "currentStage")
            document.set(details.setting("task", .string(task)), "error")
            document.set(.string(Timestamp.now()), "endedAt")
        }
    }

    func cancelled(_ task: String) async {
        await store.update(.job(.cancelled, task: task)) { document in
            let stage = document.task(task)?["currentStage"] ?? nil
            document.setTaskState(task, .cancelled)
            document.setTask(task, "retrying", false)
            document.setTask(task, "endedAt", .string(Timestamp.now()))
            document.setState(.cancelled)
            document.set(["task": .string(task), "stage": stage, "at": .string(Timestamp.now())], "cancelled")
            document.set(.string(Timestamp.now()), "endedAt")
        }
    }

    /// The files under `folder` (relative to the workspace), relative to it, sorted.
    static func files(in workspace: Workspace, folder: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: workspace.path(folder)) else { return [] }
        var files: [String] = []
        while let path = enumerator.nextObject() as? String {
            if workspace.isFile("\(folder)/\(path)")
                && !path.split(separator: "/").contains(where: { $0.hasPrefix(".") })
            {
                files.append(path)
            }
        }
        return files.sorted()
    }
}

extension JSONValue {
    /// This object with `key` set to `value`.
    func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case .object(var members) = self else { return self }
        members[key] = value
        return .object(members)
    }
}
