import ArgumentParser
import Dispatch
import Foundation
import JSON
import Logging
import StageEngine
import StatusDisplay
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `stagerunner run`: runs a pipeline as a job through the same engine as `runPipeline`, and
/// shows it live.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline as a job and show its progress live.",
        discussion: """
            The pipeline file's path is relative to the workspace (a path from the current \
            directory into the workspace works too); without --workspace, the nearest folder above \
            the file that holds a stagerunner.yaml is the workspace. The job gets a folder jobs/<jobId>/ in the \
            workspace with its tasks-status.json, its input and each task's artifacts, exactly as \
            'runPipeline' makes it.

            On a terminal the job is shown live: a bar per task with its state, current stage, \
            refinement cycle, tokens, cost and elapsed time, redrawn in place. Otherwise (a pipe or \
            a file) each transition is one line: '12:00:01.123 summary inference started (cycle 0)'. \
            Either way it ends with a summary and the job's folder.

            Exit status: 0 when the job is done, 1 when it failed or was cancelled, 2 when the \
            pipeline file, a task file or the input is wrong, 130 when interrupted (Ctrl-C cancels \
            the job; its document says cancelled, and 'resumeJob' continues it).

            --dry-run starts no job: it reads the pipeline and every task file, and checks each \
            stage's program, model and client handler; a line per task, 'ok' or its problems \
            (exit 1 when there is one).

            Example:
              cd examples/research-task
              stagerunner run pipelines/research.pipeline.yaml --input-json '{"topic": "Tide pools"}'
            """
    )

    @Argument(help: "The pipeline file (YAML or JSON), relative to the workspace.")
    var pipeline: String

    @Option(
        help: ArgumentHelp(
            "The job's input: a JSON file, '-' for standard input, or JSON text (default: {}).",
            valueName: "file|-"
        )
    )
    var input: String?

    @Option(help: ArgumentHelp("The job's input as JSON text.", valueName: "json"))
    var inputJson: String?

    @OptionGroup var workspaceOption: WorkspaceOption

    @Option(help: "The job's name (default: the pipeline's).")
    var name: String?

    @Flag(help: "One line per transition even on a terminal.")
    var plain = false

    @Flag(help: "Check the pipeline and every task of it, start no job.")
    var dryRun = false

    @OptionGroup var logging: LogLevelOption

    func run() async throws {
        let level = logging.logLevel ?? .error
        CommandSupport.startProcess(logLevel: level)
        let seed = try readInput()
        let runner = try CommandSupport.engine(workspaceOption, forFile: pipeline)
        let root = runner.workspace
        let definition: PipelineDefinition
        do {
            definition = try PipelineDefinition.load(Self.relativePath(pipeline, in: root), workspace: root)
        } catch {
            throw CommandSupport.usageFailure("\(error)")
        }
        if dryRun {
            let checked = await runner.dryRun(definition, options: TaskRunOptions(input: seed))
            for step in checked.steps {
                let problems =
                    step.error.map { ["\($0)"] } ?? step.task?.stages.flatMap { stage in
                        stage.problems.map { "\(stage.stage.rawValue) (\(stage.handler)): \($0)" }
                    } ?? []
                Output.line(
                    "\(step.name) (\(step.file)): " + (problems.isEmpty ? "ok" : "\(problems.count) problem(s)")
                )
                for problem in problems { Output.line("  error: \(problem)") }
            }
            Output.line("dry run: \(checked.steps.count) tasks, " + (checked.ok ? "no problems" : "problems found"))
            if !checked.ok { throw ExitCode(1) }
            return
        }
        // Every task file is read now, so that a mistake in one stops the run before it starts.
        do {
            var checked: Set<String> = []
            for step in definition.steps where checked.insert(step.file).inserted {
                _ = try await runner.loadTask(step.file)
            }
        } catch {
            throw CommandSupport.usageFailure("\(error)")
        }

        let jobs = JobManager(runner: runner, maxRunningJobs: 1, logger: Logger(label: "stagerunner"))
        // Subscribed before the job starts, so that its first transition is seen too.
        let (subscription, _, _) = try await jobs.subscribe(jobId: nil)
        let started = ContinuousClock.now
        let id: String
        do {
            id = try await jobs.start(definition, input: seed, name: name)
        } catch {
            Output.error("error: \(error)")
            throw ExitCode(1)
        }
        let live = Output.isTerminal && !plain ? LiveDisplay(started: started) : nil
        let interrupts = InterruptHandler {
            let note = "cancelling the job (Ctrl-C again to quit at once)"
            if let live {
                Task { await live.note(note) }
            } else {
                Output.error(note)
            }
            Task { _ = try? await jobs.cancel(id) }
        }
        await live?.start()
        var jobState: JobState?
        while let change = await subscription.next() {
            guard change.jobId == id else { continue }
            let view = JobStatusDocument(json: change.snapshot)
            var lines = change.events.compactMap { TransitionLines.line(for: $0, in: view) }
            for case .job(let state, _, _, _) in change.events { jobState = state }
            if view.state != jobState {
                // A task's failure fails the job in the same change.
                jobState = view.state
                lines.append("job \(view.stateName)")
            }
            if live == nil {
                let time = Format.timeOfDay()
                for line in lines { Output.line("\(time) \(line)") }
            }
            let lastLine = lines.last
            await live?.update(view, event: lastLine)
            if view.isFinished { break }
        }
        subscription.close()
        let final = try await jobs.waitUntilFinished(id)
        let wall = Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6
        if let live {
            await live.update(final, event: nil)
            await live.finish()
            Output.line("")
        }
        for line in TransitionLines.summary(final, wall: wall, directory: try JobFolder(id, in: root).path) {
            Output.line(line)
        }
        withExtendedLifetime(interrupts) {}
        if interrupts.count > 0 { throw ExitCode(130) }
        if final.state != .done { throw ExitCode(1) }
    }

    /// The job's input from `--input` or `--input-json`.
    func readInput() throws -> JSONValue {
        if input != nil && inputJson != nil {
            throw CommandSupport.usageFailure("give the input with --input or with --input-json, not both")
        }
        var text = inputJson ?? "{}"
        var origin = "--input-json"
        if let input {
            let trimmed = input.drop { $0 == " " || $0 == "\n" || $0 == "\t" }
            if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") || trimmed.hasPrefix("\"") {
                text = input
                origin = "--input"
            } else if input == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                origin = "the input read from standard input"
            } else {
                guard let data = FileManager.default.contents(atPath: input) else {
                    throw CommandSupport.usageFailure("--input: cannot read the file '\(input)'")
                }
                text = String(decoding: data, as: UTF8.self)
                origin = "the input file '\(input)'"
            }
        }
        do {
            return try JSONParser.parse(Array(text.utf8))
        } catch {
            throw CommandSupport.usageFailure("\(origin) is not JSON: \(error)")
        }
    }

    /// `path` relative to the workspace: as given, or, when it names a file from the current
    /// directory (or an absolute path) inside the workspace, that file's path from the root.
    static func relativePath(_ path: String, in workspace: Workspace) -> String {
        if !path.hasPrefix("/") && workspace.isFile(path) { return path }
        let absolute =
            path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let resolved = URL(fileURLWithPath: absolute).standardizedFileURL.resolvingSymlinksInPath().path
        let root = URL(fileURLWithPath: workspace.root).resolvingSymlinksInPath().path
        if resolved.hasPrefix(root + "/") { return String(resolved.dropFirst(root.count + 1)) }
        return path
    }
}

/// Ctrl-C: the first one cancels the job (the run then ends with status 130), the second exits at once.
final class InterruptHandler {
    final class Counter: Sendable {
        let value = Mutex(0)
    }

    private let counter = Counter()
    private let source: any DispatchSourceSignal

    init(onFirst: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [counter] in
            let count = counter.value.withLock { count in
                count += 1
                return count
            }
            if count == 1 {
                onFirst()
            } else {
                _exit(130)
            }
        }
        source.resume()
    }

    /// How many times Ctrl-C was pressed.
    var count: Int { counter.value.withLock { $0 } }
}
