import Foundation
import Jinja
import ModelProviders
import StageEngine
import Testing

@Suite("Stage runner")
struct StageRunnerTests {
    @Test("the daydream cohort: drafts, copy and llm essays, evaluations with both score parsers")
    func daydreamCohort() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let (catalog, diagnostics) = await runner.validate()
        #expect(diagnostics.isEmpty)
        var results: [String: StageResult] = [:]
        for row in catalog.membership.ordered {
            results[row.genId] = try await runner.run(StageRunSpec(stage: row.stage, genId: row.genId))
        }
        // The creative draft: scripted answer, essay_idea_last picks the highest stage.
        let draft = try #require(results["d-creative"])
        #expect(draft.status == .success)
        #expect(draft.parsed?.hasPrefix("A background \"daydreaming loop\"") == true)
        #expect(draft.metadata.provider == "embedded")
        #expect(draft.metadata.model == "sonnet-4")
        #expect(draft.prompt?.contains("1. Default mode network: the brain's activity at rest") == true)
        #expect(
            draft.files
                == ["prompt.txt", "raw.txt", "parsed.txt", "metadata.json"].map { "data/gens/draft/d-creative/" + $0 }
        )
        // The analytic draft has no parser: identity, and a derived (deterministic) answer.
        #expect(results["d-analytic"]?.parsed == results["d-analytic"]?.raw)
        #expect(results["d-analytic"]?.prompt?.contains("- DEFAULT MODE NETWORK;") == true)
        // A copy essay passes the draft's parsed text through, with no prompt and no model.
        let copy = try #require(results["e-creative-copy"])
        #expect(copy.parsed == draft.parsed)
        #expect(copy.prompt == nil)
        #expect(copy.metadata.mode == .copy)
        #expect(copy.metadata.model == nil)
        #expect(
            copy.files == [
                "data/gens/essay/e-creative-copy/parsed.txt", "data/gens/essay/e-creative-copy/metadata.json",
            ]
        )
        // The llm essay saw the draft under `draft`.
        #expect(results["e-creative-llm"]?.prompt?.contains(draft.parsed!) == true)
        // Evaluations see the essay under `response`; in_last_line and complex scores.
        #expect(results["v-creative-llm-novelty"]?.score == 8.5)
        #expect(results["v-creative-llm-novelty"]?.parsed == "8.5")
        #expect(results["v-creative-llm-rigor"]?.score == 7.0)
        #expect(results["v-creative-llm-rigor"]?.metadata.parser == "complex")
        #expect(results["v-creative-llm-novelty"]?.metadata.parentGenId == "e-creative-llm")
        // Every call is in the log: 2 drafts + 2 llm essays + 5 evaluations.
        let calls = try await runner.callLog.recent(limit: 100)
        #expect(calls.count == 9)
        #expect(Set(calls.map(\.status)) == ["success"])
        let summary = try await runner.callLog.summary()
        #expect(summary.map(\.model) == ["gpt-5-mini", "sonnet-4"])
        #expect(summary.map(\.calls) == [5, 4])
    }

    @Test("a missing parent from the membership is generated first, once, even when asked for concurrently")
    func missingParentsAreGenerated() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        try await withThrowingTaskGroup(of: StageResult.self) { group in
            for genId in ["v-creative-llm-novelty", "v-creative-llm-rigor", "e-creative-llm", "d-creative"] {
                let stage: GenerationStage =
                    genId.hasPrefix("v-") ? .evaluation : genId.hasPrefix("e-") ? .essay : .draft
                group.addTask { try await runner.run(StageRunSpec(stage: stage, genId: genId)) }
            }
            for try await result in group { #expect(result.status == .success) }
        }
        // One call each for the draft, the essay and the two evaluations.
        #expect(
            try await runner.callLog.recent().map(\.genId).sorted() == [
                "d-creative", "e-creative-llm", "v-creative-llm-novelty", "v-creative-llm-rigor",
            ]
        )
    }

    @Test("an existing generation is reused unless force is set")
    func reuseAndForce() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let first = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        #expect(!first.reused)
        let second = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        #expect(second.reused)
        #expect(second.raw == first.raw)
        #expect(second.metadata == first.metadata)
        var forced = StageRunSpec(stage: .draft, genId: "d-analytic")
        forced.force = true
        let third = try await runner.run(forced)
        #expect(!third.reused)
        #expect(third.metadata.runId != first.metadata.runId)
        #expect(try await runner.callLog.recent().count == 2)
    }

    @Test("a call whose generation cannot be committed is in the call log, with the storage failure")
    func commitFailureIsLogged() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        // A file where the generation's folder must go: the folder cannot be moved into place.
        let obstacle = temporary.workspace.path("data/gens/draft/d-analytic")
        try FileManager.default.createDirectory(
            atPath: (obstacle as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try "in the way".write(toFile: obstacle, atomically: false, encoding: .utf8)
        var failure: StageError?
        do {
            _ = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        } catch {
            failure = error
        }
        let error = try #require(failure, "a generation was committed over a file")
        #expect(error.kind == .storage)
        #expect(error.message.hasPrefix("cannot store d-analytic: data/gens/draft/d-analytic: cannot move into place"))
        // The call was made: its row keeps its tokens and says why its answer is not stored.
        let failed = try #require(try await runner.callLog.recent().first)
        #expect(failed.genId == "d-analytic")
        #expect(failed.status == "storage_error")
        #expect(failed.error == error.message)
        #expect((failed.promptTokens ?? 0) > 0 && (failed.completionTokens ?? 0) > 0)
        #expect(try await runner.callLog.summary().map(\.status) == ["storage_error"])

        try FileManager.default.removeItem(atPath: obstacle)
        let result = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        #expect(result.status == .success && !result.reused)
        #expect(try await runner.callLog.recent().map(\.status) == ["success", "storage_error"])
    }

    @Test("requests outside the membership: explicit template, model, values and a deterministic gen id")
    func adHoc() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        var spec = StageRunSpec(
            stage: .draft,
            templateId: "systematic-analytical",
            values: ["concepts": [["name": "Sleep"]]]
        )
        spec.model = "m1"
        let result = try await runner.run(spec)
        #expect(result.genId.count == 16)
        // The same request finds the same generation; other values make another one.
        #expect(try await runner.run(spec).reused)
        var other = spec
        other.values = ["concepts": [["name": "Dreams"]]]
        let different = try await runner.run(other)
        #expect(different.genId != result.genId)
        #expect(!different.reused)
        #expect(result.prompt?.contains("these 1 concepts") == true)
        let rendered = try await runner.renderPrompt(spec)
        #expect(rendered.prompt == result.prompt)
    }

    @Test(
        "requests that cannot run say what to fix",
        arguments: [
            (StageRunSpec(stage: .draft), "templateId", "templateId is required unless genId is in the membership"),
            (
                StageRunSpec(stage: .essay, genId: "d-creative"), "stage",
                "gen id 'd-creative' is a draft in the membership, not an essay"
            ),
            (StageRunSpec(stage: .draft, genId: "../x"), "genId", "genId '../x' must not start with '.'"),
            (
                StageRunSpec(stage: .draft, genId: "d-creative", templateId: "systematic-analytical"), "templateId",
                "the membership gives d-creative template 'creative-synthesis', not 'systematic-analytical'"
            ),
            (
                StageRunSpec(stage: .draft, templateId: "nope"), "templateId",
                "no draft template 'nope' in data/1_raw/draft_templates.csv (known: creative-synthesis, systematic-analytical)"
            ),
            (
                StageRunSpec(stage: .draft, templateId: "creative-synthesis"), "model",
                "model is required to generate a draft"
            ),
            (
                {
                    var spec = StageRunSpec(stage: .evaluation, templateId: "novelty")
                    spec.model = "m"
                    spec.passThroughFrom = "essay-outside-membership"
                    return spec
                }(), "passThroughFrom",
                "parent essay 'essay-outside-membership' has not been generated yet; run it first"
            ),
        ]
    )
    func refusals(spec: StageRunSpec, field: String, message: String) async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        do {
            _ = try await runner.run(spec)
            Issue.record("ran \(spec)")
        } catch {
            #expect(error.field == field)
            #expect(error.message == message)
        }
    }

    @Test("an edited template is read again: new prompt, new prompt version")
    func editedTemplate() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        var spec = StageRunSpec(stage: .draft, templateId: "systematic-analytical", values: ["concepts": []])
        spec.model = "m"
        let first = try await runner.run(spec)
        try "Version two: {{ concepts | length }} concepts."
            .write(
                toFile: temporary.workspace.path("data/1_raw/templates/draft/systematic-analytical.txt"),
                atomically: true,
                encoding: .utf8
            )
        spec.force = true
        let second = try await runner.run(spec)
        #expect(second.prompt == "Version two: 0 concepts.")
        #expect(second.metadata.templateSha256 != first.metadata.templateSha256)
        #expect(second.metadata.templateSha256?.count == 64)
    }

    @Test("an undefined template variable names the variable, the template and the line")
    func strictUndefined() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        var spec = StageRunSpec(stage: .draft, templateId: "creative-synthesis")
        spec.model = "m"
        do {
            _ = try await runner.renderPrompt(spec)
            Issue.record("rendered without concepts")
        } catch {
            #expect(error.kind == .template)
            #expect(error.file == "data/1_raw/templates/draft/creative-synthesis.txt")
            #expect(error.line == 4)
            #expect(error.message.contains("'concepts'"))
        }
    }

    @Test("parse failures: recorded with the reason, or a stub when asked; truncation is flagged")
    func failuresAndStubs() async throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                values:
                  concepts: []
                embedded:
                  rules:
                    - stage: evaluation
                      response: "No score here at all."
                    - stage: essay
                      response: "<essay>short</essay>"
                    - stage: draft
                      response: "<essay-idea stage='1'>an idea</essay-idea>"
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        _ = try await runner.run(StageRunSpec(stage: .draft, genId: "d-creative"))
        _ = try await runner.run(StageRunSpec(stage: .essay, genId: "e-creative-llm"))
        let failed = try await runner.run(StageRunSpec(stage: .evaluation, genId: "v-creative-llm-novelty"))
        #expect(failed.status == .parserFailure)
        #expect(failed.parsed == nil)
        #expect(failed.llmError != nil)
        #expect(failed.files.contains("data/gens/evaluation/v-creative-llm-novelty/parsed.txt") == false)
        var stubbed = StageRunSpec(stage: .evaluation, genId: "v-creative-llm-rigor")
        stubbed.stubFallback = true
        let stub = try await runner.run(stubbed)
        #expect(stub.status == .stubFallback)
        #expect(stub.parsed == "No score here at all.")
        var short = StageRunSpec(stage: .essay, genId: "e-analytic-llm")
        short.maxTokens = 2
        _ = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        let truncated = try await runner.run(short)
        #expect(truncated.metadata.truncated)
        #expect(truncated.status == .truncated)
        #expect(truncated.metadata.finishReason == "length")
        var strict = short
        strict.force = true
        strict.failOnTruncation = true
        do {
            _ = try await runner.run(strict)
            Issue.record("a truncated answer passed failOnTruncation")
        } catch {
            #expect(error.kind == .truncated)
        }
        let statuses = try await runner.callLog.recent().map(\.status)
        #expect(statuses.contains("parser_failure"))
        #expect(statuses.contains("stub_fallback"))
        #expect(statuses.contains("truncated"))
    }
}
