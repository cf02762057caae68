import Foundation
import JSON
import TestSupport
import Testing

/// What the security model promises, checked on the real binary: keys reach no output, and
/// nothing a client sends becomes a program that runs.
@Suite("Secrets and confinement", .serialized)
struct SecurityTests {
    /// A password in a provider's base URL: a credential too, though not an API key.
    static let urlSecret = "url-password-4f1c"

    /// The daydream example with the mock server as providers (one of each API, and one that
    /// cannot be reached), a task that runs a command, writes files and calls a model, one whose
    /// model call fails quoting the key, and a pipeline of both.
    static func workspace(_ mock: MockModelServer) throws -> ExampleCopy {
        try ExampleCopy(
            "daydream",
            files: [
                "stagerunner.yaml": """
                values:
                  concepts: [{name: Sleep, description: rest}]
                providers:
                  mock: {kind: openai, baseURL: "\(mock.url("/v1"))", apiKeyEnv: MOCK_API_KEY, streaming: true, retries: {attempts: 1}}
                  claude: {kind: anthropic, baseURL: "\(mock.url())", apiKeyEnv: MOCK_API_KEY, retries: {attempts: 1}}
                  down: {kind: openai, baseURL: "http://someone:\(urlSecret)@127.0.0.1:1/v1", apiKeyEnv: MOCK_API_KEY, retries: {attempts: 1}}
                defaultProvider: mock
                """,
                // The command prints its whole environment, to stdout (the stage's output, which
                // the next stage writes to a file) and to stderr (the stage's log).
                "tasks/leak.task.yaml": """
                name: leak
                model: mock:echo
                stages:
                  ingestion:
                    command: [python3, -c, "import json, os, sys; env = dict(os.environ); print(json.dumps(env), file=sys.stderr); print(json.dumps({'output': env, 'flags': {}}))"]
                  preProcessing: { write: environment.json }
                  promptTemplating: { template: { text: "Variables: {{ input | length }}" } }
                  inference: { llm: { maxTokens: 50 } }
                  integration: { write: answer.txt }
                """,
                "tasks/refused.task.yaml": """
                name: refused
                stages:
                  inference: { llm: { model: "claude:echo-key-401" } }
                  integration: { write: never.txt }
                """,
                "pipelines/leak.pipeline.yaml": """
                name: leak
                tasks:
                  - task: ../tasks/leak.task.yaml
                  - task: ../tasks/refused.task.yaml
                """,
            ]
        )
    }

