import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

/// runStage, renderPrompt, listTemplates and validateWorkspace on the daydream example, over
/// both transports.
@Suite("Stage methods")
struct StageMethodTests {
    @Test(
        "a cohort through runStage: draft, copy essay, evaluation; files and metadata on disk",
        arguments: Transport.allCases
    )
    func runStage(transport: Transport) async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, .ndjson)
        let draft = try await peer.call(1, "runStage", #"{"stage":"draft","genId":"d-creative"}"#)["result"]
        #expect(draft?["status"] == "success")
        #expect(draft?["reused"] == false)
        #expect(draft?["metadata"]?["provider"] == "embedded")
        #expect(draft?["parsed"]?.stringValue?.hasPrefix("A background \"daydreaming loop\"") == true)
        #expect(example.read("data/gens/draft/d-creative/parsed.txt") == draft?["parsed"]?.stringValue)

        let copy = try await peer.call(2, "runStage", #"{"stage":"essay","genId":"e-creative-copy"}"#)["result"]
        #expect(copy?["raw"] == .null)
        #expect(copy?["parsed"] == draft?["parsed"])
        #expect(
            copy?["files"] == [
                "data/gens/essay/e-creative-copy/parsed.txt", "data/gens/essay/e-creative-copy/metadata.json",
            ]
        )

        // The evaluation's essay is generated first because the membership knows it.
        let evaluation = try await peer.call(3, "runStage", #"{"stage":"evaluation","genId":"v-creative-llm-rigor"}"#)[
            "result"
        ]
        #expect(evaluation?["score"] == 7.0)
        #expect(evaluation?["parsed"] == "7.0")
        #expect(example.read("data/gens/essay/e-creative-llm/metadata.json") != nil)

        let again = try await peer.call(4, "runStage", #"{"stage":"draft","genId":"d-creative"}"#)["result"]
        #expect(again?["reused"] == true)
        #expect(again?["metadata"] == draft?["metadata"])
        #expect(again?["score"] == nil, "a draft's parser gives no score, reused or not")
        let evaluationAgain = try await peer.call(
            6,
            "runStage",
            #"{"stage":"evaluation","genId":"v-creative-llm-rigor"}"#
        )
        #expect(evaluationAgain["result"]?["reused"] == true)
        #expect(evaluationAgain["result"]?["score"] == 7.0)

        let clipped = try await peer.call(5, "runStage", #"{"stage":"draft","genId":"d-creative","maxTextLength":10}"#)
        #expect(clipped["result"]?["raw"]?.stringValue?.utf8.count == 10)
        #expect(clipped["result"]?["textTruncated"] == true)
        peer.saveTranscript("run-stage-\(transport)")
    }

    @Test("runStage errors say what to fix", arguments: Transport.allCases)
    func runStageErrors(transport: Transport) async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, .ndjson)
        let cases: [(String, String)] = [
            (
                #"{"stage":"poem"}"#,
                #"{"code":-32602,"message":"Invalid params: params.stage must be one of draft, essay, evaluation, not 'poem'","data":{"field":"params.stage","problem":"must be one of draft, essay, evaluation, not 'poem'"}}"#
            ),
            (
                #"{}"#,
                #"{"code":-32602,"message":"Invalid params: params.stage is required but missing","data":{"field":"params.stage","problem":"is required but missing"}}"#
            ),
            (
                #"{"stage":"draft","genId":"../../etc"}"#,
                #"{"code":-32602,"message":"Invalid params: genId '../../etc' must not start with '.'","data":{"field":"params.genId","problem":"genId '../../etc' must not start with '.'"}}"#
            ),
            (
                #"{"stage":"draft","templateId":"creative-synthesis","model":"m"}"#,
                #"{"code":-32011,"message":"Template: undefined variable 'concepts' in template 'data/1_raw/templates/draft/creative-synthesis.txt' at line 4","data":{"kind":"template","file":"data/1_raw/templates/draft/creative-synthesis.txt","line":4,"hint":"fix the template at data.file, line data.line, or pass the missing values"}}"#
            ),
            (
                #"{"stage":"draft","templateId":"systematic-analytical","model":"acme:gpt-5","values":{"concepts":[]}}"#,
                #"{"code":-32012,"message":"Model: provider 'acme' of model 'acme:gpt-5' is not configured; available: anthropic, embedded, ollama, openai, openrouter","data":{"kind":"unavailable","field":"params.model","provider":"acme","retries":0,"hint":"check the model id and the provider's configuration"}}"#
            ),
            (
                #"{"stage":"essay","genId":"e-analytic-llm","maxTokens":1,"failOnTruncation":true}"#,
                #"{"code":-32014,"message":"Truncated: the model's answer for e-analytic-llm was cut at the token limit (finish reason length); raise maxTokens or shorten the prompt","data":{"kind":"truncated","field":"params.maxTokens","hint":"raise maxTokens, shorten the prompt, or drop failOnTruncation"}}"#
            ),
        ]
        for (index, (params, error)) in cases.enumerated() {
            let response = try await peer.call(index + 1, "runStage", params)
            #expect(response["error"] == json(error), "\(params)")
        }
        #expect(try await peer.call(99, "ping")["result"] == [:])
        peer.saveTranscript("run-stage-errors-\(transport)")
    }

    @Test("renderPrompt shows the prompt and its variables without calling a model", arguments: Transport.allCases)
    func renderPrompt(transport: Transport) async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, .lsp)
        let result = try await peer.call(
            1,
            "renderPrompt",
            #"{"stage":"draft","templateId":"systematic-analytical","model":"m","values":{"concepts":[{"name":"Sleep"},{"name":"Dreams"}]}}"#
        )["result"]
        #expect(
            result?["prompt"]
                == "Analyse each pair of these 2 concepts systematically:\n\n- SLEEP;\n- DREAMS\n\nFor every pair, state the strongest link in one sentence, then name the pair that matters most."
        )
        #expect(result?["variables"]?["idea_count"] == 3)
        #expect(result?["templateFile"] == "data/1_raw/templates/draft/systematic-analytical.txt")
        #expect(example.read("data/gens/draft") == nil, "rendering writes nothing")
        peer.saveTranscript("render-prompt-\(transport)")
    }

    @Test("listTemplates and validateWorkspace", arguments: Transport.allCases)
    func catalog(transport: Transport) async throws {
        let example = try ExampleCopy(
            "daydream",
            files: ["data/1_raw/evaluation_templates.csv": "template_id,generator,active\nnovelty,llm,true\n"]
        )
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, .ndjson)
        let essays = try await peer.call(1, "listTemplates", #"{"stage":"essay"}"#)["result"]?["templates"]
        #expect(
            essays
                == json(
                    #"""
                    [{"stage":"essay","id":"parsed-from-draft","name":"Parsed From Draft","description":"Use the draft's parsed idea as the essay; no model call","generator":"copy","active":true,"file":"data/1_raw/templates/essay/parsed-from-draft.txt"},
                     {"stage":"essay","id":"synthesis-plain","name":"Synthesis (plain)","description":"Write an essay from the draft's strongest idea","generator":"llm","active":true,"file":"data/1_raw/templates/essay/synthesis-plain.txt"}]
                    """#
                )
        )
        let report = try await peer.call(2, "validateWorkspace")["result"]
        #expect(report?["valid"] == false)
        #expect(report?["errors"] == 3)  // the missing column, and two rows naming scientific-rigor
        #expect(
            report?["diagnostics"]?.arrayPrefix(1)
                == json(
                    #"[{"file":"data/1_raw/evaluation_templates.csv","line":1,"column":0,"severity":"error","code":"catalog.missing-column","message":"the header has no 'parser' column"}]"#
                )
        )
        peer.saveTranscript("catalog-\(transport)")
    }

    @Test(
        "mappings reach the template in the order written, in the request's values and in stagerunner.yaml, as in Jinja2"
    )
    func mappingOrder() async throws {
        let example = try ExampleCopy(
            "daydream",
            files: [
                "stagerunner.yaml": "values:\n  y: {zeta: 1, alpha: 2, mid: {b: 1, a: 2}}\n",
                "data/1_raw/templates/draft/systematic-analytical.txt":
                    "{% for k, v in y.items() %}{{ k }}={{ v }} {% endfor %}|{% for k in d %}{{ k }} {% endfor %}"
                    + "|{{ d|list }}|{{ d.values()|list }}|{{ d|tojson }}",
            ]
        )
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(.process, .ndjson)
        let rendered = try await peer.call(
            1,
            "renderPrompt",
            #"{"stage":"draft","templateId":"systematic-analytical","model":"m","values":{"d":{"zz":1,"aa":[2],"mm":{"q":1,"p":2}}}}"#
        )
        // What Jinja2 renders for the same values (tojson sorts keys, there as here).
        #expect(
            rendered["result"]?["prompt"]
                == #"zeta=1 alpha=2 mid={'b': 1, 'a': 2} |zz aa mm |['zz', 'aa', 'mm']|[1, [2], {'q': 1, 'p': 2}]|{"aa": [2], "mm": {"p": 2, "q": 1}, "zz": 1}"#,
            "\(rendered)"
        )
    }

    @Test("validateWorkspace reports a filter or test that renderPrompt would refuse, at its line")
    func unknownFilter() async throws {
        let example = try ExampleCopy(
            "daydream",
            files: ["data/1_raw/templates/draft/systematic-analytical.txt": "Hello\n{{ concepts | nosuchfilter }}\n"]
        )
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(.process, .ndjson)
        let report = try #require(try await peer.call(1, "validateWorkspace")["result"])
        #expect(report["valid"] == false)
        #expect(
            report["diagnostics"]
                == json(
                    #"[{"file":"data/1_raw/templates/draft/systematic-analytical.txt","line":2,"column":0,"severity":"error","code":"template.unknown-filter","message":"no filter named 'nosuchfilter'"}]"#
                )
        )
    }

    @Test("validateWorkspace lists the first 1,000 diagnostics and counts the rest; runStage finds a row past them")
    func manyDiagnostics() async throws {
        let header = "stage,gen_id,cohort_id,parent_gen_id,combo_id,template_id,llm_model_id\n"
        let broken = (0..<1_500).map { "sketch,s\($0),big,,combo-loop,creative-synthesis,m\n" }.joined()
        let example = try ExampleCopy(
            "daydream",
            files: [
                "data/cohorts/big/membership.csv": header + broken + "draft,late,big,,combo-loop,creative-synthesis,m\n"
            ]
        )
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(.process, .ndjson)
        let report = try #require(try await peer.call(1, "validateWorkspace")["result"])
        #expect(report["errors"] == 1_500)
        #expect(report["diagnosticsOmitted"] == 500)
        guard case .array(let listed)? = report["diagnostics"] else {
            Issue.record("no diagnostics in \(report)")
            return
        }
        #expect(listed.count == 1_000)
        #expect(
            listed.first
                == json(
                    #"{"file":"data/cohorts/big/membership.csv","line":2,"column":1,"severity":"error","code":"membership.invalid-stage","message":"stage 'sketch' is not one of draft, essay, evaluation"}"#
                )
        )
        let run = try await peer.call(2, "runStage", #"{"stage":"draft","genId":"late"}"#)
        #expect(run["result"]?["metadata"]?["template_id"] == "creative-synthesis", "\(run)")
    }
}

extension JSONValue {
    /// The first `count` elements of an array.
    func arrayPrefix(_ count: Int) -> JSONValue? {
        guard case .array(let elements) = self else { return nil }
        return .array(Array(elements.prefix(count)))
    }
}
