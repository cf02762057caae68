import JSONRPC
import StageEngine
import Synchronization

/// Where the server is in the `initialize` → `shutdown` → `exit` lifecycle.
///
/// Scripts may skip `initialize`: the server then runs with the defaults it was started with.
/// After `shutdown` only `exit` is accepted.
final class Lifecycle: Sendable {
    enum Phase: Sendable, Equatable {
        case starting
        case initialized
        case shuttingDown
    }

    struct State: Sendable {
        var phase: Phase = .starting
        var workspace: Workspace
        var shutdownReceived = false
        /// The `executeStage` handlers the client declared in `initialize`.
        var stageHandlers: Set<String> = []
        /// The client opens documents asked for (`window.showDocument.support`).
        var showsDocuments = false
        /// The client sent LSP capabilities: the standard language features are its.
        var languageClient = false
        /// Hover text goes as Markdown (the client's `hover.contentFormat` prefers it, or says nothing).
        var hoverMarkdown = true
    }

    let state: Mutex<State>
    let requireInitialize: Bool

    init(workspace: Workspace, requireInitialize: Bool) {
        state = Mutex(State(workspace: workspace))
        self.requireInitialize = requireInitialize
    }

    var workspace: Workspace { state.withLock { $0.workspace } }

    var shutdownReceived: Bool { state.withLock { $0.shutdownReceived } }

    var stageHandlers: Set<String> { state.withLock { $0.stageHandlers } }

    /// Runs on the intake for every request, in arrival order: rejects what the phase forbids,
    /// and enters the shutting-down phase as soon as `shutdown` is read, so that a request
    /// pipelined right behind it is already refused.
    func admit(_ method: String) -> ResponseError? {
        state.withLock { state in
            switch state.phase {
            case .shuttingDown:
                return .invalidRequest(
                    "the server is shutting down; only the 'exit' notification is accepted now",
                    hint: "send the 'exit' notification, then start a new server"
                )
            case .starting where requireInitialize && method != "initialize" && method != "shutdown":
                return .serverNotInitialized(method)
            case .starting, .initialized:
                if method == "shutdown" {
                    state.phase = .shuttingDown
                    state.shutdownReceived = true
                }
                return nil
            }
        }
    }
}
