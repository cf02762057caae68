import Foundation
import ModelProviders
import StageEngine
import TestSupport
import Testing

@Suite("Budgets: caps per request, job and process, refused before sending")
struct BudgetTests {
    @Test("a request over the per-request cap is refused, saying which cap, its limit and the call's need")
    func perRequest() async throws {
        let ledger = BudgetLedger()
        do {
            _ = try await ledger.reserve(
                tokens: 5000,
                cost: nil,
                job: nil,
                budgets: Budgets(request: BudgetCap(tokens: 4000))
            )
            Issue.record("reserved past the cap")
        } catch {
            #expect(error.kind == .budgetExceeded)
            #expect(
                error.message
                    == "the token budget per request is 4000 tokens and this call may use up to 5000 tokens; "
                    + "lower maxTokens, shorten the prompt or raise budgets.request.tokens in stagerunner.yaml"
            )
            #expect(error.budget?.scope == .request)
            #expect(error.budget?.limit == 4000)
        }
    }

    @Test("job budgets are per budgetScope and count what was spent")
    func perJob() async throws {
        let ledger = BudgetLedger()
        let budgets = Budgets(job: BudgetCap(costUsd: 0.01))
        let first = try await ledger.reserve(tokens: 10, cost: 0.006, job: "batch-1", budgets: budgets)
        await ledger.settle(first, tokens: 10, cost: 0.006)
        do {
            _ = try await ledger.reserve(tokens: 10, cost: 0.006, job: "batch-1", budgets: budgets)
            Issue.record("reserved past the job's cap")
        } catch {
            #expect(
                error.message
                    == "the cost budget of job 'batch-1' is $0.01: $0.006 spent, and this call may use up to $0.006; "
                    + "raise budgets.job.costUsd in stagerunner.yaml or use another budgetScope"
            )
            #expect(
                error.budget
                    == BudgetRefusal(
                        scope: .job,
                        scopeId: "batch-1",
                        unit: .costUsd,
                        limit: 0.01,
                        spent: 0.006,
                        reserved: 0,
                        needed: 0.006
                    )
            )
        }
        // Another job has its own budget; calls without a scope are not a job's.
        _ = try await ledger.reserve(tokens: 10, cost: 0.006, job: "batch-2", budgets: budgets)
        _ = try await ledger.reserve(tokens: 10, cost: 0.006, job: nil, budgets: budgets)
        #expect(await ledger.spent(job: "batch-1").cost == 0.006)
    }

    @Test("the process budget counts calls in flight; a failed call gives its reservation back")
    func perProcess() async throws {
        let ledger = BudgetLedger()
        let budgets = Budgets(process: BudgetCap(tokens: 100))
        let held = try await ledger.reserve(tokens: 60, cost: nil, job: nil, budgets: budgets)
        do {
            _ = try await ledger.reserve(tokens: 50, cost: nil, job: nil, budgets: budgets)
            Issue.record("reserved past the process cap")
        } catch {
            #expect(
                error.message
                    == "the token budget of this server process is 100 tokens: 0 tokens spent (60 tokens held by calls "
                    + "in flight), and this call may use up to 50 tokens; raise budgets.process.tokens in "
                    + "stagerunner.yaml or restart the server"
            )
        }
        await ledger.settle(held, tokens: 0, cost: nil)
        let again = try await ledger.reserve(tokens: 50, cost: nil, job: nil, budgets: budgets)
        await ledger.settle(again, tokens: 70, cost: nil)
        #expect(await ledger.spent().tokens == 70)
    }

    /// Shared budgets kept in memory, recording what the ledger asks of them.
    final class RecordingSharedBudgets: SharedBudgets, @unchecked Sendable {
        let lock = NSLock()
        var asked: [(scope: String?, scopeCap: BudgetCap?)] = []
        var settled: [Int] = []
        var forgotten = 0
        let available: Bool

        init(available: Bool) { self.available = available }

        func hold(
            tokens: Int,
            cost: Double,
            scope: String?,
            workspaceCap: BudgetCap?,
            scopeCap: BudgetCap?
        )
            -> Result<SharedBudgetHold?, BudgetRefusal>
        {
            lock.withLock { asked.append((scope, scopeCap)) }
            return .success(available ? SharedBudgetHold(id: "\(tokens)") : nil)
        }

        func settle(_ hold: SharedBudgetHold, tokens: Int, cost: Double) {
            lock.withLock { settled.append(tokens) }
        }

        func forget() {
            lock.withLock { forgotten += 1 }
        }
    }

    @Test(
        "shared calls hold a named scope across servers, and the workspace's cap; without either the ledger is dropped"
    )
    func sharedScopes() async throws {
        let shared = RecordingSharedBudgets(available: true)
        let ledger = BudgetLedger(shared: shared)
        let budgets = Budgets(job: BudgetCap(tokens: 100))
        let named = try await ledger.reserve(tokens: 10, cost: nil, job: "cohort", budgets: budgets, shared: true)
        await ledger.settle(named, tokens: 7, cost: nil)
        await ledger.open(job: "job-1", tokens: 0, cost: 0)
        // This process runs job-1: its cap stays here, and no shared cap is in force for the call.
        let owned = try await ledger.reserve(tokens: 20, cost: nil, job: "job-1", budgets: budgets, shared: true)
        await ledger.settle(owned, tokens: 20, cost: nil)
        #expect(shared.forgotten == 1)
        let capped = Budgets(job: BudgetCap(tokens: 100), workspace: BudgetCap(tokens: 1000))
        let workspace = try await ledger.reserve(tokens: 5, cost: nil, job: "job-1", budgets: capped, shared: true)
        await ledger.settle(workspace, tokens: 5, cost: nil)
        // Not shared (the embedded provider): never asked.
        _ = try await ledger.reserve(tokens: 30, cost: nil, job: "cohort", budgets: budgets)
        #expect(shared.asked.map(\.scope) == ["cohort", nil], "the own job's cap stays in this process")
        #expect(shared.asked.map(\.scopeCap) == [BudgetCap(tokens: 100), nil])
        #expect(shared.settled == [7, 5])
        #expect(shared.forgotten == 1)
        #expect(await ledger.spent(job: "cohort") == (0, 0), "a shared scope is not counted here")
        #expect(await ledger.spent(job: "job-1").tokens == 25)
        #expect(await ledger.spent().tokens == 32)
    }

    @Test("where nothing can be shared (a read-only workspace), this process holds a named scope's cap")
    func unsharedFallback() async throws {
        let ledger = BudgetLedger(shared: RecordingSharedBudgets(available: false))
        let budgets = Budgets(job: BudgetCap(tokens: 50))
        let first = try await ledger.reserve(tokens: 40, cost: nil, job: "cohort", budgets: budgets, shared: true)
        await ledger.settle(first, tokens: 40, cost: nil)
        await #expect(throws: ModelError.self) {
            try await ledger.reserve(tokens: 20, cost: nil, job: "cohort", budgets: budgets, shared: true)
        }
    }

    @Test("through the stage runner: refused before any byte is sent, as a budget error; the log records it")
    func stageRunnerRefuses() async throws {
        let server = try MockModelServer()
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                values:
                  concepts: []
                providers:
                  mock: {kind: openai, baseURL: "\(server.url("/v1"))", apiKeyEnv: MOCK_KEY}
                prices:
                  mock:never: {input: 1000000, output: 1000000}
                budgets:
                  process: {costUsd: 2}
                  request: {tokens: 100000}
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: ["MOCK_KEY": MockModelServer.key])
        // The model "never" answers: were a byte sent, this test would wait two minutes.
        var spec = StageRunSpec(stage: .draft, templateId: "systematic-analytical")
        spec.model = "mock:never"
        spec.maxTokens = 1
        spec.promptText = "12345678"  // 2 tokens + 1: $3 at a dollar a token, over the $2 cap
        let started = ContinuousClock.now
        do {
            _ = try await runner.run(spec)
            Issue.record("ran past the budget")
        } catch {
            #expect(error.kind == .budget)
            #expect(
                error.message
                    == "the cost budget of this server process is $2: $0 spent, and this call may use up to $3; "
                    + "raise budgets.process.costUsd in stagerunner.yaml or restart the server"
            )
            #expect(error.budget?.unit == .costUsd)
        }
        #expect(ContinuousClock.now - started < .seconds(60), "the model never answers: a sent call waits 120 s")
        let logged = try await runner.callLog.recent()
        #expect(logged.map(\.status) == ["error"])
        #expect(logged.first?.error?.hasPrefix("budget_exceeded: the cost budget") == true)
    }

    @Test("a per-request token cap bounds the answer of a request without maxTokens")
    func requestCapBoundsTheAnswer() async throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: ["stagerunner.yaml": "budgets:\n  request: {tokens: 10}\n"]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        var spec = StageRunSpec(stage: .draft, templateId: "systematic-analytical")
        spec.model = "m"
        spec.promptText = "Write at length about idle minds."  // 9 tokens: 1 left for the answer
        let result = try await runner.run(spec)
        #expect(result.metadata.usage?.completionTokens == 1)
        #expect(result.status == .truncated)
    }

    @Test("prices, limits, budgets and cache decode from stagerunner.yaml; a wrong type is a diagnostic")
    func configuration() async throws {
        let good = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "stagerunner.yaml": """
                prices:
                  local:my-model: {input: 0.1, output: 0.2}
                limits:
                  openai: {concurrency: 16, requestsPerMinute: 500, tokensPerMinute: 200000}
                budgets:
                  request: {tokens: 20000}
                  job: {costUsd: 5}
                  process: {tokens: 2000000, costUsd: 50}
                cache: {ttlSeconds: 604800, default: refresh}
                """
            ]
        )
        defer { good.remove() }
        #expect(try await WorkspaceEngine(workspace: good.workspace).validate().diagnostics.isEmpty)
        let bad = try TemporaryWorkspace(
            copying: "daydream",
            files: ["stagerunner.yaml": "limits:\n  openai: {concurrency: many}\n"]
        )
        defer { bad.remove() }
        let diagnostics = try await WorkspaceEngine(workspace: bad.workspace).validate().diagnostics
        #expect(diagnostics.map(\.message) == ["limits.openai.concurrency: has the wrong type (expected Int)"])
    }
}
