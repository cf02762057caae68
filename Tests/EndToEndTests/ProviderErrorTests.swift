import Foundation
import GRDB
import JSON
import TestSupport
import Testing

/// A provider's failure as a client sees it: `data` to branch on (kind, provider, HTTP status,
/// Retry-After, retries, URL), the same kind in the call log, and a log line for every call.
@Suite("Provider errors over the wire")
struct ProviderErrorTests {
    @Test("every failure's data says its kind, provider, status, wait, retries and URL; the call log agrees")
    func typedErrorData() async throws {
        let workspace = try MockedWorkspace(logLevel: "debug") { mock in
            "providers:\n"
                + MockedWorkspace.provider(
                    "mock",
                    of: mock,
                    "retries: {attempts: 2, baseDelay: 0.01, maxRetryAfter: 0.5}"
                )
                + "  wrong: {kind: openai, baseURL: \"\(mock.url("/api"))\", apiKeyEnv: MOCK_API_KEY, retries: {attempts: 1}}\n"
        }
        defer { workspace.remove() }
        let (mock, example, server) = (workspace.mock, workspace.example, workspace.server)
        let chat = mock.url("/v1/chat/completions")
        let cases: [(model: String, data: JSONValue)] = [
            (
                "mock:fault-429",
                [
                    "kind": "rate_limit", "provider": "mock", "httpStatus": 429, "retryAfter": 1.0, "retries": 0,
                    "url": .string(chat),
                    "hint": "wait and retry, lower the concurrency, or raise the provider's limits",
                ]
            ),
            (
                "mock:fault-500",
                [
                    "kind": "server", "provider": "mock", "httpStatus": 500, "retries": 1, "url": .string(chat),
                    "hint": "retry later; the provider failed on its side",
                ]
            ),
            (
                "mock:fault-401",
                [
                    "kind": "authentication", "provider": "mock", "httpStatus": 401, "retries": 0, "url": .string(chat),
                    "hint": "check the provider's API key (its environment variable) and that it is valid",
                ]
            ),
            (
                "wrong:echo",
                [
                    "kind": "not_found", "provider": "wrong", "httpStatus": 404, "retries": 0,
                    "url": .string(mock.url("/api/chat/completions")), "field": "params.model",
                    "hint": "check the model id and the provider's baseURL in stagerunner.yaml",
                ]
            ),
        ]
        for (index, (model, expected)) in cases.enumerated() {
            let response = try await server.call(
                index + 1,
                "runStage",
                #"{"stage":"draft","templateId":"systematic-analytical","genId":"f-\#(index)","model":"\#(model)","cache":"off","promptText":"a private prompt"}"#
            )
            #expect(response["error"]?["code"] == -32012, "\(model): \(response)")
            #expect(response["error"]?["data"] == expected, "\(model)")
        }
        let database = try DatabaseQueue(path: example.root + "/.stagerunner/calls.sqlite")
        let rows = try database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT genId, status, errorKind, retries, retryErrors FROM llm_calls ORDER BY id"
            )
        }
        #expect(rows.map { $0["errorKind"] as String? } == ["rate_limit", "server", "authentication", "not_found"])
        #expect(rows.map { $0["status"] as String? } == ["error", "error", "error", "error"])
        let retried: String? = rows[1]["retryErrors"]
        #expect(retried == #"["server: mock failed (HTTP 500): internal server error; retry later"]"#)

        #expect(try await server.call(9, "shutdown")["result"] == .null)
        server.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        #expect(try await server.exitStatus() == 0)
        let log = server.standardError
        let ended = log.split(separator: "\n").filter { $0.contains("model call ended") }
        #expect(ended.count == 4, "\(log)")
        #expect(ended.allSatisfy { $0.contains("provider=") && $0.contains("latencyMs=") && $0.contains("retries=") })
        #expect(ended.contains { $0.contains("status=rate_limit") && $0.contains("httpStatus=429") })
        #expect(log.contains("model call sent") && log.contains("url=\(chat)"))
        #expect(log.contains("model call retried") && log.contains("cause=server: mock failed (HTTP 500)"))
        #expect(!log.contains(MockModelServer.key), "the key must never reach the log")
        #expect(!log.contains("a private prompt"), "the prompt stays out of the log below trace")
    }

    @Test(
        "a provider that reports no usage: usage and cost are null, never 0; budgets count an estimate",
        arguments: [false, true]
    )
    func unreportedUsage(progress: Bool) async throws {
        let workspace = try MockedWorkspace { mock in
            "providers:\n" + MockedWorkspace.provider("mock", of: mock)
                + "prices:\n  mock:no-usage: {input: 1000, output: 1000}\nbudgets:\n  process: {tokens: 25}\n"
        }
        defer { workspace.remove() }
        let (example, server) = (workspace.example, workspace.server)
        // With a progress token the call streams; the mock sends no usage event either way.
        let token = progress ? #","progressToken":"p""# : ""
        let prompt = String(repeating: "a", count: 30)
        let response = try await server.call(
            1,
            "runStage",
            #"{"stage":"draft","templateId":"systematic-analytical","genId":"u-1","model":"mock:no-usage","cache":"off","promptText":"\#(prompt)"\#(token)}"#
        )
        let metadata = try #require(response["result"]?["metadata"], "\(response)")
        #expect(metadata["usage"] == .null)
        #expect(metadata["cost_usd"] == .null)
        // "echo: " and the prompt, 36 bytes, and the prompt's 30: 12 + 10 tokens at 3 bytes a token.
        #expect(metadata["usage_estimate"] == 22)
        let file = try #require(example.read("data/gens/draft/u-1/metadata.json"))
        #expect(file.contains(#""usage" : null"#))
        // The estimate counts against the budget: 22 of 25 spent, so the next call (8 more) is refused.
        let refused = try await server.call(
            2,
            "runStage",
            #"{"stage":"draft","templateId":"systematic-analytical","genId":"u-2","model":"mock:no-usage","cache":"off","promptText":"\#(prompt)"}"#
        )
        #expect(refused["error"]?["code"] == -32017, "\(refused)")
        #expect(refused["error"]?["data"]?["spent"] == 22)
        let database = try DatabaseQueue(path: example.root + "/.stagerunner/calls.sqlite")
        let row = try database.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT promptTokens, completionTokens, costUsd FROM llm_calls WHERE genId = 'u-1'"
            )
        }
        #expect(row?["promptTokens"] == nil as Int?)
        #expect(row?["costUsd"] == nil as Double?)
    }
}