    @Test("a key reaches no result, notification, log, file or program, whatever succeeds or fails")
    func keysNeverLeak() async throws {
        let mock = try MockModelServer()
        let example = try Self.workspace(mock)
        defer { example.remove() }
        let server = try ServerProcess(
            ["serve", "--workspace", example.root, "--log-level", "trace"],
            environment: ["MOCK_API_KEY": MockModelServer.key]
        )
        // A stage over HTTP, streamed with progress; plain model ids go to the mock.
        let stage = try await server.call(
            1,
            "runStage",
            #"{"stage":"draft","genId":"d-analytic","progressToken":"p1"}"#
        )["result"]
        #expect(stage?["metadata"]?["provider"] == "mock")
        #expect(stage?["raw"]?.stringValue?.hasPrefix("echo: Analyse each pair") == true)
        // Failures: a refused key, providers quoting the key in their error bodies, a provider
        // that cannot be reached at a URL holding a password.
        var id = 2
        for (model, message) in [
            (
                "fault-401",
                "Model: mock could not answer: authentication: mock refused the API key (HTTP 401): invalid x-api-key; check MOCK_API_KEY"
            ),
            (
                "echo-key-401",
                "Model: mock could not answer: authentication: mock refused the API key (HTTP 401): Incorrect API key provided: [redacted]; check MOCK_API_KEY"
            ),
            ("echo-key-400", "[redacted]"),
            ("claude:echo-key-401", "[redacted]"),
            ("echo-key-stream", "[redacted]"),
            ("down:echo", "cannot reach down at http://127.0.0.1:1/v1"),
        ] {
            let failing = try await server.call(
                id,
                "runStage",
                #"{"stage":"draft","templateId":"systematic-analytical","genId":"f\#(id)","model":"\#(model)"}"#
            )
            #expect(failing["error"]?["code"] == -32012, "\(model)")
            #expect(failing["error"]?["message"]?.stringValue?.contains(message) == true, "\(model): \(failing)")
            id += 1
        }
        // Tasks and a job: a command, files written, model calls that succeed and fail.
        let task = try await server.call(id, "runTask", #"{"task":"tasks/leak.task.yaml","runId":"leak-1"}"#)
        #expect(task["result"]?["ok"] == true, "\(task)")
        let refused = try await server.call(id + 1, "runTask", #"{"task":"tasks/refused.task.yaml"}"#)
        #expect(refused["result"]?["ok"] == false)
        #expect(refused["result"]?["error"]?["message"]?.stringValue?.contains("[redacted]") == true, "\(refused)")
        let job = try await server.call(
            id + 2,
            "runPipeline",
            #"{"pipeline":"pipelines/leak.pipeline.yaml","options":{"wait":true}}"#
        )
        #expect(job["result"]?["status"]?["state"] == "failed", "\(job)")
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        try await server.output.waitForEnd()

        // The command ran with the server's environment, less the key.
        let environment = try #require(example.read("data/tasks/leak/leak-1/environment.json"))
        #expect(environment.contains("\"PATH\""), "the command's environment was written where the search looks")
        #expect(!environment.contains("MOCK_API_KEY"))

        let key = Array(MockModelServer.key.utf8)
        #expect(server.standardError.contains("trace"), "the log was at trace level, the most talkative")
        for secret in [key, Array(Self.urlSecret.utf8)] {
            let name = String(decoding: secret, as: UTF8.self)
            #expect(!server.output.rawBytes.contains(secret), "the protocol stream holds \(name)")
            #expect(!server.standardError.contains(name), "the log holds \(name)")
        }
        var searched = 0
        let enumerator = FileManager.default.enumerator(atPath: example.root)!
        while let path = enumerator.nextObject() as? String {
            guard let data = FileManager.default.contents(atPath: example.root + "/" + path) else { continue }
            searched += 1
            #expect(data.range(of: Data(key)) == nil, "\(path) holds the key")
            if path != "stagerunner.yaml" {
                #expect(data.range(of: Data(Self.urlSecret.utf8)) == nil, "\(path) holds the URL's password")
            }
        }
        for written in [
            ".stagerunner/calls.sqlite", "data/tasks/leak/leak-1/logs/stage-ingestion.log",
            "data/tasks/leak/leak-1/answer.txt", "data/gens/draft/d-analytic/metadata.json",
        ] {
            #expect(FileManager.default.fileExists(atPath: example.root + "/" + written), "\(written) was not searched")
        }
        #expect(searched > 20)
        server.saveTranscript("secrets")
    }

    @Test("what a client sends cannot become a task file: a task written by a run is refused")
    func writtenTasksDoNotRun() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let server = try ServerProcess(["serve", "--workspace", example.root, "--log-level", "error"])
        // An inline task (which cannot run commands) writes its input, a task with a command, as
        // a file of its run; a job saves its input as input.json.
        let evil: JSONValue = ["stages": ["ingestion": ["command": ["touch", "../../../../pwned"]]]]
        let written = try await server.call(
            1,
            "runTask",
            #"{"task":{"name":"dropper","stages":{"integration":{"write":"evil.task.json"}}},"runId":"r1","input":\#(evil)}"#
        )
        #expect(written["result"]?["ok"] == true, "\(written)")
        #expect(example.read("data/tasks/dropper/r1/evil.task.json") != nil)
        let job = try await server.call(
            2,
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":\#(evil),"options":{"wait":true}}"#
        )
        let jobId = try #require(job["result"]?["jobId"]?.stringValue)
        for (index, file) in ["data/tasks/dropper/r1/evil.task.json", "jobs/\(jobId)/input.json"].enumerated() {
            let run = try await server.call(10 + index, "runTask", #"{"task":"\#(file)"}"#)
            #expect(run["error"]?["code"] == -32015, "\(run)")
            #expect(
                run["error"]?["message"]?.stringValue?.contains("where StageRunner writes what runs produce") == true,
                "\(run)"
            )
            let pipeline = try await server.call(
                20 + index,
                "runPipeline",
                #"{"pipeline":{"tasks":[{"task":"\#(file)"}]},"options":{"wait":true}}"#
            )
            #expect(pipeline["result"]?["status"]?["state"] == "failed", "\(pipeline)")
        }
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        #expect(!FileManager.default.fileExists(atPath: example.root + "/pwned"))
    }
}

extension Array where Element == UInt8 {
    func contains(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<($0 + needle.count)]) == needle }
    }
}
