import Foundation
import JSON
import ModelProviders
import StageEngine
import Testing

/// The task runner's rules (protocol/README.md section 8.7: stage order, skipped stages, the
/// `{output, flags}` contract and flag types, chaining, refinement cycles, timeouts, the result),
/// one test each, on tasks whose stages are Swift closures.
@Suite("Task runner: stage order, contract, chaining, refinement and result rules")
struct TaskRunnerRuleTests {
    /// Records the stages handlers saw, in order.
    actor Trace {
        var calls: [String] = []
        func add(_ call: String) { calls.append(call) }
    }

    static func handler(
        _ trace: Trace? = nil,
        _ body: @escaping @Sendable (StageInvocation) async throws -> StageOutput = {
            StageOutput(output: .string($0.stage.rawValue))
        }
    ) -> any TaskStageHandler {
        ClosureStageHandler { invocation in
            await trace?.add(invocation.stage.rawValue + (invocation.preRefinement ? "(pre)" : ""))
            return try await body(invocation)
        }
    }

    static func run(
        _ handlers: [TaskStage: any TaskStageHandler],
        input: JSONValue = ["topic": "tides"],
        maxRefinements: Int = 3,
        timeouts: [TaskStage: Duration] = [:],
        modelConfig: ModelConfig = .init()
    ) async throws -> TaskResult {
        let workspace = try TemporaryWorkspace()
        defer { workspace.remove() }
        let runner = try WorkspaceEngine(workspace: workspace.workspace, environment: [:])
        let task = TaskDefinition(name: "rules", handlers: handlers, timeouts: timeouts, maxRefinements: maxRefinements)
        return try await runner.runTask(
            task,
            options: TaskRunOptions(input: input, modelConfig: modelConfig, runId: "run-1")
        )
    }

    static func entries(_ result: TaskResult) -> [String] {
        result.logs.map { entry in
            var text = "\(entry.refinementCycle):\(entry.stage)"
            if entry.ok == true { text += " ok" }
            if entry.ok == false { text += " failed" }
            if entry.preRefinement == true { text += " pre" }
            if let reason = entry.reason { text += " (\(reason))" }
            return text
        }
    }

    @Test func stagesRunInTheCanonicalOrder() async throws {
        let trace = Trace()
        var handlers: [TaskStage: any TaskStageHandler] = [:]
        for stage in TaskStage.allCases.reversed() { handlers[stage] = Self.handler(trace) }
        let result = try await Self.run(handlers)
        #expect(result.ok)
        // critique and refine run too: no validation stage set validationFailed to false.
        #expect(await trace.calls == TaskStage.allCases.map(\.rawValue))
    }

