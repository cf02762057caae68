import Foundation
import ModelProviders
import StageEngine
import TestSupport
import Testing

@Suite("Response cache: hit, miss, refresh, off, TTL; never errors or truncation")
struct CacheTests {
    /// A runner on the daydream example whose `mock` provider is the mock server, never retried.
    struct Setup {
        let server: MockModelServer
        let temporary: TemporaryWorkspace
        let runner: WorkspaceEngine

        init(ttl: Double? = nil) throws {
            server = try MockModelServer()
            temporary = try TemporaryWorkspace(
                copying: "daydream",
                files: [
                    "stagerunner.yaml": """
                    providers:
                      mock: {kind: openai, baseURL: "\(server.url("/v1"))", apiKeyEnv: MOCK_KEY, retries: {attempts: 1}}
                    prices:
                      mock:echo: {input: 1, output: 1}
                    \(ttl.map { "cache: {ttlSeconds: \($0)}" } ?? "")
                    """
                ]
            )
            runner = try WorkspaceEngine(workspace: temporary.workspace, environment: ["MOCK_KEY": MockModelServer.key])
        }

        func run(
            _ model: String,
            genId: String,
            prompt: String = "Tell me about sleep.",
            cache: CachePolicy? = nil
        ) async throws(StageError) -> StageResult {
            var spec = StageRunSpec(stage: .draft, genId: genId, templateId: "systematic-analytical")
            spec.model = "mock:" + model
            spec.promptText = prompt
            spec.cache = cache
            return try await runner.run(spec)
        }
    }

