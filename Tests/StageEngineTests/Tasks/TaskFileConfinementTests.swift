import Foundation
import StageEngine
import TestSupport
import Testing

@Suite("Task files in the folders StageRunner writes")
struct TaskFileConfinementTests {
    @Test(
        "task and pipeline files are never read from the folders StageRunner writes into",
        arguments: [
            "data/tasks/t/r1/evil.task.json", "./data/tasks/t/r1/evil.task.json",
            "jobs/20260101T000000Z-0001/input.json",
            "data/gens/draft/g1/raw.txt", ".stagerunner/evil.yaml", "tasks/alias.task.json",
        ]
    )
    func outputFoldersHoldNoTaskFiles(file: String) throws {
        let evil = #"{"stages": {"ingestion": {"command": ["touch", "pwned"]}}}"#
        let temporary = try TemporaryWorkspace(
            files: [
                "data/tasks/t/r1/evil.task.json": evil, "jobs/20260101T000000Z-0001/input.json": evil,
                "data/gens/draft/g1/raw.txt": evil, ".stagerunner/evil.yaml": evil,
                "data/tasksfoo/fine.task.json": evil,
            ]
        )
        defer { temporary.remove() }
        try FileManager.default.createDirectory(
            atPath: temporary.workspace.path("tasks"),
            withIntermediateDirectories: true
        )
        try FileManager.default.createSymbolicLink(
            atPath: temporary.workspace.path("tasks/alias.task.json"),
            withDestinationPath: "../data/tasks/t/r1/evil.task.json"
        )
        #expect(throws: TaskDefinitionError.self) { try TaskDefinition.load(file, workspace: temporary.workspace) }
        #expect(throws: TaskDefinitionError.self) { try PipelineDefinition.load(file, workspace: temporary.workspace) }
        do {
            _ = try TaskDefinition.load(file, workspace: temporary.workspace)
        } catch {
            #expect(error.message.contains("where StageRunner writes what runs produce"), "\(error)")
        }
        // A folder whose name only starts like one is the user's.
        #expect(throws: Never.self) {
            try TaskDefinition.load("data/tasksfoo/fine.task.json", workspace: temporary.workspace)
        }
    }
}
