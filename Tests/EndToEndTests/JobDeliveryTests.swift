import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

/// When status notifications go out relative to the answers and to the end of the connection.
@Suite("Job notification delivery")
struct JobDeliveryTests {
    @Test("every statusChanged comes after the subscribeStatus answer that names its subscription")
    func answerFirst() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let server = try ServerProcess(["serve", "--workspace", example.root, "--log-level", "error"])
        let run = try await server.call(
            1,
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Kelp"}}"#
        )
        let jobId = try #require(run["result"]?["jobId"]?.stringValue)
        // Twenty subscriptions in one write, while the job runs.
        var batch = ""
        for id in 10..<30 {
            batch +=
                #"{"jsonrpc":"2.0","id":\#(id),"method":"subscribeStatus","params":{"jobId":"\#(jobId)","delivery":"patch"}}"#
                + "\n"
        }
        server.send(bytes: Array(batch.utf8))
        try await server.output.wait("twenty answers") { messages, _ in
            messages.filter { ($0["id"]?.integerValue).map { (10..<30).contains($0) } ?? false }.count == 20
        }
        var named: Set<String> = []
        for message in server.output.messages {
            if let id = message["result"]?["subscriptionId"]?.stringValue { named.insert(id) }
            if message["method"] == "statusChanged", let id = message["params"]?["subscriptionId"]?.stringValue {
                #expect(named.contains(id), "\(id) changed before its subscribeStatus answer")
            }
        }
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
    }

    @Test("at end of input a subscriber still receives the job's final state before the server exits")
    func finalStateAfterEndOfInput() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let server = try ServerProcess(["serve", "--workspace", example.root, "--log-level", "error"])
        _ = try await server.call(1, "subscribeStatus", #"{"delivery":"snapshot"}"#)
        let run = try await server.call(
            2,
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Kelp"}}"#
        )
        let jobId = try #require(run["result"]?["jobId"]?.stringValue)
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        let last = server.output.messages.last {
            $0["method"] == "statusChanged" && $0["params"]?["jobId"] == .string(jobId)
        }
        #expect(last?["params"]?["snapshot"]?["state"] == "done")
        #expect(last?["params"]?["event"] == ["type": "job", "state": "done"])
    }
}
