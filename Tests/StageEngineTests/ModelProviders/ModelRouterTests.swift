import Foundation
import ModelProviders
import StageEngine
import TestSupport
import Testing

@Suite("Model routing")
struct ModelRouterTests {
    let embedded = EmbeddedProvider()

    @Test func plainIdsGoToTheDefaultProviderWhichIsEmbeddedUnlessConfigured() throws {
        #expect(try ModelRouter(embedded: embedded).route("sonnet-4").client.provider == "embedded")
        let configured = ModelRouter(
            embedded: embedded,
            defaultProvider: "ollama",
            environment: [:]
        )
        #expect(try configured.route("llama3.1").client.provider == "ollama")
        // The environment wins over the file.
        let overridden = ModelRouter(
            embedded: embedded,
            defaultProvider: "ollama",
            environment: ["STAGERUNNER_DEFAULT_PROVIDER": "embedded"]
        )
        #expect(try overridden.route("llama3.1").client.provider == "embedded")
    }

    @Test func prefixesAliasesAndKeys() throws {
        let router = ModelRouter(
            embedded: embedded,
            aliases: ["sonnet": "anthropic:claude-sonnet-4-5"],
            environment: ["ANTHROPIC_API_KEY": "secret", "OLLAMA_BASE_URL": "http://gpu-box:11434/v1"]
        )
        let (client, model) = try router.route("sonnet")
        #expect(client.provider == "anthropic")
        #expect(model == "claude-sonnet-4-5")
        let priced = try #require(try router.route("ollama:qwen3").client as? PricedClient)
        let routed = try #require(priced.base as? RetryingClient)
        let limited = try #require(routed.base as? LimitedClient)
        let ollama = try #require(limited.base as? OpenAICompatibleProvider)
        #expect(ollama.endpoint.baseURL == "http://gpu-box:11434/v1")
        #expect(ollama.endpoint.apiKey == nil)
    }

    @Test(
        "what cannot be routed says what to do",
        arguments: [
            ("openai:gpt-5-mini", "provider 'openai' needs an API key: set OPENAI_API_KEY"),
            ("openrouter:x", "provider 'openrouter' needs an API key: set OPENROUTER_API_KEY"),
            (
                "acme:model",
                "provider 'acme' of model 'acme:model' is not configured; available: anthropic, embedded, "
                    + "ollama, openai, openrouter"
            ),
        ]
    )
    func refusals(model: String, message: String) {
        do {
            _ = try ModelRouter(embedded: embedded, environment: [:]).route(model)
            Issue.record("routed \(model)")
        } catch {
            #expect(error.kind == .unavailable)
            #expect(error.message == message)
        }
    }
}

@Suite("Stages on a real HTTP provider", .serialized)
struct ProviderStageTests {
    static let server = try! MockModelServer()

    func workspace() throws -> TemporaryWorkspace {
        try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                values:
                  concepts: [{name: Sleep, description: rest}]
                providers:
                  mock: {kind: openai, baseURL: "\(Self.server.url("/v1"))", apiKeyEnv: MOCK_API_KEY,
                         retries: {attempts: 2, baseDelay: 0.01}}
                  mock-anthropic: {kind: anthropic, baseURL: "\(Self.server.url())", apiKeyEnv: MOCK_API_KEY, streaming: true}
                aliases:
                  sonnet-4: mock-anthropic:echo
                  gpt-5-mini: mock:fault-500
                """
            ]
        )
    }

    @Test("a cohort stage through a configured provider; the key appears in no file")
    func throughAProvider() async throws {
        let temporary = try workspace()
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(
            workspace: temporary.workspace,
            environment: ["MOCK_API_KEY": MockModelServer.key]
        )
        let draft = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        #expect(draft.metadata.provider == "mock-anthropic")
        #expect(draft.metadata.model == "sonnet-4")
        #expect(draft.raw?.hasPrefix("echo: Analyse each pair of these 1 concepts") == true)
        #expect(draft.metadata.usage?.completionTokens ?? 0 > 0)
        // The evaluation's alias points at a failing model: a typed error, and a row in the call log.
        _ = try await runner.run(StageRunSpec(stage: .essay, genId: "e-analytic-llm"))
        do {
            _ = try await runner.run(StageRunSpec(stage: .evaluation, genId: "v-analytic-llm-novelty"))
            Issue.record("a failing provider produced an evaluation")
        } catch {
            #expect(error.kind == .model)
            #expect(
                error.message
                    == "mock could not answer: server: mock failed (HTTP 500): internal server error; retry later (after 1 retry)"
            )
        }
        let calls = try await runner.callLog.recent()
        #expect(calls.map(\.status) == ["error", "success", "success"])
        #expect(calls.first?.provider == "mock")
        // No file of the workspace holds the key.
        let enumerator = FileManager.default.enumerator(atPath: temporary.workspace.root)!
        var scanned = 0
        while let path = enumerator.nextObject() as? String {
            let full = temporary.workspace.path(path)
            guard let data = FileManager.default.contents(atPath: full) else { continue }
            scanned += 1
            #expect(data.range(of: Data(MockModelServer.key.utf8)) == nil, "\(path) contains the API key")
        }
        #expect(scanned > 10)
    }

    @Test("a provider without its key: an error naming the variable, or a stub when asked")
    func missingKey() async throws {
        let temporary = try workspace()
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        do {
            _ = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
            Issue.record("ran without a key")
        } catch {
            #expect(error.message == "provider 'mock-anthropic' needs an API key: set MOCK_API_KEY")
            #expect(error.field == "model")
        }
        var spec = StageRunSpec(stage: .draft, genId: "d-analytic")
        spec.stubFallback = true
        let stub = try await runner.run(spec)
        #expect(stub.status == .stubFallback)
        #expect(stub.metadata.provider == "embedded")
        #expect(
            stub.llmError
                == "provider 'mock-anthropic' needs an API key: set MOCK_API_KEY; the embedded provider's answer stands in"
        )
    }
}
