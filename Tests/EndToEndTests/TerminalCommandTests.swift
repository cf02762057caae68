import Foundation
import JSON
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The generation workflow from the shell (`generate`, `gens`, `render`, `validate`, `templates`,
/// `costs`, `export`) on the built binary, as a terminal user and a script meet it.
@Suite("The generation commands")
struct TerminalCommandTests {
    /// Runs `stagerunner arguments` to its end: exit status, stdout, stderr.
    static func run(_ arguments: [String], timeout: Duration = .seconds(90)) async throws -> (Int32, String, String) {
        let process = try ServerProcess(arguments)
        process.closeInput()
        let status = try await process.exitStatus(timeout: timeout)
        try await process.output.waitForEnd()
        return (status, String(decoding: process.output.rawBytes, as: UTF8.self), process.standardError)
    }

    /// Runs a shell command line in `directory` with the built binary first on PATH, spawned as
    /// the tests spawn the server (posix_spawn, ``ServerProcess``): Foundation's `Process.run`,
    /// called from several tests at once, was seen to crash the test process.
    static func shell(_ line: String, in directory: String) async throws -> (Int32, String, String) {
        let binaries = (ServerProcess.binaryPath as NSString).deletingLastPathComponent
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        // sh -c SCRIPT $0 $1: ServerProcess puts the binary's path after the launcher ($0), the
        // directory is $1.
        let process = try ServerProcess(
            [directory],
            launcher: ["/bin/sh", "-c", "cd \"$1\" && " + line],
            environment: ["PATH": binaries + ":" + path]
        )
        process.closeInput()
        let status = try await process.exitStatus(timeout: .seconds(90))
        try await process.output.waitForEnd()
        return (status, String(decoding: process.output.rawBytes, as: UTF8.self), process.standardError)
    }

    /// `text` as one word of a shell command line.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// The element at `index` of a JSON array.
    static func element(_ value: JSONValue?, _ index: Int) -> JSONValue? {
        guard case .array(let items)? = value, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// The `stagerunner …` lines of the README's "From the terminal" example block.
    static func readmeExamples() throws -> [String] {
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## From the terminal\n").dropFirst().first)
        let block = try #require(section.components(separatedBy: "```sh\n").dropFirst().first)
        let code = try #require(block.components(separatedBy: "```").first)
        return code.split(separator: "\n").map(String.init).filter { $0.hasPrefix("stagerunner ") }
    }

    @Test("every example of the README's 'From the terminal' section runs and exits 0, in order")
    func readmeSection() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let lines = try Self.readmeExamples()
        #expect(lines.count >= 8)
        var outputs: [String: String] = [:]
        for line in lines {
            let (status, output, errors) = try await Self.shell(line, in: example.root)
            #expect(status == 0, "\(line): \(errors)\(output)")
            outputs[line] = output
        }
        #expect(
            outputs["stagerunner generate --cohort demo"]?.contains("done: 10 generations, 10 succeeded (0 reused)")
                == true
        )
        let essays = try #require(outputs["stagerunner export --cohort demo --by essay"])
        #expect(
            essays.hasPrefix(
                "essay_gen_id,cohort_id,combo_id,draft_gen_id,draft_template_id,essay_template_id,model,state,"
                    + "novelty,scientific-rigor,evaluations,mean_score\r\n"
            ),
            "\(essays)"
        )
        #expect(
            essays.contains(
                "e-creative-llm,demo,combo-loop,d-creative,creative-synthesis,synthesis-plain,sonnet-4,success,8.5,7.0,2,7.75\r\n"
            )
        )
    }

    @Test("generate, piped: a line per generation, the summary; again: all reused; --force: generated anew")
    func generatePiped() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let (status, output, errors) = try await Self.run(["generate", "--cohort", "demo", "--workspace", example.root])
        #expect(status == 0, "\(errors)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.count == 11, "\(lines)")
        let line = try Regex(
            #"^\d\d:\d\d:\d\d\.\d{3} (draft|essay|evaluation) (\S+) success (\d[\d,]* tokens \$\d+\.\d{4} \S+ m?s|copied)$"#
        )
        for generated in lines.dropLast() { #expect(generated.wholeMatch(of: line) != nil, "\(generated)") }
        // Drafts before essays before evaluations.
        let stages = lines.dropLast().map { $0.split(separator: " ")[1] }
        #expect(stages == ["draft", "draft", "essay", "essay", "essay"] + Array(repeating: "evaluation", count: 5))
        #expect(lines.last?.hasPrefix("done: 10 generations, 10 succeeded (0 reused); ") == true, "\(lines)")
        #expect(example.read("data/gens/evaluation/v-creative-llm-novelty/parsed.txt") == "8.5")

        let (again, repeated, _) = try await Self.run(["generate", "--cohort", "demo", "--workspace", example.root])
        #expect(again == 0)
        #expect(
            repeated.split(separator: "\n").dropLast().allSatisfy { $0.hasSuffix(" success reused") },
            "\(repeated)"
        )
        #expect(repeated.contains("done: 10 generations, 10 succeeded (10 reused); 0 tokens, $0.0000, "))

        let before = try #require(example.read("data/gens/draft/d-creative/metadata.json"))
        let (forced, regenerated, _) = try await Self.run([
            "generate", "--gen-id", "d-creative", "--force", "--json", "--workspace", example.root,
        ])
        #expect(forced == 0)
        let objects = try regenerated.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        #expect(objects.count == 2)
        #expect(
            objects[0]["genId"] == "d-creative" && objects[0]["reused"] == false && objects[0]["state"] == "success"
        )
        #expect(objects[1]["summary"]?["succeeded"] == 1 && objects[1]["summary"]?["reused"] == 0)
        #expect(example.read("data/gens/draft/d-creative/metadata.json") != before, "a new run id and time")
    }

    @Test("generate on a terminal redraws one progress line in place and ends with the summary")
    func generateLive() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let script = "/usr/bin/script"
        try #require(FileManager.default.isExecutableFile(atPath: script), "script(1) from util-linux is needed")
        let command = [ServerProcess.binaryPath, "generate", "--cohort", "demo", "--workspace", example.root]
            .map(TerminalCommandTests.shellQuoted).joined(separator: " ")
        let (status, screen, _) = try await Self.shell(
            "TERM=xterm COLUMNS=120 \(script) -qec \(TerminalCommandTests.shellQuoted(command)) /dev/null",
            in: example.root
        )
        #expect(status == 0, "\(screen)")
        #expect(screen.contains("\r\u{1B}[2K["), "the progress line is cleared and drawn again")
        #expect(screen.contains("10/10  done 10  reused 0  failed 0  "), "\(screen)")
        #expect(screen.contains("done: 10 generations, 10 succeeded (0 reused)"))
        // No per-generation lines: the terminal gets the progress line instead.
        #expect(!screen.contains(" draft d-creative success "))
    }

    /// The daydream example with a draft template that fails to render (an undefined variable)
    /// used by one draft, whose essay and evaluation then cannot run.
    static func brokenExample() throws -> ExampleCopy {
        try ExampleCopy(
            "daydream",
            files: [
                "data/1_raw/templates/draft/systematic-analytical.txt":
                    "Analyse {{ concepts | length }} of {{ topic }}.\n"
            ]
        )
    }

    @Test("a generation that fails is named, its children are skipped, and generate exits 1")
    func generateFailure() async throws {
        let example = try Self.brokenExample()
        defer { example.remove() }
        let (status, output, _) = try await Self.run(["generate", "--cohort", "demo", "--workspace", example.root])
        #expect(status == 1)
        #expect(output.contains(" draft d-analytic failed: undefined variable 'topic' in template "), "\(output)")
        #expect(output.contains(" essay e-analytic-llm skipped: its parent d-analytic failed"), "\(output)")
        #expect(output.contains(" evaluation v-analytic-llm-rigor skipped: its parent e-analytic-llm failed"))
        #expect(output.contains(" evaluation v-creative-llm-rigor success "), "the others still run")
        #expect(
            output.split(separator: "\n").last?.hasPrefix(
                "incomplete: 10 generations, 6 succeeded (0 reused), 1 failed, 3 skipped; "
            )
                == true,
            "\(output)"
        )
    }

    @Test("generate --dry-run calls nothing, names each problem, estimates tokens and cost; exit 1 on a problem")
    func dryRun() async throws {
        let example = try Self.brokenExample()
        defer { example.remove() }
        let (status, output, _) = try await Self.run([
            "generate", "--cohort", "demo", "--dry-run", "--json", "--workspace", example.root,
        ])
        #expect(status == 1)
        let plan = try JSONParser.parse(Array(output.utf8))
        #expect(plan["calls"] == 9 && plan["reused"] == 0 && plan["problems"] == 1)
        guard case .array(let items)? = plan["generations"] else {
            Issue.record("no generations: \(output)")
            return
        }
        let analytic = try #require(items.first { $0["genId"] == "d-analytic" })
        #expect(
            Self.element(analytic["problems"], 0)?.stringValue?.contains("undefined variable 'topic'") == true,
            "\(analytic)"
        )
        let copy = try #require(items.first { $0["genId"] == "e-creative-copy" })
        #expect(copy["action"] == "copy")
        let essay = try #require(items.first { $0["genId"] == "e-creative-llm" })
        // The draft is not generated yet: its longest answer is the upper end of the range.
        #expect(Self.element(essay["promptTokens"], 1)?.integerValue.map { $0 >= 4096 } == true, "\(essay)")
        #expect(!FileManager.default.fileExists(atPath: example.root + "/data/gens"), "nothing generated")

        let (plainStatus, plain, _) = try await Self.run([
            "generate", "--gen-id", "d-creative", "--dry-run", "--workspace", example.root,
        ])
        #expect(plainStatus == 0, "\(plain)")
        #expect(plain.contains("d-creative  draft  creative-synthesis  sonnet-4 (embedded)  generate"), "\(plain)")
        #expect(plain.contains("dry run: 1 generations, 1 model calls, 0 reused; prompts "))
    }

    @Test("Ctrl-C stops generate: the call under way is cancelled, nothing is committed, exit 130")
    func interrupt() async throws {
        let mock = try MockModelServer()
        // The example's configuration (its combos) plus the mock as a provider.
        let configuration = try String(
            contentsOfFile: repositoryRoot + "/examples/daydream/stagerunner.yaml",
            encoding: .utf8
        )
        let example = try ExampleCopy(
            "daydream",
            files: [
                "stagerunner.yaml": configuration + "\nproviders:\n" + MockedWorkspace.provider("mock", of: mock),
                "data/cohorts/demo/membership.csv": """
                stage,gen_id,cohort_id,parent_gen_id,combo_id,template_id,llm_model_id
                draft,d-held,demo,,combo-loop,systematic-analytical,mock:hold-generate

                """,
            ]
        )
        defer { example.remove() }
        let generate = try ServerProcess(
            ["generate", "--cohort", "demo", "--workspace", example.root],
            environment: ["MOCK_API_KEY": MockModelServer.key]
        )
        try await eventually("the call to reach the mock") {
            (try? mock.get("/hold/generate"))?["requests"] == 1
        }
        generate.signal(SIGINT)
        #expect(try await generate.exitStatus() == 130)
        try await generate.output.waitForEnd()
        let output = String(decoding: generate.output.rawBytes, as: UTF8.self)
        #expect(output.contains("incomplete: 1 generation, 0 succeeded (0 reused), 1 cancelled; "), "\(output)")
        #expect(generate.standardError.contains("stopping: generations under way are cancelled"))
        #expect(!FileManager.default.fileExists(atPath: example.root + "/data/gens/draft/d-held"))
        let (_, costs, _) = try await Self.run(["costs", "--by", "model", "--json", "--workspace", example.root])
        let report = try JSONParser.parse(Array(costs.utf8))
        #expect(report["total"]?["calls"] == 1, "the cancelled call is in the log: \(costs)")
    }

    @Test("a wrong cohort, gen id or option is one error line and exit 2")
    func wrongInvocations() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let cases: [([String], String)] = [
            (["generate", "--cohort", "nope"], "error: no cohort 'nope' in the membership (cohorts: demo)\n"),
            (["generate", "--gen-id", "d-nope"], "error: no generation 'd-nope' in the membership\n"),
            (
                ["gens", "show", "nope"],
                "error: no generation 'nope': it is neither in the membership nor in data/gens\n"
            ),
            (["costs", "--by", "week"], "error: --by: 'week' is not one of model, stage, cohort, provider, day\n"),
            (
                ["render", "d-creative", "--stage", "draft"],
                "error: give a gen id, or --stage and --template, not both\n"
            ),
            (
                ["render", "--stage", "draft", "--template", "x", "--values", "[1]"],
                "error: --values must be a JSON object, like '{\"topic\": \"kelp\"}'\n"
            ),
        ]
        for (arguments, message) in cases {
            let (status, output, errors) = try await Self.run(arguments + ["--workspace", example.root])
            #expect(status == 2, "\(arguments): \(errors)")
            #expect(errors == message, "\(arguments)")
            #expect(output.isEmpty)
        }
    }

    @Test("validate prints file:line:column: severity: code: message and exits 1 on an error")
    func validate() async throws {
        let example = try ExampleCopy(
            "daydream",
            files: ["data/1_raw/templates/draft/systematic-analytical.txt": "Analyse {{ concepts | nosuchfilter }}.\n"]
        )
        defer { example.remove() }
        let (status, output, errors) = try await Self.run(["validate", "--workspace", example.root])
        #expect(status == 1)
        #expect(
            output
                == "data/1_raw/templates/draft/systematic-analytical.txt:1: error: template.unknown-filter: "
                + "no filter named 'nosuchfilter'\n",
            "\(output)"
        )
        #expect(errors == "6 templates, 10 generations: 1 error, 0 warnings\n")
        // Opening a workspace writes its .stagerunner/: the example is copied, never used in place.
        let untouched = try ExampleCopy("daydream")
        defer { untouched.remove() }
        let (clean, none, _) = try await Self.run(["validate", "--workspace", untouched.root])
        #expect(clean == 0 && none.isEmpty)
    }

    @Test("render prints the prompt; a template error is file:line: error: message and exit 1")
    func render() async throws {
        let example = try Self.brokenExample()
        defer { example.remove() }
        let (status, prompt, _) = try await Self.run([
            "render", "--stage", "draft", "--template", "systematic-analytical", "--values",
            #"{"concepts": [1, 2], "topic": "kelp"}"#, "--workspace", example.root,
        ])
        #expect(status == 0)
        #expect(prompt == "Analyse 2 of kelp.\n")
        let (failed, output, errors) = try await Self.run(["render", "d-analytic", "--workspace", example.root])
        #expect(failed == 1 && output.isEmpty)
        #expect(errors.hasPrefix("data/1_raw/templates/draft/systematic-analytical.txt:1: error: "), "\(errors)")
        #expect(errors.contains("undefined variable 'topic'"))
    }

    @Test("gens lists states and scores; gens show has the texts, the calls and the family")
    func gens() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let (_, pending, _) = try await Self.run(["gens", "--status", "pending", "--json", "--workspace", example.root])
        guard case .array(let all) = try JSONParser.parse(Array(pending.utf8)) else {
            Issue.record("not an array: \(pending)")
            return
        }
        #expect(all.count == 10)
        _ = try await Self.run(["generate", "--workspace", example.root])
        let (status, list, _) = try await Self.run([
            "gens", "--stage", "evaluation", "--sort", "score", "--workspace", example.root,
        ])
        #expect(status == 0)
        let rows = list.split(separator: "\n").map(String.init)
        #expect(rows.first?.hasPrefix("gen id ") == true)
        #expect(rows[1].contains(" novelty ") && rows[1].contains(" 8.50 "), "highest score first: \(list)")
        #expect(rows.last == "5 generations: 5 success")

        let (shown, text, _) = try await Self.run(["gens", "show", "e-creative-llm", "--workspace", example.root])
        #expect(shown == 0)
        #expect(text.contains("parent      d-creative (draft, success)"), "\(text)")
        #expect(text.contains("children    v-creative-llm-novelty (success), v-creative-llm-rigor (success)"))
        #expect(text.contains("── prompt ") && text.contains("── raw ") && text.contains("── calls (1) "))
        let (_, json, _) = try await Self.run(["gens", "show", "e-creative-llm", "--json", "--workspace", example.root])
        let detail = try JSONParser.parse(Array(json.utf8))
        #expect(Self.element(detail["calls"], 0)?["provider"] == "embedded")
        #expect(detail["parent"]?["genId"] == "d-creative")
        #expect(detail["metadata"]?["gen_id"] == "e-creative-llm")
    }

    @Test("costs sums the call log by the dimensions asked, with a total; export writes CSV and JSON lines")
    func costsAndExport() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        _ = try await Self.run(["generate", "--workspace", example.root])
        let (_, json, _) = try await Self.run(["costs", "--by", "stage,cohort", "--json", "--workspace", example.root])
        let report = try JSONParser.parse(Array(json.utf8))
        #expect(report["total"]?["calls"] == 9, "a copy essay makes no call: \(json)")
        let evaluations = Self.element(report["lines"], 2)
        #expect(evaluations?["stage"] == "evaluation" && evaluations?["cohort"] == "demo")
        #expect(evaluations?["calls"] == 5)
        let (_, table, _) = try await Self.run(["costs", "--workspace", example.root])
        #expect(table.split(separator: "\n").last?.hasPrefix("total ") == true, "\(table)")

        let (_, lines, _) = try await Self.run([
            "export", "--cohort", "demo", "--stage", "evaluation", "--format", "jsonl", "--workspace", example.root,
        ])
        let rows = try lines.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        #expect(rows.count == 5)
        #expect(rows.first?["gen_id"] == "v-creative-llm-novelty" && rows.first?["score"] == 8.5)
        let file = example.root + "/out.csv"
        let (status, _, errors) = try await Self.run([
            "export", "--cohort", "demo", "--output", file, "--workspace", example.root,
        ])
        #expect(status == 0 && errors == "10 rows written to \(file)\n")
        let csv = try String(contentsOfFile: file, encoding: .utf8)
        #expect(csv.hasPrefix("gen_id,stage,cohort_id,combo_id,template_id,model,provider,parent_gen_id,state,score,"))
        #expect(csv.split(separator: "\r\n").count == 11)
    }

    @Test("an inactive template runs with a warning: generate's line, runStage's warnings")
    func inactiveTemplate() async throws {
        let catalog = try String(
            contentsOfFile: repositoryRoot + "/examples/daydream/data/1_raw/draft_templates.csv",
            encoding: .utf8
        )
        let example = try ExampleCopy(
            "daydream",
            files: [
                "data/1_raw/draft_templates.csv": catalog.replacingOccurrences(
                    of: "Pairwise analysis of the concepts,,llm,true",
                    with: "Pairwise analysis of the concepts,,llm,false"
                )
            ]
        )
        defer { example.remove() }
        let warning = "draft template 'systematic-analytical' is not active in data/1_raw/draft_templates.csv"
        let (status, output, _) = try await Self.run([
            "generate", "--gen-id", "d-analytic", "--workspace", example.root,
        ])
        #expect(status == 0)
        #expect(output.contains(" draft d-analytic success ") && output.contains(" (warning: \(warning))"), "\(output)")
        let server = try ServerProcess(["serve", "--workspace", example.root, "--log-level", "error"])
        let answer = try await server.call(1, "runStage", #"{"stage":"draft","genId":"d-analytic"}"#)
        #expect(answer["result"]?["reused"] == true)
        #expect(answer["result"]?["warnings"] == [.string(warning)], "\(answer)")
        let active = try await server.call(2, "runStage", #"{"stage":"draft","genId":"d-creative"}"#)
        #expect(active["result"]?["warnings"] == nil)
        server.closeInput()
        _ = try await server.exitStatus()
    }

    @Test(
        "every command's --help shows an example of it",
        arguments: [
            "generate", "gens list", "gens show", "render", "validate", "templates", "costs", "export", "task", "run",
        ]
    )
    func helpHasExamples(command: String) async throws {
        let words = command.split(separator: " ").map(String.init)
        let (status, help, _) = try await Self.run(words + ["--help"])
        #expect(status == 0)
        #expect(help.contains("Example"), "\(help)")
        #expect(
            help.split(separator: "\n").contains {
                $0.trimmingCharacters(in: .whitespaces).hasPrefix("stagerunner \(words[0])")
            },
            "no example line in \(help)"
        )
    }
}
