import Foundation
import JSON
import ModelProviders
import Subprocess
import SystemPackage

/// Runs an external program: the stage's invocation as JSON on stdin (`{stage, preRefinement,
/// context}`), its `{output, flags}` as JSON on stdout. It runs in the task file's folder; a
/// relative program path is resolved there, a bare name on `PATH`. A non-zero exit fails the
/// stage with the tail of stderr; a timeout or cancellation sends SIGTERM, then SIGKILL. The
/// whole of stderr is kept in the run's `logs/stage-<stage>.log`.
///
/// The program inherits the server's environment except the variables that hold provider keys
/// (``ModelRouter/keyVariables``): a task runs programs of any origin, and a key it needs is
/// one it names in `passEnv`.
struct CommandStageHandler: TaskStageHandler {
    let argv: [String]
    /// Variables set for the program (`env`), over the inherited ones.
    let environment: [String: String]
    /// Key variables passed on all the same (`passEnv`).
    var passedKeys: Set<String> = []
    let directory: String

    /// Output larger than this fails the stage rather than filling memory.
    static let outputLimit = 64 << 20
    static let errorLimit = 4 << 20

    var summary: String { "command " + argv.joined(separator: " ") }

    /// The program must be there: a path (relative to the task file's folder) to an executable
    /// file, or a name found on `PATH`.
    func problems(_ invocation: StageInvocation) -> [String] {
        let program = argv[0]
        if program.contains("/") {
            let path =
                program.hasPrefix("/") ? program : invocation.environment.workspace.path("\(directory)/\(program)")
            guard access(path, X_OK) != 0 else { return [] }
            return [
                "the program \(program) is not an executable file" + (program.hasPrefix("/") ? "" : " in \(directory)/")
            ]
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        if path.split(separator: ":").contains(where: { access("\($0)/\(program)", X_OK) == 0 }) { return [] }
        return ["the command '\(program)' is not found on PATH"]
    }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        let workspace = invocation.environment.workspace
        let folder = workspace.path(directory)
        let program = argv[0]
        let executable: Executable =
            program.contains("/")
            ? .path(FilePath(program.hasPrefix("/") ? program : "\(folder)/\(program)")) : .name(program)
        let stdin = JSONValue.object([
            "stage": .string(invocation.stage.rawValue),
            "preRefinement": .bool(invocation.preRefinement),
            "context": invocation.context.json,
        ])
        var variables = Self.inheritedEnvironment(
            ProcessInfo.processInfo.environment,
            keys: invocation.environment.router.keyVariables,
            passing: passedKeys
        )
        variables.merge(environment) { _, own in own }
        variables["STAGERUNNER_STAGE"] = invocation.stage.rawValue
        variables["STAGERUNNER_WORK_DIR"] = workspace.path(invocation.context.workDir)
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(2))]
        // Its own process group, recorded from before the spawn until it ends: if this process is
        // killed, the next one to open the workspace ends it before the task can run again
        // (RunningCommands).
        options.processGroupID = 0
        let record = RunningCommands.Record(
            in: workspace.path("\(invocation.context.workDir)/\(RunningCommands.folder)")
        )
        defer { record.remove() }
        variables[RunningCommands.tokenVariable] = record.token
        // The three streams are unnamed temporary files rather than pipes: a program that never
        // reads its input, or floods its output, cannot stall or break the exchange.
        let streams: (input: ScratchFile, output: ScratchFile, error: ScratchFile)
        let status: TerminationStatus
        do {
            streams = (try ScratchFile(), try ScratchFile(), try ScratchFile())
            try streams.input.write(Array(stdin.description.utf8))
            status = try await Subprocess.run(
                executable,
                arguments: Subprocess.Arguments(Array(argv.dropFirst())),
                environment: .custom(Self.keyed(variables)),
                workingDirectory: FilePath(folder),
                platformOptions: options,
                input: .fileDescriptor(try streams.input.duplicate(), closeAfterSpawningProcess: true),
                output: .fileDescriptor(try streams.output.duplicate(), closeAfterSpawningProcess: true),
                error: .fileDescriptor(try streams.error.duplicate(), closeAfterSpawningProcess: true)
            ) { execution in
                record.started(execution.processIdentifier.value)
            }.terminationStatus
        } catch let error as ScratchFile.Failure {
            throw TaskError(.command, "\(summary) could not run: \(error)")
        } catch let error as SubprocessError {
            if Task.isCancelled { throw CancellationError() }
            throw TaskError(.command, "\(summary) could not run: \(error)")
        }
        let stderr = streams.error.contents(limit: Self.errorLimit) ?? Array("(more than 4 MiB on stderr)".utf8)
        if !stderr.isEmpty {
            try? await ArtifactFile.write(
                stderr,
                to: workspace.path("\(invocation.context.workDir)/logs/stage-\(invocation.stage.rawValue).log")
            )
        }
        let tail = Self.tail(stderr)
        switch status {
        case .exited(0): break
        case .exited(let code):
            throw TaskError(
                .command,
                "\(summary) exited with status \(code)" + (tail.isEmpty ? "" : ": \(tail)"),
                data: ["exitStatus": .integer(Int64(code)), "stderr": .string(tail)]
            )
        case .signaled(let signal):
            if Task.isCancelled { throw CancellationError() }
            throw TaskError(
                .command,
                "\(summary) was killed by signal \(signal)" + (tail.isEmpty ? "" : ": \(tail)"),
                data: ["signal": .integer(Int64(signal)), "stderr": .string(tail)]
            )
        }
        guard let stdout = streams.output.contents(limit: Self.outputLimit) else {
            throw TaskError(
                .command,
                "\(summary) wrote more than 64 MiB on stdout; write large results to files instead"
            )
        }
        let answer: JSONValue
        do {
            answer = try JSONParser.parse(stdout)
        } catch {
            let start = String(decoding: stdout.prefix(200), as: UTF8.self)
            throw TaskError(
                .contract,
                "\(summary) must print {\"output\": …, \"flags\": {…}} as JSON on stdout, but its output is not JSON "
                    + "(\(error)): \(start.isEmpty ? "(nothing)" : start)"
            )
        }
        return try StageOutput(contract: answer, stage: invocation.stage)
    }

    /// The server's environment without the key variables, but those in `passing`, and without
    /// names no program can be given (those that start with a digit).
    static func inheritedEnvironment(
        _ server: [String: String],
        keys: Set<String>,
        passing: Set<String>
    ) -> [String: String] {
        server.filter {
            (!keys.contains($0.key) || passing.contains($0.key)) && $0.key.first?.isWholeNumber != true
        }
    }

    /// The variables as Subprocess takes them: by name, so that it builds each `NAME=value`
    /// string whole (the raw-bytes form wants each entry NUL-terminated by its caller).
    static func keyed(_ variables: [String: String]) -> [Environment.Key: String] {
        var keyed: [Environment.Key: String] = [:]
        for (name, value) in variables {
            if let key = Environment.Key(rawValue: name) { keyed[key] = value }
        }
        return keyed
    }

    /// The last lines of stderr (at most 2,000 bytes), for error messages.
    static func tail(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.suffix(2000), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// An unnamed temporary file (created, then unlinked at once) that a child process reads or writes.
final class ScratchFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let descriptor: Int32

    init() throws(Failure) {
        var template = Array((NSTemporaryDirectory() + "/stagerunner-stage-XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw Failure(description: "cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Writes `bytes` and rewinds, so that a reader of a duplicate starts at the beginning.
    func write(_ bytes: [UInt8]) throws(Failure) {
        guard OwnerOnly.writeAll(descriptor, bytes) else {
            throw Failure(description: "cannot write a temporary file: \(String(cString: strerror(errno)))")
        }
        lseek(descriptor, 0, SEEK_SET)
    }

    /// A second descriptor of the same open file, for the child.
    func duplicate() throws(Failure) -> FileDescriptor {
        let copy = dup(descriptor)
        guard copy >= 0 else {
            throw Failure(description: "cannot duplicate a descriptor: \(String(cString: strerror(errno)))")
        }
        return FileDescriptor(rawValue: copy)
    }

    /// Everything written to the file, or nil when it holds more than `limit` bytes.
    func contents(limit: Int) -> [UInt8]? {
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size <= limit else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeMutableBytes {
                pread(descriptor, $0.baseAddress, $0.count, off_t(offset))
            }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            offset += count
        }
        return Array(bytes.prefix(offset))
    }
}
