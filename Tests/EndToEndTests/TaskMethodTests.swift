import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

/// runTask over the wire: the research example, client-handled stages through executeStage, and
/// the errors a client sees for bad task files.
@Suite("Task methods")
struct TaskMethodTests {
    @Test(
        "the research task: a draft fails its schema, is critiqued and refined, and passes",
        arguments: Transport.allCases
    )
    func researchTask(transport: Transport) async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, .ndjson)
        // A Python stage starts an interpreter: slow on a loaded machine, so a longer wait.
        peer.send(
            #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":"tasks/summary.task.yaml","input":{"topic":"Tide pools of the Atlantic"},"runId":"demo"}}"#
        )
        let response = try await peer.output.response(id: 1, timeout: .seconds(60))
        let result = try #require(response["result"], "\(response)")
        #expect(result["ok"] == true)
        #expect(result["refinementAttempts"] == 1)
        #expect(
            result["context"]?["data"]?["ingestion"] == [
                "topic": "Tide pools of the Atlantic", "keywords": ["tide", "pools", "atlantic"],
            ]
        )
        #expect(result["context"]?["flags"]?["validationFailed"] == false)
        let summary = try #require(example.read("data/tasks/research-summary/demo/summary.json"))
        #expect(summary.contains("\"confidence\": 0.72"))
        #expect(
            example.read("data/tasks/research-summary/demo/logs/stage-ingestion.log")?.contains("ingested topic")
                == true
        )
        peer.saveTranscript("run-task-\(transport)")
    }

    @Test(
        "a stage the client handles goes out as executeStage and its answer comes back in",
        arguments: Transport.allCases
    )
    func clientStage(transport: Transport) async throws {
        let workspace = try ExampleCopy(nil)
        defer { workspace.remove() }
        let peer = try ServerSetup(workspace: workspace.root).peer(transport, .ndjson)
        _ = try await peer.call(1, "initialize", #"{"capabilities":{"stageHandlers":["quality"]}}"#)
        let task =
            #"{"name":"graded","stages":{"ingestion":{"template":{"text":"draft about {{ input.topic }}"}},"validateQuality":{"client":"quality"}}}"#
        peer.send(#"{"jsonrpc":"2.0","id":2,"method":"runTask","params":{"task":\#(task),"input":{"topic":"kelp"}}}"#)
        try await peer.output.wait("executeStage") { messages, _ in messages.contains { $0["method"] == "executeStage" }
        }
        let request = try #require(peer.output.messages.first { $0["method"] == "executeStage" })
        #expect(request["params"]?["handler"] == "quality")
        #expect(request["params"]?["stage"] == "validateQuality")
        #expect(request["params"]?["context"]?["output"] == "draft about kelp")
        #expect(request["params"]?["context"]?["meta"]?["taskName"] == "graded")
        let id = try #require(request["id"])
        peer.send(
            #"{"jsonrpc":"2.0","id":\#(id),"result":{"output":{"grade":"A"},"flags":{"validationFailed":false}}}"#
        )
        let response = try await peer.output.response(id: 2)
        #expect(response["result"]?["ok"] == true)
        #expect(response["result"]?["context"]?["data"]?["validateQuality"] == ["grade": "A"])
        peer.saveTranscript("client-stage-\(transport)")
    }

    @Test("a client that answers executeStage with an error fails the stage with its message")
    func clientStageError() async throws {
        let workspace = try ExampleCopy(nil)
        defer { workspace.remove() }
        let peer = try ServerSetup(workspace: workspace.root).peer(.process, .ndjson)
        _ = try await peer.call(1, "initialize", #"{"capabilities":{"stageHandlers":["quality"]}}"#)
        peer.send(
            #"{"jsonrpc":"2.0","id":2,"method":"runTask","params":{"task":{"stages":{"critique":{"client":"quality"}}}}}"#
        )
        try await peer.output.wait("executeStage") { messages, _ in messages.contains { $0["method"] == "executeStage" }
        }
        let request = try #require(peer.output.messages.first { $0["method"] == "executeStage" })
        peer.send(#"{"jsonrpc":"2.0","id":\#(request["id"]!),"error":{"code":-32803,"message":"grader crashed"}}"#)
        let result = try await peer.output.response(id: 2)["result"]
        #expect(result?["ok"] == false)
        #expect(result?["failedStage"] == "critique")
        #expect(
            result?["error"]
                == [
                    "name": "ClientStageError",
                    "message": "the client's handler 'quality' answered executeStage with error -32803: grader crashed",
                ]
        )
    }

    @Test("bad task files get error -32015 naming the file, the place and the fix")
    func taskErrors() async throws {
        let example = try ExampleCopy(
            "research-task",
            files: ["tasks/broken.yaml": "stages:\n  infrence: { llm: {} }\n"]
        )
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(.process, .ndjson)
        let cases: [(String, String)] = [
            (
                #"{"task":"tasks/missing.yaml"}"#,
                #"{"code":-32015,"message":"Task: tasks/missing.yaml: no such task file in the workspace \#(example.root)","data":{"file":"tasks/missing.yaml","kind":"task"}}"#
            ),
            (
                #"{"task":"tasks/broken.yaml"}"#,
                #"{"code":-32015,"message":"Task: tasks/broken.yaml: stages.infrence: is not a stage; the stages are ingestion, preProcessing, promptTemplating, inference, parsing, validateStructure, validateQuality, critique, refine, finalValidation, integration","data":{"file":"tasks/broken.yaml","kind":"task","path":"stages.infrence"}}"#
            ),
            (
                #"{"task":"../outside.yaml"}"#,
                #"{"code":-32015,"message":"Task: ../outside.yaml: the task file must be a path relative to the workspace, inside it","data":{"file":"../outside.yaml","kind":"task"}}"#
            ),
            (
                #"{"task":{"stages":{"parsing":{"parse":"yaml"}}}}"#,
                #"{"code":-32015,"message":"Task: <inline>: stages.parsing.parse: unknown parser 'yaml'; known parsers: complex, essay_block, essay_block_lenient, essay_idea_last, identity, in_last_line, json","data":{"file":"<inline>","kind":"task","path":"stages.parsing.parse"}}"#
            ),
            (
                #"{"task":{"stages":{"ingestion":{"command":["rm","-rf","/"]}}}}"#,
                #"{"code":-32015,"message":"Task: <inline>: stages.ingestion.command: command handlers run only from task files in the workspace, not from a task given inline; put the task in a file and pass its path","data":{"file":"<inline>","kind":"task","path":"stages.ingestion.command"}}"#
            ),
            (
                #"{"task":7}"#,
                #"{"code":-32602,"message":"Invalid params: params.task must be a task file's path (relative to the workspace) or a task object, not number","data":{"field":"params.task","problem":"must be a task file's path (relative to the workspace) or a task object, not number"}}"#
            ),
            (
                #"{"task":{"stages":{}},"runId":"../x"}"#,
                #"{"code":-32602,"message":"Invalid params: params.runId must be 1 to 100 letters, digits, '.', '_' or '-' (it names the run's folder)","data":{"field":"params.runId","problem":"must be 1 to 100 letters, digits, '.', '_' or '-' (it names the run's folder)"}}"#
            ),
        ]
        for (index, (params, expected)) in cases.enumerated() {
            let response = try await peer.call(10 + index, "runTask", params)
            #expect(response["error"] == (try JSONParser.parse(Array(expected.utf8))), "\(params)")
        }
        // The connection survives every one of them.
        #expect(try await peer.call(99, "ping")["result"] == [:])
        peer.saveTranscript("run-task-errors")
    }

    @Test("cancelling runTask stops the command a stage is running")
    func cancelStopsTheCommand() async throws {
        let marker = "337.\(Int.random(in: 100...999))"
        let workspace = try ExampleCopy(
            nil,
            files: ["slow.yaml": "stages:\n  ingestion: { command: [sleep, '\(marker)'] }\n"]
        )
        defer { workspace.remove() }
        let peer = try ServerSetup(workspace: workspace.root).peer(.process, .ndjson)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":"slow.yaml"}}"#)
        try await eventually("the command starts") { Self.running("sleep \(marker)") }
        let start = ContinuousClock.now
        peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}"#)
        let response = try await peer.output.response(id: 1)
        #expect(response["error"]?["code"] == -32800)
        // Generous for a loaded machine; the command would run for 337 s.
        #expect(ContinuousClock.now - start < .seconds(120))
        try await eventually("the command is gone") { !Self.running("sleep \(marker)") }
        #expect(try await peer.call(2, "ping")["result"] == [:])
    }

    /// Whether a process with exactly this command line runs.
    static func running(_ commandLine: String) -> Bool {
        !processes(running: commandLine).isEmpty
    }

    /// The processes with exactly this command line, but those in `known` (entries of /proc).
    static func processes(running commandLine: String, except known: Set<String> = []) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard !known.contains(entry), let pid = pid_t(entry), Self.commandLine(of: pid) == commandLine else {
                return nil
            }
            return pid
        }
    }

    /// The command line of process `pid`, its program by name.
    static func commandLine(of pid: pid_t) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        var arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let program = arguments.first else { return nil }
        arguments[0] = (program as NSString).lastPathComponent  // spawned by its resolved path
        return arguments.joined(separator: " ")
    }

    @Test("stagerunner task prints the payload; exit 0 on success, 1 on failure, 2 for a bad task file")
    func taskCommand() async throws {
        let example = try ExampleCopy(
            "research-task",
            files: ["tasks/fails.yaml": "stages:\n  ingestion: { command: [python3, stages/ingest.py] }\n"]
        )
        defer { example.remove() }
        let workspace = ["--workspace", example.root]
        let success = try ServerProcess(
            ["task", "tasks/summary.task.yaml", "--input", #"{"topic":"Kelp"}"#, "--compact"] + workspace
        )
        #expect(try await success.exitStatus() == 0)
        let payload = try JSONParser.parse(success.output.rawBytes)
        #expect(payload["ok"] == true)
        #expect(payload["refinementAttempts"] == 1)
        #expect(payload["context"]?["meta"]?["taskName"] == "research-summary")

        let failure = try ServerProcess(["task", "tasks/fails.yaml", "--input", #"{"topic":"  "}"#] + workspace)
        #expect(try await failure.exitStatus() == 1)
        let failed = try JSONParser.parse(failure.output.rawBytes)
        #expect(failed["failedStage"] == "ingestion")
        #expect(
            failed["error"]?["message"]
                == "command python3 stages/ingest.py exited with status 2: the input needs a non-empty 'topic'"
        )

        let broken = try ServerProcess(["task", "tasks/none.yaml"] + workspace)
        #expect(try await broken.exitStatus() == 2)
        #expect(broken.standardError.contains("error: tasks/none.yaml: no such task file in the workspace"))

        let badInput = try ServerProcess(["task", "tasks/summary.task.yaml", "--input", "{topic"] + workspace)
        #expect(try await badInput.exitStatus() == 2)
        #expect(badInput.standardError.hasPrefix("error: --input is not JSON: "), "\(badInput.standardError)")
        #expect(!badInput.standardError.contains("USAGE"))
        let badWorkspace = try ServerProcess(["task", "tasks/summary.task.yaml", "--workspace", example.root + "/none"])
        #expect(try await badWorkspace.exitStatus() == 2)
        #expect(badWorkspace.standardError.hasPrefix("error: --workspace: "), "\(badWorkspace.standardError)")
    }
}

/// Dry runs: `runTask`/`runPipeline` with `dryRun: true` and `stagerunner task|run --dry-run`
/// check everything a run would meet and run nothing.
@Suite("Task and pipeline dry runs")
struct TaskDryRunTests {
    /// The research example plus a task whose stages would each fail: a program that is not
    /// there, a provider without its key, a filter that does not exist, a client handler with
    /// no client.
    static func example() throws -> ExampleCopy {
        try ExampleCopy(
            "research-task",
            files: [
                "tasks/broken.task.yaml": """
                name: broken
                stages:
                  ingestion: { command: [no-such-program-here, x] }
                  preProcessing: { command: [./missing.py] }
                  promptTemplating: { template: { text: "{{ input | nosuchfilter }}" } }
                  inference: { llm: { model: "anthropic:claude-sonnet-4" } }
                  validateQuality: { client: reviewer }

                """,
                "pipelines/mixed.yaml": """
                name: mixed
                tasks:
                  - { name: summary, task: ../tasks/summary.task.yaml }
                  - { name: broken, task: ../tasks/broken.task.yaml }
                  - { name: gone, task: ../tasks/none.task.yaml }

                """,
            ]
        )
    }

    static let brokenProblems: [String: [String]] = [
        "ingestion": ["the command 'no-such-program-here' is not found on PATH"],
        "preProcessing": ["the program ./missing.py is not an executable file in tasks/"],
        "promptTemplating": [
            "tasks/broken.task.yaml#stages.promptTemplating.template:1: no filter named 'nosuchfilter'"
        ],
        "inference": ["provider 'anthropic' needs an API key: set ANTHROPIC_API_KEY"],
        "validateQuality": [
            "stage validateQuality is handled by the client ('reviewer'), but no client is connected: "
                + "run the task through `stagerunner serve` from a client that declares the handler"
        ],
    ]

    static func problems(_ stages: JSONValue?) -> [String: [String]] {
        guard case .array(let items)? = stages else { return [:] }
        var found: [String: [String]] = [:]
        for item in items {
            guard case .string(let stage)? = item["stage"], case .array(let list)? = item["problems"] else { continue }
            let texts = list.compactMap(\.stringValue)
            if !texts.isEmpty { found[stage] = texts }
        }
        return found
    }

    @Test("runTask with dryRun: every stage's problem, exactly; nothing runs or is written")
    func runTaskDryRun() async throws {
        let example = try Self.example()
        defer { example.remove() }
        let server = try ServerProcess(
            ["serve", "--workspace", example.root, "--log-level", "error"],
            environment: ["ANTHROPIC_API_KEY": ""]
        )
        let ok = try await server.call(1, "runTask", #"{"task":"tasks/summary.task.yaml","dryRun":true}"#)
        #expect(ok["result"]?["dryRun"] == true && ok["result"]?["ok"] == true, "\(ok)")
        #expect(ok["result"]?["task"] == "research-summary")
        let broken = try await server.call(2, "runTask", #"{"task":"tasks/broken.task.yaml","dryRun":true}"#)
        #expect(broken["result"]?["ok"] == false)
        // Over the protocol there is a client: one that did not declare the handler.
        var expected = Self.brokenProblems
        expected["validateQuality"] = [
            "stage validateQuality needs the client handler 'reviewer', which the client did not declare "
                + "in initialize's capabilities.stageHandlers (it declared none)"
        ]
        #expect(Self.problems(broken["result"]?["stages"]) == expected, "\(broken)")
        let pipeline = try await server.call(3, "runPipeline", #"{"pipeline":"pipelines/mixed.yaml","dryRun":true}"#)
        let result = try #require(pipeline["result"], "\(pipeline)")
        #expect(result["ok"] == false && result["pipeline"] == "mixed")
        guard case .array(let tasks)? = result["tasks"], tasks.count == 3 else {
            Issue.record("three tasks: \(result)")
            return
        }
        #expect(tasks[0]["ok"] == true && tasks[1]["ok"] == false)
        #expect(
            tasks[2]["error"]?.stringValue?.hasPrefix("tasks/none.task.yaml: no such task file") == true,
            "\(tasks[2])"
        )
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        #expect(!FileManager.default.fileExists(atPath: example.root + "/data/tasks"), "no task ran")
        #expect(!FileManager.default.fileExists(atPath: example.root + "/jobs"), "no job started")
    }

    @Test("task --dry-run and run --dry-run from outside the workspace: it is found from the file's path")
    func commands() async throws {
        let example = try Self.example()
        defer { example.remove() }
        let parent = (example.root as NSString).deletingLastPathComponent
        let folder = (example.root as NSString).lastPathComponent
        let (status, output, _) = try await TerminalCommandTests.shell(
            "ANTHROPIC_API_KEY= stagerunner task \(folder)/tasks/broken.task.yaml --dry-run --compact",
            in: parent
        )
        #expect(status == 1, "\(output)")
        let checked = try JSONParser.parse(Array(output.utf8))
        #expect(Self.problems(checked["stages"]) == Self.brokenProblems)

        let (ran, lines, errors) = try await TerminalCommandTests.shell(
            "stagerunner run \(folder)/pipelines/research.pipeline.yaml --dry-run",
            in: parent
        )
        #expect(ran == 0, "\(errors)")
        #expect(
            lines
                == "summary (tasks/summary.task.yaml): ok\nreview (tasks/review.task.yaml): ok\n"
                + "dry run: 2 tasks, no problems\n"
        )
        #expect(!FileManager.default.fileExists(atPath: parent + "/jobs"), "the parent is not the workspace")
        #expect(!FileManager.default.fileExists(atPath: example.root + "/jobs"), "no job started")
    }
}

/// Mappings from JSON — a request's input, a command's output — reach templates in the order
/// written, as Jinja2 iterates a Python dict.
@Suite("Mapping order in tasks")
struct TaskMappingOrderTests {
    @Test("a runTask input and a command's JSON output are iterated in the order written")
    func order() async throws {
        let workspace = try ExampleCopy(
            nil,
            files: [
                "stagerunner.yaml": "",
                "seed.task.yaml": """
                name: seed
                stages:
                  ingestion: { template: { text: "{% for k, v in input.items() %}{{ k }}={{ v }} {% endfor %}" } }

                """,
                "emitted.task.yaml": """
                name: emitted
                stages:
                  ingestion: { command: [python3, emit.py] }
                  promptTemplating: { template: { text: "{{ input|list }} {{ input.mid.keys()|list }} {{ input|tojson }}" } }

                """,
                "emit.py": """
                import json, sys
                json.load(sys.stdin)
                json.dump({"output": {"zeta": 1, "alpha": 2, "mid": {"b": 1, "a": 2}}, "flags": {}}, sys.stdout)

                """,
            ]
        )
        defer { workspace.remove() }
        let server = try ServerProcess(["serve", "--workspace", workspace.root, "--log-level", "error"])
        let seeded = try await server.call(
            1,
            "runTask",
            #"{"task":"seed.task.yaml","input":{"zz":1,"aa":{"y":1,"x":2},"mm":3}}"#
        )
        #expect(seeded["result"]?["context"]?["output"] == "zz=1 aa={'y': 1, 'x': 2} mm=3 ", "\(seeded)")
        let emitted = try await server.call(2, "runTask", #"{"task":"emitted.task.yaml"}"#)
        #expect(
            emitted["result"]?["context"]?["output"]
                == #"['zeta', 'alpha', 'mid'] ['b', 'a'] {"alpha": 2, "mid": {"a": 2, "b": 1}, "zeta": 1}"#,
            "\(emitted)"
        )
        server.closeInput()
        _ = try await server.exitStatus()
    }
}
