import JSON
import StageEngine

extension JobStatusDocument {
    /// The task's state as a display shows it: `retrying` while it waits for another attempt,
    /// `pending` when the document does not say.
    public func displayState(_ task: String) -> String {
        if isRetrying(task) { return "retrying" }
        return taskState(task)?.rawValue ?? TaskState.pending.rawValue
    }

    /// Seconds the task ran: its `executionTime` once it ended, else since `startedAt`.
    public func elapsed(_ name: String, now: Double) -> Double? {
        guard let task = task(name) else { return nil }
        let running = taskState(name) == .running
        if !running, let milliseconds = task["executionTime"]?.numberValue { return milliseconds / 1000 }
        guard let started = task["startedAt"]?.stringValue.flatMap(Format.epochSeconds) else { return nil }
        if running { return max(0, now - started) }
        if let ended = task["endedAt"]?.stringValue.flatMap(Format.epochSeconds) { return max(0, ended - started) }
        return nil
    }

    /// Seconds from the job's start (or creation) to its end, or to `now` while it runs.
    public func wallTime(now: Double) -> Double? {
        guard let started = (json["startedAt"] ?? json["createdAt"])?.stringValue.flatMap(Format.epochSeconds) else {
            return nil
        }
        if isFinished, let ended = json["endedAt"]?.stringValue.flatMap(Format.epochSeconds) {
            return max(0, ended - started)
        }
        return isFinished ? nil : max(0, now - started)
    }

    /// Where the job ended when it did not finish: `review failed at promptTemplating: …`.
    public var reason: String? {
        switch state {
        case .failed:
            let error = json["error"]
            let task = error?["task"]?.stringValue ?? current ?? "?"
            let stage = error?["stage"]?.stringValue ?? json["currentStage"]?.stringValue ?? "?"
            return "\(task) failed at \(stage)" + (error.map { ": " + Format.error($0) } ?? "")
        case .cancelled:
            guard let task = json["cancelled"]?["task"]?.stringValue else { return "cancelled before it started" }
            let stage = json["cancelled"]?["stage"]?.stringValue
            return "cancelled in \(task)" + (stage.map { " at \($0)" } ?? "")
        case .interrupted:
            return "interrupted by an exit of the process running it; 'resumeJob' continues it"
        default:
            return nil
        }
    }
}
