import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

/// runStage with a progressToken, against the real binary and a streaming mock provider.
@Suite("Progress notifications")
struct ProgressTests {
    @Test("$/progress carries the answer in coalesced deltas before the response, which is unchanged")
    func streamedAnswer() async throws {
        let workspace = try MockedWorkspace { mock in "providers:\n" + MockedWorkspace.provider("mock", of: mock) }
        defer { workspace.remove() }
        let server = workspace.server
        // The mock streams its echo in 7-character events: about 300 of them.
        let prompt = String(repeating: "Idle minds wander; ", count: 110)
        let params =
            #"{"stage":"draft","templateId":"systematic-analytical","model":"mock:echo","cache":"off","promptText":"\#(prompt)""#
        let streamed = try await server.call(1, "runStage", params + #","genId":"s-1","progressToken":"tok-1"}"#)
        let messages = server.output.messages
        let responseIndex = try #require(messages.firstIndex { $0["id"] == 1 })
        let progress = messages.enumerated().filter { $0.element["method"] == "$/progress" }
        #expect(progress.allSatisfy { $0.offset < responseIndex }, "every notification comes before the response")
        #expect(progress.allSatisfy { $0.element["params"]?["token"] == "tok-1" })
        let values = progress.map { $0.element["params"]?["value"] ?? .null }
        #expect(values.first == json(#"{"kind":"begin","title":"runStage"}"#))
        #expect(values.last == json(#"{"kind":"end","message":"success"}"#))
        let reports = values.dropFirst().dropLast()
        let text = reports.compactMap { $0["text"]?.stringValue }.joined()
        let raw = try #require(streamed["result"]?["raw"]?.stringValue)
        #expect(text == raw)
        #expect(raw.count > 2000)
        #expect(reports.count >= 2, "a long answer arrives in more than one report")
        #expect(reports.count < raw.count / 7, "the deltas are coalesced, not one notification each")

        // Without a token: no notification, and the same response but for the generation's identity.
        let before = server.output.messages.count
        let plain = try await server.call(2, "runStage", params + #","genId":"s-2"}"#)
        #expect(!server.output.messages[before...].contains { $0["method"] == "$/progress" })
        #expect(stable(plain["result"]) == stable(streamed["result"]))
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        server.saveTranscript("progress")
    }

    /// The result without what names or times the generation.
    func stable(_ result: JSONValue?) -> JSONValue? {
        guard case .object(var members) = result, case .object(var metadata) = members["metadata"] else { return nil }
        for key in ["genId", "files"] { members[key] = nil }
        for key in ["gen_id", "run_id", "created_at", "duration_ms"] { metadata[key] = nil }
        members["metadata"] = .object(metadata)
        return .object(members)
    }
}
