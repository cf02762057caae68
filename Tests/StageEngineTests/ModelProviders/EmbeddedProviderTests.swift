import ModelProviders
import StageEngine
import Testing

@Suite("Embedded provider")
struct EmbeddedProviderTests {
    @Test func answersDeterministicallyByStage() async throws {
        let provider = EmbeddedProvider()
        let request = CompletionRequest(
            model: "any",
            messages: [.init(role: .user, content: "Evaluate the essay about daydreaming machines")],
            stage: .evaluation
        )
        let first = try await provider.complete(request)
        let second = try await provider.complete(request)
        #expect(first == second)
        #expect(first.provider == "embedded")
        #expect(first.cost == 0)
        #expect(first.finishReason == .stop)
        #expect(first.text.split(separator: "\n").last?.hasPrefix("SCORE: ") == true)
        #expect(first.usage?.promptTokens == 12)  // 45 bytes / 4, rounded up
        let essay = try await provider.complete(.init(model: "any", messages: request.messages, stage: .essay))
        #expect(essay.text.hasPrefix("<essay>"))
    }

    @Test func scriptedRulesMatchInOrderAndMaxTokensTruncates() async throws {
        let provider = EmbeddedProvider(
            configuration: .init(rules: [
                .init(stage: .draft, template: "t1", response: "first"),
                .init(promptContains: "magic", response: String(repeating: "word ", count: 100)),
                .init(response: "fallback", finishReason: .contentFilter),
            ])
        )
        func ask(
            _ stage: GenerationStage,
            _ template: String,
            _ prompt: String,
            maxTokens: Int? = nil
        ) async throws -> Completion {
            try await provider.complete(
                .init(
                    model: "m",
                    messages: [.init(role: .user, content: prompt)],
                    maxTokens: maxTokens,
                    stage: stage,
                    templateId: template
                )
            )
        }
        #expect(try await ask(.draft, "t1", "x").text == "first")
        #expect(try await ask(.essay, "t1", "x").finishReason == .contentFilter)
        let long = try await ask(.essay, "t2", "the magic prompt", maxTokens: 10)
        #expect(long.finishReason == .length)
        #expect(long.text.utf8.count == 40)
        #expect(long.usage?.completionTokens == 10)
    }
}
