import Foundation
import JSON
import StageEngine
import TestSupport
import Testing

/// Field 22 of `/proc/<pid>/stat`, as run records hold it.
private func startTime(_ pid: pid_t) throws -> String {
    let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    let fields = text[text.index(after: text.lastIndex(of: ")")!)...].split(separator: " ")
    return String(fields[19])
}

/// A pid no process has (Linux pids stop at 2^22).
private let deadPid = "999999999"

@Suite("Temporaries of interrupted writes")
struct TemporariesTests {
    @Test("a task run left by a dead process: its temporaries go, a live writer's and other files stay")
    func deadRunsAreSwept() throws {
        let ours = getpid()
        let temporary = try TemporaryWorkspace(
            files: [
                ".stagerunner/runs/\(deadPid)-1": "123\ndata/tasks/t/dead\n",
                "data/tasks/t/dead/summary.json": "{}",
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
        let workspace = temporary.workspace
        _ = try StageRunner(workspace: workspace, environment: [:])
        #expect(workspace.listFiles(".stagerunner/runs") == ["\(ours)-2"])
        #expect(
            workspace.listFiles("data/tasks/t/dead").sorted() == [
                ".hidden-\(deadPid)-9", ".other.json.tmp-\(ours)-6", "notes.tmp-\(deadPid)-8", "out", "summary.json",
            ]
        )
        #expect(workspace.listFiles("data/tasks/t/dead/out/logs") == [])
        #expect(workspace.listFiles("data/tasks/t/live") == [".summary.json.tmp-\(deadPid)-10"])
        #expect(workspace.listFiles("data/tasks/t/untracked") == [".summary.json.tmp-\(deadPid)-11"])
    }

    @Test("a run that writes is recorded while it lasts, and only then")
    func runsAreRecordedWhileTheyLast() async throws {
        let temporary = try TemporaryWorkspace(
            files: [
                "tasks/t.task.yaml": """
                stages:
                  ingestion:
                    command: [python3, -c, "import json, os; print(json.dumps({'output': os.listdir('../.stagerunner/runs'), 'flags': {}}))"]
                  integration: { write: out.json }
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try StageRunner(workspace: temporary.workspace, environment: [:])
        let task = try TaskDefinition.load("tasks/t.task.yaml", workspace: temporary.workspace)
        let result = try await runner.runTask(task, options: TaskRunOptions(runId: "r1"))
        #expect(result.ok, "\(result.error?.message ?? "")")
        guard case .array(let records)? = result.context.data["ingestion"] else {
            Issue.record("the command saw no records: \(String(describing: result.context.data["ingestion"]))")
            return
        }
        #expect(records.count == 1)
        #expect(records.first?.stringValue?.hasPrefix("\(getpid())-") == true)
        #expect(temporary.workspace.listFiles(".stagerunner/runs") == [])
    }

    @Test("a job a crash left running: the temporaries in its folder go; so do those of a job cut short at its start")
    func interruptedJobsAreSwept() async throws {
        let temporary = try TemporaryWorkspace(copying: "research-task")
        defer { temporary.remove() }
        let workspace = temporary.workspace
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace)
        let first = JobManager(runner: try StageRunner(workspace: workspace, environment: [:]))
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
        let restarted = JobManager(runner: try StageRunner(workspace: workspace, environment: [:]))
        #expect(await restarted.recoverInterruptedJobs() == [id])
        for path in leftovers { #expect(!FileManager.default.fileExists(atPath: workspace.path(path)), "\(path)") }
        #expect(FileManager.default.fileExists(atPath: workspace.path(live)))
        #expect(workspace.isFile("jobs/\(id)/tasks/review/review.md"))
    }
}

/// Writes `text` at `path`, creating the folders on the way.
private func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent,
        withIntermediateDirectories: true
    )
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}
