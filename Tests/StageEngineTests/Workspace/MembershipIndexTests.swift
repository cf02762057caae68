import Foundation
import TestSupport
import Testing

@testable import StageEngine

/// The membership index (`.stagerunner/index/`): the rows it finds are the rows the full load
/// reads, whatever the CSV looks like; it is saved, reused, and made again when its file changes.
@Suite("Membership index")
struct MembershipIndexTests {
    static let header = "stage,gen_id,cohort_id,parent_gen_id,combo_id,template_id,llm_model_id"
    static let file = "data/membership.csv"
    /// Far enough ahead that every file counts as settled, so the index is saved.
    static let later = FileIdentity.Time(seconds: FileIdentity.now().seconds + 3600, nanoseconds: 0)

    /// Every gen id the full load knows, and a few it does not, looked up through the index.
    static func expectSameRows(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let workspace = try TemporaryWorkspace(files: [file: text])
        defer { workspace.remove() }
        let (full, _) = Membership.load(workspace.workspace, templates: TemplateCatalog())
        let index = try #require(
            MembershipFileIndex.open(file, in: workspace.workspace),
            sourceLocation: sourceLocation
        )
        for (genId, row) in full.rows {
            #expect(
                index.row(genId) == row,
                "gen id \(genId) in \(text.debugDescription)",
                sourceLocation: sourceLocation
            )
        }
        for genId in ["d1", "d2", "e1", "x", "d 1", "zz"] where full.rows[genId] == nil {
            #expect(
                index.row(genId) == nil,
                "gen id \(genId) in \(text.debugDescription)",
                sourceLocation: sourceLocation
            )
        }
    }

    @Test(
        "the index finds the rows the full load reads, and only those",
        arguments: [
            "\(header)\ndraft,d1,c,,k,t1,m\ndraft,d2,c,,k,t2,m\n",
            // A byte-order mark, CRLF line ends, blank lines, no final line end.
            "\u{FEFF}\(header)\r\n\r\ndraft,d1,c,,k,t1,m\r\n\r\ndraft,d2,c,,k,t2,m",
            // Quoted fields: a quoted gen id, a line break and a doubled quote inside fields.
            "\(header)\n\"draft\",\"d1\",\"c\",,\"k\",\"t\"\"1\",\"a\nmodel\"\nessay,e1,c,d1,,t,m\n",
            // The first of two rows with one gen id wins; invalid stages and ids are left out.
            "\(header)\ndraft,d1,c,,k,first,m\ndraft,d1,c,,k,second,m\nsketch,x,c,,k,t,m\ndraft,d 1,c,,k,t,m\n",
            // Rows with too few and too many fields; spaces around optional values.
            "\(header)\ndraft,d1,c\ndraft,d2,c,,k,t,m,extra,more\nessay,e1, c , d1 ,,t, m \n",
            // Columns in another order, and one missing (no rows at all when gen_id is).
            "template_id,gen_id,stage\nt,d1,draft\n",
            "stage,template_id\ndraft,t\n",
            // Broken quoting: the full load's reading of it is the index's.
            "\(header)\ndraft,\"d1\"x,c,,k,t,m\ndraft,d2,c,,k,\"open\n",
            "",
            "\(header)\n",
        ]
    )
    func sameRows(text: String) throws {
        try Self.expectSameRows(text)
    }

    @Test(
        "random CSVs, rows with quoting, line breaks in fields, wrong field counts and stray bytes: the index agrees with the full load"
    )
    func randomShapes() throws {
        var generator = SeededGenerator(seed: 20_261_206)
        var rowsFound = 0
        for _ in 0..<300 {
            var text = Self.header + ["\n", "\r\n"].randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 0..<8, using: &generator) {
                var fields = [
                    ["draft", "essay", "evaluation", "sketch"].randomElement(using: &generator)!,
                    ["d1", "d2", "e1", "x", "d 1", "zz"].randomElement(using: &generator)!,
                    "c", ["", "d1", " d2 "].randomElement(using: &generator)!, "k", "t", "m",
                ]
                fields = Array(fields.prefix(Int.random(in: 3...7, using: &generator)))
                if Bool.random(using: &generator) { fields.append("extra") }
                fields = fields.map { field in
                    switch Int.random(in: 0..<10, using: &generator) {
                    case 0: return "\"" + field + "\""
                    case 1: return "\"" + field + "\"\"\n\""
                    case 2: return field + ["\"", "\r", " ", "\"x\""].randomElement(using: &generator)!
                    default: return field
                    }
                }
                text +=
                    fields.joined(separator: ",") + ["\n", "\r\n", "\n\n", "\r\n\r\n"].randomElement(using: &generator)!
            }
            if Bool.random(using: &generator) { text = String(text.dropLast()) }
            let workspace = try TemporaryWorkspace(files: [Self.file: text])
            defer { workspace.remove() }
            rowsFound += Membership.load(workspace.workspace, templates: TemplateCatalog()).0.rows.count
            try Self.expectSameRows(text)
        }
        // The cases are worth something only if many rows are valid.
        #expect(rowsFound > 300)
    }

    @Test("a settled file's index is saved, reused by the next open, and made again when the file changes")
    func savedAndReused() throws {
        let text = "\(Self.header)\ndraft,d1,c,,k,t1,m\ndraft,d2,c,,k,t2,m\n"
        let workspace = try TemporaryWorkspace(files: [Self.file: text])
        defer { workspace.remove() }
        let saved = workspace.workspace.path(".stagerunner/index/data%2Fmembership.csv.index")
        // Changed a second ago: indexed in memory only, since a second change in the same tick would not
        // show. (The time is given, so that a slow machine cannot make the file look settled.)
        let changed = try #require(FileIdentity(path: workspace.workspace.path(Self.file))).changed
        let aSecondLater = FileIdentity.Time(seconds: changed.seconds + 1, nanoseconds: changed.nanoseconds)
        let fresh = try #require(MembershipFileIndex.open(Self.file, in: workspace.workspace, now: aSecondLater))
        #expect(fresh.row("d2")?.templateId == "t2")
        #expect(!FileManager.default.fileExists(atPath: saved))
        let first = try #require(MembershipFileIndex.open(Self.file, in: workspace.workspace, now: Self.later))
        #expect(first.row("d1")?.line == 2)
        let inode = try #require(Self.inode(saved))
        let second = try #require(MembershipFileIndex.open(Self.file, in: workspace.workspace, now: Self.later))
        #expect(second.row("d2")?.templateId == "t2")
        #expect(Self.inode(saved) == inode, "the saved index is read, not made again")
        // The file changes: its index is made again.
        try (text + "essay,e1,c,d1,,t3,m\n").write(
            toFile: workspace.workspace.path(Self.file),
            atomically: false,
            encoding: .utf8
        )
        let third = try #require(MembershipFileIndex.open(Self.file, in: workspace.workspace, now: Self.later))
        #expect(third.row("e1")?.parentGenId == "d1")
        #expect(Self.inode(saved) != inode)
    }

    @Test("a damaged saved index is not used: the file is scanned again", arguments: [0, 8, 71, 100])
    func damagedIndex(keep: Int) throws {
        let text = "\(Self.header)\ndraft,d1,c,,k,t1,m\n"
        let workspace = try TemporaryWorkspace(files: [Self.file: text])
        defer { workspace.remove() }
        _ = try #require(MembershipFileIndex.open(Self.file, in: workspace.workspace, now: Self.later))
        let saved = workspace.workspace.path(".stagerunner/index/data%2Fmembership.csv.index")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: saved))
        try Data(bytes.prefix(keep)).write(to: URL(fileURLWithPath: saved))
        let index = try #require(MembershipFileIndex.open(Self.file, in: workspace.workspace, now: Self.later))
        #expect(index.row("d1")?.templateId == "t1")
    }

    @Test("a membership file that is not UTF-8 has no index (the full load reports it)")
    func notUTF8() throws {
        let workspace = try TemporaryWorkspace()
        defer { workspace.remove() }
        try FileManager.default.createDirectory(
            atPath: workspace.workspace.path("data"),
            withIntermediateDirectories: true
        )
        try Data(Array("\(Self.header)\ndraft,d1,c,,k,t\u{1},m\n".utf8) + [0xFF]).write(
            to: URL(fileURLWithPath: workspace.workspace.path(Self.file))
        )
        #expect(MembershipFileIndex.open(Self.file, in: workspace.workspace) == nil)
    }

    static func inode(_ path: String) -> UInt64? {
        var status = stat()
        return stat(path, &status) == 0 ? UInt64(status.st_ino) : nil
    }
}
