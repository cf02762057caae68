import JSON
import ModelProviders

/// A pipeline: tasks run one after another as a job, each task's input taken from the job's
/// input or from an earlier task's output.
public struct PipelineDefinition: Sendable {
    /// One task of the pipeline.
    public struct Step: Sendable, Hashable {
        /// The task's name in the job (its folder `tasks/<name>/`, its key in the status document).
        public var name: String
        /// The task file, relative to the workspace.
        public var file: String
        /// Where the task's input comes from.
        public var input: InputSource

        public init(name: String, file: String, input: InputSource = .previous) {
            self.name = name
            self.file = file
            self.input = input
        }
    }

    /// Where a task's input comes from.
    public enum InputSource: Sendable, Hashable {
        /// The output of the task before it (the job's input for the first task).
        case previous
        /// The job's input.
        case seed
        /// The output of the named earlier task.
        case task(String)

        var json: JSONValue {
            switch self {
            case .previous: return "previous"
            case .seed: return "seed"
            case .task(let name): return ["task": .string(name)]
            }
        }
    }

    /// Task-level retries: a failed task runs again after a growing delay.
    public struct RetryPolicy: Sendable, Hashable {
        /// Runs in all, the first included (1: no retry).
        public var attempts: Int
        /// The delay before the first retry; it doubles for each one after.
        public var delay: Duration
        /// The longest delay.
        public var maxDelay: Duration

        public init(attempts: Int = 1, delay: Duration = .seconds(1), maxDelay: Duration = .seconds(30)) {
            self.attempts = attempts
            self.delay = delay
            self.maxDelay = maxDelay
        }

        /// The delay before retry number `retry` (1-based).
        public func delay(before retry: Int) -> Duration {
            var value = delay
            for _ in 1..<max(retry, 1) {
                value = value * 2
                if value >= maxDelay { return maxDelay }
            }
            return min(value, maxDelay)
        }
    }

    /// The pipeline's name (its file name without extensions when the file gives none).
    public var name: String
    /// The pipeline file, relative to the workspace (nil for a pipeline given inline).
    public var file: String?
    /// The tasks in the order they run.
    public var steps: [Step]
    /// Refinement cycles allowed in every task (each task file's own when nil).
    public var maxRefinements: Int?
    /// Model routing for every task.
    public var modelConfig: ModelConfig
    /// Task-level retries.
    public var retry: RetryPolicy

    public init(
        name: String,
        file: String? = nil,
        steps: [Step],
        maxRefinements: Int? = nil,
        modelConfig: ModelConfig = .init(),
        retry: RetryPolicy = .init()
    ) {
        self.name = name
        self.file = file
        self.steps = steps
        self.maxRefinements = maxRefinements
        self.modelConfig = modelConfig
        self.retry = retry
    }

