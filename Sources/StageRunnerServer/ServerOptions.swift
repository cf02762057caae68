import JSONRPC
import StageEngine

/// How a server was started (the `serve` command's options).
public struct ServerOptions: Sendable {
    /// The workspace used when `initialize` names none, or when no `initialize` comes.
    public var workspace: Workspace
    public var framing: FramingMode = .auto
    public var maximumMessageSize: Int = 64 << 20
    /// LSP-strict: answer -32002 to any request before `initialize`.
    public var requireInitialize = false
    /// Registers the `test/…` methods the end-to-end tests use (`--enable-test-methods`).
    public var enableTestMethods = false
    /// How many jobs run at once; the rest wait as `pending` (`--max-running-jobs`).
    public var maxRunningJobs = 4

    public init(workspace: Workspace) {
        self.workspace = workspace
    }
}
