import JSON

/// What changed in a job's status document, as subscribers see it in `statusChanged.event`:
/// `{type: job|task|stage|usage, …}` on the wire (protocol/README.md, "Status notifications").
public enum StatusEvent: Sendable, Hashable {
    /// The job entered `state`. A failed job names the task and stage where it failed, a
    /// cancelled one the task it was in; a retry's `pending` names the task it reruns from.
    case job(JobState, task: String? = nil, failedStage: String? = nil, retryFrom: String? = nil)
    /// An attempt of the task began (1 for the first).
    case taskRunning(task: String, attempt: Int)
    /// The task finished; `recovered` when its saved result was found after a crash.
    case taskDone(task: String, recovered: Bool = false)
    /// The task failed at `failedStage` and has no attempts left.
    case taskFailed(task: String, failedStage: String)
    /// The task failed at `failedStage` and will be tried again (`nextRetryAt` in the document).
    case taskRetrying(task: String, failedStage: String)
    /// A critique asked for refinement cycle `cycle`.
    case taskRefining(task: String, cycle: Int, reason: String)
    /// One of the eleven task stages began.
    case stageStarted(task: String, stage: TaskStage, refinementCycle: Int, preRefinement: Bool)
    /// A stage ended, well or not, after `milliseconds` when measured.
    case stageFinished(task: String, stage: String, succeeded: Bool, refinementCycle: Int, milliseconds: Double?)
    /// A model call's tokens and cost were added.
    case usage(task: String, stage: String)

    /// Job and task transitions, which merging a slow subscriber's changes never drops.
    public var isTransition: Bool {
        switch self {
        case .job, .taskRunning, .taskDone, .taskFailed, .taskRetrying, .taskRefining: return true
        case .stageStarted, .stageFinished, .usage: return false
        }
    }

    /// The event as the protocol sends it.
    public var json: JSONValue {
        var members: [String: JSONValue]
        switch self {
        case .job(let state, let task, let failedStage, let retryFrom):
            members = ["type": "job", "state": .string(state.rawValue)]
            if let task { members["task"] = .string(task) }
            if let failedStage { members["failedStage"] = .string(failedStage) }
            if let retryFrom { members["retryFrom"] = .string(retryFrom) }
        case .taskRunning(let task, let attempt):
            members = ["type": "task", "task": .string(task), "state": "running", "attempt": .integer(Int64(attempt))]
        case .taskDone(let task, let recovered):
            members = ["type": "task", "task": .string(task), "state": "done"]
            if recovered { members["recovered"] = true }
        case .taskFailed(let task, let failedStage):
            members = ["type": "task", "task": .string(task), "state": "failed", "failedStage": .string(failedStage)]
        case .taskRetrying(let task, let failedStage):
            members = ["type": "task", "task": .string(task), "state": "retrying", "failedStage": .string(failedStage)]
        case .taskRefining(let task, let cycle, let reason):
            members = [
                "type": "task", "task": .string(task), "state": "refining",
                "refinementCycle": .integer(Int64(cycle)), "reason": .string(reason),
            ]
        case .stageStarted(let task, let stage, let cycle, let preRefinement):
            members = [
                "type": "stage", "task": .string(task), "stage": .string(stage.rawValue), "state": "started",
                "refinementCycle": .integer(Int64(cycle)), "preRefinement": .bool(preRefinement),
            ]
        case .stageFinished(let task, let stage, let succeeded, let cycle, let milliseconds):
            members = [
                "type": "stage", "task": .string(task), "stage": .string(stage),
                "state": succeeded ? "completed" : "failed", "refinementCycle": .integer(Int64(cycle)),
            ]
            if let milliseconds { members["ms"] = .double(milliseconds) }
        case .usage(let task, let stage):
            members = ["type": "usage", "task": .string(task), "stage": .string(stage)]
        }
        return .object(members)
    }
}
