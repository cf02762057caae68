import Foundation
import ModelProviders
import StageEngine
import TestSupport
import Testing

@Suite("Retries", .serialized)
struct RetryTests {
    static let server = try! MockModelServer()

    func client(_ policy: RetryPolicy) -> RetryingClient {
        RetryingClient(
            OpenAICompatibleProvider(
                endpoint: .init(name: "openai", baseURL: Self.server.url("/v1"), apiKey: MockModelServer.key)
            ),
            policy: policy
        )
    }

    func ask(_ client: RetryingClient, _ model: String) async throws(ModelError) -> Completion {
        try await client.complete(CompletionRequest(model: model, messages: [.init(role: .user, content: "hi")]))
    }

    @Test("transient failures are retried, and each retry is reported with its reason")
    func transientFailures() async throws {
        let completion = try await ask(client(RetryPolicy(attempts: 4, baseDelay: 0.01)), "flaky-2-a")
        #expect(completion.text == "echo: hi")
        #expect(
            completion.retries
                == Array(repeating: "server: openai failed (HTTP 500): transient failure; retry later", count: 2)
        )
    }

    @Test("Retry-After is honoured")
    func retryAfter() async throws {
        let started = ContinuousClock.now
        let completion = try await ask(client(RetryPolicy(attempts: 2, baseDelay: 0.01)), "ratelimited-b")
        #expect(completion.retries.count == 1)
        #expect(ContinuousClock.now - started >= .seconds(1))
    }

    @Test("giving up says how many retries were made; bad keys and requests are never retried")
    func givingUp() async throws {
        do {
            _ = try await ask(client(RetryPolicy(attempts: 3, baseDelay: 0.01)), "fault-500")
            Issue.record("fault-500 answered")
        } catch {
            #expect(error.retries == 2)
            #expect(error.message == "openai failed (HTTP 500): internal server error; retry later (after 2 retries)")
        }
        for model in ["fault-401", "fault-context"] {
            let started = ContinuousClock.now
            do {
                _ = try await ask(client(RetryPolicy(attempts: 5, baseDelay: 30)), model)
                Issue.record("\(model) answered")
            } catch {
                #expect(error.retries == 0, "\(model) must not be retried")
            }
            // A retry would first wait 30 s; the bound is generous for a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }

    @Test("a Retry-After longer than the policy allows ends the retries at once")
    func retryAfterTooLong() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await ask(client(RetryPolicy(attempts: 4, baseDelay: 0.01, maxRetryAfter: 0.5)), "ratelimited-c")
            Issue.record("answered without waiting")
        } catch {
            #expect(error.kind == .rateLimit)
            #expect(error.retries == 0, "the retry that the Retry-After asks for is not made")
        }
        _ = started
    }

    @Test("cancelling during the wait before a retry ends at once")
    func cancelledWhileWaiting() async throws {
        let retrying = client(RetryPolicy(attempts: 4, baseDelay: 30, maxDelay: 30))
        let task = Task { try await ask(retrying, "fault-500") }
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("answered")
        } catch let error as ModelError {
            #expect(error.kind == .cancelled)
        }
        #expect(ContinuousClock.now - started < .seconds(20), "the wait before the retry is 30 s")
    }

    @Test("Retry-After in seconds, in milliseconds, or as an HTTP date")
    func parsing() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryPolicy.parse(["retry-after": "3"], now: now) == .seconds(3))
        #expect(RetryPolicy.parse(["retry-after-ms": "250", "retry-after": "3"], now: now) == .milliseconds(250))
        #expect(RetryPolicy.parse(["retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"], now: now) == .seconds(10))
        #expect(RetryPolicy.parse(["retry-after": "soon"], now: now) == nil)
        #expect(RetryPolicy.parse([:], now: now) == nil)
    }

    @Test("a stage records its retries in metadata.json and the call log")
    func stageRecordsRetries() async throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                values:
                  concepts: []
                providers:
                  mock: {kind: openai, baseURL: "\(Self.server.url("/v1"))", apiKeyEnv: MOCK_API_KEY,
                         retries: {attempts: 3, baseDelay: 0.01}}
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(
            workspace: temporary.workspace,
            environment: ["MOCK_API_KEY": MockModelServer.key]
        )
        var spec = StageRunSpec(stage: .draft, templateId: "systematic-analytical")
        spec.model = "mock:flaky-1-d"
        let result = try await runner.run(spec)
        #expect(result.metadata.retries == 1)
        let call = try #require(try await runner.callLog.recent().first)
        #expect(call.retries == 1)
        // A JSON array: a reason may itself contain "; ".
        #expect(call.retryErrors == #"["server: mock failed (HTTP 500): transient failure; retry later"]"#)
        #expect(call.errorKind == nil)
    }
}