    @Test("a hit is the stored answer, marked cached, free, and sends nothing; another prompt misses")
    func hitAndMiss() async throws {
        let setup = try Setup()
        defer { setup.temporary.remove() }
        let first = try await setup.run("once-hit", genId: "g1")
        #expect(first.metadata.cached == nil)
        #expect(first.raw == "echo: Tell me about sleep.")
        // "once-hit" fails every request after the first: a second answer can only be the cache's.
        let second = try await setup.run("once-hit", genId: "g2")
        #expect(second.raw == first.raw)
        #expect(second.metadata.cached == true)
        #expect(second.metadata.costUsd == 0)
        #expect(second.metadata.usage == first.metadata.usage)
        let file = try #require(setup.temporary.read("data/gens/draft/g2/metadata.json"))
        #expect(file.contains(#""cached" : true"#))
        #expect(setup.temporary.read("data/gens/draft/g1/metadata.json")?.contains("cached") == false)
        let calls = try await setup.runner.callLog.recent()
        #expect(calls.map(\.cached) == [true, false])
        #expect(calls.first?.costUsd == 0)
        // Another prompt is another key.
        await #expect(throws: StageError.self) {
            try await setup.run("once-hit", genId: "g3", prompt: "Tell me about dreams.")
        }
        // A priced model: the first call costs, the hit does not.
        let priced = try await setup.run("echo", genId: "p1")
        #expect((priced.metadata.costUsd ?? 0) > 0)
        #expect(try await setup.run("echo", genId: "p2").metadata.costUsd == 0)
    }

    @Test("refresh calls the model and replaces the entry; off neither reads nor writes; force refreshes")
    func refreshAndOff() async throws {
        let setup = try Setup()
        defer { setup.temporary.remove() }
        _ = try await setup.run("once-refresh", genId: "r1")
        // refresh must call: the model fails the second time, which proves the request went out.
        do {
            _ = try await setup.run("once-refresh", genId: "r2", cache: .refresh)
            Issue.record("refresh answered from the cache")
        } catch {
            #expect(error.message.contains("asked twice"))
        }
        let stored = try await setup.run("echo", genId: "r3", cache: .refresh)
        #expect(stored.metadata.cached == nil)
        #expect(try await setup.run("echo", genId: "r4").metadata.cached == true, "refresh stores its answer")

        let off = try await setup.run("echo", genId: "o1", prompt: "Off the record.", cache: .off)
        #expect(off.metadata.cached == nil)
        #expect(
            try await setup.run("echo", genId: "o2", prompt: "Off the record.").metadata.cached == nil,
            "off stored nothing"
        )
        #expect(
            try await setup.run("echo", genId: "o3", prompt: "Off the record.", cache: .off).metadata.cached == nil,
            "off reads nothing"
        )
        // force regenerates: a fresh answer, not the cached one, unless the request says use.
        var forced = StageRunSpec(stage: .draft, genId: "o3", templateId: "systematic-analytical")
        forced.model = "mock:echo"
        forced.promptText = "Off the record."
        forced.force = true
        #expect(try await setup.runner.run(forced).metadata.cached == nil)
        forced.cache = .use
        #expect(try await setup.runner.run(forced).metadata.cached == true)
    }

    @Test("an answer older than the TTL is not used")
    func ttl() async throws {
        let setup = try Setup(ttl: 3)
        defer { setup.temporary.remove() }
        let stored = ContinuousClock.now
        _ = try await setup.run("echo", genId: "t1")
        let hit = try await setup.run("echo", genId: "t2").metadata.cached
        // On a machine so loaded that the second call came after the TTL, a miss is right too.
        if ContinuousClock.now - stored < .seconds(3) { #expect(hit == true) }
        try await Task.sleep(for: .milliseconds(3200))
        #expect(try await setup.run("echo", genId: "t3").metadata.cached == nil)
        #expect(try await setup.runner.cache.removeExpired(ttl: 3600) == 0)
        #expect(try await setup.runner.cache.removeExpired(ttl: 0) == 1, "the miss stored a fresh answer")
    }

    @Test("expired answers are removed when the workspace is opened, a bounded number at a time")
    func expiredAnswersArePurged() async throws {
        let setup = try Setup(ttl: 1)
        defer { setup.temporary.remove() }
        _ = try await setup.run("echo", genId: "p1", prompt: "First.")
        _ = try await setup.run("echo", genId: "p2", prompt: "Second.")
        _ = try await setup.run("echo", genId: "p3", prompt: "Third.")
        #expect(try await setup.runner.cache.count() == 3)
        #expect(try await setup.runner.cache.removeExpired(ttl: 0, limit: 1) == 1, "the oldest only")
        #expect(try await setup.runner.cache.count() == 2)
        try await Task.sleep(for: .milliseconds(1200))
        // Opening the workspace again removes what the TTL (1 s) has expired.
        let reopened = try WorkspaceEngine(
            workspace: setup.temporary.workspace,
            environment: ["MOCK_KEY": MockModelServer.key]
        )
        #expect(try await reopened.cache.count() == 0)
    }

    @Test("errors and truncated answers are never stored; nor is the embedded provider")
    func neverCached() async throws {
        let setup = try Setup()
        defer { setup.temporary.remove() }
        await #expect(throws: StageError.self) { try await setup.run("fault-500", genId: "e1") }
        await #expect(throws: StageError.self) { try await setup.run("malformed", genId: "e2") }
        let long = try await setup.run("long", genId: "l1")
        #expect(long.status == .truncated)
        #expect(try await setup.run("long", genId: "l2").metadata.cached == nil)
        var embedded = StageRunSpec(stage: .draft, genId: "m1", templateId: "systematic-analytical")
        embedded.model = "m"
        embedded.promptText = "Tell me about sleep."
        _ = try await setup.runner.run(embedded)
        #expect(try await setup.runner.cache.count() == 0)
    }

    @Test("the key covers provider, model, messages and parameters")
    func keys() {
        let base = CompletionRequest(model: "m", messages: [.init(role: .user, content: "hi")], maxTokens: 5)
        var others: [CompletionRequest] = []
        var request = base
        request.model = "n"
        others.append(request)
        request = base
        request.maxTokens = 6
        others.append(request)
        request = base
        request.temperature = 0.5
        others.append(request)
        request = base
        request.messages = [.init(role: .system, content: "hi")]
        others.append(request)
        request = base
        request.messages = [.init(role: .user, content: "h"), .init(role: .user, content: "i")]
        others.append(request)
        let key = ResponseCache.key(provider: "p", base)
        #expect(key == ResponseCache.key(provider: "p", base))
        #expect(key != ResponseCache.key(provider: "q", base))
        for other in others { #expect(ResponseCache.key(provider: "p", other) != key, "\(other)") }
    }
}
