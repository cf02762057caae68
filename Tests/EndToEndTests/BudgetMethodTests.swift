import Foundation
import JSON
import JSONRPC
import ModelProviders
import TestSupport
import Testing

/// Budget caps over the wire: -32017 with the cap in data.
@Suite("Budgets over runStage")
struct BudgetMethodTests {
    @Test(
        "a job over its token cap is refused with -32017, naming the cap; bad budgetScope and cache params",
        arguments: Transport.allCases
    )
    func jobCap(transport: Transport) async throws {
        let example = try ExampleCopy(
            "daydream",
            files: ["stagerunner.yaml": "budgets:\n  job: {tokens: 50}\n"]
        )
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, .ndjson)
        let params =
            #"{"stage":"draft","templateId":"systematic-analytical","model":"m","promptText":"Write at length about idle minds.","maxTokens":100,"budgetScope":"batch-1"}"#
        let refused = try await peer.call(1, "runStage", params)
        #expect(
            refused["error"]
                == json(
                    #"{"code":-32017,"data":{"budgetScope":"batch-1","cap":50,"hint":"raise the cap named in data.scope and data.unit under budgets in stagerunner.yaml","kind":"budget","needed":109,"reserved":0,"scope":"job","spent":0,"unit":"tokens"},"message":"Budget: the token budget of job 'batch-1' is 50 tokens: 0 tokens spent, and this call may use up to 109 tokens; raise budgets.job.tokens in stagerunner.yaml or use another budgetScope"}"#
                )
        )
        // Within the cap, and without a scope, the same request runs.
        let small = try await peer.call(
            2,
            "runStage",
            params.replacingOccurrences(of: #""maxTokens":100"#, with: #""maxTokens":10"#)
        )
        #expect(small["result"]?["status"] != nil)
        let unscoped = try await peer.call(
            3,
            "runStage",
            params.replacingOccurrences(of: #","budgetScope":"batch-1""#, with: "")
        )
        #expect(unscoped["result"]?["status"] != nil)
        let empty = try await peer.call(4, "runStage", #"{"stage":"draft","budgetScope":""}"#)
        #expect(
            empty["error"]
                == json(
                    #"{"code":-32602,"message":"Invalid params: params.budgetScope must not be empty","data":{"field":"params.budgetScope","problem":"must not be empty"}}"#
                )
        )
        let cache = try await peer.call(5, "runStage", #"{"stage":"draft","cache":"sometimes"}"#)
        #expect(
            cache["error"]
                == json(
                    #"{"code":-32602,"message":"Invalid params: params.cache must be use, refresh or off, not 'sometimes'","data":{"field":"params.cache","problem":"must be use, refresh or off, not 'sometimes'"}}"#
                )
        )
        peer.saveTranscript("budget-\(transport)")
    }
}
