import Foundation
import JSON
import JSONRPC
import Logging
import StageEngine

/// The engine behind a server, opened on first use for the session's workspace: a client that
/// only pings never creates files in the workspace.
actor SessionEngine {
    private let lifecycle: Lifecycle
    private let logger: Logger
    private var current: WorkspaceEngine?
    private var currentJobs: JobManager?
    /// How many jobs run at once; the rest wait as pending.
    let maxRunningJobs: Int

    init(lifecycle: Lifecycle, logger: Logger, maxRunningJobs: Int = 4) {
        self.lifecycle = lifecycle
        self.logger = logger
        self.maxRunningJobs = maxRunningJobs
    }

    /// The job manager of the session's workspace; on first use, jobs a crash left running are
    /// marked interrupted.
    func jobs() async throws(ResponseError) -> JobManager {
        let runner = try runner()
        if let currentJobs, currentJobs.runner === runner { return currentJobs }
        let jobs = JobManager(runner: runner, maxRunningJobs: maxRunningJobs, logger: logger)
        currentJobs = jobs
        let recovered = await jobs.recoverInterruptedJobs()
        if !recovered.isEmpty {
            logger.notice(
                "jobs interrupted by an earlier exit; resumeJob continues them",
                metadata: ["jobs": "\(recovered)"]
            )
        }
        return jobs
    }

    /// The job manager if one was opened.
    var openedJobs: JobManager? { currentJobs }

    /// The runner if one was opened.
    var openedRunner: WorkspaceEngine? { current }

    /// The runner of the session's workspace.
    func runner() throws(ResponseError) -> WorkspaceEngine {
        let workspace = lifecycle.workspace
        if let current, current.workspace == workspace { return current }
        do {
            let runner = try WorkspaceEngine(workspace: workspace, logger: logger)
            current = runner
            Task { [logger] in
                let provider = await runner.defaultProvider()
                logger.notice(
                    "engine ready",
                    metadata: [
                        "workspace": "\(workspace.root)",
                        "defaultProvider": "\(provider)\(provider == "embedded" ? " (no network, no key)" : "")",
                    ]
                )
            }
            return runner
        } catch {
            throw ResponseError(
                code: StageErrorCode.storage,
                message: "Storage: \(error)",
                data: [
                    "kind": "storage",
                    "hint": .string("check that \(workspace.root)/.stagerunner is writable"),
                ]
            )
        }
    }
}
