import Foundation
import JSON
import StageEngine

/// The lines of the plain (non-terminal) display: one per transition.
public enum TransitionLines {
    /// The line for one event of the engine; nil for usage events. `document` is the status
    /// document at or after the event.
    public static func line(for event: StatusEvent, in document: JobStatusDocument) -> String? {
        switch event {
        case .job(let state, _, _, let retryFrom):
            if state == .pending && retryFrom == nil {
                let total = document.tasksTotal
                return "job \(document.id) (\(document.name)) pending: \(total) task\(total == 1 ? "" : "s")"
            }
            if state == .cancelled, let reason = document.reason { return "job cancelled: \(reason)" }
            if let retryFrom { return "job \(state.rawValue), retrying from \(retryFrom)" }
            return "job \(state.rawValue)"
        case .taskRunning(let task, let attempt):
            return "\(task) running (attempt \(attempt))"
        case .taskRefining(let task, let cycle, let reason):
            return "\(task) refining (cycle \(cycle))" + (reason.isEmpty ? "" : ": \(reason)")
        case .taskRetrying(let task, let failedStage):
            let next = document.task(task)?["nextRetryAt"]?.stringValue.flatMap(Format.epochSeconds)
            return "\(task) failed at \(failedStage), retrying" + (next.map { " at \(Format.timeOfDay($0))" } ?? "")
        case .taskDone(let task, let recovered):
            return taskOutcome(task, state: .done, document, recovered: recovered)
        case .taskFailed(let task, _):
            return taskOutcome(task, state: .failed, document)
        case .stageStarted(let task, let stage, let cycle, _):
            return "\(task) \(stage.rawValue) started (cycle \(cycle))"
        case .stageFinished(let task, let stage, let succeeded, _, let milliseconds):
            let time = milliseconds.map { String(format: " in %.1f ms", $0) } ?? ""
            return "\(task) \(stage) \(succeeded ? "completed" : "failed")\(time)"
        case .usage:
            return nil
        }
    }

    /// `summary done in 0.21 s: 1 refinement cycle, 4 model calls, 1,203 tokens`, or why it
    /// failed.
    public static func taskOutcome(
        _ task: String,
        state: TaskState,
        _ document: JobStatusDocument,
        recovered: Bool = false,
        now: Double = Date().timeIntervalSince1970
    ) -> String {
        switch state {
        case .done:
            if recovered { return "\(task) done (its saved output was found)" }
            var details: [String] = []
            let cycles = document.refinementAttempts(task)
            if cycles > 0 { details.append("\(cycles) refinement cycle\(cycles == 1 ? "" : "s")") }
            let calls = document.task(task)?["modelCalls"]?.integerValue ?? 0
            if calls > 0 {
                details.append("\(calls) model call\(calls == 1 ? "" : "s")")
                details.append("\(Format.count(document.taskTokens(task))) tokens")
            }
            let time = document.elapsed(task, now: now).map { " in \(Format.duration($0))" } ?? ""
            return "\(task) done\(time)" + (details.isEmpty ? "" : ": " + details.joined(separator: ", "))
        case .failed:
            let stage = document.task(task)?["failedStage"]?.stringValue ?? document.computeTaskStage(task) ?? "?"
            let error = document.task(task)?["error"].map { ": " + Format.error($0) } ?? ""
            return "\(task) failed at \(stage)\(error)"
        default:
            return "\(task) \(state.rawValue)"
        }
    }

    /// The lines telling how the document `old` became `new`, for a reader of the file (which
    /// may skip revisions): job and task states, stages entered, refinement cycles begun.
    public static func lines(from old: JobStatusDocument, to new: JobStatusDocument) -> [String] {
        var lines: [String] = []
        if old.stateName != new.stateName && !new.isFinished { lines.append("job \(new.stateName)") }
        for task in new.taskOrder {
            let before = old.taskState(task) ?? .pending
            let after = new.taskState(task) ?? .pending
            let stage = new.task(task)?["currentStage"]?.stringValue
            let ended = after == .failed || after == .cancelled
            if before != after {
                if after == .running {
                    let attempt = new.task(task)?["attempts"]?.integerValue ?? 1
                    lines.append("\(task) running (attempt \(attempt))")
                } else if !ended {
                    lines.append(taskOutcome(task, state: after, new))
                    continue
                }
            }
            if new.isRetrying(task) && !old.isRetrying(task) {
                let stage = new.task(task)?["lastRetryError"]?["stage"]?.stringValue ?? "a stage"
                lines.append("\(task) failed at \(stage), retrying")
            }
            let cycle = new.refinementAttempts(task)
            if cycle > old.refinementAttempts(task) && after == .running {
                lines.append("\(task) refining (cycle \(cycle))")
            }
            if after == .running, let stage, stage != old.task(task)?["currentStage"]?.stringValue {
                lines.append("\(task) \(stage) started (cycle \(cycle))")
            }
            if before != after && ended {
                lines.append(taskOutcome(task, state: after, new))
            }
        }
        if old.stateName != new.stateName && new.isFinished {
            lines.append(new.state == .cancelled ? "job cancelled: \(new.reason ?? "")" : "job \(new.stateName)")
        }
        return lines
    }

    /// The closing lines: state, tasks done, tokens, cost, wall time; why it ended when it did
    /// not finish; the job's folder.
    public static func summary(_ document: JobStatusDocument, wall: Double?, directory: String) -> [String] {
        var lines: [String] = []
        var first =
            "\(document.stateName): \(document.tasksDone)/\(document.tasksTotal) tasks done, "
            + "\(Format.count(document.totalTokens)) tokens, cost \(Format.cost(document.cost))"
        if let wall { first += ", wall \(Format.duration(wall))" }
        lines.append(first)
        if let reason = document.reason { lines.append("reason: \(reason)") }
        lines.append("job directory: \(directory)")
        return lines
    }
}
