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

    func run() async throws {
        guard version else { throw CleanExit.helpRequest(self) }
        print("stagerunner \(StageRunnerVersion.current) (protocol \(ProtocolVersion.current); \(Libcurl.version))")
    }
}
