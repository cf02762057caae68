import Foundation
import JSON
import StageEngine
import TestSupport
import Testing

/// Task files: what loads, and the exact error for each kind of mistake.
@Suite("Task files")
struct TaskDefinitionTests {
    static func load(
        _ text: String,
        file: String = "tasks/t.yaml",
        files: [String: String] = [:]
    ) throws -> TaskDefinition {
        let workspace = try TemporaryWorkspace(files: files.merging([file: text]) { $1 })
        defer { workspace.remove() }
        return try TaskDefinition.load(file, workspace: workspace.workspace)
    }

    static func problem(_ text: String, file: String = "tasks/t.yaml", files: [String: String] = [:]) -> String? {
        do {
            _ = try load(text, file: file, files: files)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func aTaskFileLoadsItsHandlersAndSettings() throws {
        let task = try Self.load(
            """
            name: summary
            model: embedded:m
            maxRefinements: 1
            stageTimeout: 12.5
            flags: { score: number, note: [string, "null"] }
            stages:
              ingestion: { command: [python3, a.py], timeout: 2 }
              inference: { llm: { maxTokens: 10, temperature: 0.2 } }
              parsing: { parse: json }
              integration: { write: out.txt }
            """
        )
        #expect(task.name == "summary")
        #expect(task.model == "embedded:m")
        #expect(task.maxRefinements == 1)
        #expect(task.stageTimeout == .milliseconds(12_500))
        #expect(task.timeouts == [.ingestion: .seconds(2)])
        #expect(Set(task.handlers.keys) == [.ingestion, .inference, .parsing, .integration])
        #expect(task.handlers[.ingestion]?.summary == "command python3 a.py")
        #expect(task.flagSchemas.types["score"] == ["number"])
        #expect(task.flagSchemas.types["validationFailed"] == ["boolean"])
    }

    @Test func theNameDefaultsToTheFileNameAndJSONFilesLoadToo() throws {
        #expect(
            try Self.load(#"{"stages": {"parsing": {"parse": "json"}}}"#, file: "tasks/grade.task.json").name == "grade"
        )
    }

    @Test func mistakesNameTheFileThePlaceAndTheFix() {
        let cases: [(String, String)] = [
            (
                "stages:\n  inference: { lm: {} }\n",
                "tasks/t.yaml: stages.inference.lm: is not a handler; give one of template, llm, prompt, parse, schema, command, client, write"
            ),
            (
                "stages:\n  ingestion: { bogus: 1 }\n",
                "tasks/t.yaml: stages.ingestion.bogus: is not a handler; give one of template, llm, prompt, parse, schema, command, client, write"
            ),
            (
                "stages:\n  ingestion: { timeout: 3 }\n",
                "tasks/t.yaml: stages.ingestion: names no handler; give one of template, llm, prompt, parse, schema, command, client, write"
            ),
            (
                "stages:\n  inference: { llm: {}, parse: json }\n",
                "tasks/t.yaml: stages.inference: names several handlers (llm, parse); a stage has exactly one"
            ),
            (
                "stages:\n  inference: { llm: {}, timout: 3 }\n",
                "tasks/t.yaml: stages.inference.timout: is not a known setting; expected llm, timeout"
            ),
            (
                "stages:\n  inference: { llm: {}, timeout: -1 }\n",
                "tasks/t.yaml: stages.inference.timeout: must be a number of seconds above 0 and at most 86400, not -1"
            ),
            (
                "stage: {}\n",
                "tasks/t.yaml: stage: is not a known setting; expected name, description, model, maxRefinements, stageTimeout, flags, stages"
            ),
            (
                "name: x\n",
                "tasks/t.yaml: stages: is required: map stage names (ingestion, preProcessing, promptTemplating, inference, parsing, validateStructure, validateQuality, critique, refine, finalValidation, integration) to handlers"
            ),
            (
                "stages:\n  parsing: { parse: yaml }\n",
                "tasks/t.yaml: stages.parsing.parse: unknown parser 'yaml'; known parsers: complex, essay_block, essay_block_lenient, essay_idea_last, identity, in_last_line, json"
            ),
            (
                "stages:\n  promptTemplating: { template: missing.j2 }\n",
                "tasks/t.yaml: stages.promptTemplating.template: 'tasks/missing.j2' does not exist"
            ),
            (
                "stages:\n  promptTemplating: { template: ../secret.txt }\n",
                "tasks/t.yaml: stages.promptTemplating.template: '../secret.txt' must be a relative path inside the task's folder, without '..'"
            ),
            (
                "stages:\n  integration: { write: /etc/passwd }\n",
                "tasks/t.yaml: stages.integration.write: '/etc/passwd' must be a relative path inside the run's folder, without '..'"
            ),
            (
                "stages:\n  integration: { write: out/.commands/4242 }\n",
                "tasks/t.yaml: stages.integration.write: 'out/.commands/4242' is where a run records its running commands; write elsewhere"
            ),
            (
                "stages:\n  ingestion: { command: [] }\n",
                "tasks/t.yaml: stages.ingestion.command: must be a non-empty list of arguments, the program first (for example [python3, stage.py])"
            ),
            (
                "maxRefinements: 1.5\nstages: {}\n",
                "tasks/t.yaml: maxRefinements: must be an integer from 0 to 100, not 1.5"
            ),
            (
                "flags: { score: decimal }\nstages: {}\n",
                "tasks/t.yaml: flags.score: must be a type or a list of types among array, boolean, null, number, object, string"
            ),
            (
                "name: a/b\nstages: {}\n",
                "tasks/t.yaml: name: 'a/b' must be letters, digits, '.', '_' or '-' (it names the run's folder)"
            ),
            ("stages: [1, 2]\n", "tasks/t.yaml: stages: must be an object, not array"),
            (
                "stages:\n  - x\n bad: [\n",
                "tasks/t.yaml:3: invalid YAML: while parsing a block mapping: did not find expected key"
            ),
        ]
        for (text, expected) in cases {
            #expect(Self.problem(text) == expected, "\(text)")
        }
    }

    @Test func aTemplateErrorNamesTheTemplateFileAndLine() {
        #expect(
            Self.problem("stages:\n  promptTemplating: { template: p.j2 }\n", files: ["tasks/p.j2": "one\n{% if %}\n"])?
                .hasPrefix("tasks/p.j2:2: ") == true
        )
    }

    @Test func anInvalidSchemaIsRejectedWhenTheTaskLoads() {
        let message = Self.problem(
            "stages:\n  validateStructure: { schema: s.json }\n",
            files: ["tasks/s.json": #"{"type": "object", "minProperties": "two"}"#]
        )
        #expect(message?.hasPrefix("tasks/s.json: invalid JSON Schema: ") == true)
        #expect(message?.contains("minProperties") == true)
    }

    @Test func aLoadedTaskIsKeptUntilItOrAFileItUsesChanges() async throws {
        let workspace = try TemporaryWorkspace(files: [
            "tasks/t.yaml": "stages:\n  promptTemplating: { template: p.j2 }\n",
            "tasks/p.j2": "first {{ input.topic }}",
        ])
        defer { workspace.remove() }
        let runner = try WorkspaceEngine(workspace: workspace.workspace, environment: [:])
        let first = try await runner.runTask(
            try await runner.loadTask("tasks/t.yaml"),
            options: .init(input: ["topic": "a"])
        )
        #expect(first.context.data["promptTemplating"] == "first a")
        try "second, longer {{ input.topic }}".write(
            toFile: workspace.copy.root + "/tasks/p.j2",
            atomically: true,
            encoding: .utf8
        )
        let second = try await runner.runTask(
            try await runner.loadTask("tasks/t.yaml"),
            options: .init(input: ["topic": "a"])
        )
        #expect(second.context.data["promptTemplating"] == "second, longer a")
    }
}
