import Foundation
import Jinja
import ModelProviders
import StageEngine
import Testing

@Suite("Gens store")
struct GensStoreTests {
    func metadata(_ genId: String, status: GenerationStatus = .success) -> GenerationMetadata {
        GenerationMetadata(
            stage: .draft,
            genId: genId,
            templateId: "t",
            mode: .llm,
            model: "m",
            provider: "embedded",
            runId: "run",
            createdAt: "2026-11-21T00:00:00Z",
            durationMs: 1.5,
            finishReason: "stop",
            truncated: false,
            usage: .init(promptTokens: 3, completionTokens: 4),
            costUsd: 0,
            status: status,
            files: ["prompt.txt", "raw.txt", "metadata.json"]
        )
    }

    @Test func commitsAndReadsBack() async throws {
        let temporary = try TemporaryWorkspace()
        defer { temporary.remove() }
        let store = GensStore(workspace: temporary.workspace)
        #expect(!store.exists(.draft, "g1"))
        let generation = GensStore.Generation(prompt: "p", raw: "r", parsed: nil, metadata: metadata("g1"))
        try await store.commit(generation)
        #expect(store.exists(.draft, "g1"))
        #expect(try store.read(.draft, "g1") == generation)
        let written = temporary.read("data/gens/draft/g1/metadata.json") ?? ""
        #expect(written.contains(#""gen_id" : "g1""#))
        #expect(written.contains(#""usage" : {"#))
        #expect(written.contains(#""total_tokens" : 7"#))
    }

    @Test("replacing swaps the whole generation; no temporary is left behind")
    func replaces() async throws {
        let temporary = try TemporaryWorkspace()
        defer { temporary.remove() }
        let store = GensStore(workspace: temporary.workspace)
        try await store.commit(.init(prompt: "old prompt", raw: "old", parsed: "old parsed", metadata: metadata("g1")))
        try await store.commit(
            .init(prompt: "new prompt", raw: "new", parsed: nil, metadata: metadata("g1", status: .parserFailure))
        )
        let read = try store.read(.draft, "g1")
        #expect(read?.raw == "new")
        #expect(read?.parsed == nil, "files of the old generation must not survive")
        #expect(read?.metadata.status == .parserFailure)
        #expect(temporary.workspace.listFiles("data/gens/draft") == ["g1"])
    }

    @Test("concurrent commits of many generations all land whole")
    func concurrentCommits() async throws {
        let temporary = try TemporaryWorkspace()
        defer { temporary.remove() }
        let store = GensStore(workspace: temporary.workspace)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    try await store.commit(
                        .init(
                            prompt: "p\(index)",
                            raw: "r\(index)",
                            parsed: nil,
                            metadata: self.metadata("g\(index % 10)")
                        )
                    )
                }
            }
            try await group.waitForAll()
        }
        for index in 0..<10 {
            let read = try store.read(.draft, "g\(index)")
            #expect(read?.prompt?.dropFirst() == read?.raw?.dropFirst(), "prompt and raw come from the same commit")
        }
        #expect(temporary.workspace.listFiles("data/gens/draft").sorted() == (0..<10).map { "g\($0)" }.sorted())
    }

    @Test("temporaries of dead writers are removed; a live writer's are kept")
    func abandonedTemporaries() throws {
        let temporary = try TemporaryWorkspace(
            files: [
                "data/gens/draft/.tmp-g1-999999999-12/raw.txt": "half written, named as earlier versions did",
                "data/gens/draft/.g-4.tmp-999999999-13/raw.txt": "half written",
                "data/gens/essay/.g2.tmp-\(getpid())-7/raw.txt": "being written by this process",
                "data/gens/essay/g3/metadata.json": "{}",
            ]
        )
        defer { temporary.remove() }
        let store = GensStore(workspace: temporary.workspace)
        #expect(
            store.removeAbandonedTemporaries() == [
                "data/gens/draft/.g-4.tmp-999999999-13", "data/gens/draft/.tmp-g1-999999999-12",
            ]
        )
        #expect(temporary.workspace.listFiles("data/gens/draft") == [])
        #expect(temporary.workspace.listFiles("data/gens/essay").sorted() == [".g2.tmp-\(getpid())-7", "g3"])
    }

    @Test("a temporary written from another host or PID namespace stays until it is older than the lease")
    func foreignTemporaries() throws {
        // `0badf00d` is no space of this machine: its pids say nothing here, only its age does.
        let young = ".g5.tmp-0badf00d-\(getpid())-1"
        let old = ".g6.tmp-0badf00d-999999999-2"
        let temporary = try TemporaryWorkspace(
            files: [
                "data/gens/draft/\(young)/raw.txt": "under way elsewhere", "data/gens/draft/\(old)/raw.txt": "left",
            ]
        )
        defer { temporary.remove() }
        let twoHoursAgo = Date().addingTimeInterval(-7200)
        try FileManager.default.setAttributes(
            [.modificationDate: twoHoursAgo],
            ofItemAtPath: temporary.workspace.path("data/gens/draft/\(old)")
        )
        let store = GensStore(workspace: temporary.workspace)
        #expect(store.removeAbandonedTemporaries() == ["data/gens/draft/\(old)"])
        #expect(temporary.workspace.listFiles("data/gens/draft") == [young])
    }

    @Test func unreadableMetadataIsAnError() throws {
        let temporary = try TemporaryWorkspace(files: ["data/gens/draft/g1/metadata.json": "{broken"])
        defer { temporary.remove() }
        #expect(throws: GensStore.Failure.self) { try GensStore(workspace: temporary.workspace).read(.draft, "g1") }
    }
}

