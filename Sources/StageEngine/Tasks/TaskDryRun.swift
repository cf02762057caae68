import JSON

/// What a run of a task would meet, found without running anything: the task file, its
/// templates, schemas and parsers were checked when it was loaded; each stage's handler is asked
/// what would stop it (a program that is not there, a model whose provider cannot be used, an
/// unknown filter, a client handler nobody declared).
public struct TaskDryRun: Sendable, Hashable {
    /// One stage that has a handler.
    public struct Stage: Sendable, Hashable {
        public var stage: TaskStage
        /// The handler, as logs name it (`command python3 ingest.py`, `prompt summary.txt`).
        public var handler: String
        public var problems: [String]
    }

    public var task: String
    /// Stages with a handler, in run order.
    public var stages: [Stage]

    /// Whether nothing would stop a run.
    public var ok: Bool { stages.allSatisfy { $0.problems.isEmpty } }

    /// The dry run as `runTask` answers it with `dryRun: true`.
    public var json: JSONValue {
        [
            "dryRun": true,
            "ok": .bool(ok),
            "task": .string(task),
            "stages": .array(
                stages.map { stage in
                    [
                        "stage": .string(stage.stage.rawValue),
                        "handler": .string(stage.handler),
                        "problems": .array(stage.problems.map(JSONValue.string)),
                    ]
                }
            ),
        ]
    }
}

extension WorkspaceEngine {
    /// Checks `task` as a run with `options` would use it, without running a stage.
    public func dryRun(_ task: TaskDefinition, options: TaskRunOptions = .init()) async -> TaskDryRun {
        let snapshot = await state.current()
        let runId = options.runId ?? "dry-run"
        let environment = taskEnvironment(task, options: options, runId: runId, snapshot)
        let context = TaskContext(
            taskName: task.name,
            runId: runId,
            workDir: options.workDir ?? "data/tasks/\(task.name)/\(runId)",
            seed: options.input,
            modelConfig: options.modelConfig
        )
        var stages: [TaskDryRun.Stage] = []
        for stage in TaskStage.allCases {
            guard let handler = task.handlers[stage] else { continue }
            let invocation = StageInvocation(
                stage: stage,
                context: context,
                preRefinement: false,
                environment: environment
            )
            stages.append(
                TaskDryRun.Stage(stage: stage, handler: handler.summary, problems: handler.problems(invocation))
            )
        }
        return TaskDryRun(task: task.name, stages: stages)
    }
}
