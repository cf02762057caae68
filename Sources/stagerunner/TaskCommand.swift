import ArgumentParser
import Foundation
import JSON
import Logging
import StageEngine

/// `stagerunner task`: runs one task file through the same engine as `runTask`, and prints the
/// result payload.
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Run a task file (its eleven stages, ingestion to integration) and print its result as JSON.",
        discussion: """
            The task file's path is relative to the workspace, or a path from the current directory \
            into it; without --workspace, the nearest folder above the file that holds a \
            stagerunner.yaml is the workspace. The result is the payload that \
            'runTask' returns: {ok, logs, context, refinementAttempts, llmMetrics}, with failedStage \
            and error when ok is false. The exit status is 0 when the task succeeded, 1 when it \
            failed, 2 when the task file or an option's value is wrong (64 for an option it does not \
            know). With --dry-run nothing runs: the task file, its templates, schemas and parsers are \
            read and checked, each stage's program, model and client handler looked for, and the \
            answer is {dryRun, ok, task, stages: [{stage, handler, problems}]} (exit 1 when a \
            stage has a problem). Stages handled by a client \
            ('client' handlers) need a client: run those through 'stagerunner serve'.

            Example:
              stagerunner task tasks/summary.task.yaml --workspace examples/research-task \\
                --input '{"topic": "tide pools"}'
            """
    )

    @Argument(help: "The task file (YAML or JSON), relative to the workspace.")
    var file: String

    @Option(help: "The task's input as JSON (default: {}).")
    var input: String = "{}"

    @OptionGroup var workspaceOption: WorkspaceOption

    @Option(help: "Refinement cycles allowed (default: the task's maxRefinements, else 3).")
    var maxRefinements: Int?

    @Option(help: "The model of stages that name none, e.g. embedded:research or openai:gpt-4o-mini.")
    var model: String?

    @Option(help: "Seconds the whole task may take.")
    var timeout: Double?

    @Flag(help: "Print the payload on one line instead of indented.")
    var compact = false

    @Flag(help: "Check the task (its files, programs, models and client handlers), run no stage.")
    var dryRun = false

    @OptionGroup var logging: LogLevelOption

    func run() async throws {
        let level = logging.logLevel ?? .warning
        CommandSupport.startProcess(logLevel: level)
        // A wrong option value is a wrong invocation like a wrong task file: status 2, one line.
        let seed: JSONValue
        do {
            seed = try JSONParser.parse(Array(input.utf8))
        } catch {
            throw CommandSupport.usageFailure("--input is not JSON: \(error)")
        }
        let runner = try CommandSupport.engine(workspaceOption, forFile: file)
        let task: TaskDefinition
        do {
            task = try await runner.loadTask(RunCommand.relativePath(file, in: runner.workspace))
        } catch {
            throw CommandSupport.usageFailure("\(error)")
        }
        let options = TaskRunOptions(
            input: seed,
            modelConfig: ModelConfig(defaultModel: model),
            maxRefinements: maxRefinements,
            timeout: timeout.map { .milliseconds(Int64($0 * 1000)) }
        )
        if dryRun {
            let checked = await runner.dryRun(task, options: options)
            print(compact ? checked.json.description : checked.json.prettyDescription)
            if !checked.ok { throw ExitCode(1) }
            return
        }
        let result = try await runner.runTask(task, options: options)
        print(compact ? result.json.description : result.json.prettyDescription)
        if !result.ok { throw ExitCode(1) }
    }
}
