import Foundation
import JSON

/// A job's `tasks-status.json` (protocol/README.md §8.10: the job's and each task's state, stage,
/// attempts, timings and artifacts, with `schemaVersion`, `rev`, progress, token
/// usage, cost and retry fields), changed only through methods that record each change as JSON
/// Patch operations, so that subscribers can be sent just what changed.
///
/// Paths inside are relative to the job's directory.
public struct JobStatusDocument: Sendable, Hashable {
    /// The document.
    public private(set) var json: JSONValue
    /// The operations since `takeOperations()` was last called.
    private(set) var operations: [JSONPatchOperation] = []
    /// Tasks in all, and those done: kept as tasks change, so that progress costs nothing per
    /// change however many tasks the job has.
    private var taskCount = 0
    private var doneCount = 0

    public static let schemaVersion = 1

    /// A new job's document, every task pending.
    init(id: String, name: String, pipelineFile: String?, tasks: [String], createdAt: String) {
        var taskEntries: [String: JSONValue] = [:]
        for task in tasks {
            taskEntries[task] = [
                "state": .string(TaskState.pending.rawValue),
                "currentStage": nil,
                "failedStage": nil,
                "attempts": 0,
                "refinementAttempts": 0,
                "artifacts": [],
                "files": [:],
                "tokenUsage": Self.zeroUsage,
                "cost": 0,
                "modelCalls": 0,
                "retrying": false,
            ]
        }
        json = [
            "schemaVersion": .integer(Int64(Self.schemaVersion)),
            "id": .string(id),
            "name": .string(name),
            "pipeline": pipelineFile.map(JSONValue.string) ?? nil,
            "state": .string(JobState.pending.rawValue),
            "current": nil,
            "currentStage": nil,
            "createdAt": .string(createdAt),
            "lastUpdated": .string(createdAt),
            "rev": 0,
            "progress": ["tasksDone": 0, "tasksTotal": .integer(Int64(tasks.count)), "percent": 0],
            "tokenUsage": Self.zeroUsage,
            "cost": 0,
            "files": ["input": "input.json", "job": "job.json"],
            "taskOrder": .array(tasks.map(JSONValue.string)),
            "tasks": .object(taskEntries),
        ]
        countTasks()
    }

    /// A document as read back from a job's folder or received in a status notification.
    public init(json: JSONValue) {
        self.json = json
        countTasks()
    }

    private mutating func countTasks() {
        guard case .object(let tasks)? = json["tasks"] else { return }
        taskCount = tasks.count
        doneCount = tasks.values.filter { $0["state"]?.stringValue == TaskState.done.rawValue }.count
    }

    static let zeroUsage: JSONValue = ["promptTokens": 0, "completionTokens": 0, "totalTokens": 0]

    // MARK: - Reading

    public var id: String { json["id"]?.stringValue ?? "" }
    /// The job's name (the pipeline's, unless the request gave one).
    public var name: String { json["name"]?.stringValue ?? "" }
    /// The job's state; nil when the document holds one this version does not know.
    /// `documents` newest first: by creation time (to the millisecond), then by id. Ids begin
    /// with the second they were made in, so jobs of one second need the creation time.
    public static func newestFirst(_ documents: [JobStatusDocument]) -> [JobStatusDocument] {
        documents.sorted { a, b in
            let (createdA, createdB) = (a.json["createdAt"]?.stringValue ?? "", b.json["createdAt"]?.stringValue ?? "")
            return createdA != createdB ? createdA > createdB : a.id > b.id
        }
    }

    public var state: JobState? { json["state"]?.stringValue.flatMap(JobState.init(rawValue:)) }
    /// The state as the document writes it, for messages (`unknown` when missing).
    public var stateName: String { json["state"]?.stringValue ?? "unknown" }
    /// Whether the job no longer changes by itself (an unknown state counts as ended).
    public var isFinished: Bool { state?.isTerminal ?? true }
    public var rev: Int { Int(json["rev"]?.integerValue ?? 0) }
    /// The task under way (or where the job stopped).
    public var current: String? { json["current"]?.stringValue }
    /// The task names in pipeline order (sorted names for a document without `taskOrder`).
    public var taskOrder: [String] {
        guard case .array(let names)? = json["taskOrder"] else {
            guard case .object(let tasks)? = json["tasks"] else { return [] }
            return tasks.keys.sorted()
        }
        return names.compactMap(\.stringValue)
    }

    public var tasksDone: Int {
        if let done = json["progress"]?["tasksDone"]?.integerValue { return Int(done) }
        return taskOrder.filter { taskState($0) == .done }.count
    }
    public var tasksTotal: Int { Int(json["progress"]?["tasksTotal"]?.integerValue ?? Int64(taskOrder.count)) }
    public var percent: Int { Int(json["progress"]?["percent"]?.integerValue ?? 0) }
    /// Tokens the provider reported for the whole job.
    public var totalTokens: Int64 { json["tokenUsage"]?["totalTokens"]?.integerValue ?? 0 }
    /// Cost in US dollars of the priced calls.
    public var cost: Double { json["cost"]?.numberValue ?? 0 }

    public func task(_ name: String) -> JSONValue? { json["tasks"]?[name] }

    /// The task's state; nil when the job has no such task or the state is unknown.
    public func taskState(_ name: String) -> TaskState? {
        task(name)?["state"]?.stringValue.flatMap(TaskState.init(rawValue:))
    }

    public func taskTokens(_ name: String) -> Int64 { task(name)?["tokenUsage"]?["totalTokens"]?.integerValue ?? 0 }
    public func taskCost(_ name: String) -> Double { task(name)?["cost"]?.numberValue ?? 0 }
    public func refinementAttempts(_ name: String) -> Int {
        Int(task(name)?["refinementAttempts"]?.integerValue ?? 0)
    }
    /// Whether the task failed an attempt and waits to be tried again.
    public func isRetrying(_ name: String) -> Bool { task(name)?["retrying"] == true }

