import Foundation
import JSON
import StageEngine
import Testing

/// Each built-in handler kind, run from task files in a temporary workspace.
@Suite("Task runner: handlers")
struct TaskHandlerTests {
    /// Runs the task file `task.yaml` (plus `files`) with `input`.
    static func run(
        _ task: String,
        files: [String: String] = [:],
        input: JSONValue = ["topic": "tides"],
        clientStages: (any ClientStageExecutor)? = nil,
        inspect: (TemporaryWorkspace) throws -> Void = { _ in }
    ) async throws -> TaskResult {
        let workspace = try TemporaryWorkspace(files: files.merging(["tasks/task.yaml": task]) { $1 })
        defer { workspace.remove() }
        let runner = try WorkspaceEngine(workspace: workspace.workspace, environment: [:])
        let definition = try TaskDefinition.load("tasks/task.yaml", workspace: workspace.workspace)
        let result = try await runner.runTask(
            definition,
            options: TaskRunOptions(input: input, runId: "r1", clientStages: clientStages)
        )
        try inspect(workspace)
        return result
    }

    @Test func templateRendersTheContext() async throws {
        let result = try await Self.run(
            """
            stages:
              promptTemplating:
                template: { text: "About {{ input.topic }} ({{ stage }}, cycle {{ refinementCycle }}, seed {{ seed.topic }})" }
            """
        )
        #expect(result.ok)
        #expect(result.context.data["promptTemplating"] == "About tides (promptTemplating, cycle 0, seed tides)")
    }

    @Test func anUndefinedTemplateVariableFailsTheStageNamingIt() async throws {
        let result = try await Self.run(
            """
            stages:
              promptTemplating: { template: prompt.j2 }
            """,
            files: ["tasks/prompt.j2": "line one\n{{ input.title }}\n"]
        )
        #expect(result.failedStage == "promptTemplating")
        #expect(result.error?.kind == .template)
        #expect(result.error?.message.contains("tasks/prompt.j2") == true)
        #expect(result.error?.message.contains("title") == true)
    }

    @Test func llmCallsTheModelAndRecordsMetrics() async throws {
        let result = try await Self.run(
            """
            model: embedded:scripted
            stages:
              promptTemplating: { template: { text: "Say hello about {{ input.topic }}" } }
              inference: { llm: { maxTokens: 100 } }
            """,
            files: [
                "stagerunner.yaml":
                    "embedded:\n  rules:\n    - promptContains: Say hello\n      response: Hello, tides.\n"
            ]
        )
        #expect(result.ok)
        #expect(result.context.data["inference"] == "Hello, tides.")
        #expect(result.llmMetrics.count == 1)
        let metric = try #require(result.llmMetrics.first)
        #expect(metric.task == "task")
        #expect(metric.stage == "inference")
        #expect(metric.provider == "embedded")
        #expect(metric.model == "scripted")
        #expect(metric.completionTokens == 4)
        #expect(metric.failed == false)
        #expect(metric.json["totalTokens"] == .integer(Int64((metric.promptTokens ?? 0) + 4)))
    }

    @Test("a task's model calls are in the call log, failed ones too, as stages' calls are")
    func modelCallsAreInTheCallLog() async throws {
        let task = """
            model: embedded:scripted
            stages:
              promptTemplating: { template: { text: "Say hello about {{ input.topic }}" } }
              inference: { llm: { maxTokens: 100 } }
              critique: { llm: openai:gpt-4o-mini }
            """
        let workspace = try TemporaryWorkspace(files: [
            "tasks/task.yaml": task,
            "stagerunner.yaml": "embedded:\n  rules:\n    - promptContains: Say hello\n      response: Hello, tides.\n",
        ])
        defer { workspace.remove() }
        let runner = try WorkspaceEngine(workspace: workspace.workspace, environment: [:])
        let definition = try TaskDefinition.load("tasks/task.yaml", workspace: workspace.workspace)
        let result = try await runner.runTask(
            definition,
            options: TaskRunOptions(input: ["topic": "tides"], runId: "r1")
        )
        #expect(result.failedStage == "critique")
        let calls = try await runner.callLog.recent().sorted { $0.id ?? 0 < $1.id ?? 0 }
        #expect(calls.map(\.stage) == ["inference", "critique"])
        #expect(calls.allSatisfy { $0.runId == "r1" && $0.genId == "task" && $0.templateId == nil })
        #expect(calls.map(\.status) == ["success", "error"])
        #expect(calls.first?.provider == "embedded")
        #expect(calls.first?.completionTokens == 4)
        #expect(calls.last?.error == "unavailable: provider 'openai' needs an API key: set OPENAI_API_KEY")
        #expect(calls.last?.costUsd == nil)
    }

