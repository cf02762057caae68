import JSON
import Logging

/// The one writer of a job's `tasks-status.json`.
///
/// Every change gets the next `rev` and is published at once; the file follows as fast as the
/// disk allows: each write goes to a temporary file, is made durable, renamed over the document
/// and the directory synced (through the group committer, off the cooperative pool). Changes that
/// arrive during a write are written together by the next one, so the file may skip revisions
/// but always holds a whole document that was true at its `rev`; `flush()` waits for the latest.
actor JobStatusStore {
    let jobId: String
    let workspace: Workspace
    /// `jobs/<jobId>`, relative to the workspace.
    let directory: String
    let hub: StatusHub
    private(set) var document: JobStatusDocument
    private var writtenRev = -1
    private var writing = false
    private var flushWaiters: [(rev: Int, continuation: CheckedContinuation<Void, Never>)] = []
    /// Why the last write failed, while the disk is behind; the next try comes after `retryDelay`.
    private var failure: String?
    private var retryDelay: Duration = .zero
    private var retryScheduled = false
    let logger: Logger

    /// The longest wait between two tries of a failed write.
    static let longestRetryDelay: Duration = .seconds(5)

    /// Documents above this size are written at a bounded rate.
    static let throttleThreshold = 1 << 20

    nonisolated static func serialize(_ document: JSONValue) async -> [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.writePretty(document, into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// `written` says the document is the one on disk already (a job read from its folder), so
    /// a flush has nothing to write.
    init(document: JobStatusDocument, workspace: Workspace, hub: StatusHub, logger: Logger, written: Bool = false) {
        jobId = document.id
        directory = "jobs/\(document.id)"
        self.document = document
        if written { writtenRev = document.rev }
        self.workspace = workspace
        self.hub = hub
        self.logger = logger
    }

    var rev: Int { document.rev }

    /// Why the document on disk is behind the one in memory, when a write has failed.
    var unwritten: String? { writtenRev < document.rev ? failure ?? "not written yet" : nil }

    /// Applies a change, publishes it and schedules the write.
    func update(_ event: StatusEvent, _ change: (inout JobStatusDocument) -> Void) {
        let base = document.rev
        change(&document)
        document.stamp(rev: base + 1, at: Timestamp.now())
        let operations = document.takeOperations()
        hub.publish(
            StatusChange(
                jobId: jobId,
                rev: base + 1,
                event: event,
                events: [event],
                operations: operations,
                baseRev: base,
                snapshot: document.json,
                coalesced: 1
            )
        )
        scheduleWrite()
    }

    /// Registers `subscription` with this job's current document as its baseline, atomically with
    /// respect to changes.
    func baseline(for subscription: StatusSubscription) -> (rev: Int, snapshot: JSONValue) {
        subscription.setBaseline(job: jobId, rev: document.rev)
        return (document.rev, document.json)
    }

    /// Waits until the document on disk is at least at the current revision.
    func flush() async {
        let target = document.rev
        if writtenRev >= target && !writing { return }
        scheduleWrite()
        await withCheckedContinuation { continuation in
            flushWaiters.append((target, continuation))
        }
    }

    private func scheduleWrite() {
        guard !writing else { return }
        writing = true
        Task { await self.writeLoop() }
    }

    private func writeLoop() async {
        var failed = false
        while writtenRev < document.rev {
            let rev = document.rev
            // Serialized off the actor: changes keep coming (and being published) meanwhile.
            let bytes = await Self.serialize(document.json)
            do {
                try await ArtifactFile.write(bytes, to: workspace.path("\(directory)/\(JobFolder.statusFileName)"))
                writtenRev = rev
                if let failure {
                    logger.notice(
                        "the job's status document is written again",
                        metadata: ["job": "\(jobId)", "rev": "\(rev)", "after": "\(failure)"]
                    )
                    self.failure = nil
                    retryDelay = .zero
                }
            } catch {
                if failure == nil {
                    logger.error(
                        "cannot write the job's status document; trying again until it can be written",
                        metadata: ["job": "\(jobId)", "error": "\(error)"]
                    )
                }
                failure = "\(error)"
                failed = true
                break
            }
            let done = flushWaiters.filter { $0.rev <= writtenRev }
            flushWaiters.removeAll { $0.rev <= writtenRev }
            for waiter in done { waiter.continuation.resume() }
            // A large document (a pipeline of thousands of tasks) is rewritten at most as often as
            // it takes to write about 50 MB a second, so that writing never takes the whole CPU;
            // changes meanwhile go into the next write.
            if bytes.count > Self.throttleThreshold && writtenRev < document.rev {
                try? await Task.sleep(for: .microseconds(bytes.count / 50))
            }
        }
        writing = false
        if failed {
            // No flush waits for a write that failed; the write is tried again, sooner when a
            // change comes, and at growing intervals without one (the disk may be full for a while).
            let waiting = flushWaiters
            flushWaiters = []
            for waiter in waiting { waiter.continuation.resume() }
            scheduleRetry()
        }
    }

    private func scheduleRetry() {
        guard !retryScheduled else { return }
        retryScheduled = true
        retryDelay = min(max(retryDelay * 2, .milliseconds(100)), Self.longestRetryDelay)
        Task { [retryDelay] in
            try? await Task.sleep(for: retryDelay)
            self.retry()
        }
    }

    private func retry() {
        retryScheduled = false
        if writtenRev < document.rev { scheduleWrite() }
    }
}