    /// The stage a display should show for a task (`getStatus`'s `taskStages`), by preference
    /// order: the task's own `currentStage`, the job's `currentStage` when the task is the current
    /// one, the task's `failedStage`, then the stage of its last error.
    public func computeTaskStage(_ name: String) -> String? {
        guard let task = task(name) else { return nil }
        if let stage = task["currentStage"]?.stringValue { return stage }
        if json["current"]?.stringValue == name, let stage = json["currentStage"]?.stringValue { return stage }
        if let stage = task["failedStage"]?.stringValue { return stage }
        return task["error"]?["stage"]?.stringValue
    }

    // MARK: - Changing

    mutating func set(_ value: JSONValue, _ path: String...) {
        operations.append(json.set(value, at: path))
    }

    mutating func setState(_ state: JobState) {
        set(.string(state.rawValue), "state")
    }

    mutating func setTaskState(_ task: String, _ state: TaskState) {
        let before = taskState(task)
        if before == .done && state != .done { doneCount -= 1 }
        if before != .done && state == .done { doneCount += 1 }
        operations.append(json.set(.string(state.rawValue), at: ["tasks", task, "state"]))
    }

    /// Sets a field of a task other than its state (``setTaskState(_:_:)``).
    mutating func setTask(_ task: String, _ field: String, _ value: JSONValue) {
        precondition(field != "state", "a task's state changes through setTaskState")
        operations.append(json.set(value, at: ["tasks", task, field]))
    }

    mutating func takeOperations() -> [JSONPatchOperation] {
        defer { operations = [] }
        return operations
    }

    /// Stamps a change: `rev` up by one, `lastUpdated` now.
    mutating func stamp(rev: Int, at time: String) {
        set(.integer(Int64(rev)), "rev")
        set(.string(time), "lastUpdated")
    }

    mutating func updateProgress(currentTaskStageIndex: Int?) {
        let done = doneCount
        let stages = TaskStage.allCases.count
        var units = done * stages
        if let current, taskState(current) == .running,
            let index = currentTaskStageIndex
        {
            units += index + 1
        }
        let percent =
            taskCount == 0 ? 100 : min(100, Int((Double(units) / Double(taskCount * stages) * 100).rounded(.down)))
        if json["progress"]?["tasksDone"]?.integerValue != Int64(done) {
            set(.integer(Int64(done)), "progress", "tasksDone")
        }
        if json["progress"]?["percent"]?.integerValue != Int64(percent) {
            set(.integer(Int64(percent)), "progress", "percent")
        }
    }

    /// Adds a model call's tokens and cost to its task and to the job.
    mutating func addUsage(task: String, _ metric: LLMMetric) {
        for base in [["tasks", task], []] {
            let usage = json[path: base + ["tokenUsage"]] ?? Self.zeroUsage
            let prompt = (usage["promptTokens"]?.integerValue ?? 0) + Int64(metric.promptTokens ?? 0)
            let completion = (usage["completionTokens"]?.integerValue ?? 0) + Int64(metric.completionTokens ?? 0)
            var sums: [String: JSONValue] = [
                "promptTokens": .integer(prompt), "completionTokens": .integer(completion),
                "totalTokens": .integer(prompt + completion),
            ]
            // A call whose provider reported no usage adds no tokens (unknown is not 0):
            // `unreportedCalls` counts them, so the sums say what they leave out.
            let unreported = usage["unreportedCalls"]?.integerValue ?? 0
            if !metric.failed && metric.totalTokens == nil {
                sums["unreportedCalls"] = .integer(unreported + 1)
            } else if unreported > 0 {
                sums["unreportedCalls"] = .integer(unreported)
            }
            operations.append(json.set(.object(sums), at: base + ["tokenUsage"]))
            // A call of a model without a known price adds nothing; `unpricedCalls` says so.
            if let price = metric.cost {
                let cost = (json[path: base + ["cost"]].flatMap(\.numberValue) ?? 0) + price
                operations.append(json.set(.double(cost), at: base + ["cost"]))
            } else {
                let unpriced = json[path: base + ["unpricedCalls"]]?.integerValue ?? 0
                operations.append(json.set(.integer(unpriced + 1), at: base + ["unpricedCalls"]))
            }
        }
        let calls = json["tasks"]?[task]?["modelCalls"]?.integerValue ?? 0
        setTask(task, "modelCalls", .integer(calls + 1))
    }
}

/// UTC timestamps with milliseconds, as the status document writes them.
enum Timestamp {
    static func now() -> String { string(Date()) }

    static func string(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let milliseconds = Int((interval - Double(seconds)) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // `2026-12-05T07:21:02.123Z`, digit by digit: String(format:) costs every call-log row
        // and status write tens of thousands of instructions.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        func append(_ value: Int, width: Int, after separator: Character?) {
            if let separator { bytes.append(separator.asciiValue!) }
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        append(Int(parts.tm_year) + 1900, width: 4, after: nil)
        append(Int(parts.tm_mon) + 1, width: 2, after: "-")
        append(Int(parts.tm_mday), width: 2, after: "-")
        append(Int(parts.tm_hour), width: 2, after: "T")
        append(Int(parts.tm_min), width: 2, after: ":")
        append(Int(parts.tm_sec), width: 2, after: ":")
        append(min(max(milliseconds, 0), 999), width: 3, after: ".")
        bytes.append(UInt8(ascii: "Z"))
        return String(decoding: bytes, as: UTF8.self)
    }
}
