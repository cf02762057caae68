import Foundation
import GRDB
import JSON
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Cancelling a request reaches its model call: the transfer is aborted (the provider sees its
/// connection closed), nothing is committed, and the call log says the call was cancelled.
@Suite("Model call cancellation")
struct ModelCallCancellationTests {
    /// A daydream workspace whose `mock` provider is the loopback mock, and a server on it.
    struct Setup {
        let workspace: MockedWorkspace
        var mock: MockModelServer { workspace.mock }
        var example: ExampleCopy { workspace.example }
        var server: ServerProcess { workspace.server }

        init() throws {
            workspace = try MockedWorkspace { mock in "providers:\n" + MockedWorkspace.provider("mock", of: mock) }
        }

        func runStage(_ id: Int, genId: String, model: String) {
            server.send(
                #"{"jsonrpc":"2.0","id":\#(id),"method":"runStage","params":{"stage":"draft","templateId":"systematic-analytical","genId":"\#(genId)","model":"\#(model)","cache":"off","promptText":"hold on"}}"#
            )
        }

        func cancel(_ id: Int) {
            server.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":\#(id)}}"#)
        }

        /// `{requests, closed, closedAfter}` of the mock's `hold-<tag>` model.
        func hold(_ tag: String) throws -> JSONValue { try mock.get("/hold/\(tag)") }

        func waitForRequests(_ tag: String, _ count: Int) async throws {
            try await poll("\(count) requests of hold-\(tag) at the mock") {
                try hold(tag)["requests"] == .integer(Int64(count))
            }
        }

        func waitForClosed(_ tag: String, _ count: Int) async throws {
            try await poll("the mock to see \(count) connections of hold-\(tag) closed") {
                try hold(tag)["closed"] == .integer(Int64(count))
            }
        }

        /// Asks the mock every 20 ms (each question is a connection) for up to 30 s.
        func poll(_ what: String, _ condition: () throws -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while try !condition() {
                if ContinuousClock.now >= deadline { throw TimedOut(description: "timed out waiting for \(what)") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        /// The call log's statuses for `genId`.
        func loggedStatuses(_ genId: String) throws -> [String] {
            let database = try DatabaseQueue(path: example.root + "/.stagerunner/calls.sqlite")
            return try database.read { db in
                try String.fetchAll(
                    db,
                    sql: "SELECT status FROM llm_calls WHERE genId = ? ORDER BY id",
                    arguments: [genId]
                )
            }
        }

        func generated(_ genId: String) -> Bool {
            FileManager.default.fileExists(atPath: example.root + "/data/gens/draft/\(genId)")
        }
    }

    @Test(
        "$/cancelRequest on runStage aborts the transfer, answers -32800, commits nothing and logs the call cancelled"
    )
    func cancelAbortsTheTransfer() async throws {
        let setup = try Setup()
        defer { setup.example.remove() }
        setup.runStage(1, genId: "c-1", model: "mock:hold-one")
        try await setup.waitForRequests("one", 1)
        let sent = ContinuousClock.now
        setup.cancel(1)
        let response = try await setup.server.output.response(id: 1)
        let latency = ContinuousClock.now - sent
        print("runStage cancelled during its model call: answered -32800 after \(latency)")
        #expect(response["error"]?["code"] == -32800, "\(response)")
        #expect(response["error"]?["message"] == "Request cancelled: the request was cancelled during the model call")
        try await setup.waitForClosed("one", 1)
        // Generous: on a loaded machine the answer has taken 10 s; the mock would hold the connection for 60 s.
        #expect(latency < .seconds(45))
        #expect(!setup.generated("c-1"))
        try await setup.poll("the call log row") { try setup.loggedStatuses("c-1") == ["cancelled"] }
        // The connection and the workspace go on.
        #expect(try await setup.server.call(2, "ping")["result"] == [:])
        let again = try await setup.server.call(
            3,
            "runStage",
            #"{"stage":"draft","templateId":"systematic-analytical","genId":"c-1","model":"mock:echo","cache":"off","promptText":"again"}"#
        )
        #expect(again["result"]?["status"] == "success")
        #expect(again["result"]?["raw"] == "echo: again")
    }

    @Test(
        "exit without shutdown and SIGINT cancel a model call in flight: the process ends and the transfer is closed",
        arguments: ["exit", "SIGINT"]
    )
    func endingCancelsTheCall(ending: String) async throws {
        let setup = try Setup()
        defer { setup.example.remove() }
        setup.runStage(1, genId: "c-3", model: "mock:hold-\(ending)")
        try await setup.waitForRequests(ending, 1)
        if ending == "exit" {
            setup.server.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        } else {
            setup.server.signal(SIGINT)
        }
        let status = try await setup.server.exitStatus()
        #expect(status == (ending == "exit" ? 1 : 0))
        #expect(try await setup.server.output.response(id: 1)["error"]?["code"] == -32800)
        try await setup.waitForClosed(ending, 1)
        #expect(!setup.generated("c-3"))
        #expect(try setup.loggedStatuses("c-3") == ["cancelled"])
    }
}
