import Foundation
import HTTP
import ModelProviders
import StageEngine
import Synchronization
import TestSupport
import Testing

@Suite("HTTP providers against the mock server", .serialized)
struct HTTPProviderTests {
    static let server = try! MockModelServer()

    func openAI(streaming: Bool = false, key: String? = MockModelServer.key) -> OpenAICompatibleProvider {
        OpenAICompatibleProvider(
            endpoint: .init(
                name: "openai",
                baseURL: Self.server.url("/v1"),
                apiKey: key,
                apiKeyVariable: "OPENAI_API_KEY"
            ),
            streaming: streaming
        )
    }

    func anthropic(streaming: Bool = false, key: String? = MockModelServer.key) -> AnthropicProvider {
        AnthropicProvider(
            endpoint: .init(
                name: "anthropic",
                baseURL: Self.server.url(),
                apiKey: key,
                apiKeyVariable: "ANTHROPIC_API_KEY"
            ),
            streaming: streaming
        )
    }

    func request(_ model: String, maxTokens: Int? = nil) -> CompletionRequest {
        CompletionRequest(
            model: model,
            messages: [.init(role: .system, content: "be brief"), .init(role: .user, content: "héllo wörld 😀")],
            maxTokens: maxTokens
        )
    }

    @Test("both APIs, whole and streamed: the same text, finish reason and usage", arguments: [false, true])
    func answers(streaming: Bool) async throws {
        for provider in [openAI(streaming: streaming) as any ModelClient, anthropic(streaming: streaming)] {
            let completion = try await provider.complete(request("echo"))
            #expect(completion.text == "echo: héllo wörld 😀", "\(provider.provider)")
            #expect(completion.finishReason == .stop)
            #expect((completion.usage?.promptTokens ?? 0) > 0)
            #expect(completion.usage?.completionTokens == 4)
            #expect(completion.provider == provider.provider)
            #expect(completion.model == "echo")
            let long = try await provider.complete(request("long"))
            #expect(long.finishReason == .length, "\(provider.provider) maps its truncation reason")
        }
    }

    @Test("streamed text arrives in pieces as it comes")
    func streamedDeltas() async throws {
        let pieces = Mutex<[String]>([])
        var provider = openAI(streaming: true)
        provider.onText = { piece in pieces.withLock { $0.append(piece) } }
        let completion = try await provider.complete(request("echo"))
        #expect(pieces.withLock { $0.count } > 1)
        #expect(pieces.withLock { $0.joined() } == completion.text)
    }

    @Test(
        "each fault becomes a typed error that says what to do, in bounded time",
        arguments: [
            (
                "fault-429", ModelError.Kind.rateLimit,
                "openai is rate limiting requests (HTTP 429) (retry after 1 s): Rate limit reached"
            ),
            ("fault-500", .server, "openai failed (HTTP 500): internal server error; retry later"),
            ("fault-529", .overloaded, "openai is overloaded (HTTP 529): Overloaded; retry later"),
            (
                "fault-401", .authentication,
                "openai refused the API key (HTTP 401): invalid x-api-key; check OPENAI_API_KEY"
            ),
            (
                "fault-context", .contextLength,
                "the prompt is too long for the model (HTTP 400): This model's maximum context length is 8192 tokens"
            ),
            (
                "malformed", .malformed,
                "openai sent a malformed answer (not JSON: unexpected 'h', expected 'true' at byte 15)"
            ),
        ]
    )
    func faults(model: String, kind: ModelError.Kind, message: String) async throws {
        let started = ContinuousClock.now
        do {
            _ = try await openAI().complete(request(model))
            Issue.record("\(model) succeeded")
        } catch {
            #expect(error.kind == kind)
            #expect(error.message == message)
            #expect(!error.message.contains(MockModelServer.key), "the key must never appear in an error")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test(
        "a provider that quotes the key in its error never gets it into the message",
        arguments: [
            ("echo-key-401", false, "refused the API key (HTTP 401): Incorrect API key provided: [redacted]"),
            ("echo-key-400", false, "rejected the request (HTTP 400): bad request from key [redacted]"),
            ("echo-key-stream", true, "stream refused for [redacted]"),
        ]
    )
    func echoedKeysAreRedacted(model: String, streaming: Bool, message: String) async throws {
        for provider in [openAI(streaming: streaming) as any ModelClient, anthropic(streaming: streaming)] {
            do {
                _ = try await provider.complete(request(model))
                Issue.record("\(provider.provider): \(model) succeeded")
            } catch {
                #expect(error.message.contains(message), "\(provider.provider): \(error.message)")
                #expect(!error.message.contains(MockModelServer.key), "\(provider.provider): \(error.message)")
            }
        }
    }

    @Test("an unreachable provider is named by its URL without the credentials it holds")
    func unreachableURLsLoseTheirCredentials() async throws {
        let provider = OpenAICompatibleProvider(
            endpoint: .init(
                name: "private",
                baseURL: "http://someone:url-secret@127.0.0.1:1/v1?token=query-secret",
                apiKey: MockModelServer.key,
                apiKeyVariable: "PRIVATE_KEY"
            )
        )
        do {
            _ = try await provider.complete(request("echo"))
            Issue.record("a closed port answered")
        } catch {
            #expect(error.kind == .network)
            #expect(error.message.hasPrefix("cannot reach private at http://127.0.0.1:1/v1: "), "\(error.message)")
            for secret in ["url-secret", "query-secret", "someone", MockModelServer.key] {
                #expect(!error.message.contains(secret), "\(error.message)")
            }
        }
        #expect(HTTPRequest.displayed("https://u:p@example.com:8443/v1?key=k#f") == "https://example.com:8443/v1")
    }

    @Test(
        "a base URL of another protocol than HTTP is refused, not read",
        arguments: ["file:///etc", "ftp://127.0.0.1:1"]
    )
    func onlyHTTP(baseURL: String) async throws {
        let provider = OpenAICompatibleProvider(endpoint: .init(name: "odd", baseURL: baseURL))
        do {
            _ = try await provider.complete(request("echo"))
            Issue.record("\(baseURL) answered")
        } catch {
            #expect(error.kind == .network, "\(error)")
            #expect(error.message.contains("Unsupported protocol"), "\(error.message)")
        }
    }

    @Test("a stream cut short is an error, never a silently short answer", arguments: ["truncated", "reset-stream"])
    func brokenStreams(model: String) async throws {
        for provider in [openAI(streaming: true) as any ModelClient, anthropic(streaming: true)] {
            do {
                let completion = try await provider.complete(request(model))
                Issue.record("\(provider.provider) returned \(completion.text.count) characters from a broken stream")
            } catch {
                #expect(error.kind == .network, "\(provider.provider): \(error)")
            }
        }
    }

    @Test("an answer that is not UTF-8 is refused the same way streamed or not, both APIs", arguments: [false, true])
    func invalidUTF8(streaming: Bool) async throws {
        for provider in [openAI(streaming: streaming) as any ModelClient, anthropic(streaming: streaming)] {
            do {
                let completion = try await provider.complete(request("bad-utf8"))
                Issue.record("\(provider.provider) accepted \(completion.text.debugDescription)")
            } catch {
                #expect(error.kind == .malformed, "\(provider.provider): \(error)")
                #expect(
                    error.message.hasPrefix(
                        "\(provider.provider) sent a malformed answer (not JSON: invalid UTF-8 (byte 0xFF) at byte "
                    ),
                    "\(error.message)"
                )
            }
        }
    }

