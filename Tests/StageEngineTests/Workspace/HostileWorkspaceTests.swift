import Foundation
import ModelProviders
import StageEngine
import TestSupport
import Testing

@Suite("Hostile workspace files")
struct HostileWorkspaceTests {
    static let files = [
        "data/1_raw/draft_templates.csv", "data/1_raw/essay_templates.csv", "data/1_raw/evaluation_templates.csv",
        "data/cohorts/demo/membership.csv", "stagerunner.yaml",
    ]

    @Test("random bytes and mangled copies of real files never crash, and always say something")
    func neverCrashes() async throws {
        var random = SeededGenerator(seed: 7)
        let pieces: [String] = [
            "\"", ",", "\n", "\r\n", "\u{0}", "é", "😀", "true", "llm", "copy", ": ", "- ", "{{", "[", "\t",
        ]
        for round in 0..<40 {
            let temporary = try TemporaryWorkspace(copying: "daydream")
            defer { temporary.remove() }
            let target = Self.files[round % Self.files.count]
            var bytes = Array((temporary.read(target) ?? "").utf8)
            if round % 3 == 0 {
                bytes = (0..<Int.random(in: 1...400, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            } else {
                for _ in 0..<Int.random(in: 1...20, using: &random) where !bytes.isEmpty {
                    let position = Int.random(in: 0..<bytes.count, using: &random)
                    let piece = Array(pieces.randomElement(using: &random)!.utf8)
                    if Bool.random(using: &random) {
                        bytes.insert(contentsOf: piece, at: position)
                    } else {
                        bytes.removeSubrange(
                            position..<min(bytes.count, position + Int.random(in: 1...8, using: &random))
                        )
                    }
                }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: temporary.workspace.path(target)))
            let runner = try WorkspaceEngine(workspace: temporary.workspace)
            let (_, diagnostics) = await runner.validate()
            // Random bytes can never be a valid catalog, membership or configuration; a mangled
            // copy may still be valid, so only the first kind must be reported.
            if round % 3 == 0 {
                #expect(!diagnostics.isEmpty, "round \(round): random bytes in \(target) went unreported")
            }
            // Every stage run either works or fails with a typed error; none crashes.
            for genId in ["d-creative", "e-creative-copy", "v-creative-llm-novelty"] {
                let stage: GenerationStage =
                    genId.hasPrefix("d-") ? .draft : genId.hasPrefix("e-") ? .essay : .evaluation
                _ = try? await runner.run(StageRunSpec(stage: stage, genId: genId))
            }
        }
    }

    @Test("a YAML syntax error in stagerunner.yaml is reported with its line and column")
    func configurationSyntaxError() async throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: ["stagerunner.yaml": "values:\n  - x\n bad: [\n"]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let (_, diagnostics) = await runner.validate()
        let problem = try #require(diagnostics.first { $0.file == "stagerunner.yaml" })
        #expect(problem.code == "config.yaml-syntax")
        #expect(problem.message == "invalid YAML: while parsing a block mapping: did not find expected key")
        #expect(problem.line == 3)
        #expect(problem.column == 2)
    }

    @Test("a template that does not compile is a diagnostic with its line and column")
    func templateSyntaxError() async throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: ["data/1_raw/templates/draft/creative-synthesis.txt": "Hello\n{{ unclosed\n"]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let (_, diagnostics) = await runner.validate()
        #expect(
            diagnostics.filter { $0.code == "template.syntax" }.map(\.description) == [
                "data/1_raw/templates/draft/creative-synthesis.txt:2:12: error: unexpected end of template, expected '}}' [template.syntax]"
            ]
        )
    }

    @Test("a template file removed between two validations is no longer reported")
    func removedTemplateFile() async throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: ["data/1_raw/templates/draft/stray.txt": "x"]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        #expect(await runner.validate().diagnostics.contains { $0.file == "data/1_raw/templates/draft/stray.txt" })
        try FileManager.default.removeItem(atPath: temporary.workspace.path("data/1_raw/templates/draft/stray.txt"))
        #expect(await !runner.validate().diagnostics.contains { $0.file == "data/1_raw/templates/draft/stray.txt" })
    }

    @Test("the call log and the cache live in a folder only the owner can open")
    func privateStateFolder() throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        _ = try WorkspaceEngine(workspace: temporary.workspace)
        let attributes = try FileManager.default.attributesOfItem(atPath: temporary.workspace.path(".stagerunner"))
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
    }
}
