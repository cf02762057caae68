import ArgumentParser
import CHeap
import Logging
import StageEngine

/// What every subcommand does the same way.
enum CommandSupport {
    /// Sets up the process: the log goes to stderr, `level` and above (stdout is for results or
    /// the protocol), and memory of large messages and artifacts goes back to the system once freed.
    static func startProcess(logLevel level: Logger.Level) {
        sr_heap_map_large_blocks(4 << 20)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// The workspace a `--workspace` option names, or the current directory.
    static func workspace(_ path: String?) throws(Workspace.Problem) -> Workspace {
        guard let path else { return try Workspace.currentDirectory() }
        return try Workspace(path: path)
    }
}

/// `--workspace`, which every command takes alike.
struct WorkspaceOption: ParsableArguments {
    @Option(help: "Workspace directory (default: the current directory).")
    var workspace: String?

    /// The workspace it names, or the current directory.
    func open() throws(Workspace.Problem) -> Workspace { try CommandSupport.workspace(workspace) }
}

/// `--log-level`, which the commands that log take alike; each has its own default (a server
/// logs more than a command that draws on the terminal).
struct LogLevelOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Lowest level logged to stderr: trace, debug, info, notice, warning, error or critical.",
            discussion: "Default: notice for serve, warning for task, error for run."
        )
    )
    var logLevel: Logger.Level?
}