    @Test func missingHandlersAreSkippedCleanly() async throws {
        let result = try await Self.run([.inference: Self.handler()])
        #expect(result.ok)
        #expect(result.logs.count == 11)
        #expect(
            result.logs.filter { $0.skipped == true }.map(\.stage)
                == TaskStage.allCases.filter { $0 != .inference }.map(\.rawValue)
        )
        #expect(result.logs.first?.reason == "no-handler")
    }

    @Test func contextHoldsDataPerStageFlagsAndCurrentStage() async throws {
        let seen = Trace()
        let result = try await Self.run([
            .ingestion: Self.handler { _ in StageOutput(output: ["notes": 3], flags: ["sources": 2]) },
            .inference: Self.handler { invocation in
                await seen.add(
                    "\(invocation.context.currentStage?.rawValue ?? "nil") \(invocation.context.data["ingestion"]!) \(invocation.context.flags["sources"]!)"
                )
                return StageOutput(output: "answer")
            },
        ])
        #expect(await seen.calls == [#"inference {"notes":3} 2"#])
        #expect(result.context.data["seed"] == ["topic": "tides"])
        #expect(result.context.data["inference"] == "answer")
        #expect(result.context.flags["sources"] == 2)
    }

    @Test func outputsChainThroughTheLastSuccessfulStageSkippingValidation() async throws {
        let inputs = Trace()
        let record: @Sendable (StageInvocation) async throws -> StageOutput = { invocation in
            await inputs.add("\(invocation.stage.rawValue)<-\(invocation.context.output)")
            return StageOutput(output: .string("out-of-\(invocation.stage.rawValue)"))
        }
        let result = try await Self.run([
            .ingestion: Self.handler(nil, record),
            .parsing: Self.handler(nil, record),
            .validateStructure: Self.handler(nil) { _ in
                StageOutput(output: "verdict", flags: ["validationFailed": false])
            },
            .finalValidation: Self.handler(nil, record),
        ])
        #expect(result.ok)
        #expect(
            await inputs.calls == [
                #"ingestion<-{"topic":"tides"}"#, #"parsing<-"out-of-ingestion""#,
                #"finalValidation<-"out-of-parsing""#,
            ]
        )
        #expect(result.context.data["validateStructure"] == "verdict")
    }

    @Test func flagTypesAreCheckedAgainstTheFlagSchemas() async throws {
        let result = try await Self.run([
            .validateStructure: Self.handler { _ in StageOutput(output: nil, flags: ["validationFailed": "yes"]) }
        ])
        #expect(!result.ok)
        #expect(result.failedStage == "validateStructure")
        #expect(result.error?.kind == .flagType)
        #expect(
            result.error?.message
                == "stage validateStructure set flag 'validationFailed' to a string; it must be boolean"
        )
    }

    @Test func aFlagMayNotChangeType() async throws {
        let result = try await Self.run([
            .ingestion: Self.handler { _ in StageOutput(output: nil, flags: ["mode": "fast"]) },
            .inference: Self.handler { _ in StageOutput(output: nil, flags: ["mode": 2]) },
        ])
        #expect(result.failedStage == "inference")
        #expect(result.error?.message == "stage inference changed the type of flag 'mode' from string to number")
    }

    @Test func theOutputFlagsContractIsEnforced() throws {
        #expect(
            throws: TaskError(
                .contract,
                "stage parsing must return an object {\"output\": …, \"flags\": {…}}, not array"
            )
        ) {
            try StageOutput(contract: [1, 2], stage: .parsing)
        }
        #expect(throws: TaskError(.contract, "stage parsing result is missing the required member 'output'")) {
            try StageOutput(contract: ["flags": [:]], stage: .parsing)
        }
        #expect(throws: TaskError(.contract, "stage parsing result is missing the required member 'flags'")) {
            try StageOutput(contract: ["output": 1], stage: .parsing)
        }
        #expect(throws: TaskError(.contract, "stage parsing flags must be an object, not string")) {
            try StageOutput(contract: ["output": 1, "flags": "none"], stage: .parsing)
        }
        #expect(
            try StageOutput(contract: ["output": nil, "flags": ["a": true]], stage: .parsing)
                == StageOutput(output: nil, flags: ["a": true])
        )
    }

    /// A task whose validation fails `failures` times, then passes; critique and refine record calls.
    static func refiningTask(_ trace: Trace, failures: Int, throwing: Bool = false) -> [TaskStage: any TaskStageHandler]
    {
        let attempts = Trace()
        return [
            .ingestion: handler(trace),
            .preProcessing: handler(trace) { _ in StageOutput(output: "prepared") },
            .inference: handler(trace) { invocation in
                StageOutput(output: .string("draft from \(invocation.context.output)"))
            },
            .validateStructure: handler(trace) { invocation in
                await attempts.add("x")
                if await attempts.calls.count <= failures {
                    if throwing { throw TaskError(.validation, "missing field 'title'") }
                    return StageOutput(
                        output: nil,
                        flags: ["validationFailed": true, "lastValidationError": "missing field 'title'"]
                    )
                }
                return StageOutput(output: nil, flags: ["validationFailed": false])
            },
            .critique: handler(trace) { _ in StageOutput(output: "add a title") },
            .refine: handler(trace) { _ in StageOutput(output: "refined draft", flags: ["refined": true]) },
            .integration: handler(trace),
        ]
    }

    @Test func refinementCyclesSkipIngestionAndPreProcessing() async throws {
        let trace = Trace()
        let result = try await Self.run(Self.refiningTask(trace, failures: 1))
        #expect(result.ok)
        #expect(
            result.logs.filter { $0.refinementCycle == 1 && $0.stage == "ingestion" }.first?.reason
                == "refinement-cycle"
        )
        #expect(
            result.logs.filter { $0.refinementCycle == 1 && $0.stage == "preProcessing" }.first?.reason
                == "refinement-cycle"
        )
        // The cycle restarts from what preProcessing produced in the first pass.
        #expect(result.context.data["inference"] == #"draft from "prepared""#)
    }

    @Test func preRefinementRunsCritiqueAndRefineBeforeValidation() async throws {
        let trace = Trace()
        let result = try await Self.run(Self.refiningTask(trace, failures: 1))
        #expect(
            await trace.calls == [
                "ingestion", "preProcessing", "inference", "validateStructure",
                "inference", "critique(pre)", "refine(pre)", "validateStructure", "integration",
            ]
        )
        #expect(
            Self.entries(result) == [
                "0:ingestion ok", "0:preProcessing ok", "0:promptTemplating (no-handler)", "0:inference ok",
                "0:parsing (no-handler)", "0:validateStructure ok", "1:refinement-trigger (validation-failed-flag)",
                "1:ingestion (refinement-cycle)", "1:preProcessing (refinement-cycle)",
                "1:promptTemplating (no-handler)",
                "1:inference ok", "1:parsing (no-handler)", "1:critique ok pre", "1:refine ok pre",
                "1:validateStructure ok",
                "1:validateQuality (no-handler)", "1:critique (already-pre-refined)", "1:refine (already-pre-refined)",
                "1:finalValidation (no-handler)", "1:integration ok",
            ]
        )
        // validateStructure saw refine's output, not inference's.
        #expect(result.context.data["integration"] == "integration")
    }

    @Test func alreadyPreRefinedStagesAreSkippedWithThatReason() async throws {
        let trace = Trace()
        let result = try await Self.run(Self.refiningTask(trace, failures: 1))
        let skipped = result.logs.filter { $0.reason == "already-pre-refined" }.map(\.stage)
        #expect(skipped == ["critique", "refine"])
    }

    @Test func critiqueAndRefineAreSkippedWhenValidationPassed() async throws {
        let trace = Trace()
        let result = try await Self.run(Self.refiningTask(trace, failures: 0))
        #expect(result.ok)
        #expect(result.refinementAttempts == 0)
        #expect(
            result.logs.filter { $0.stage == "critique" || $0.stage == "refine" }.map(\.reason) == [
                "validation-passed", "validation-passed",
            ]
        )
    }

    @Test func validationFailedStartsANewCycleWhileRefinementsRemain() async throws {
        let trace = Trace()
        let result = try await Self.run(Self.refiningTask(trace, failures: 2), maxRefinements: 3)
        #expect(result.ok)
        #expect(result.refinementAttempts == 2)
        #expect(result.logs.filter { $0.stage == "refinement-trigger" }.map(\.refinementCycle) == [1, 2])
    }

    @Test func aValidationErrorIsKeptAsLastValidationErrorWhileRetriesRemain() async throws {
        let trace = Trace()
        let seen = Trace()
        var handlers = Self.refiningTask(trace, failures: 1, throwing: true)
        handlers[.critique] = Self.handler { invocation in
            await seen.add("\(invocation.context.flags["lastValidationError"]!)")
            return StageOutput(output: "add a title")
        }
        let result = try await Self.run(handlers)
        #expect(result.ok)
        #expect(await seen.calls == [#"{"message":"missing field 'title'","name":"ValidationError"}"#])
        #expect(result.logs.first { $0.stage == "refinement-trigger" }?.reason == "validation-error")
        #expect(result.logs.first { $0.stage == "validateStructure" }?.error?.message == "missing field 'title'")
    }

    @Test func refinementTriggerEntriesCarryTheirReason() async throws {
        let trace = Trace()
        let flagged = try await Self.run(Self.refiningTask(trace, failures: 1))
        let thrown = try await Self.run(Self.refiningTask(Trace(), failures: 1, throwing: true))
        #expect(
            flagged.logs.first { $0.stage == "refinement-trigger" }?.json == [
                "stage": "refinement-trigger", "reason": "validation-failed-flag", "refinementCycle": 1,
            ]
        )
        #expect(thrown.logs.first { $0.stage == "refinement-trigger" }?.reason == "validation-error")
    }

    @Test func aStageErrorReturnsTheFailurePayloadWithFailedStage() async throws {
        let result = try await Self.run([
            .inference: Self.handler { _ in throw TaskError(.model, "rate limited (after 3 retries)") },
            .integration: Self.handler(),
        ])
        #expect(!result.ok)
        #expect(result.failedStage == "inference")
        let payload = result.json
        #expect(payload["failedStage"] == "inference")
        #expect(payload["error"] == ["name": "ModelError", "message": "rate limited (after 3 retries)"])
        #expect(payload["refinementAttempts"] == 0)
        #expect(payload["context"]?["currentStage"] == "inference")
        // Nothing ran after the failure.
        #expect(result.logs.last?.stage == "inference")
    }

    @Test func validationStillFailingAfterTheLastRefinementIsAFinalValidationFailure() async throws {
        let trace = Trace()
        let result = try await Self.run(Self.refiningTask(trace, failures: 10), maxRefinements: 2)
        #expect(!result.ok)
        #expect(result.failedStage == "final-validation")
        #expect(result.refinementAttempts == 2)
        #expect(result.error?.kind == .validation)
        #expect(result.error?.message == "validation still fails after 2 refinement cycle(s): missing field 'title'")
        // The last cycle ran critique and refine ahead of validation, then went on to the end.
        #expect(result.logs.filter { $0.stage == "integration" }.count == 1)
    }

    @Test func theSuccessPayloadCarriesLogsContextRefinementAttemptsAndMetrics() async throws {
        let result = try await Self.run([.integration: Self.handler()])
        let payload = result.json
        #expect(payload["ok"] == true)
        #expect(payload["refinementAttempts"] == 0)
        #expect(payload["llmMetrics"] == [])
        #expect(payload["failedStage"] == nil)
        #expect(payload["context"]?["meta"]?["taskName"] == "rules")
        #expect(payload["context"]?["meta"]?["workDir"] == "data/tasks/rules/run-1")
    }

    @Test func logEntriesHaveStageOkMsReasonCycleAndError() async throws {
        let result = try await Self.run([
            .ingestion: Self.handler(),
            .inference: Self.handler { _ in throw TaskError(.command, "exit 2") },
        ])
        let ran = result.logs[0].json
        #expect(ran["stage"] == "ingestion")
        #expect(ran["ok"] == true)
        #expect(ran["refinementCycle"] == 0)
        if case .double(let ms) = ran["ms"] { #expect(ms >= 0) } else { Issue.record("ms missing: \(ran)") }
        #expect(
            result.logs[1].json == [
                "stage": "preProcessing", "skipped": true, "reason": "no-handler", "refinementCycle": 0,
            ]
        )
        #expect(result.logs.last?.json["error"] == ["name": "CommandError", "message": "exit 2"])
        #expect(result.logs.last?.json["ok"] == false)
    }

    @Test func modelRoutingDefaultsAvailableAndCurrentModels() async throws {
        let plain = try await Self.run([.integration: Self.handler()])
        #expect(plain.context.availableModels == ["default"])
        #expect(plain.context.currentModel == "default")
        let routed = try await Self.run(
            [.integration: Self.handler()],
            modelConfig: ModelConfig(defaultModel: "embedded:fast", models: ["embedded:fast", "embedded:deep"])
        )
        #expect(routed.context.availableModels == ["embedded:fast", "embedded:deep"])
        #expect(routed.context.currentModel == "embedded:fast")
    }

    @Test func aStageTimeoutIsEnforced() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await Self.run(
            [
                .inference: Self.handler { _ in
                    try await Task.sleep(for: .seconds(120))
                    return StageOutput(output: "late")
                }
            ],
            timeouts: [.inference: .milliseconds(200)]
        )
        // Generous: on a loaded machine the tests' threads have been busy for 33 s; the stage sleeps 120 s.
        #expect(clock.now - start < .seconds(100))
        #expect(result.failedStage == "inference")
        #expect(result.error?.kind == .timeout)
        #expect(
            result.error?.message
                == "stage inference (swift closure) ran past its timeout of 0.2 s; raise it with 'timeout' on the stage or 'stageTimeout' on the task"
        )
    }

    @Test func aTimeoutInValidationIsAFailureNotARefinement() async throws {
        let result = try await Self.run(
            [
                .validateStructure: Self.handler { _ in
                    try await Task.sleep(for: .seconds(120))
                    return StageOutput(output: nil)
                }
            ],
            timeouts: [.validateStructure: .milliseconds(100)]
        )
        #expect(result.failedStage == "validateStructure")
        #expect(result.refinementAttempts == 0)
    }

    @Test func theDefaultProviderComesFromModelConfig() async throws {
        let workspace = try TemporaryWorkspace()
        defer { workspace.remove() }
        let runner = try WorkspaceEngine(workspace: workspace.workspace, environment: [:])
        let task = try TaskDefinition.inline(
            ["stages": ["inference": ["llm": ["model": "gpt-4o-mini"]]]],
            workspace: workspace.workspace
        )
        let routed = try await runner.runTask(
            task,
            options: TaskRunOptions(modelConfig: ModelConfig(defaultProvider: "openai"))
        )
        #expect(routed.error?.message == "provider 'openai' needs an API key: set OPENAI_API_KEY")
        #expect(routed.llmMetrics.first?.model == "openai:gpt-4o-mini")
        let plain = try await runner.runTask(task, options: TaskRunOptions(input: "hello"))
        #expect(plain.ok)
        #expect(plain.llmMetrics.first?.provider == "embedded")
    }

    @Test func theObserverSeesEveryStageStartAndEndInOrder() async throws {
        let events = Trace()
        let workspace = try TemporaryWorkspace()
        defer { workspace.remove() }
        let runner = try WorkspaceEngine(workspace: workspace.workspace, environment: [:])
        let task = TaskDefinition(name: "observed", handlers: Self.refiningTask(Trace(), failures: 1))
        let options = TaskRunOptions(input: ["topic": "tides"]) { event in
            switch event {
            case .stageStarted(let stage, let cycle, let pre):
                await events.add("start \(stage.rawValue) \(cycle)\(pre ? " pre" : "")")
            case .stageFinished(let entry): await events.add("end \(entry.stage) \(entry.ok == true ? "ok" : "failed")")
            case .refinementStarted(let cycle, let reason): await events.add("cycle \(cycle) \(reason)")
            case .modelCall: await events.add("model")
            }
        }
        let result = try await runner.runTask(task, options: options)
        #expect(result.ok)
        #expect(
            await events.calls == [
                "start ingestion 0", "end ingestion ok", "start preProcessing 0", "end preProcessing ok",
                "start inference 0", "end inference ok", "start validateStructure 0", "end validateStructure ok",
                "cycle 1 validation-failed-flag", "start inference 1", "end inference ok", "start critique 1 pre",
                "end critique ok", "start refine 1 pre", "end refine ok", "start validateStructure 1",
                "end validateStructure ok", "start integration 1", "end integration ok",
            ]
        )
    }
}
