import Foundation
import JSON
import StageEngine
import TestSupport
import Testing

/// The environment of the programs `command` stages run.
@Suite("Command environment")
struct CommandEnvironmentTests {
    /// Runs a command stage that reports four variables of its environment, in a workspace whose
    /// configuration names HOME as a provider's key variable.
    static func environmentSeen(command options: String) async throws -> JSONValue? {
        let temporary = try TemporaryWorkspace(
            files: [
                "stagerunner.yaml": """
                providers:
                  private: {kind: openai, baseURL: "http://127.0.0.1:1/v1", apiKeyEnv: HOME}
                """,
                "tasks/env.task.yaml": """
                stages:
                  ingestion:
                    command:
                      argv: [python3, -c, "import json, os; print(json.dumps({'output': {k: os.environ.get(k) for k in ['HOME', 'PATH', 'SET_BY_TASK', 'OPENAI_API_KEY']}, 'flags': {}}))"]
                      \(options)
                """,
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        let task = try TaskDefinition.load("tasks/env.task.yaml", workspace: temporary.workspace)
        let result = try await runner.runTask(task)
        #expect(result.ok, "\(result.error?.message ?? "")")
        return result.context.data["ingestion"]
    }

    @Test("a command inherits the server's environment but the provider keys, unless it passes them")
    func commandsDoNotInheritKeys() async throws {
        let home = try #require(ProcessInfo.processInfo.environment["HOME"])
        let stripped = try #require(try await Self.environmentSeen(command: "env: {SET_BY_TASK: set}"))
        #expect(stripped["HOME"] == .null, "a key variable of the configuration")
        #expect(stripped["OPENAI_API_KEY"] == .null, "a built-in provider's key variable")
        #expect(stripped["PATH"]?.stringValue != nil, "the rest is inherited")
        #expect(stripped["SET_BY_TASK"] == "set")
        let passed = try #require(try await Self.environmentSeen(command: "passEnv: [HOME]"))
        #expect(passed["HOME"]?.stringValue == home)
        let set = try #require(try await Self.environmentSeen(command: "env: {HOME: /elsewhere}"))
        #expect(set["HOME"] == "/elsewhere")
    }

    @Test("every variable reaches the program exactly as set, with nothing read past its end")
    func variablesArriveExactly() async throws {
        let variables = (0..<40).map { ("VARIABLE_\($0)", String(repeating: "v", count: $0)) }
        let env = variables.map { "\($0.0): '\($0.1)'" }.joined(separator: ", ")
        let temporary = try TemporaryWorkspace(
            files: [
                "tasks/env.task.yaml": """
                stages:
                  ingestion:
                    command:
                      argv: [python3, -c, "import json, os; print(json.dumps({'output': {k: v for k, v in os.environ.items() if k.startswith('VARIABLE_')}, 'flags': {}}))"]
                      env: {\(env)}
                """
            ]
        )
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        for _ in 0..<3 {
            let result = try await runner.runTask(
                try TaskDefinition.load("tasks/env.task.yaml", workspace: temporary.workspace)
            )
            let expected = JSONValue.object(Dictionary(uniqueKeysWithValues: variables.map { ($0.0, .string($0.1)) }))
            #expect(result.context.data["ingestion"] == expected)
        }
    }

    @Test(
        "passEnv must be a list of variable names",
        arguments: ["passEnv: HOME", "passEnv: [1]", "passEnv: ['A=B']", "passEnv: ['']"]
    )
    func passEnvIsChecked(setting: String) throws {
        let temporary = try TemporaryWorkspace(
            files: ["tasks/t.task.yaml": "stages:\n  ingestion:\n    command: {argv: [true], \(setting)}\n"]
        )
        defer { temporary.remove() }
        #expect(throws: TaskDefinitionError.self) {
            try TaskDefinition.load("tasks/t.task.yaml", workspace: temporary.workspace)
        }
    }
}
