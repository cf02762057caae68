import JSON

/// A pipeline's dry run: each task file loaded and dry-run.
public struct PipelineDryRun: Sendable {
    /// One step of the pipeline.
    public struct Step: Sendable {
        public var name: String
        public var file: String
        /// Nil when the task file cannot be loaded (`error` says why).
        public var task: TaskDryRun?
        public var error: TaskDefinitionError?
    }

    public var pipeline: String
    public var steps: [Step]

    public var ok: Bool { steps.allSatisfy { $0.error == nil && $0.task?.ok == true } }

    /// The dry run as `runPipeline` answers it with `dryRun: true`.
    public var json: JSONValue {
        [
            "dryRun": true,
            "ok": .bool(ok),
            "pipeline": .string(pipeline),
            "tasks": .array(
                steps.map { step in
                    var members: [String: JSONValue] = ["name": .string(step.name), "file": .string(step.file)]
                    if let task = step.task, case .object(let dry) = task.json {
                        members["ok"] = dry["ok"]
                        members["stages"] = dry["stages"]
                    }
                    if let error = step.error {
                        members["ok"] = false
                        members["error"] = .string(error.description)
                    }
                    return .object(members)
                }
            ),
        ]
    }
}

extension WorkspaceEngine {
    /// Loads every task file of `pipeline` and dry-runs each, as its job would run it (with the
    /// pipeline's `modelConfig` and `maxRefinements`).
    public func dryRun(_ pipeline: PipelineDefinition, options: TaskRunOptions = .init()) async -> PipelineDryRun {
        var options = options
        options.modelConfig = pipeline.modelConfig
        options.maxRefinements = pipeline.maxRefinements
        var steps: [PipelineDryRun.Step] = []
        for step in pipeline.steps {
            do {
                let task = try await loadTask(step.file)
                steps.append(.init(name: step.name, file: step.file, task: await dryRun(task, options: options)))
            } catch {
                steps.append(.init(name: step.name, file: step.file, error: error))
            }
        }
        return PipelineDryRun(pipeline: pipeline.name, steps: steps)
    }
}