    @Test("a provider that reports no usage gives unknown usage, never zeros", arguments: [false, true])
    func unreportedUsage(streaming: Bool) async throws {
        for provider in [openAI(streaming: streaming) as any ModelClient, anthropic(streaming: streaming)] {
            let completion = try await provider.complete(request("no-usage"))
            #expect(completion.text == "echo: héllo wörld 😀", "\(provider.provider)")
            #expect(completion.usage == nil, "\(provider.provider), streaming \(streaming)")
            // Budgets count it by its text: "be brief\nhéllo wörld 😀" and the answer, 3 bytes a token.
            #expect(completion.countedTokens(for: request("no-usage")) == 9 + 8)
        }
    }

    @Test("Anthropic streams: input tokens from message_delta when message_start says 0")
    func lateAnthropicUsage() async throws {
        let completion = try await anthropic(streaming: true).complete(request("late-usage"))
        #expect(completion.usage == .init(promptTokens: 3, completionTokens: 4))
    }

    @Test("the final event completes the answer, whatever the connection does next")
    func finalEventCompletes() async throws {
        for provider in [openAI(streaming: true) as any ModelClient, anthropic(streaming: true)] {
            let started = ContinuousClock.now
            let completion = try await provider.complete(request("done-hang"))
            #expect(completion.text == "echo: héllo wörld 😀", "\(provider.provider)")
            #expect(completion.finishReason == .stop)
            // The mock holds the connection for 60 s after the final event.
            #expect(ContinuousClock.now - started < .seconds(20), "\(provider.provider)")
        }
    }

    @Test("a streamed request answered with one plain JSON body is read as a plain answer")
    func plainBodyForAStream() async throws {
        for provider in [openAI(streaming: true) as any ModelClient, anthropic(streaming: true)] {
            let completion = try await provider.complete(request("plain-stream"))
            #expect(completion.text == "echo: héllo wörld 😀", "\(provider.provider)")
            #expect(completion.usage?.completionTokens == 4)
        }
    }

