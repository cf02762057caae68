import Foundation
import JSON
import StageEngine
import TestSupport
import Testing

/// Field 22 of `/proc/<pid>/stat`, as run records hold it.
private func startTime(_ pid: pid_t) throws -> String {
    String(try #require(processStat(pid))[19])
}

/// A pid no process has (Linux pids stop at 2^22).
private let deadPid = "999999999"

@Suite("Temporaries of interrupted writes")
struct TemporariesTests {
    @Test(
        "a task run left by a dead process: its temporaries go, a live run's and other files stay",
        arguments: ["", "locking: {mode: leases}\n"]
    )
    // A process's record lists each of its runs under way, one folder a line.
    func deadRunsAreSwept(configuration: String) throws {
        let ours = getpid()
        let temporary = try TemporaryWorkspace(
            files: [
                "stagerunner.yaml": configuration,
                ".stagerunner/runs/\(deadPid)-1": "123\ndata/tasks/t/dead\ndata/tasks/t/dead2\ndata/tasks/t/cut",
                "data/tasks/t/dead/summary.json": "{}",
                "data/tasks/t/dead2/.summary.json.tmp-\(deadPid)-12": "half",
                "data/tasks/t/cut/.summary.json.tmp-\(deadPid)-13": "a line cut short names no folder",
                "data/tasks/t/dead/.summary.json.tmp-\(deadPid)-5": "half",
                "data/tasks/t/dead/.other.json.tmp-\(ours)-6": "being written",
                "data/tasks/t/dead/out/logs/.stage-ingestion.log.tmp-\(deadPid)-7": "half",
                "data/tasks/t/dead/notes.tmp-\(deadPid)-8": "not a temporary of ours",
                "data/tasks/t/dead/.hidden-\(deadPid)-9": "nor this",
                ".stagerunner/runs/\(ours)-2": "\(try startTime(ours))\ndata/tasks/t/live\n",
                "data/tasks/t/live/.summary.json.tmp-\(deadPid)-10": "a live run's folder is not walked",
                "data/tasks/t/untracked/.summary.json.tmp-\(deadPid)-11": "no record: not walked",
            ]
        )
        defer { temporary.remove() }
        var workspace = temporary.workspace
        let leases = !configuration.isEmpty
        if leases { workspace.locking = .leases(seconds: Locking.defaultLeaseSeconds) }
        // A run under way holds its record's lock; a dead one's record is free.
        let live = try #require(try FileLock.tryAcquire(workspace.path(".stagerunner/runs/\(ours)-2"), in: workspace))
        defer { live.release() }
        _ = try WorkspaceEngine(workspace: workspace, environment: [:])
        #expect(
            workspace.listFiles(".stagerunner/runs").sorted() == ["\(ours)-2"] + (leases ? ["\(ours)-2.lease"] : [])
        )
        #expect(
            workspace.listFiles("data/tasks/t/dead").sorted() == [
                ".hidden-\(deadPid)-9", ".other.json.tmp-\(ours)-6", "notes.tmp-\(deadPid)-8", "out", "summary.json",
            ]
        )
        #expect(workspace.listFiles("data/tasks/t/dead/out/logs") == [])
        #expect(workspace.listFiles("data/tasks/t/dead2") == [])
        #expect(workspace.listFiles("data/tasks/t/cut") == [".summary.json.tmp-\(deadPid)-13"])
        #expect(workspace.listFiles("data/tasks/t/live") == [".summary.json.tmp-\(deadPid)-10"])
        #expect(workspace.listFiles("data/tasks/t/untracked") == [".summary.json.tmp-\(deadPid)-11"])
    }

    @Test("a command a dead process left: found by its token without a pid, and only a process that carries it")
    func leftCommandsAreEnded() async throws {
        // As a kill between the spawn and the pid's record leaves it: a record that names no pid,
        // and a command that has started a child of its own.
        let token = UUID().uuidString
        let (command, output) = try spawn(
            "sleep 300 & echo $!; wait",
            environment: ["STAGERUNNER_COMMAND_TOKEN": token]
        )
        try await eventually("the command prints its child's pid") { output().contains("\n") }
        let child = pid_t(output().trimmingCharacters(in: .whitespacesAndNewlines))
        // A record whose pid now belongs to another process (another start time).
        let (other, _) = try spawn("exec sleep 300")
        defer {
            // SIGKILL: a child of the test runner starts with SIGTERM blocked.
            for process in [command, other] where !process.hasExited { process.signal(SIGKILL) }
        }
        let temporary = try TemporaryWorkspace(
            files: [
                ".stagerunner/runs/\(deadPid)-1": "123\ndata/tasks/t/dead\n",
                "data/tasks/t/dead/.commands/\(token)": "",
                "data/tasks/t/dead/.commands/\(UUID().uuidString)": "\(other.pid) 1\n",
            ]
        )
        defer { temporary.remove() }
        _ = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        // Killed by the sweep (ServerProcess reports a signal as 128 + its number, as a shell does).
        let status = try await command.exitStatus()
        #expect(status == 128 + SIGKILL, "\(status)")
        let started = try #require(child)
        try await eventually("the command's child is gone") { !isRunning(started) }
        #expect(isRunning(other.pid))
        #expect(!FileManager.default.fileExists(atPath: temporary.workspace.path("data/tasks/t/dead/.commands")))
    }

    @Test("a run that writes is recorded while it lasts, and only then; so is each command, by its token")
    func runsAreRecordedWhileTheyLast() async throws {
        let temporary = try TemporaryWorkspace(
            files: [
                "tasks/t.task.yaml": """
                stages:
                  ingestion:
                    command:
                      - python3
                      - -c
                      - |
                        import json, os
                        seen = {
                            'runs': os.listdir('../.stagerunner/runs'),
                            'commands': os.listdir(os.environ['STAGERUNNER_WORK_DIR'] + '/.commands'),
                            'token': os.environ['STAGERUNNER_COMMAND_TOKEN'],
                        }
                        print(json.dumps({'output': seen, 'flags': {}}))
                  integration: { write: out.json }
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        let task = try TaskDefinition.load("tasks/t.task.yaml", workspace: temporary.workspace)
        let result = try await runner.runTask(task, options: TaskRunOptions(runId: "r1"))
        #expect(result.ok, "\(result.error?.message ?? "")")
        let seen = try #require(result.context.data["ingestion"])
        guard case .array(let runs)? = seen["runs"] else {
            Issue.record("the command saw no run records: \(seen)")
            return
        }
        #expect(runs.count == 1)
        #expect(runs.first?.stringValue?.hasPrefix("\(getpid())-") == true)
        #expect(seen["commands"] == [seen["token"] ?? .null])
        #expect(temporary.workspace.listFiles(".stagerunner/runs") == [])
        #expect(
            !FileManager.default.fileExists(atPath: temporary.workspace.path("\(result.context.workDir)/.commands"))
        )
    }

    @Test("a job a crash left running: the temporaries in its folder go; so do those of a job cut short at its start")
    func interruptedJobsAreSwept() async throws {
        let temporary = try TemporaryWorkspace(copying: "research-task")
        defer { temporary.remove() }
        let workspace = temporary.workspace
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace)
        let first = JobManager(runner: try WorkspaceEngine(workspace: workspace, environment: [:]))
        let id = try await first.start(pipeline, input: ["topic": "Tide pools"])
        var crashed = try await first.waitUntilFinished(id).json
        crashed.set("running", at: ["state"])
        try crashed.prettyDescription.write(
            toFile: workspace.path("jobs/\(id)/tasks-status.json"),
            atomically: true,
            encoding: .utf8
        )
        let leftovers = [
            "jobs/\(id)/.tasks-status.json.tmp-\(deadPid)-1", "jobs/\(id)/tasks/review/.review.md.tmp-\(deadPid)-2",
            "jobs/20260101T000000Z-0001/.input.json.tmp-\(deadPid)-3",
        ]
        let live = "jobs/\(id)/tasks/review/.output.json.tmp-\(getpid())-4"
        for path in leftovers + [live] {
            try write("x", to: workspace.path(path))
        }
        let restarted = JobManager(runner: try WorkspaceEngine(workspace: workspace, environment: [:]))
        #expect(await restarted.recoverInterruptedJobs() == [id])
        for path in leftovers { #expect(!FileManager.default.fileExists(atPath: workspace.path(path)), "\(path)") }
        #expect(FileManager.default.fileExists(atPath: workspace.path(live)))
        #expect(workspace.isFile("jobs/\(id)/tasks/review/review.md"))
    }
}

/// Starts `sh -c script` with `environment` over the test's, spawned as the tests spawn the
/// server (Foundation's `Process.run` was seen to crash the test process); returns it and what it
/// has printed so far.
private func spawn(
    _ script: String,
    environment: [String: String] = [:]
) throws -> (ServerProcess, @Sendable () -> String) {
    let process = try ServerProcess([], launcher: ["/bin/sh", "-c", script], environment: environment)
    return (process, { String(decoding: process.output.rawBytes, as: UTF8.self) })
}

/// Whether process `pid` runs (exists and is not a zombie waiting to be reaped).
private func isRunning(_ pid: pid_t) -> Bool {
    processStat(pid).map { $0.first != "Z" } ?? false
}

/// Writes `text` at `path`, creating the folders on the way.
private func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent,
        withIntermediateDirectories: true
    )
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}
