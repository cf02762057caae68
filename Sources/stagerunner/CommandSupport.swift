import Logging
import StageEngine

/// What every subcommand does the same way.
enum CommandSupport {
    /// Sends the log to stderr, `level` and above (stdout is for results or the protocol).
    static func logToStandardError(at level: Logger.Level) {
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
