import ArgumentParser
import CHeap
import Dispatch
import JSONRPC
import Logging
import StageEngine
import StageRunnerServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FramingMode: ExpressibleByArgument {}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `stagerunner serve`: the JSON-RPC 2.0 service on stdin/stdout.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve JSON-RPC 2.0 on stdin/stdout (LSP Content-Length or newline-delimited JSON).",
        discussion: """
            Reads requests from stdin and writes responses to stdout; logs go to stderr. The framing \
            is detected from the first byte ('C' for Content-Length headers, '{' or '[' for one JSON \
            message per line) unless --framing fixes it. The server exits when stdin closes, after \
            answering everything it has read; or on the 'exit' notification (status 0 after \
            'shutdown', 1 without); SIGTERM finishes the requests under way and exits 0. \
            --workspace is the workspace of a client whose 'initialize' names none.

            Example:
              printf '%s\\n' '{"jsonrpc":"2.0","id":1,"method":"ping"}' | stagerunner serve
            """
    )

    @Option(help: "Message framing: auto, lsp or ndjson.")
    var framing: FramingMode = .auto

    /// Used when `initialize` names no workspace.
    @OptionGroup var workspaceOption: WorkspaceOption

    @OptionGroup var logging: LogLevelOption

    @Option(help: "Largest message accepted, in bytes; larger ones are answered with an error and skipped.")
    var maxMessageSize: Int = 64 << 20

    @Option(help: "Jobs run at once; the others wait as pending.")
    var maxRunningJobs: Int = 4

    @Flag(help: "Answer -32002 to requests that arrive before 'initialize' (strict LSP clients).")
    var requireInitialize = false

    @Flag(help: .hidden)
    var enableTestMethods = false

    /// What the options say.
    var settings: ServeSettings {
        ServeSettings(
            framing: framing,
            workspace: workspaceOption.workspace,
            logLevel: logging.logLevel,
            maxMessageSize: maxMessageSize,
            maxRunningJobs: maxRunningJobs,
            requireInitialize: requireInitialize,
            enableTestMethods: enableTestMethods
        )
    }

    func validate() throws { try settings.validate() }

    func run() async throws { try await Self.serve(settings) }

    static func serve(_ settings: ServeSettings) async throws {
        let workspace: Workspace
        do {
            workspace = try CommandSupport.workspace(settings.workspace)
        } catch {
            throw ValidationError("--workspace \(error)")
        }
        // Before anything else can print: fd 1 becomes stderr, the protocol keeps a private copy.
        let protocolOutput = StandardIO.takeStandardOutput()
        CommandSupport.startProcess(logLevel: settings.logLevel ?? .notice)
        let logger = Logger(label: "stagerunner")

        var options = ServerOptions(workspace: workspace)
        options.framing = settings.framing
        options.maximumMessageSize = settings.maxMessageSize
        options.requireInitialize = settings.requireInitialize
        options.enableTestMethods = settings.enableTestMethods
        options.maxRunningJobs = settings.maxRunningJobs
        let server = RPCServer(options: options, logger: logger)
        let connection = server.connect(input: STDIN_FILENO, output: protocolOutput)
        let signals = SignalHandlers(connection: connection, logger: logger)
        // Logged before reading starts, so that it precedes whatever the first requests log.
        logger.info(
            "serving on stdio",
            metadata: ["version": "\(StageRunnerVersion.current)", "workspace": "\(workspace.root)"]
        )
        // From here on only what serving uses is resident (see sr_drop_startup_pages).
        sr_drop_startup_pages()
        connection.start()
        let reason = try await connection.waitUntilClosed()
        withExtendedLifetime(signals) {}
        logger.info("closed", metadata: ["reason": "\(reason)"])
        Glibc.exit(server.exitStatus(for: reason))
    }
}

/// How `serve` runs, as its options say.
struct ServeSettings: Equatable {
    var framing: FramingMode = .auto
    var workspace: String?
    var logLevel: Logger.Level?
    var maxMessageSize = 64 << 20
    var maxRunningJobs = 4
    var requireInitialize = false
    var enableTestMethods = false

    func validate() throws {
        guard maxMessageSize >= 1024 else {
            throw ValidationError("--max-message-size must be at least 1024 bytes (got \(maxMessageSize))")
        }
        guard (1...10_000).contains(maxRunningJobs) else {
            throw ValidationError("--max-running-jobs must be from 1 to 10000 (got \(maxRunningJobs))")
        }
    }
}

extension ServeSettings {
    /// The settings of `serve`'s `arguments` when they are only its own options, each well
    /// formed, as `--name value` or `--name=value`; nil for anything else (help, a mistake, an
    /// option it does not know), which ArgumentParser then reads and answers. ArgumentParser
    /// builds its parser by reflecting on every option's type, which costs a start several
    /// milliseconds: `serve` is spawned by editors and orchestrators for every session or step.
    init?(quickParse arguments: [String]) {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else { return nil }
            var name = argument
            var attached: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                attached = String(argument[argument.index(after: equals)...])
            }
            switch name {
            case "--require-initialize" where attached == nil:
                requireInitialize = true
                continue
            case "--enable-test-methods" where attached == nil:
                enableTestMethods = true
                continue
            default:
                break
            }
            let value: String
            if let attached {
                value = attached
            } else {
                guard index < arguments.endIndex, !arguments[index].hasPrefix("-") else { return nil }
                value = arguments[index]
                index += 1
            }
            switch name {
            case "--framing":
                guard let mode = FramingMode(rawValue: value) else { return nil }
                framing = mode
            case "--workspace":
                workspace = value
            case "--log-level":
                guard let level = Logger.Level(rawValue: value) else { return nil }
                logLevel = level
            case "--max-message-size":
                guard let size = Int(value) else { return nil }
                maxMessageSize = size
            case "--max-running-jobs":
                guard let count = Int(value) else { return nil }
                maxRunningJobs = count
            default:
                return nil
            }
        }
    }
}

/// SIGTERM: finish the requests under way, answer them, exit 0. SIGINT: cancel them first; a
/// SIGINT after SIGTERM cancels what SIGTERM was letting finish.
final class SignalHandlers {
    private let sources: [any DispatchSourceSignal]

    init(connection: Connection, logger: Logger) {
        var sources: [any DispatchSourceSignal] = []
        for (number, name, cancel) in [(SIGTERM, "SIGTERM", false), (SIGINT, "SIGINT", true)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                logger.notice("received \(name): shutting down")
                Task { await connection.close(cancelInFlight: cancel, reason: .signal(number)) }
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }
}
