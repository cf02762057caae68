import Foundation
import ModelProviders
import StageEngine
import Synchronization
import TestSupport
import Testing

@Suite("Progress sinks: the answer as it arrives")
struct ProgressSinkTests {
    final class Collector: Sendable {
        let events = Mutex<[ProgressSink.Event]>([])
        var sink: ProgressSink { ProgressSink { event in self.events.withLock { $0.append(event) } } }
        /// The text after the last restart.
        var text: String {
            events.withLock { events in
                var text = ""
                for event in events {
                    switch event {
                    case .restart: text = ""
                    case .text(let delta): text += delta
                    }
                }
                return text
            }
        }
    }

    @Test("a streamed answer arrives in deltas; a retry says restart; whole answers come as one delta")
    func deltas() async throws {
        let server = try MockModelServer()
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                providers:
                  mock: {kind: openai, baseURL: "\(server.url("/v1"))", apiKeyEnv: MOCK_KEY, retries: {attempts: 3, baseDelay: 0.01}}
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: ["MOCK_KEY": MockModelServer.key])
        func spec(_ genId: String, _ model: String, _ collector: Collector) -> StageRunSpec {
            var spec = StageRunSpec(stage: .draft, genId: genId, templateId: "systematic-analytical")
            spec.model = model
            spec.promptText = "Tell me, at some length, about the wandering mind."
            spec.progress = collector.sink
            return spec
        }
        let streamed = Collector()
        let result = try await runner.run(spec("a", "mock:echo", streamed))
        #expect(streamed.events.withLock { $0.count } > 3)
        #expect(streamed.text == result.raw)

        let retried = Collector()
        let flaky = try await runner.run(spec("b", "mock:flaky-1-progress", retried))
        #expect(retried.events.withLock { $0.first } == .restart)
        #expect(retried.text == flaky.raw)

        let cached = Collector()
        let hit = try await runner.run(spec("c", "mock:echo", cached))
        #expect(hit.metadata.cached == true)
        #expect(cached.events.withLock { $0 } == [.text(result.raw ?? "")])

        let embedded = Collector()
        let local = try await runner.run(spec("d", "m", embedded))
        #expect(embedded.events.withLock { $0 } == [.text(local.raw ?? "")])

        let reused = Collector()
        _ = try await runner.run(spec("d", "m", reused))
        #expect(reused.events.withLock { $0.isEmpty })
    }
}
