import Foundation
import JSON
import ModelProviders
import TestSupport
import Testing

@testable import StageEngine

/// Runs of one generation that overlap share its model call, which goes on while any of them
/// still waits for it.
@Suite("Shared generations")
struct SharedGenerationTests {
    @Test("a shared model call goes on until the last of its waiters is cancelled, then its transfer is closed")
    func sharedCallEndsWithItsLastWaiter() async throws {
        let mock = try MockModelServer()
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                providers:
                  mock: {kind: openai, baseURL: "\(mock.url("/v1"))", apiKeyEnv: MOCK_KEY}
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: ["MOCK_KEY": MockModelServer.key])
        var spec = StageRunSpec(stage: .draft, genId: "shared", templateId: "systematic-analytical")
        spec.model = "mock:hold-shared"
        spec.promptText = "hold on"
        spec.cache = .off
        let first = Task { [spec] in try await runner.run(spec) }
        let second = Task { [spec] in try await runner.run(spec) }
        let deadline = ContinuousClock.now + .seconds(30)
        while await runner.inFlight.waiters("draft/shared") < 2 {
            #expect(ContinuousClock.now < deadline, "both runs to wait for one execution")
            try await Task.sleep(for: .milliseconds(5))
        }
        while try mock.get("/hold/shared")["requests"] != 1 {
            #expect(ContinuousClock.now < deadline, "the model call to reach the mock")
            try await Task.sleep(for: .milliseconds(20))
        }

        first.cancel()
        await #expect(throws: StageError.self) { try await first.value }
        #expect(await runner.inFlight.waiters("draft/shared") == 1)
        // The second run still waits, so the transfer goes on.
        #expect(try mock.get("/hold/shared") == ["requests": 1, "closed": 0, "closedAfter": []])

        second.cancel()
        do {
            _ = try await second.value
            Issue.record("the second run was not cancelled")
        } catch let error as StageError {
            #expect(error.kind == .cancelled)
        }
        while try mock.get("/hold/shared")["closed"] != 1 {
            #expect(ContinuousClock.now < deadline + .seconds(30), "the mock to see the connection closed")
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try mock.get("/hold/shared")["requests"] == 1)
        #expect(!FileManager.default.fileExists(atPath: temporary.workspace.root + "/data/gens/draft/shared"))
        #expect(try await runner.callLog.recent().map(\.status) == ["cancelled"])
    }
}