    /// The pipeline as a document that `inline` reads back (saved with each job, so that a resumed
    /// job runs the pipeline it started with).
    public var json: JSONValue {
        var defaults: [String: JSONValue] = [
            "retries": [
                "attempts": .integer(Int64(retry.attempts)),
                "delay": .double(Self.seconds(retry.delay)),
                "maxDelay": .double(Self.seconds(retry.maxDelay)),
            ],
            "modelConfig": modelConfig.json,
        ]
        if let maxRefinements { defaults["maxRefinements"] = .integer(Int64(maxRefinements)) }
        return [
            "name": .string(name),
            "tasks": .array(
                steps.map { ["name": .string($0.name), "task": .string($0.file), "input": $0.input.json] }
            ),
            "defaults": .object(defaults),
        ]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

extension PipelineDefinition {
    /// Loads the pipeline file at `file` (YAML, or JSON by its extension), relative to the
    /// workspace. Task files are resolved against the pipeline file's folder.
    public static func load(_ file: String, workspace: Workspace) throws(TaskDefinitionError) -> PipelineDefinition {
        let (document, directory, stem, _) = try TaskDefinition.readDefinitionFile(
            file,
            kind: "pipeline",
            workspace: workspace
        )
        var pipeline = try PipelineLoader(file: file, directory: directory).pipeline(from: document, defaultName: stem)
        pipeline.file = file
        return pipeline
    }

    /// A pipeline given inline (task paths relative to the workspace).
    public static func inline(_ document: JSONValue) throws(TaskDefinitionError) -> PipelineDefinition {
        try PipelineLoader(file: "<inline>", directory: ".").pipeline(from: document, defaultName: "inline")
    }
}

/// Reads a pipeline document, naming the exact place of every mistake.
struct PipelineLoader {
    let file: String
    let directory: String

    func problem(_ path: String, _ message: String) -> TaskDefinitionError {
        TaskDefinitionError(file: file, path: path, message: message)
    }

    func pipeline(from document: JSONValue, defaultName: String) throws(TaskDefinitionError) -> PipelineDefinition {
        guard case .object(let top) = document else { throw problem("", "must be an object, not \(document.typeName)") }
        try checkKeys(top, "", ["name", "description", "tasks", "defaults"])
        var name = defaultName
        if let value = top["name"] {
            guard case .string(let text) = value, TaskFileLoader.isTaskName(text) else {
                throw problem("name", "must be letters, digits, '.', '_' or '-', not \(value)")
            }
            name = text
        }
        guard case .array(let entries)? = top["tasks"], !entries.isEmpty else {
            throw problem("tasks", "is required: a non-empty list of {name, task} entries")
        }
        var steps: [PipelineDefinition.Step] = []
        for (index, entry) in entries.enumerated() {
            let path = "tasks[\(index)]"
            guard case .object(let members) = entry else { throw problem(path, "must be an object {name, task}") }
            try checkKeys(members, path, ["name", "task", "input"])
            guard case .string(let file)? = members["task"], !file.isEmpty else {
                throw problem("\(path).task", "is required: the task file, relative to the pipeline file")
            }
            guard !file.hasPrefix("/"), let resolved = Self.normalize(directory == "." ? file : "\(directory)/\(file)")
            else {
                throw problem("\(path).task", "'\(file)' must be a relative path that stays inside the workspace")
            }
            var stem = String(file.split(separator: "/").last ?? "")
            if let dot = stem.firstIndex(of: "."), dot > stem.startIndex { stem = String(stem[..<dot]) }
            var taskName = stem
            if let value = members["name"] {
                guard case .string(let text) = value else { throw problem("\(path).name", "must be a string") }
                taskName = text
            }
            guard TaskFileLoader.isTaskName(taskName) else {
                throw problem(
                    "\(path).name",
                    "'\(taskName)' must be letters, digits, '.', '_' or '-' (it names the task's folder)"
                )
            }
            guard !steps.contains(where: { $0.name == taskName }) else {
                throw problem(
                    "\(path).name",
                    "'\(taskName)' is already the name of an earlier task; give each task its own"
                )
            }
            var input = PipelineDefinition.InputSource.previous
            switch members["input"] {
            case nil, .string("previous"): break
            case .string("seed"): input = .seed
            case .object(let source) where source.count == 1:
                guard case .string(let earlier)? = source["task"], steps.contains(where: { $0.name == earlier }) else {
                    throw problem("\(path).input.task", "must name an earlier task of this pipeline")
                }
                input = .task(earlier)
            case let value?:
                throw problem("\(path).input", "must be previous, seed or {task: <earlier task>}, not \(value)")
            }
            steps.append(.init(name: taskName, file: resolved, input: input))
        }
        var pipeline = PipelineDefinition(name: name, steps: steps)
        if let value = top["defaults"] {
            guard case .object(let defaults) = value else { throw problem("defaults", "must be an object") }
            try checkKeys(defaults, "defaults", ["maxRefinements", "modelConfig", "retries"])
            if let refinements = defaults["maxRefinements"] {
                guard let count = refinements.integerValue, (0...100).contains(count) else {
                    throw problem("defaults.maxRefinements", "must be an integer from 0 to 100, not \(refinements)")
                }
                pipeline.maxRefinements = Int(count)
            }
            if let config = defaults["modelConfig"] { pipeline.modelConfig = try modelConfig(config) }
            if let retries = defaults["retries"] { pipeline.retry = try retryPolicy(retries) }
        }
        return pipeline
    }

    /// `path` with `.` and `..` resolved, or nil when it climbs above the workspace root.
    static func normalize(_ path: String) -> String? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            switch part {
            case ".": continue
            case "..":
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
            default: parts.append(part)
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: "/")
    }

    func modelConfig(_ value: JSONValue) throws(TaskDefinitionError) -> ModelConfig {
        guard case .object(let members) = value else { throw problem("defaults.modelConfig", "must be an object") }
        try checkKeys(members, "defaults.modelConfig", ["defaultProvider", "defaultModel", "models"])
        var config = ModelConfig()
        config.defaultProvider = members["defaultProvider"]?.stringValue
        config.defaultModel = members["defaultModel"]?.stringValue
        if case .array(let models)? = members["models"] { config.models = models.compactMap(\.stringValue) }
        return config
    }

    func retryPolicy(_ value: JSONValue) throws(TaskDefinitionError) -> PipelineDefinition.RetryPolicy {
        guard case .object(let members) = value else {
            throw problem("defaults.retries", "must be an object {attempts, delay, maxDelay}")
        }
        try checkKeys(members, "defaults.retries", ["attempts", "delay", "maxDelay"])
        var policy = PipelineDefinition.RetryPolicy()
        if let attempts = members["attempts"] {
            guard let count = attempts.integerValue, (1...20).contains(count) else {
                throw problem(
                    "defaults.retries.attempts",
                    "must be an integer from 1 to 20 (runs in all), not \(attempts)"
                )
            }
            policy.attempts = Int(count)
        }
        for key in ["delay", "maxDelay"] {
            guard let value = members[key] else { continue }
            guard let seconds = value.numberValue, seconds >= 0, seconds <= 3600 else {
                throw problem("defaults.retries.\(key)", "must be a number of seconds from 0 to 3600, not \(value)")
            }
            let duration = Duration.milliseconds(Int64((seconds * 1000).rounded()))
            if key == "delay" { policy.delay = duration } else { policy.maxDelay = duration }
        }
        return policy
    }

    func checkKeys(_ members: JSONObject, _ path: String, _ allowed: [String]) throws(TaskDefinitionError) {
        for key in members.keys.sorted() where !allowed.contains(key) {
            throw problem(
                path.isEmpty ? key : "\(path).\(key)",
                "is not a known setting; expected " + allowed.joined(separator: ", ")
            )
        }
    }
}