@Suite("Generation ids")
struct GenerationIDTests {
    @Test func deterministicBase36() {
        let id = GenerationID.make(stage: .draft, templateId: "creative-synthesis", model: "m", parentGenId: nil)
        #expect(id.count == 16)
        #expect(id.allSatisfy { $0.isLowercase || $0.isNumber })
        #expect(id == GenerationID.make(stage: .draft, templateId: "creative-synthesis", model: "m", parentGenId: nil))
        #expect(id != GenerationID.make(stage: .draft, templateId: "creative-synthesis", model: "n", parentGenId: nil))
        #expect(
            id
                != GenerationID.make(
                    stage: .draft,
                    templateId: "creative-synthesis",
                    model: "m",
                    parentGenId: nil,
                    salt: "2"
                )
        )
    }

    @Test("ids never change between versions: a re-run must find the generations it made before")
    func stableAcrossVersions() {
        // SHA-256 of "draft|creative-synthesis|m||<salt>", as every earlier version computed it.
        #expect(
            GenerationID.make(stage: .draft, templateId: "creative-synthesis", model: "m", parentGenId: nil)
                == "svgc0qcpe3xgwar5"
        )
        let parts = ["{}", "Write.", "", "100", "llm"]
        #expect(
            GenerationID.make(
                stage: .draft,
                templateId: "creative-synthesis",
                model: "m",
                parentGenId: nil,
                saltParts: parts
            )
                == "dv693jnogmfkafdz"
        )
        #expect(
            GenerationID.make(
                stage: .draft,
                templateId: "creative-synthesis",
                model: "m",
                parentGenId: nil,
                salt: parts.joined(separator: "\u{1F}")
            ) == "dv693jnogmfkafdz"
        )
    }
}

@Suite("Workspace confinement")
struct ConfinementTests {
    @Test("a symlink that leads out of the workspace is refused, for writes and for templates")
    func symlinksOut() async throws {
        let outside = try TemporaryWorkspace()
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer {
            temporary.remove()
            outside.remove()
        }
        try FileManager.default.createDirectory(
            atPath: temporary.workspace.path("data/gens"),
            withIntermediateDirectories: true
        )
        try FileManager.default.createSymbolicLink(
            atPath: temporary.workspace.path("data/gens/draft"),
            withDestinationPath: outside.workspace.root
        )
        #expect(!temporary.workspace.contains("data/gens/draft/g1"))
        #expect(temporary.workspace.contains("data/gens/essay/g1"))
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        do {
            _ = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
            Issue.record("wrote through a symlink out of the workspace")
        } catch {
            #expect(
                error.message
                    == "cannot store d-analytic: data/gens/draft/d-analytic: leads outside the workspace through a symbolic link"
            )
        }
        #expect(outside.workspace.listFiles(".").isEmpty)

        try FileManager.default.removeItem(
            atPath: temporary.workspace.path("data/1_raw/templates/essay/synthesis-plain.txt")
        )
        try "{{ secret }}".write(toFile: outside.workspace.path("secret.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(
            atPath: temporary.workspace.path("data/1_raw/templates/essay/synthesis-plain.txt"),
            withDestinationPath: outside.workspace.path("secret.txt")
        )
        var spec = StageRunSpec(stage: .essay, templateId: "synthesis-plain", values: ["draft": "x"])
        spec.model = "m"
        do {
            _ = try await runner.renderPrompt(spec)
            Issue.record("read a template through a symlink out of the workspace")
        } catch {
            #expect(error.kind == .workspace)
        }
    }
}