    @Test func aTruncatedAnswerSetsTheFlagOrFailsWhenAsked() async throws {
        let files = [
            "stagerunner.yaml": "embedded:\n  rules:\n    - response: \"\(String(repeating: "word ", count: 50))\"\n"
        ]
        let flagged = try await Self.run("stages:\n  inference: { llm: { maxTokens: 5 } }\n", files: files)
        #expect(flagged.ok)
        #expect(flagged.context.flags["truncated"] == true)
        let failed = try await Self.run(
            "stages:\n  inference: { llm: { maxTokens: 5, failOnTruncation: true } }\n",
            files: files
        )
        #expect(failed.failedStage == "inference")
        #expect(
            failed.error?.message
                == "the model's answer was cut at the token limit (5); raise maxTokens or drop failOnTruncation"
        )
    }

    @Test func aModelErrorFailsTheStageAndIsRecordedAsAFailedMetric() async throws {
        let result = try await Self.run("stages:\n  inference: { llm: openai:gpt-4o-mini }\n")
        #expect(result.failedStage == "inference")
        #expect(result.error?.kind == .model)
        #expect(result.error?.message == "provider 'openai' needs an API key: set OPENAI_API_KEY")
        #expect(result.llmMetrics.first?.failed == true)
        #expect(!result.json.description.contains("sk-"))
    }

    @Test func promptRendersThenCallsAndCanParseTheAnswer() async throws {
        let result = try await Self.run(
            """
            stages:
              refine: { prompt: { text: "Return JSON for {{ input.topic }}", parse: json } }
            """,
            files: [
                "stagerunner.yaml":
                    "embedded:\n  rules:\n    - promptContains: Return JSON for tides\n      response: 'Sure: {\"a\": 1, \"b\": [true, null]}'\n"
            ]
        )
        #expect(result.ok)
        #expect(result.context.data["refine"] == ["a": 1, "b": [true, nil]])
    }

    @Test func parseReadsJSONScoresAndText() async throws {
        let json = try await Self.run(
            "stages:\n  ingestion: { template: { text: '```json\n{\"n\": 12345678901}\n```' } }\n  parsing: { parse: json }\n"
        )
        #expect(json.context.data["parsing"] == ["n": 12_345_678_901])
        let score = try await Self.run(
            "stages:\n  ingestion: { template: { text: \"Good.\\nSCORE: 7.5\" } }\n  parsing: { parse: in_last_line }\n"
        )
        #expect(score.context.data["parsing"] == 7.5)
    }

    @Test func aParseFailureAbortsTheTask() async throws {
        let result = try await Self.run(
            "stages:\n  ingestion: { template: { text: no json here } }\n  parsing: { parse: json }\n  integration: { template: { text: never } }\n"
        )
        #expect(result.failedStage == "parsing")
        #expect(result.error?.kind == .parse)
        #expect(result.error?.message.hasPrefix("the json parser could not read the text: ") == true)
        #expect(result.context.data["integration"] == nil)
    }

    @Test func parsingSomethingThatIsNotTextIsAClearError() async throws {
        let result = try await Self.run("stages:\n  parsing: { parse: json }\n")
        #expect(result.error?.message == "the json parser reads text, but the previous stage produced object")
    }

    @Test func writeStoresTheOutputAsAnArtifactOfTheRun() async throws {
        var written: String?
        let result = try await Self.run(
            "stages:\n  integration: { write: out/result.json }\n",
            inspect: { written = $0.read("data/tasks/task/r1/out/result.json") }
        )
        #expect(result.ok)
        #expect(result.context.data["integration"] == ["topic": "tides"])
        #expect(result.context.flags["lastArtifact"] == "data/tasks/task/r1/out/result.json")
        #expect(written == "{\n  \"topic\": \"tides\"\n}\n")
    }

    @Test func anArtifactThatCannotBeWrittenFailsTheStage() async throws {
        let result = try await Self.run(
            "stages:\n  integration: { write: out.json }\n",
            files: ["data/tasks/task": "a file where the run's folder should be"]
        )
        #expect(result.failedStage == "integration")
        #expect(result.error?.kind == .write)
        #expect(result.error?.message.hasPrefix("cannot write the artifact data/tasks/task/r1/out.json: ") == true)
    }

    @Test("an artifact is not written through a symbolic link that leads out of the workspace")
    func anArtifactStaysInTheWorkspace() async throws {
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let result = try await Self.run(
            """
            stages:
              ingestion:
                command: [python3, -c, "import json, os; os.symlink('\(outside)', os.environ['STAGERUNNER_WORK_DIR'] + '/out'); print(json.dumps({'output': 'x', 'flags': {}}))"]
              integration: { write: out/result.txt }
            """
        )
        #expect(result.failedStage == "integration")
        #expect(
            result.error?.message
                == "cannot write the artifact data/tasks/task/r1/out/result.txt: it leads outside the workspace through a symbolic link"
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == [])
    }

    static let echoStage = """
        import json, sys
        request = json.load(sys.stdin)
        print("working on", request["stage"], file=sys.stderr)
        json.dump({"output": {"upper": request["context"]["output"]["topic"].upper(), "stage": request["stage"]},
                   "flags": {"checked": True}}, sys.stdout)
        """

    @Test func commandReadsTheContextOnStdinAndAnswersOnStdout() async throws {
        var log: String?
        let result = try await Self.run(
            "stages:\n  ingestion: { command: [python3, stages/echo.py] }\n",
            files: ["tasks/stages/echo.py": Self.echoStage],
            inspect: { log = $0.read("data/tasks/task/r1/logs/stage-ingestion.log") }
        )
        #expect(result.ok)
        #expect(result.context.data["ingestion"] == ["upper": "TIDES", "stage": "ingestion"])
        #expect(result.context.flags["checked"] == true)
        #expect(log == "working on ingestion\n")
    }

    @Test func aCommandThatExitsNonZeroFailsWithTheTailOfStderr() async throws {
        let result = try await Self.run(
            "stages:\n  ingestion: { command: [python3, -c, \"import sys; print('no topic given', file=sys.stderr); sys.exit(3)\"] }\n"
        )
        #expect(result.failedStage == "ingestion")
        #expect(result.error?.kind == .command)
        #expect(
            result.error?.message
                == "command python3 -c import sys; print('no topic given', file=sys.stderr); sys.exit(3) exited with status 3: no topic given"
        )
        #expect(result.error?.data?["exitStatus"] == 3)
    }

    @Test func aCommandThatPrintsNoJSONBreaksTheContract() async throws {
        let result = try await Self.run("stages:\n  ingestion: { command: [echo, hello] }\n")
        #expect(result.error?.kind == .contract)
        #expect(
            result.error?.message.hasPrefix(
                "command echo hello must print {\"output\": …, \"flags\": {…}} as JSON on stdout"
            ) == true
        )
        #expect(result.error?.message.hasSuffix(": hello\n") == true)
    }

    @Test func aCommandAnsweringWithoutFlagsBreaksTheContract() async throws {
        let result = try await Self.run("stages:\n  ingestion: { command: [echo, '{\"output\": 1}'] }\n")
        #expect(result.error?.message == "stage ingestion result is missing the required member 'flags'")
    }

    @Test func aCommandPastItsTimeoutIsStopped() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await Self.run("stages:\n  ingestion: { command: [sleep, '120'], timeout: 0.3 }\n")
        // Well short of the command's two minutes, however loaded the machine.
        #expect(clock.now - start < .seconds(100))
        #expect(result.error?.kind == .timeout)
        #expect(
            result.error?.message
                == "stage ingestion (command sleep 120) ran past its timeout of 0.3 s; raise it with 'timeout' on the stage or 'stageTimeout' on the task"
        )
    }

    @Test func aMissingProgramIsAClearError() async throws {
        let result = try await Self.run("stages:\n  ingestion: { command: [no-such-program-xyz] }\n")
        #expect(result.error?.kind == .command)
        #expect(result.error?.message.hasPrefix("command no-such-program-xyz could not run: ") == true)
    }

    struct FakeClient: ClientStageExecutor {
        let handlerNames: Set<String>
        let answer: JSONValue

        func executeStage(handler: String, stage: TaskStage, context: JSONValue) async throws -> JSONValue {
            answer
        }
    }

    @Test func clientStagesNeedAClientThatDeclaredTheHandler() async throws {
        let task = "stages:\n  validateQuality: { client: quality }\n"
        let none = try await Self.run(task)
        #expect(
            none.error?.message
                == "stage validateQuality is handled by the client ('quality'), but no client is connected: run the task through `stagerunner serve` from a client that declares the handler"
        )
        let undeclared = try await Self.run(task, clientStages: FakeClient(handlerNames: ["style"], answer: nil))
        #expect(
            undeclared.error?.message
                == "stage validateQuality needs the client handler 'quality', which the client did not declare in initialize's capabilities.stageHandlers (it declared style)"
        )
        let answered = try await Self.run(
            task,
            clientStages: FakeClient(
                handlerNames: ["quality"],
                answer: ["output": "fine", "flags": ["validationFailed": false]]
            )
        )
        #expect(answered.ok)
        #expect(answered.context.data["validateQuality"] == "fine")
    }
}
