import Foundation
import ModelProviders
import Synchronization
import TestSupport
import Testing

@testable import StageEngine

/// A provider that answers after a delay and counts the calls in flight.
final class CountingClient: ModelClient {
    let delay: Duration
    let counts = Mutex((now: 0, most: 0, calls: 0))

    init(delay: Duration) {
        self.delay = delay
    }

    var provider: String { "counting" }

    func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        counts.withLock {
            $0.now += 1
            $0.calls += 1
            $0.most = max($0.most, $0.now)
        }
        defer { counts.withLock { $0.now -= 1 } }
        do {
            try await Task.sleep(for: delay)
        } catch {
            throw ModelError(.cancelled, "the request was cancelled")
        }
        return Completion(
            text: "ok",
            finishReason: .stop,
            usage: .init(promptTokens: 1, completionTokens: 1),
            cost: nil,
            provider: provider,
            model: request.model
        )
    }
}

@Suite("Provider limits: concurrency, request and token buckets, rate-limit headers", .serialized)
struct LimitsTests {
    static let server = try! MockModelServer()

    func request(_ model: String = "m", maxTokens: Int? = nil) -> CompletionRequest {
        CompletionRequest(model: model, messages: [.init(role: .user, content: "hi")], maxTokens: maxTokens)
    }

