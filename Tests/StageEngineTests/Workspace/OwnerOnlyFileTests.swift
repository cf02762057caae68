import Foundation
import JSON
import ModelProviders
import StageEngine
import TestSupport
import Testing

/// The modes of a workspace's output folders: every folder and file under them, as lstat sees them.
private func modes(in workspace: Workspace) -> [String: mode_t] {
    var modes: [String: mode_t] = [:]
    func walk(_ relative: String) {
        var status = stat()
        guard lstat(workspace.path(relative), &status) == 0 else { return }
        modes[relative] = status.st_mode
        guard status.st_mode & S_IFMT == S_IFDIR else { return }
        for name in workspace.listFiles(relative) { walk("\(relative)/\(name)") }
    }
    for folder in Workspace.outputFolders { walk(folder) }
    return modes
}

@Suite("Owner-only files")
struct OwnerOnlyFileTests {
    @Test("generations, task runs, jobs, logs and state: folders 0700, files 0600, whatever the umask")
    func everythingCreatedIsOwnerOnly() async throws {
        let daydream = try TemporaryWorkspace(copying: "daydream")
        defer { daydream.remove() }
        let stages = try WorkspaceEngine(workspace: daydream.workspace, environment: [:])
        _ = try await stages.run(StageRunSpec(stage: .draft, genId: "d-creative"))
        _ = try await stages.run(StageRunSpec(stage: .essay, genId: "e-creative-copy"))

        let research = try TemporaryWorkspace(copying: "research-task")
        defer { research.remove() }
        let runner = try WorkspaceEngine(workspace: research.workspace, environment: [:])
        let summary = try TaskDefinition.load("tasks/summary.task.yaml", workspace: research.workspace)
        let result = try await runner.runTask(summary, options: TaskRunOptions(input: ["topic": "Tides"], runId: "r1"))
        #expect(result.ok)
        let jobs = JobManager(runner: runner)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: research.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        #expect(try await jobs.waitUntilFinished(id).state == .done)

        for workspace in [daydream.workspace, research.workspace] {
            let found = modes(in: workspace)
            for (path, mode) in found.sorted(by: { $0.key < $1.key }) {
                let expected: mode_t = mode & S_IFMT == S_IFDIR ? 0o700 : 0o600
                #expect(mode & 0o777 == expected, "\(path) is \(String(mode & 0o777, radix: 8))")
            }
        }
        // What the walk covered: each kind of file StageRunner writes.
        let daydreamFiles = Set(modes(in: daydream.workspace).keys)
        let researchFiles = Set(modes(in: research.workspace).keys)
        for path in [
            "data/gens/draft/d-creative/raw.txt", "data/gens/essay/e-creative-copy/metadata.json",
            ".stagerunner/calls.sqlite", ".stagerunner/calls.sqlite-wal", ".stagerunner/cache.sqlite",
        ] {
            #expect(daydreamFiles.contains(path), "\(path) was not written")
        }
        for path in [
            "data/tasks/research-summary/r1/summary.json", "data/tasks/research-summary/r1/logs/stage-ingestion.log",
            "jobs/\(id)/tasks-status.json", "jobs/\(id)/input.json", "jobs/\(id)/tasks/review/review.md",
            "jobs/\(id)/tasks/summary/output.json", ".stagerunner/runs",
        ] {
            #expect(researchFiles.contains(path), "\(path) was not written")
        }
    }

    @Test("a folder that already exists keeps its mode")
    func existingFoldersKeepTheirModes() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        try FileManager.default.createDirectory(
            atPath: temporary.workspace.path("data/gens/draft"),
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o750]
        )
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        _ = try await runner.run(StageRunSpec(stage: .draft, genId: "d-creative"))
        let found = modes(in: temporary.workspace)
        #expect(found["data/gens/draft"].map { $0 & 0o777 } == 0o750)
        #expect(found["data/gens/draft/d-creative"].map { $0 & 0o777 } == 0o700)
    }
}
