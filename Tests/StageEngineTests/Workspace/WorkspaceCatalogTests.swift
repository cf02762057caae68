import Foundation
import ModelProviders
import OutputParsing
import StageEngine
import Testing

@Suite("Workspace catalog")
struct WorkspaceCatalogTests {
    @Test("the daydream example is clean")
    func exampleIsClean() throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        let catalog = WorkspaceCatalog(workspace: temporary.workspace, knownParsers: Set(ParserRegistry.standard.names))
        #expect(catalog.diagnostics.map(\.description) == [])
        #expect(catalog.templates.all.map(\.id).sorted().count == 6)
        #expect(catalog.templates.entry(.essay, "parsed-from-draft")?.generator == .copy)
        #expect(catalog.templates.entry(.evaluation, "novelty")?.parser == "in_last_line")
        #expect(catalog.membership.ordered.count == 10)
        #expect(catalog.membership.row("e-creative-copy")?.parentGenId == "d-creative")
        #expect(catalog.membership.row("e-creative-copy")?.llmModelId == nil)
    }

    @Test("every problem is reported at once, with file, line and column")
    func everyProblem() throws {
        let temporary = try TemporaryWorkspace(
            copying: "daydream",
            files: [
                "data/1_raw/draft_templates.csv": """
                template_id,template_name,description,parser,generator,active
                creative-synthesis,A,,essay_idea_last,llm,true
                creative-synthesis,Again,,,llm,true
                ../escape,Bad,,,llm,true
                wrong-generator,W,,,copy,true
                maybe,M,,,llm,yes
                ghost,G,,no_such_parser,llm,true
                """,
                "data/1_raw/essay_templates.csv": """
                template_id,generator,active,description
                synthesis-plain,llm,true,x
                """,
                "data/1_raw/templates/draft/orphan.txt": "unused",
                "data/cohorts/demo/membership.csv": """
                stage,gen_id,parent_gen_id,template_id,llm_model_id
                draft,d1,,creative-synthesis,m
                draft,d1,,creative-synthesis,m
                essay,e1,,synthesis-plain,m
                essay,e2,v9,synthesis-plain,m
                evaluation,v1,d1,novelty,m
                evaluation,v2,e9,unknown-template,m
                evaluation,v3,e2,novelty,
                poem,p1,,x,m
                """,
            ],
            removing: ["data/1_raw/evaluation_templates.csv"]
        )
        defer { temporary.remove() }
        let catalog = WorkspaceCatalog(workspace: temporary.workspace, knownParsers: Set(ParserRegistry.standard.names))
        let known = ParserRegistry.standard.names.joined(separator: ", ")
        #expect(
            catalog.diagnostics.map(\.description) == [
                "data/1_raw/draft_templates.csv:3:1: error: template 'creative-synthesis' is already listed on line 2 [catalog.duplicate-id]",
                "data/1_raw/draft_templates.csv:4:1: error: template_id '../escape' must not start with '.' [catalog.invalid-id]",
                "data/1_raw/draft_templates.csv:5:21: error: generator 'copy' is not valid for draft templates; use 'llm' [catalog.invalid-generator]",
                "data/1_raw/draft_templates.csv:6:15: error: active must be true or false, not 'yes' [catalog.invalid-active]",
                "data/1_raw/draft_templates.csv:7:1: error: template 'ghost' has no text at data/1_raw/templates/draft/ghost.txt [catalog.missing-template-file]",
                "data/1_raw/draft_templates.csv:7:10: error: unknown parser 'no_such_parser'; known parsers: \(known) [catalog.unknown-parser]",
                "data/1_raw/essay_templates.csv:1:23: error: 'active' must be the last column [catalog.active-not-last]",
                "data/1_raw/evaluation_templates.csv: error: the evaluation template catalog is missing; create it with the header template_id,template_name,description,parser,generator,active [catalog.missing-file]",
                "data/1_raw/templates/draft/orphan.txt: warning: template file is not listed in data/1_raw/draft_templates.csv, so it cannot be used [catalog.unlisted-template]",
                "data/1_raw/templates/draft/systematic-analytical.txt: warning: template file is not listed in data/1_raw/draft_templates.csv, so it cannot be used [catalog.unlisted-template]",
                "data/cohorts/demo/membership.csv:3:7: error: gen_id 'd1' is already listed at data/cohorts/demo/membership.csv:2 [membership.duplicate-gen-id]",
                "data/cohorts/demo/membership.csv:4: error: essay e1 needs parent_gen_id (a draft) [membership.missing-parent]",
                "data/cohorts/demo/membership.csv:5: error: parent 'v9' of e2 is not in the membership [membership.unknown-parent]",
                "data/cohorts/demo/membership.csv:6: error: v1 uses evaluation template 'novelty', which is not in data/1_raw/evaluation_templates.csv [membership.unknown-template]",
                "data/cohorts/demo/membership.csv:6: error: the parent of evaluation v1 must be an essay, but d1 is a draft [membership.parent-stage]",
                "data/cohorts/demo/membership.csv:7: error: v2 uses evaluation template 'unknown-template', which is not in data/1_raw/evaluation_templates.csv [membership.unknown-template]",
                "data/cohorts/demo/membership.csv:7: error: parent 'e9' of v2 is not in the membership [membership.unknown-parent]",
                "data/cohorts/demo/membership.csv:8: error: v3 uses evaluation template 'novelty', which is not in data/1_raw/evaluation_templates.csv [membership.unknown-template]",
                "data/cohorts/demo/membership.csv:9:1: error: stage 'poem' is not one of draft, essay, evaluation [membership.invalid-stage]",
            ]
        )
        #expect(catalog.hasErrors)
    }

    @Test("a file that is not UTF-8 is reported as such, not skipped or called missing")
    func notUTF8() throws {
        let temporary = try TemporaryWorkspace(copying: "daydream")
        defer { temporary.remove() }
        for file in ["data/cohorts/demo/membership.csv", "data/1_raw/essay_templates.csv"] {
            try Data([0x73, 0x74, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: temporary.workspace.path(file)))
        }
        let catalog = WorkspaceCatalog(workspace: temporary.workspace)
        let codes = catalog.diagnostics.filter { $0.code == "file.not-utf8" }.map(\.description)
        #expect(
            codes == [
                "data/1_raw/essay_templates.csv: error: is not UTF-8 text; save it as UTF-8 [file.not-utf8]",
                "data/cohorts/demo/membership.csv: error: is not UTF-8 text; save it as UTF-8 [file.not-utf8]",
            ]
        )
    }
}