    /// Two limiters standing for two processes, sharing the workspace's slots: together they
    /// keep to the concurrency limit, and a slot freed in one lets the other's call start.
    @Test("concurrency shared between processes: two limiters on the workspace's slots keep one call in flight")
    func sharedSlots() async throws {
        let temporary = try TemporaryWorkspace(files: [:])
        defer { temporary.remove() }
        let slots = WorkspaceCallSlots(workspace: temporary.workspace)
        let client = CountingClient(delay: .milliseconds(30))
        let limits = ProviderLimits(concurrency: 1)
        let first = LimitedClient(client, limiter: ProviderLimiter(provider: "p", limits: limits, sharedSlots: slots))
        let second = LimitedClient(client, limiter: ProviderLimiter(provider: "p", limits: limits, sharedSlots: slots))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask { _ = try await (index % 2 == 0 ? first : second).complete(request()) }
            }
            try await group.waitForAll()
        }
        #expect(client.counts.withLock { $0 } == (now: 0, most: 1, calls: 8))
        // A waiter that is cancelled leaves without a slot: the next call still gets one.
        let held = try #require(slots.take("p", of: 1))
        let waiting = Task { try await first.complete(request()) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await #expect(throws: ModelError.self) { try await waiting.value }
        held.release()
        _ = try await second.complete(request())
        #expect(client.counts.withLock { $0.calls } == 9)
    }

    @Test("rate-limit headers: OpenAI's durations, Anthropic's reset times")
    func headers() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let openAI = RateLimitHeaders.parse(
            [
                "x-ratelimit-remaining-requests": "59", "x-ratelimit-remaining-tokens": "149000",
                "x-ratelimit-reset-requests": "1m30.5s", "x-ratelimit-reset-tokens": "20ms",
            ],
            now: now
        )
        #expect(
            openAI
                == RateLimitHeaders(
                    remainingRequests: 59,
                    remainingTokens: 149000,
                    resetRequests: .milliseconds(90500),
                    resetTokens: .milliseconds(20)
                )
        )
        let anthropic = RateLimitHeaders.parse(
            [
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:02Z",
                "anthropic-ratelimit-tokens-remaining": "12",
            ],
            now: now
        )
        #expect(anthropic?.remainingRequests == 0)
        #expect(anthropic?.remainingTokens == 12)
        #expect(anthropic?.resetRequests == .seconds(2))
        #expect(RateLimitHeaders.parse(["content-type": "application/json"]) == nil)
        #expect(RateLimitHeaders.parse(["x-ratelimit-reset-requests": "6m0s"])?.resetRequests == .seconds(360))
    }

    @Test("no more calls in flight than the concurrency limit")
    func concurrency() async throws {
        let base = CountingClient(delay: .milliseconds(50))
        let client = LimitedClient(base, limiter: ProviderLimiter(provider: "counting", limits: .init(concurrency: 2)))
        try await withThrowingTaskGroup(of: Completion.self) { group in
            for _ in 0..<8 { group.addTask { try await client.complete(request()) } }
            for try await completion in group { #expect(completion.text == "ok") }
        }
        #expect(base.counts.withLock { $0.most } == 2)
        #expect(base.counts.withLock { $0.calls } == 8)
    }

    @Test("a call waiting for a slot, or for the request bucket, ends at once when cancelled")
    func waitingIsCancellable() async throws {
        let base = CountingClient(delay: .seconds(30))
        let limiter = ProviderLimiter(provider: "counting", limits: .init(concurrency: 1))
        let client = LimitedClient(base, limiter: limiter)
        let holder = Task { try await client.complete(request()) }
        // The holder has the slot before the waiter asks (started together, either could win).
        while base.counts.withLock({ $0.calls }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let waiter = Task { try await client.complete(request()) }
        while await limiter.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await limiter.waiting == 1)
        let started = ContinuousClock.now
        waiter.cancel()
        await #expect(throws: ModelError.self) { try await waiter.value }
        holder.cancel()
        _ = await holder.result
        #expect(ContinuousClock.now - started < .seconds(20), "the call holding the slot lasts 30 s")
        #expect(base.counts.withLock { $0.calls } == 1)

        // Two requests a minute: the third waits for the bucket, and cancelling ends the wait.
        let quick = CountingClient(delay: .zero)
        let paced = LimitedClient(quick, limiter: ProviderLimiter(provider: "p", limits: .init(requestsPerMinute: 2)))
        _ = try await paced.complete(request())
        _ = try await paced.complete(request())
        let third = Task { try await paced.complete(request()) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(quick.counts.withLock { $0.calls } == 2)
        third.cancel()
        do {
            _ = try await third.value
            Issue.record("the third call went through")
        } catch let error as ModelError {
            #expect(error.kind == .cancelled)
            #expect(error.message == "the request was cancelled while waiting for p's rate limits")
        }
    }

    @Test("the token bucket holds the prompt and maxTokens while a call runs, then counts what it used")
    func tokensPerMinute() async throws {
        let slow = CountingClient(delay: .seconds(30))
        let limiter = ProviderLimiter(provider: "p", limits: .init(tokensPerMinute: 100))
        let client = LimitedClient(slow, limiter: limiter)
        // 1 prompt token + 80: 19 are left while it runs, so a second call of 81 waits.
        let first = Task { try await client.complete(request(maxTokens: 80)) }
        try await Task.sleep(for: .milliseconds(100))
        let second = Task { try await client.complete(request(maxTokens: 80)) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(slow.counts.withLock { $0.calls } == 1)
        second.cancel()
        first.cancel()
        _ = await (first.result, second.result)
        // Two tokens used, not 81: the next call fits again.
        let quick = LimitedClient(
            CountingClient(delay: .zero),
            limiter: ProviderLimiter(provider: "q", limits: .init(tokensPerMinute: 100))
        )
        for _ in 0..<3 { _ = try await quick.complete(request(maxTokens: 80)) }
    }

    @Test("the provider's headers say the quota is spent: the next call waits for the reset instead of a 429")
    func headersSlowDown() async throws {
        let endpointOpenAI = ProviderEndpoint(
            name: "openai",
            baseURL: Self.server.url("/v1"),
            apiKey: MockModelServer.key
        )
        let endpointAnthropic = ProviderEndpoint(
            name: "anthropic",
            baseURL: Self.server.url(),
            apiKey: MockModelServer.key
        )
        // Without a limiter, the second call inside the window is refused: the mock enforces its quota.
        let bare = OpenAICompatibleProvider(endpoint: endpointOpenAI)
        _ = try await bare.complete(request("quota-bare"))
        await #expect(throws: ModelError.self) { try await bare.complete(request("quota-bare")) }
        for (name, provider) in [
            ("openai", bare as any ModelClient), ("anthropic", AnthropicProvider(endpoint: endpointAnthropic)),
        ] {
            let client = LimitedClient(provider, limiter: ProviderLimiter(provider: name, limits: .init()))
            let started = ContinuousClock.now
            for _ in 0..<3 {
                let completion = try await client.complete(request("quota-\(name)"))
                #expect(completion.text == "echo: hi")
            }
            #expect(ContinuousClock.now - started >= .seconds(1), "\(name)")
        }
    }

    @Test("a 429's Retry-After holds back that model's calls, not the provider's other models")
    func retryAfterPausesTheModel() async throws {
        let provider = OpenAICompatibleProvider(
            endpoint: .init(name: "openai", baseURL: Self.server.url("/v1"), apiKey: MockModelServer.key)
        )
        let limiter = ProviderLimiter(provider: "openai", limits: .init())
        let client = LimitedClient(provider, limiter: limiter)
        await #expect(throws: ModelError.self) { try await client.complete(request("fault-429")) }
        let now = ContinuousClock.now
        // The mock's Retry-After is 1 s: that model is held back (however long this machine took
        // since), the other is not.
        #expect(await limiter.delay(tokens: 1, model: "fault-429", now: now) > .zero)
        #expect(await limiter.delay(tokens: 1, model: "echo", now: now) == .zero)
        _ = try await client.complete(request("echo"))
    }

    @Test("an overload's Retry-After holds back the whole provider; no pause lasts over a minute")
    func pausesAreBounded() async throws {
        let limiter = ProviderLimiter(provider: "p", limits: .init())
        let first = try await limiter.acquire(tokens: 1, model: "a")
        await limiter.finish(first, actualTokens: nil, headers: nil, retryAfter: .seconds(3600), model: "a")
        let held = await limiter.delay(tokens: 1, model: "a", now: ContinuousClock.now)
        #expect(held > .seconds(50) && held <= ProviderLimiter.maximumPause)
        #expect(await limiter.delay(tokens: 1, model: "b", now: ContinuousClock.now) == .zero)
        let second = try await limiter.acquire(tokens: 1, model: "b")
        await limiter.finish(second, actualTokens: nil, headers: nil, retryAfter: .seconds(5))
        #expect(await limiter.delay(tokens: 1, model: "c", now: ContinuousClock.now) > .seconds(1))
    }
}
