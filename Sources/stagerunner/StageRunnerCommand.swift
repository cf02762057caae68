import ArgumentParser
import StageEngine

/// `stagerunner`: runs LLM generation pipelines; `serve` exposes them over JSON-RPC on stdio.
@main
struct StageRunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stagerunner",
        abstract: "Run LLM generation pipelines, or serve them over JSON-RPC 2.0 on stdio.",
        version:
            "stagerunner \(StageRunnerVersion.current) (protocol \(ProtocolVersionText.current); \(Libcurl.version))",
        subcommands: [ServeCommand.self]
    )
}