    @Test("a 16 MB event streams through; one larger than the limit is an error, not a grind")
    func bigEvents() async throws {
        for provider in [openAI(streaming: true) as any ModelClient, anthropic(streaming: true)] {
            let started = ContinuousClock.now
            let completion = try await provider.complete(request("big-event-16"))
            print("\(provider.provider): a 16 MB event streamed and parsed in \(ContinuousClock.now - started)")
            #expect(completion.text.utf8.count == 16 << 20)
            do {
                _ = try await provider.complete(request("big-event-40"))
                Issue.record("\(provider.provider): a 40 MB event was accepted")
            } catch {
                #expect(error.kind == .tooLarge, "\(error)")
                #expect(
                    error.message
                        == "\(provider.provider) streamed an event larger than 33554432 bytes; the answer was abandoned"
                )
            }
        }
    }

    @Test("a 60 MB error body: the message keeps a few hundred bytes of it, at once")
    func hugeErrorBodies() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await openAI().complete(request("huge-error"))
            Issue.record("a 500 answered")
        } catch {
            #expect(error.kind == .server)
            #expect(error.httpStatus == 500)
            #expect(error.message.utf8.count < 1_000, "\(error.message.utf8.count) bytes")
            #expect(error.message.hasPrefix("openai failed (HTTP 500): {\"error\": {\"message\": \"xxx"))
        }
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test(
        "statuses and error bodies as providers send them become kinds, messages and the URL",
        arguments: [
            (
                "fault-408", ModelError.Kind.timeout, 408,
                "openai timed out waiting for the request (HTTP 408): request timed out"
            ),
            (
                "fault-403", .permission, 403,
                "openai does not allow this request with this key (HTTP 403): this key may not use the model"
            ),
            (
                "detail-error", .invalidRequest, 400,
                "openai rejected the request (HTTP 400): unknown parameter: temperature_x"
            ),
        ]
    )
    func statuses(model: String, kind: ModelError.Kind, status: Int, message: String) async throws {
        do {
            _ = try await openAI().complete(request(model))
            Issue.record("\(model) answered")
        } catch {
            #expect(error.kind == kind)
            #expect(error.httpStatus == status)
            #expect(error.message == message)
            #expect(error.provider == "openai")
            #expect(error.url == Self.server.url("/v1/chat/completions"))
        }
    }

    @Test("a 404 names the URL it was given; an anthropic base URL written with /v1 works")
    func urls() async throws {
        let wrong = OpenAICompatibleProvider(
            endpoint: .init(name: "local", baseURL: Self.server.url("/api"), apiKey: MockModelServer.key)
        )
        do {
            _ = try await wrong.complete(request("echo"))
            Issue.record("a wrong path answered")
        } catch {
            #expect(error.kind == .notFound)
            #expect(
                error.message
                    == "local has no such model or endpoint: HTTP 404 for \(Self.server.url("/api/chat/completions")): no route /api/chat/completions"
            )
        }
        let withVersion = AnthropicProvider(
            endpoint: .init(name: "anthropic", baseURL: Self.server.url("/v1"), apiKey: MockModelServer.key)
        )
        #expect(try await withVersion.complete(request("echo")).text == "echo: héllo wörld 😀")
    }

    @Test("a missing key is refused by the server with the variable to set")
    func missingKey() async throws {
        do {
            _ = try await anthropic(key: nil).complete(request("echo"))
            Issue.record("answered without a key")
        } catch {
            #expect(error.kind == .authentication)
            #expect(error.message.hasSuffix("check ANTHROPIC_API_KEY"))
        }
    }

    @Test("cancelling the caller aborts the transfer at once")
    func cancellation() async throws {
        let task = Task { try await openAI().complete(request("never")) }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("a cancelled request answered")
        } catch let error as ModelError {
            #expect(error.kind == .cancelled)
        }
        #expect(ContinuousClock.now - started < .seconds(20), "the model never answers: 60 s")
    }

    @Test("a body that stops flowing and an answer that never comes both time out")
    func timeouts() async throws {
        var endpoint = ProviderEndpoint(name: "openai", baseURL: Self.server.url("/v1"), apiKey: MockModelServer.key)
        endpoint.timeout = .seconds(2)
        let provider = OpenAICompatibleProvider(endpoint: endpoint)
        for model in ["never", "slow-body"] {
            let started = ContinuousClock.now
            do {
                _ = try await provider.complete(request(model))
                Issue.record("\(model) answered")
            } catch {
                #expect(error.kind == .timeout, "\(model): \(error)")
            }
            // The timeout is 2 s; without it "never" would hold the call for 60 s.
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    @Test("a connection refused is a network error naming where")
    func unreachable() async throws {
        let provider = OpenAICompatibleProvider(endpoint: .init(name: "local", baseURL: "http://127.0.0.1:1/v1"))
        do {
            _ = try await provider.complete(request("echo"))
            Issue.record("answered from a closed port")
        } catch {
            #expect(error.kind == .network)
            #expect(error.message.hasPrefix("cannot reach local at http://127.0.0.1:1/v1: "))
        }
    }

    @Test("100 calls in flight share the one transfer thread")
    func concurrency() async throws {
        let provider = anthropic()
        try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<100 {
                group.addTask {
                    try await provider.complete(
                        CompletionRequest(model: "echo", messages: [.init(role: .user, content: "n\(index)")])
                    ).text
                }
            }
            var answers: Set<String> = []
            for try await text in group { answers.insert(text) }
            #expect(answers.count == 100)
        }
    }
}
