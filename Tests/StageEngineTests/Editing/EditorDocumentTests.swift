import Jinja
import ModelProviders
import Testing

@testable import StageEngine

/// What an editor gets for a document it holds, unsaved text included: diagnostics, hover,
/// completion, definitions, references and outlines, from the engine alone.
@Suite("Editor documents")
struct EditorDocumentTests {
    static let template = "data/1_raw/templates/draft/creative-synthesis.txt"

    @Test("a document's kind comes from its path, and for YAML from what it holds")
    func kinds() {
        #expect(DocumentKind.of(Self.template, text: "") == .template(.draft, id: "creative-synthesis"))
        #expect(DocumentKind.of("data/1_raw/essay_templates.csv", text: "") == .templateCatalog(.essay))
        #expect(DocumentKind.of("data/cohorts/demo/membership.csv", text: "") == .membership)
        #expect(DocumentKind.of("data/membership.csv", text: "") == .membership)
        #expect(DocumentKind.of("stagerunner.yaml", text: "") == .configuration)
        #expect(DocumentKind.of("tasks/a.yaml", text: "name: a\nstages:\n  ingestion: {}\n") == .task)
        #expect(DocumentKind.of("p.yaml", text: "tasks:\n  - task: a.yaml\n") == .pipeline)
        #expect(DocumentKind.of("notes.txt", text: "") == .other)
    }

    @Test(
        "a template's unsaved text: syntax errors at their column, unknown filters and unprovided variables at their word"
    )
    func templateDiagnostics() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let broken = await runner.diagnostics(EditorDocument(path: Self.template, text: "line one\n{% if %}\n"))
        #expect(broken.count == 1 && broken.first?.code == "template.syntax" && broken.first?.range.start.line == 1)
        let found = await runner.diagnostics(
            EditorDocument(
                path: Self.template,
                text: "{{ concepts | nosuch }}\n{% set t = 1 %}{{ t }} {{ topic }} {{ idea_count }}\n"
            )
        )
        #expect(found.map(\.code) == ["template.unknown-filter", "template.unprovided-variable"])
        #expect(found[0].range == TextRange(TextPosition(line: 0, character: 14), TextPosition(line: 0, character: 20)))
        #expect(found[1].severity == .warning && found[1].message.hasPrefix("'topic' is not given by"))
        #expect(found[1].range.start == TextPosition(line: 1, character: 26))
        // An essay's template can count on its draft, an evaluation's on its essay.
        let essay = await runner.diagnostics(
            EditorDocument(path: "data/1_raw/templates/essay/synthesis-plain.txt", text: "{{ draft }} {{ response }}")
        )
        #expect(essay.map(\.message).allSatisfy { $0.hasPrefix("'response'") } && essay.count == 1)
    }

    @Test("a membership file's unsaved rows are checked against the catalogs")
    func membershipDiagnostics() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let text =
            "stage,gen_id,cohort_id,parent_gen_id,combo_id,template_id,llm_model_id\ndraft,d-x,demo,,combo-loop,no-such-template,m\n"
        let found = await runner.diagnostics(EditorDocument(path: "data/cohorts/demo/membership.csv", text: text))
        #expect(found.count == 1)
        #expect(found.first?.code == "membership.unknown-template" && found.first?.range.start.line == 1)
    }

    @Test("a task file's errors are placed at the key they name; a stage's problem at the stage")
    func taskDiagnostics() async throws {
        let temporary = try TemporaryWorkspace(copying: "research-task")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let bad = await runner.diagnostics(
            EditorDocument(path: "tasks/x.task.yaml", text: "name: x\nstages:\n  ingestion:\n    bogus: 1\n")
        )
        #expect(bad.count == 1 && bad.first?.range.start.line == 3, "\(bad)")
        #expect(bad.first?.message.contains("is not a handler") == true, "\(bad)")
        let missing = await runner.diagnostics(
            EditorDocument(
                path: "tasks/x.task.yaml",
                text: "name: x\nstages:\n  ingestion: { command: [not-a-program-here] }\n"
            )
        )
        #expect(missing.map(\.code) == ["task.stage-problem"] && missing.first?.range.start.line == 2)
    }

    @Test("hover, completion, definition, references and outline")
    func queries() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let template = EditorDocument(path: Self.template, text: "{{ concepts | up }}\n{{ idea_count }}")
        let hover = await runner.hover(template, at: TextPosition(line: 1, character: 5))
        #expect(hover?.hasPrefix("**idea_count** — from the values of stagerunner.yaml") == true, "\(hover ?? "")")
        let filters = await runner.completions(template, at: TextPosition(line: 0, character: 16))
        #expect(filters.contains { $0.label == "upper" && $0.kind == .function })
        let variables = await runner.completions(template, at: TextPosition(line: 1, character: 3))
        #expect(variables.map(\.label).contains("concepts") && !variables.contains { $0.label == "upper" })
        #expect(await runner.completions(template, at: TextPosition(line: 1, character: 0)).isEmpty, "outside a tag")

        let path = "data/cohorts/demo/membership.csv"
        let membership = EditorDocument(path: path, text: try #require(temporary.workspace.readText(path)))
        let definition = await runner.definition(membership, at: TextPosition(line: 1, character: 45))
        #expect(definition?.path == Self.template)
        let parent = await runner.definition(membership, at: TextPosition(line: 3, character: 30))
        #expect(parent?.path == path && parent?.range.start.line == 1, "\(String(describing: parent))")
        let references = await runner.references(template, at: TextPosition(line: 0, character: 0))
        #expect(references.map(\.path) == ["data/1_raw/draft_templates.csv", path])
    }

    @Test("CSV cells are read as the catalogs are: a quoted field with commas is one cell")
    func quotedCells() async throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let runner = try WorkspaceEngine(workspace: temporary.workspace)
        let path = "data/1_raw/draft_templates.csv"
        let text = """
            template_id,template_name,description,parser,generator,active
            creative-synthesis,Creative Synthesis,"Brainstorm, combine, then pick",essay_idea_last,llm,true

            """
        let catalog = EditorDocument(path: path, text: text)
        let line = String(catalog.line(1))
        let parserColumn = line.utf16.count - "essay_idea_last,llm,true".utf16.count + 2
        let hover = await runner.hover(catalog, at: TextPosition(line: 1, character: parserColumn))
        #expect(hover == "parser `essay_idea_last`", "\(hover ?? "nil")")
        let completion = await runner.completions(catalog, at: TextPosition(line: 1, character: parserColumn))
        #expect(completion.map(\.label).contains("in_last_line"))
    }
}
