import ArgumentParser
import HTTP
import StageEngine
import StageRunnerServer

/// `stagerunner`: runs LLM generation pipelines; `serve` exposes them over JSON-RPC on stdio.
@main
struct StageRunnerCommand: AsyncParsableCommand {
    // No `version:` here: the configuration is built on every start, and the version line loads
    // libcurl, which only `--version` should pay for.
    static let configuration = CommandConfiguration(
        commandName: "stagerunner",
        abstract: "Run LLM generation pipelines, or serve them over JSON-RPC 2.0 on stdio.",
        subcommands: [
            ServeCommand.self, GenerateCommand.self, GensCommand.self, RenderCommand.self, ValidateCommand.self,
            TemplatesCommand.self, CostsCommand.self, ExportCommand.self, TaskCommand.self, RunCommand.self,
            StatusCommand.self,
        ]
    )

    @Flag(help: "Show the version, the protocol version and the libcurl in use, and exit.")
    var version = false

    /// `serve`, which editors and orchestrators spawn for every session or step, reads its own
    /// options when it can (``ServeSettings/init(quickParse:)``): the whole tree's parse reflects
    /// on every command's arguments first, most of a start's time. Whatever that does not take
    /// (`--help`, a mistake) goes the whole way, so help and errors read as they always do.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == ServeCommand.configuration.commandName,
            let settings = ServeSettings(quickParse: Array(arguments.dropFirst())),
            (try? settings.validate()) != nil
        {
            do {
                try await ServeCommand.serve(settings)
            } catch {
                exit(withError: error)
            }
            return
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    func run() async throws {
        guard version else { throw CleanExit.helpRequest(self) }
        print("stagerunner \(StageRunnerVersion.current) (protocol \(ProtocolVersion.current); \(Libcurl.version))")
    }
}
