import Foundation
import JSON
import Logging
import ModelProviders

/// Why a job request cannot be done.
public struct JobError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// No job has that id.
        case notFound = "not_found"
        /// The job is not in a state that allows it (retrying a running job, …).
        case invalidState = "invalid_state"
        /// A path leaves the job's directory, or names no file.
        case invalidPath = "invalid_path"
        /// The job's files cannot be read or written.
        case storage
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Runs pipelines as jobs (protocol/README.md §8.9–8.11): each job has a directory `jobs/<jobId>/` holding its
/// status document, its input and pipeline, and a folder per task with the task's result, its
/// execution log and its artifacts. Jobs beyond `maxRunningJobs` wait as `pending`.
public actor JobManager {
    public nonisolated let runner: WorkspaceEngine
    public nonisolated let maxRunningJobs: Int
    let hub = StatusHub()
    let logger: Logger

    final class Job: Sendable {
        let store: JobStatusStore
        let pipeline: PipelineDefinition
        let input: JSONValue
        init(store: JobStatusStore, pipeline: PipelineDefinition, input: JSONValue) {
            self.store = store
            self.pipeline = pipeline
            self.input = input
        }
    }

    /// The jobs in memory: every running or queued job, and the few idle ones used last. An idle
    /// job is whole on disk, so a server that runs jobs for months holds only what is running.
    private var jobs: [String: Job] = [:]
    /// Idle jobs in memory, least recently used first.
    private var idleJobs: [String] = []
    /// Jobs a request is changing across a suspension: never dropped from memory meanwhile, so
    /// that one job never has two stores writing its document.
    private var pinnedJobs: [String: Int] = [:]
    private var executions: [String: Task<Void, Never>] = [:]
    /// Jobs waiting for a slot, with the task index each starts from.
    private var queue: [(job: Job, from: Int, clientStages: (any ClientStageExecutor)?)] = []
    private var finishWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// Those who asked while a run was winding up (its document flushed, its ownership not yet
    /// given up): they wait for that, not for a run.
    private var windingUp: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// The owner locks of the jobs this process runs or has queued: held from the moment it
    /// takes a job until the run ends, so that the other processes on the workspace leave the
    /// job alone, and released by the kernel if this process dies.
    private var owned: [String: FileLock] = [:]

    /// How many idle jobs stay in memory, for requests that come back to a job just finished.
    static let idleJobsKept = 8

    public init(runner: WorkspaceEngine, maxRunningJobs: Int = 4, logger: Logger = Logger(label: "jobs")) {
        self.runner = runner
        self.maxRunningJobs = max(1, maxRunningJobs)
        self.logger = logger
    }

    var workspace: Workspace { runner.workspace }

    // MARK: - Starting

    /// Starts `pipeline` as a new job with `input`; returns its id at once (the job may wait as
    /// `pending` for a slot).
    public func start(
        _ pipeline: PipelineDefinition,
        input: JSONValue,
        name: String? = nil,
        clientStages: (any ClientStageExecutor)? = nil
    ) async throws(JobError) -> String {
        var id = WorkspaceEngine.newRunId()
        while (try? JobFolder(id, in: workspace).exists) == true || jobs[id] != nil {
            id = WorkspaceEngine.newRunId()
        }
        let document = JobStatusDocument(
            id: id,
            name: name ?? pipeline.name,
            pipelineFile: pipeline.file,
            tasks: pipeline.steps.map(\.name),
            createdAt: Timestamp.now()
        )
        let snapshot: JSONValue = ["pipeline": pipeline.json, "input": input, "name": .string(name ?? pipeline.name)]
        do {
            try await ArtifactFile.write(
                Array(input.prettyDescription.utf8) + [10],
                to: workspace.path("jobs/\(id)/input.json")
            )
            try await ArtifactFile.write(
                Array(snapshot.prettyDescription.utf8) + [10],
                to: workspace.path("jobs/\(id)/job.json")
            )
        } catch {
            throw JobError(.storage, "cannot create the job's folder jobs/\(id): \(error)")
        }
        let job = Job(
            store: JobStatusStore(document: document, workspace: workspace, hub: hub, logger: logger),
            pipeline: pipeline,
            input: input
        )
        jobs[id] = job
        pin(id)
        defer { unpin(id) }
        try takeOwnership(id)
        await job.store.update(.job(.pending)) { _ in }
        await job.store.flush()
        enqueue(job, from: 0, clientStages: clientStages)
        return id
    }

    private func enqueue(_ job: Job, from index: Int, clientStages: (any ClientStageExecutor)?) {
        let id = job.store.jobId
        jobs[id] = job
        idleJobs.removeAll { $0 == id }
        queue.append((job, index, clientStages))
        startQueued()
    }

    private func isQueued(_ id: String) -> Bool {
        queue.contains { $0.job.store.jobId == id }
    }

    private func startQueued() {
        while executions.count < maxRunningJobs, !queue.isEmpty {
            let (job, index, clientStages) = queue.removeFirst()
            let id = job.store.jobId
            executions[id] = Task { [self] in
                await JobExecution(job: job, runner: runner, clientStages: clientStages, logger: logger).run(
                    from: index
                )
                await finished(id)
            }
        }
    }

    private func finished(_ id: String) async {
        executions.removeValue(forKey: id)
        if windingUp[id] == nil { windingUp[id] = [] }
        // Taken before the flush: a retry or resume accepted meanwhile starts a new run, whose
        // waiters (a cancel's, say) must wait for that run's end, not this one's.
        let waiters = finishWaiters.removeValue(forKey: id) ?? []
        if let job = jobs[id] { await job.store.flush() }
        await runner.budgets.close(job: id)
        if !isQueued(id) { releaseOwnership(id) }
        // Idle before the waiters resume: what they see next is the job at rest.
        becameIdle(id)
        for waiter in waiters + (windingUp.removeValue(forKey: id) ?? []) { waiter.resume() }
        startQueued()
    }

    private func pin(_ id: String) { pinnedJobs[id, default: 0] += 1 }

    private func unpin(_ id: String) {
        pinnedJobs[id, default: 1] -= 1
        if pinnedJobs[id] == 0 { pinnedJobs[id] = nil }
        if idleJobs.contains(id) { trimIdleJobs() }
    }

    /// Marks a job in memory as idle, most recently used, and lets the oldest idle ones go.
    private func becameIdle(_ id: String) {
        guard jobs[id] != nil, executions[id] == nil, !isQueued(id) else { return }
        idleJobs.removeAll { $0 == id }
        idleJobs.append(id)
        trimIdleJobs()
    }

    private func trimIdleJobs() {
        var excess = idleJobs.count - Self.idleJobsKept
        var index = 0
        while excess > 0, index < idleJobs.count {
            let id = idleJobs[index]
            if pinnedJobs[id] == nil, finishWaiters[id] == nil, executions[id] == nil, !isQueued(id) {
                idleJobs.remove(at: index)
                jobs[id] = nil
                excess -= 1
            } else {
                index += 1
            }
        }
    }

    /// The number of jobs in memory (running, queued and recently used), for tests.
    var jobsInMemory: Int { jobs.count }

    // MARK: - Reading

    /// The job, from memory or from its folder.
    func job(_ id: String) async throws(JobError) -> Job {
        if let job = jobs[id] {
            // An idle job may have been run since by another process on the workspace: its
            // folder then holds a later revision than memory does.
            if owned[id] == nil, pinnedJobs[id] == nil, executions[id] == nil, !isQueued(id),
                let onDisk = try? JobFolder(id, in: workspace).readStatus(), await onDisk.rev > job.store.rev
            {
                jobs[id] = nil
                idleJobs.removeAll { $0 == id }
                return try await self.job(id)
            }
            if idleJobs.last != id, idleJobs.contains(id) { becameIdle(id) }
            return job
        }
        let json = try JobFolder(id, in: workspace).readStatus().json
        guard case .text(let saved) = workspace.loadText("jobs/\(id)/job.json"),
            let snapshot = try? JSONParser.parse(Array(saved.utf8)), let pipelineDocument = snapshot["pipeline"],
            let pipeline = try? PipelineDefinition.inline(pipelineDocument)
        else {
            throw JobError(.storage, "the job jobs/\(id) cannot be read: its tasks-status.json or job.json is damaged")
        }
        let job = Job(
            store: JobStatusStore(
                document: JobStatusDocument(json: json),
                workspace: workspace,
                hub: hub,
                logger: logger,
                written: true
            ),
            pipeline: pipeline,
            input: snapshot["input"] ?? [:]
        )
        jobs[id] = job
        becameIdle(id)
        return job
    }

    /// The job's current document: the one in memory, or else its folder's, read without keeping
    /// the job in memory (listing a workspace of thousands of jobs keeps none of them).
    private func currentDocument(_ id: String) async throws(JobError) -> JobStatusDocument {
        if let job = jobs[id] { return await job.store.document }
        return try JobFolder(id, in: workspace).readStatus()
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The job's status document.
    public func status(_ id: String) async throws(JobError) -> JobStatusDocument {
        await recoverIfOrphaned(id)
        return try await job(id).store.document
    }

    /// Waits until the job is no longer running or pending, and returns its document as written.
    public func waitUntilFinished(_ id: String) async throws(JobError) -> JobStatusDocument {
        let job = try await job(id)
        if executions[id] != nil || isQueued(id) {
            await withCheckedContinuation { finishWaiters[id, default: []].append($0) }
        } else if windingUp[id] != nil {
            await withCheckedContinuation { windingUp[id, default: []].append($0) }
        }
        await job.store.flush()
        return await job.store.document
    }

    /// Every job in the workspace, newest first, optionally only those in `state`.
    public func list(state: JobState? = nil) async -> [JobStatusDocument] {
        var documents: [JobStatusDocument] = []
        for name in JobFolder.ids(in: workspace) {
            guard var document = try? await currentDocument(name) else { continue }
            if await recoverIfOrphaned(name, known: document.state) {
                document = (try? await currentDocument(name)) ?? document
            }
            if state == nil || document.state == state { documents.append(document) }
        }
        return JobStatusDocument.newestFirst(documents)
    }

    /// Subscribes to one job's changes (or every job's, with nil); returns the subscription with
    /// the baseline it starts from.
    public func subscribe(
        jobId: String?
    ) async throws(JobError) -> (subscription: StatusSubscription, rev: Int, snapshot: JSONValue) {
        if let jobId {
            let job = try await job(jobId)
            let subscription = hub.subscribe(jobId: jobId)
            let (rev, snapshot) = await job.store.baseline(for: subscription)
            return (subscription, rev, snapshot)
        }
        let subscription = hub.subscribe(jobId: nil)
        var snapshots: [String: JSONValue] = [:]
        for (id, job) in jobs where executions[id] != nil || isQueued(id) {
            snapshots[id] = await job.store.baseline(for: subscription).snapshot
        }
        return (subscription, 0, ["jobs": .object(snapshots)])
    }

    /// A file of the job, confined to its directory.
    public func artifact(_ id: String, path: String) async throws(JobError) -> [UInt8] {
        _ = try await job(id)
        if path.isEmpty || path.hasPrefix("/") || path.split(separator: "/").contains("..") || path.utf8.contains(0) {
            throw JobError(.invalidPath, "'\(path)' must be a path relative to the job's folder, without '..'")
        }
        let relative = "jobs/\(id)/\(path)"
        guard workspace.contains(relative) else {
            throw JobError(.invalidPath, "'\(path)' leads outside the job's folder through a symbolic link")
        }
        // Resolved, the file must still be in the job's folder: a link a task's command made
        // cannot reach the rest of the workspace.
        guard let folder = Self.realPath(workspace.path("jobs/\(id)")),
            let file = Self.realPath(workspace.path(relative))
        else {
            throw JobError(.invalidPath, "the job has no file '\(path)'")
        }
        guard file.hasPrefix(folder + "/") else {
            throw JobError(.invalidPath, "'\(path)' leads outside the job's folder through a symbolic link")
        }
        guard workspace.isFile(relative), let data = FileManager.default.contents(atPath: file) else {
            throw JobError(.invalidPath, "the job has no file '\(path)'")
        }
        return Array(data)
    }

    // MARK: - Control

    /// Cancels a running or pending job: its model transfers and commands are stopped, and the
    /// document shows where the job was.
    public func cancel(_ id: String) async throws(JobError) -> JobStatusDocument {
        await recoverIfOrphaned(id)
        let job = try await job(id)
        if let index = queue.firstIndex(where: { $0.job.store.jobId == id }) {
            queue.remove(at: index)
            pin(id)
            defer { unpin(id) }
            await job.store.update(.job(.cancelled)) { document in
                document.setState(.cancelled)
                document.set(["task": nil, "stage": nil, "at": .string(Timestamp.now())], "cancelled")
            }
            await job.store.flush()
            releaseOwnership(id)
            for waiter in finishWaiters.removeValue(forKey: id) ?? [] { waiter.resume() }
            becameIdle(id)
            return await job.store.document
        }
        guard let execution = executions[id] else {
            if let owner = try otherOwner(id) {
                throw JobError(
                    .invalidState,
                    "job '\(id)' is run by another process on the workspace (\(owner)); cancel it there"
                )
            }
            let state = await job.store.document.stateName
            throw JobError(.invalidState, "job '\(id)' is \(state), not running or pending: there is nothing to cancel")
        }
        execution.cancel()
        await withCheckedContinuation { finishWaiters[id, default: []].append($0) }
        return await job.store.document
    }

    /// Runs a failed (or cancelled, or interrupted) task again, and the tasks after it, keeping the
    /// results of the tasks before it, which feed the rerun (the manual recovery of §8.11).
    public func retryTask(
        _ id: String,
        task: String,
        clientStages: (any ClientStageExecutor)? = nil
    ) async throws(JobError) {
        await recoverIfOrphaned(id)
        let job = try await job(id)
        pin(id)
        defer { unpin(id) }
        await waitForRunEndingIn(job, failedTask: task)
        guard executions[id] == nil, !isQueued(id) else {
            throw JobError(
                .invalidState,
                "job '\(id)' is still running; cancel it or wait for it to end before retrying a task"
            )
        }
        guard let index = job.pipeline.steps.firstIndex(where: { $0.name == task }) else {
            throw JobError(
                .notFound,
                "job '\(id)' has no task '\(task)'; its tasks are "
                    + job.pipeline.steps.map(\.name).joined(separator: ", ")
            )
        }
        let state = await job.store.document.taskState(task) ?? .pending
        guard state != .running else { throw JobError(.invalidState, "task '\(task)' is running") }
        try takeOwnership(id)
        let reset = job.pipeline.steps[index...].map(\.name)
        await job.store.update(.job(.pending, retryFrom: task)) { document in
            for name in reset { Self.resetTask(&document, name) }
            document.setState(.pending)
            document.set(nil, "current")
            document.set(nil, "currentStage")
            document.set(nil, "error")
            document.set(nil, "endedAt")
            document.updateProgress(currentTaskStageIndex: nil)
        }
        // A rerun task's earlier result would otherwise count as finished (the recovery of a
        // result written just before a crash); the document says pending before it goes.
        await job.store.flush()
        for name in reset {
            try? FileManager.default.removeItem(atPath: workspace.path("jobs/\(id)/tasks/\(name)/output.json"))
        }
        enqueue(job, from: index, clientStages: clientStages)
    }

    /// Continues an interrupted (or cancelled) job from its first unfinished task; finished tasks
    /// are not run again.
    public func resume(_ id: String, clientStages: (any ClientStageExecutor)? = nil) async throws(JobError) {
        await recoverIfOrphaned(id)
        let job = try await job(id)
        pin(id)
        defer { unpin(id) }
        await waitForRunEndingIn(job)
        guard executions[id] == nil, !isQueued(id) else {
            throw JobError(.invalidState, "job '\(id)' is already running")
        }
        try takeOwnership(id)
        let document = await job.store.document
        guard document.state?.isResumable == true else {
            releaseOwnership(id)
            throw JobError(
                .invalidState,
                "job '\(id)' is \(document.stateName); only interrupted or cancelled jobs resume (retryTask reruns a failed task)"
            )
        }
        let first = job.pipeline.steps.firstIndex { document.taskState($0.name) != .done } ?? job.pipeline.steps.count
        await job.store.update(.job(.pending)) { document in
            for step in job.pipeline.steps[first...] where document.taskState(step.name) != .done {
                Self.resetTask(&document, step.name)
            }
            document.setState(.pending)
            document.set(nil, "cancelled")
        }
        enqueue(job, from: first, clientStages: clientStages)
    }

    /// A run publishes its final state (failed, cancelled) a moment before it leaves the running
    /// set; a request that reacts to that state waits for the moment to pass.
    private func waitForRunEndingIn(_ job: Job, failedTask: String? = nil) async {
        let id = job.store.jobId
        guard executions[id] != nil else { return }
        let document = await job.store.document
        let ending =
            document.isFinished
            || failedTask.map { [.failed, .cancelled].contains(document.taskState($0)) } == true
        guard ending else { return }
        if executions[id] != nil {
            await withCheckedContinuation { finishWaiters[id, default: []].append($0) }
        }
    }

    static func resetTask(_ document: inout JobStatusDocument, _ name: String) {
        document.setTaskState(name, .pending)
        document.setTask(name, "currentStage", nil)
        document.setTask(name, "failedStage", nil)
        document.setTask(name, "error", nil)
        document.setTask(name, "retrying", false)
        document.setTask(name, "endedAt", nil)
    }

    /// Marks the jobs a crash left `running` or `pending` as `interrupted` (their tasks likewise),
    /// so that `resumeJob` can continue them, and removes the temporaries of the writes the crash
    /// cut short in their folders (and in the folders of jobs it stopped before their status
    /// document existed). Returns their ids.
    @discardableResult
    public func recoverInterruptedJobs() async -> [String] {
        // Nothing can be marked in a workspace that cannot be written: its jobs are shown as found.
        guard !runner.readOnly else { return [] }
        var recovered: [String] = []
        for name in JobFolder.ids(in: workspace).reversed() where executions[name] == nil {
            // A folder without a readable document is a job a crash stopped at its start.
            guard let state = try? await currentDocument(name).state else {
                removeAbandonedTemporaries(ofJob: name)
                continue
            }
            guard state == .running || state == .pending, owned[name] == nil else { continue }
            guard await recover(name) else { continue }
            recovered.append(name)
        }
        return recovered
    }

    /// Marks job `name` interrupted when its document says it runs but no process does (its
    /// owner lock can be taken): its tasks likewise, the temporaries its writes left removed and
    /// the commands its server left running ended. True when it was marked.
    private func recover(_ name: String) async -> Bool {
        // A job whose owner lock is held runs in a live process (this host or another sharing
        // the workspace): it is not interrupted, and its commands are not touched.
        guard let ownerLock = try? FileLock.tryAcquire(JobFolder(name, in: workspace).ownerLock, in: workspace) else {
            return false
        }
        defer { ownerLock.release() }
        guard let job = try? await job(name) else { return false }
        // Read again under the lock: the owner may have finished it since.
        let state = await job.store.document.state
        guard state == .running || state == .pending else { return false }
        pin(name)
        defer { unpin(name) }
        removeAbandonedTemporaries(ofJob: name)
        // Commands the killed server had started would run on beside a resumed task.
        let ended = RunningCommands.endLeftovers(under: workspace.path("jobs/\(name)/tasks"))
        if ended > 0 {
            logger.notice(
                "ended commands left running by an earlier server",
                metadata: ["job": "\(name)", "commands": "\(ended)"]
            )
        }
        await job.store.update(.job(.interrupted)) { document in
            for task in document.taskOrder where document.taskState(task) == .running {
                document.setTaskState(task, .interrupted)
            }
            document.setState(.interrupted)
        }
        await job.store.flush()
        return true
    }

    /// A job whose owner died while this server was up (its document still says running or
    /// pending) is marked interrupted when it is next asked for, as at start.
    /// `known` is the job's state when the caller has just read it. True when it was marked.
    @discardableResult
    private func recoverIfOrphaned(_ id: String, known: JobState? = nil) async -> Bool {
        guard !runner.readOnly, executions[id] == nil, !isQueued(id), owned[id] == nil, pinnedJobs[id] == nil
        else { return false }
        let state: JobState?
        if let known { state = known } else { state = try? await currentDocument(id).state }
        guard state == .running || state == .pending, await recover(id) else { return false }
        logger.notice(
            "a job whose server is gone was marked interrupted; resumeJob continues it",
            metadata: ["job": "\(id)"]
        )
        return true
    }

    /// Takes the job for this process: its owner lock, with who holds it written in. A job
    /// another process holds is refused, naming that process.
    private func takeOwnership(_ id: String) throws(JobError) {
        guard owned[id] == nil else { return }
        let folder = try JobFolder(id, in: workspace)
        let lock: FileLock?
        do {
            lock = try FileLock.tryAcquire(folder.ownerLock, in: workspace)
        } catch {
            throw JobError(.storage, "cannot take job '\(id)': \(error)")
        }
        guard let lock else {
            throw JobError(
                .invalidState,
                "job '\(id)' is run by another process on the workspace (\(folder.ownerRecord ?? "owner unknown")); "
                    + "wait for it to end, or cancel it there"
            )
        }
        lock.record(ProcessIdentity.currentRecord)
        owned[id] = lock
    }

    private func releaseOwnership(_ id: String) {
        owned.removeValue(forKey: id)?.release()
    }

    /// Who holds the job when another process does (its record), else nil.
    private func otherOwner(_ id: String) throws(JobError) -> String? {
        guard owned[id] == nil else { return nil }
        let folder = try JobFolder(id, in: workspace)
        guard let lock = try? FileLock.tryAcquire(folder.ownerLock, in: workspace) else {
            return folder.ownerRecord ?? "owner unknown"
        }
        lock.release()
        return nil
    }

    private func removeAbandonedTemporaries(ofJob id: String) {
        let removed = Temporaries.removeAbandoned(in: workspace, under: "jobs/\(id)", recursive: true)
        if !removed.isEmpty {
            logger.notice(
                "removed the temporaries of writes an earlier server did not finish",
                metadata: ["job": "\(id)", "paths": "\(removed)"]
            )
        }
    }

    /// Ends every job before the process exits: waits for the running ones to finish (and the
    /// queued ones to run), or with `cancel` cancels them all; every document is on disk after.
    public func finishAll(cancel: Bool) async {
        if cancel {
            for entry in queue { _ = try? await self.cancel(entry.job.store.jobId) }
            for id in executions.keys { _ = try? await self.cancel(id) }
        }
        while let id = executions.keys.first ?? queue.first?.job.store.jobId {
            _ = try? await waitUntilFinished(id)
        }
        for job in jobs.values {
            await job.store.flush()
            if let problem = await job.store.unwritten {
                logger.error(
                    "the job's last state could not be written before the server ended; the next server marks it interrupted",
                    metadata: ["job": "\(job.store.jobId)", "error": "\(problem)"]
                )
            }
        }
    }
}
