import Foundation
import Testing

@testable import StageEngine

@Suite("Run records")
struct RunRecordsTests {
    /// The runs of one process share one record, which lists each run's folder while it lasts
    /// and goes with the last of them.
    @Test func concurrentRunsShareOneRecord() throws {
        let temporary = try TemporaryWorkspace(files: [:])
        defer { temporary.remove() }
        let workspace = temporary.workspace
        func record() throws -> (name: String, folders: [String]) {
            let names = workspace.listFiles(RunRecords.folder)
            try #require(names.count == 1, "records: \(names)")
            let text = try #require(workspace.readText("\(RunRecords.folder)/\(names[0])"))
            #expect(text.hasPrefix(ProcessIdentity.currentRecord))
            return (names[0], RunRecords.runs(inRecord: text))
        }
        let first = try #require(RunRecords.record("data/tasks/t/b", in: workspace))
        let second = try #require(RunRecords.record("data/tasks/t/a", in: workspace))
        let again = try #require(RunRecords.record("data/tasks/t/a", in: workspace))
        let before = try record()
        #expect(before.folders == ["data/tasks/t/b", "data/tasks/t/a"])
        #expect(before.name.hasPrefix("\(getpid())-"))
        RunRecords.remove(first)
        #expect(try record() == (before.name, ["data/tasks/t/a"]))
        RunRecords.remove(again)
        #expect(try record() == (before.name, ["data/tasks/t/a"]))
        RunRecords.remove(second)
        #expect(workspace.listFiles(RunRecords.folder) == [])
    }

    /// A record read after a crash: the runs started and not ended, in the order they started;
    /// a line cut short by the crash names nothing; a record from before appending names its run.
    @Test func runsOfARecord() {
        let identity = "{\"host\": \"h\", \"pid\": 1}\n"
        #expect(RunRecords.runs(inRecord: identity + "+a\n+b\n-a\n+c\n+b\n-b\n+d") == ["b", "c"])
        #expect(RunRecords.runs(inRecord: identity + "data/tasks/t/r1\n") == ["data/tasks/t/r1"])
        #expect(RunRecords.runs(inRecord: identity) == [])
    }

    /// A record past its compaction length is written anew with only the runs under way.
    @Test func aLongRecordIsCompacted() throws {
        let temporary = try TemporaryWorkspace(files: [:])
        defer { temporary.remove() }
        let workspace = temporary.workspace
        let kept = try #require(RunRecords.record("data/tasks/t/kept", in: workspace))
        defer { RunRecords.remove(kept) }
        let folder = "data/tasks/t/" + String(repeating: "x", count: 200)
        for _ in 0..<(RunRecords.compactionLength / 400 + 2) {
            RunRecords.remove(try #require(RunRecords.record(folder, in: workspace)))
        }
        let name = try #require(workspace.listFiles(RunRecords.folder).first)
        let text = try #require(workspace.readText("\(RunRecords.folder)/\(name)"))
        #expect(text.utf8.count < RunRecords.compactionLength)
        #expect(RunRecords.runs(inRecord: text) == ["data/tasks/t/kept"])
    }
}
