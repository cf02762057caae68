import Foundation
import Jinja
import TestSupport
import Testing

/// Renders every case of Tests/TemplateCorpus with the Swift engine and compares with what Jinja2
/// rendered (goldens.json, written by render_jinja2.py).
@Suite("Template differential against Jinja2")
struct TemplateDifferentialTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("TemplateCorpus")

    struct Case {
        var name: String
        var template: String
        var context: [String: TemplateValue]
        var options: TemplateOptions
    }

    enum Verdict: Equatable {
        case output(String)
        case error(String)
    }

    static func loadCases() throws -> [Case] {
        let files = try FileManager.default
            .contentsOfDirectory(atPath: corpus.appendingPathComponent("cases").path)
            .filter { $0.hasSuffix(".json") }
            .sorted()
        var cases: [Case] = []
        for file in files {
            let text = try String(contentsOf: corpus.appendingPathComponent("cases/\(file)"), encoding: .utf8)
            guard case .array(let items) = try TemplateValue(json: text) else {
                throw CorpusProblem("\(file) is not a JSON array")
            }
            for item in items {
                guard case .object(let object) = item, case .string(let name)? = object["name"],
                    case .string(let template)? = object["template"]
                else { throw CorpusProblem("\(file) has a case without name or template") }
                var context: [String: TemplateValue] = [:]
                if case .object(let values)? = object["context"] {
                    for (key, value) in values.entries { context[key] = value }
                }
                var options = TemplateOptions()
                if case .object(let flags)? = object["options"] {
                    options.trimBlocks = flags["trim_blocks"] == .bool(true)
                    options.lstripBlocks = flags["lstrip_blocks"] == .bool(true)
                    options.keepTrailingNewline = flags["keep_trailing_newline"] == .bool(true)
                }
                cases.append(Case(name: name, template: template, context: context, options: options))
            }
        }
        return cases
    }

    static func loadGoldens() throws -> [String: Verdict] {
        let text = try String(contentsOf: corpus.appendingPathComponent("goldens.json"), encoding: .utf8)
        guard case .object(let root) = try TemplateValue(json: text), case .object(let cases)? = root["cases"] else {
            throw CorpusProblem("goldens.json has no 'cases' object")
        }
        var goldens: [String: Verdict] = [:]
        for (name, value) in cases.entries {
            guard case .object(let verdict) = value else { continue }
            if case .string(let output)? = verdict["output"] {
                goldens[name] = .output(output)
            } else if case .string(let error)? = verdict["error"] {
                goldens[name] = .error(error)
            }
        }
        return goldens
    }

    struct CorpusProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func everyCaseRendersAsJinja2Does() throws {
        let cases = try Self.loadCases()
        let goldens = try Self.loadGoldens()
        #expect(cases.count >= 150)
        var passed = 0
        for testCase in cases {
            guard let expected = goldens[testCase.name] else {
                Issue.record("\(testCase.name): no golden; run render_jinja2.py")
                continue
            }
            let actual: Verdict
            do {
                let template = try Template(source: testCase.template, name: testCase.name, options: testCase.options)
                actual = .output(try template.render(testCase.context))
            } catch {
                actual = .error(error.description)
            }
            switch (expected, actual) {
            case (.output(let want), .output(let got)) where want == got:
                passed += 1
            case (.error, .error):
                passed += 1
            default:
                Issue.record("\(testCase.name): Jinja2 gave \(expected), Swift gave \(actual)")
            }
        }
        print("template corpus: \(passed) of \(cases.count) cases match Jinja2")
        #expect(passed == cases.count)
    }

    @Test func everyGoldenHasACase() throws {
        let names = Set(try Self.loadCases().map(\.name))
        let stale = try Self.loadGoldens().keys.filter { !names.contains($0) }
        #expect(stale.isEmpty, "goldens without cases: \(stale.sorted())")
    }

    /// With STAGERUNNER_JINJA2_PYTHON set (the Makefile points it at the venv), re-render the corpus with
    /// Jinja2 and require the committed goldens to be current.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["STAGERUNNER_JINJA2_PYTHON"] != nil))
    func goldensMatchLiveJinja2() async throws {
        let python = ProcessInfo.processInfo.environment["STAGERUNNER_JINJA2_PYTHON"] ?? "python3"
        let script = Self.corpus.appendingPathComponent("render_jinja2.py").path
        let (status, report) = try await onOwnThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [script, "--check"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let report = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, report)
        }
        #expect(status == 0, "render_jinja2.py --check failed:\n\(report)")
    }
}
