/// Where a job is, as its status document's `state` says.
public enum JobState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Queued for a slot (`maxRunningJobs`), or accepted for a retry or resume.
    case pending
    case running
    case done
    case failed
    case cancelled
    /// Found `running` or `pending` after the process running it exited; `resumeJob` continues it.
    case interrupted

    /// The states in which a job no longer changes by itself.
    public static let terminal: Set<JobState> = [.done, .failed, .cancelled, .interrupted]

    /// Whether the job no longer changes by itself.
    public var isTerminal: Bool { Self.terminal.contains(self) }

    /// Only these resume (`resumeJob`); a failed job reruns a task instead (`retryTask`).
    public var isResumable: Bool { self == .interrupted || self == .cancelled || self == .pending }
}

/// Where one task of a job is, as its entry in the status document says. A task waiting to be
/// run again after a failed attempt stays `running` with `retrying: true`.
public enum TaskState: String, Sendable, Hashable, CaseIterable, Codable {
    case pending
    case running
    case done
    case failed
    case cancelled
    /// It was running when the process running the job exited.
    case interrupted
}
