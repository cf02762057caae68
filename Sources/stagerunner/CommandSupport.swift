import ArgumentParser
import CHeap
import Foundation
import JSON
import Logging
import ModelProviders
import StageEngine
import StatusDisplay

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

extension CommandSupport {
    /// The engine of the `--workspace` workspace (for a command naming `file`, the workspace
    /// that file leads to: ``WorkspaceOption/open(forFile:)``); a workspace that is not a folder is a
    /// wrong invocation (`error: …`, status 2), one whose databases cannot be opened status 1.
    static func engine(_ option: WorkspaceOption, forFile file: String? = nil) throws -> WorkspaceEngine {
        let root: Workspace
        do {
            root = try file.map { file throws(Workspace.Problem) in try option.open(forFile: file) } ?? option.open()
        } catch {
            throw usageFailure("--workspace: \(error)")
        }
        do {
            return try WorkspaceEngine(workspace: root, logger: Logger(label: "stagerunner"))
        } catch {
            Output.error("error: cannot open the workspace \(root.root): \(error)")
            throw ExitCode(1)
        }
    }

    /// Prints `error: message` on stderr; the status to exit with is 2 (a wrong invocation).
    static func usageFailure(_ message: String) -> ExitCode {
        Output.error("error: \(message)")
        return ExitCode(2)
    }

    /// Prints a JSON value on stdout, indented unless `compact`.
    static func print(_ value: JSONValue, compact: Bool = false) {
        Output.line(compact ? value.description : value.prettyDescription)
    }
}

extension GenerationStage: ExpressibleByArgument {}

/// Which generations a command works on: `--cohort`, `--stage`, `--gen-id`, `--template`,
/// `--model`; all of them must hold, none selects the whole membership.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only the generations of this cohort (the membership's cohort_id).")
    var cohort: String?

    @Option(help: "Only this stage: draft, essay or evaluation.")
    var stage: GenerationStage?

    @Option(name: .customLong("gen-id"), help: "Only these generations (repeat the option for more).")
    var genIds: [String] = []

    @Option(help: "Only the generations of this template id.")
    var template: String?

    @Option(help: "Only the generations of this model id (the membership's llm_model_id).")
    var model: String?

    var selection: GenerationSelection {
        GenerationSelection(cohort: cohort, stage: stage, genIds: genIds, templateId: template, model: model)
    }

    /// The selected membership rows; a gen id or cohort the membership does not know is status 2.
    func rows(_ engine: WorkspaceEngine) async throws -> [MembershipRow] {
        do {
            return try await engine.rows(selection)
        } catch {
            throw CommandSupport.usageFailure(error.message)
        }
    }
}

extension WorkspaceOption {
    /// The workspace of a command that names a file (a task or pipeline file): `--workspace`
    /// when given; else, when the file lies in a folder (below the current directory) that holds
    /// a `stagerunner.yaml`, the nearest such folder, so that `stagerunner run
    /// examples/research-task/pipelines/x.yaml` uses the example's workspace; else the current
    /// directory.
    func open(forFile file: String) throws(Workspace.Problem) -> Workspace {
        if workspace != nil { return try open() }
        let current = FileManager.default.currentDirectoryPath
        let absolute = file.hasPrefix("/") ? file : current + "/" + file
        var folder = URL(fileURLWithPath: absolute).standardizedFileURL.deletingLastPathComponent().path
        while folder.hasPrefix(current + "/") {
            if FileManager.default.fileExists(atPath: folder + "/stagerunner.yaml") {
                return try Workspace(path: folder)
            }
            folder = (folder as NSString).deletingLastPathComponent
        }
        return try open()
    }
}
