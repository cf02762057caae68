import Foundation
import JSON
import JSONRPC
import Logging
import StageEngine

/// The engine behind a server, opened on first use for the session's workspace: a client that
/// only pings never creates files in the workspace.
actor Engine {
    private let lifecycle: Lifecycle
    private let logger: Logger
    private var current: StageRunner?

    init(lifecycle: Lifecycle, logger: Logger) {
        self.lifecycle = lifecycle
        self.logger = logger
    }

    /// The runner of the session's workspace.
    func runner() throws(ResponseError) -> StageRunner {
        let workspace = lifecycle.workspace
        if let current, current.workspace == workspace { return current }
        do {
            let runner = try StageRunner(workspace: workspace, logger: logger)
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
                message: "Storage: cannot open the call log \(CallLog.relativePath): \(error.localizedDescription)",
                data: [
                    "kind": "storage",
                    "hint": .string("check that \(workspace.root)/.stagerunner is writable"),
                ]
            )
        }
    }
}
