import Foundation
import ModelProviders
import StageEngine
import TestSupport
import Testing

@Suite("Cost: the price table and the cost of every call")
struct CostTests {
    @Test("the compiled-in table is prices.json")
    func builtInIsTheDataFile() throws {
        let data = try Data(
            contentsOf: URL(fileURLWithPath: repositoryRoot + "/Sources/ModelProviders/prices.json")
        )
        let file = try JSONDecoder().decode(PriceFile.self, from: data)
        #expect(file.models == PriceTable.builtIn.prices, "run scripts/generate_prices.py")
        #expect(file.models.count >= 20)
    }

    struct PriceFile: Decodable {
        var models: [String: ModelPrice]
    }

    @Test("lookups: exact, dated snapshots, provider-qualified overrides, vendor prefixes; unknown is nil")
    func lookups() {
        let table = PriceTable.builtIn.overridden(by: [
            "local:my-model": ModelPrice(input: 1, output: 2),
            "gpt-4o": ModelPrice(input: 3, output: 4),
        ])
        #expect(table.price(provider: "openai", model: "gpt-4o-mini") == ModelPrice(input: 0.15, output: 0.6))
        #expect(table.price(provider: "openai", model: "gpt-4o-mini-2024-07-18")?.input == 0.15)
        #expect(table.price(provider: "openai", model: "gpt-4o")?.input == 3, "the configuration wins")
        #expect(table.price(provider: "anthropic", model: "claude-sonnet-4-5-20250929")?.output == 15)
        #expect(table.price(provider: "anthropic", model: "claude-3-5-haiku-latest")?.input == 0.8)
        #expect(table.price(provider: "openrouter", model: "openai/gpt-4.1-mini")?.input == 0.4)
        #expect(table.price(provider: "local", model: "my-model")?.output == 2)
        #expect(
            table.price(provider: "other", model: "my-model") == nil,
            "a provider-qualified price is that provider's"
        )
        #expect(table.price(provider: "openai", model: "gpt-4o-audio-preview") == nil, "a variant is not a snapshot")
        #expect(table.price(provider: "ollama", model: "llama3.1") == nil)
        #expect(table.price(provider: "embedded", model: "anything") == ModelPrice(input: 0, output: 0))
        // A workspace's own provider (a proxy, say) is not charged a built-in price; a configured one applies.
        #expect(table.price(provider: "proxy", model: "gpt-4o-mini") == nil)
        #expect(table.price(provider: "proxy", model: "gpt-4o")?.input == 3)
        let usage = TokenUsage(promptTokens: 1_000_000, completionTokens: 500_000)
        #expect(table.cost(provider: "local", model: "my-model", usage: usage) == 2.0)
        #expect(table.cost(provider: "ollama", model: "llama3.1", usage: usage) == nil)
    }

    @Test("a priced call has its cost in the result, metadata.json and the call log; an unknown model's is null")
    func costOfCalls() async throws {
        let server = try MockModelServer()
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                values:
                  concepts: []
                providers:
                  mock: {kind: openai, baseURL: "\(server.url("/v1"))", apiKeyEnv: MOCK_KEY}
                prices:
                  mock:echo: {input: 2, output: 10}
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: ["MOCK_KEY": MockModelServer.key])
        var priced = StageRunSpec(stage: .draft, templateId: "systematic-analytical")
        priced.model = "mock:echo"
        let result = try await runner.run(priced)
        let usage = try #require(result.metadata.usage)
        let expected = (Double(usage.promptTokens) * 2 + Double(usage.completionTokens) * 10) / 1_000_000
        #expect(result.metadata.costUsd == expected)
        #expect(expected > 0)
        var unknown = priced
        unknown.model = "mock:no-price-model"
        let unpriced = try await runner.run(unknown)
        #expect(unpriced.metadata.costUsd == nil)
        let file = try #require(temporary.read("data/gens/draft/\(unpriced.genId)/metadata.json"))
        #expect(file.contains(#""cost_usd" : null"#))
        let embedded = try await runner.run(StageRunSpec(stage: .draft, genId: "d-analytic"))
        #expect(embedded.metadata.costUsd == 0)
        let calls = try await runner.callLog.recent()
        #expect(calls.map(\.costUsd) == [0, nil, expected])
        let summary = try await runner.callLog.summary()
        #expect(summary.map(\.unpricedCalls).reduce(0, +) == 1)
        #expect(summary.map(\.cost).reduce(0, +) == expected)
    }
}
