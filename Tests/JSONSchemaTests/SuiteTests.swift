import Foundation
import JSON
import JSONSchema
import Testing

/// Runs the official JSON Schema Test Suite (draft 2020-12, required tests) from `Suite/`.
@Suite("JSON Schema Test Suite, draft 2020-12")
struct SuiteTests {
    /// Cases not run, as `file / group / case` with the reason. Empty: every required case runs.
    static let leftOut: [String: String] = [:]

    static let suiteDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Suite")

    /// The names of the test files, e.g. `ref.json`.
    static let files: [String] = {
        let directory = suiteDirectory.appendingPathComponent("tests/draft2020-12")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted()
    }()

    /// Every document under `remotes/`, registered as `http://localhost:1234/<path>`.
    static let registry: SchemaRegistry = {
        var registry = SchemaRegistry()
        let remotes = suiteDirectory.appendingPathComponent("remotes")
        let enumerator = FileManager.default.enumerator(atPath: remotes.path)
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".json") else { continue }
            let document = try! load(remotes.appendingPathComponent(path))
            try! registry.add(document, uri: "http://localhost:1234/" + path)
        }
        return registry
    }()

    static func load(_ url: URL) throws -> JSONValue {
        try JSONParser.parse(Array(try Data(contentsOf: url)))
    }

    /// The snapshot holds 46 files with 383 groups and 1299 cases; all of them run.
    @Test func suiteIsPresentAndRunsInFull() throws {
        #expect(Self.files.count == 46)
        #expect(Self.registry.uris.count == 45)
        var cases = 0
        for name in Self.files {
            let groups = try Self.load(Self.suiteDirectory.appendingPathComponent("tests/draft2020-12/" + name))
            guard case .array(let groupList) = groups else { continue }
            for group in groupList {
                if case .array(let tests)? = group["tests"] { cases += tests.count }
            }
        }
        #expect(cases == 1299)
        #expect(Self.leftOut.isEmpty)
    }

    @Test(arguments: files)
    func file(_ name: String) throws {
        let groups = try Self.load(Self.suiteDirectory.appendingPathComponent("tests/draft2020-12/" + name))
        guard case .array(let groupList) = groups else {
            Issue.record("\(name) is not an array of groups")
            return
        }
        for group in groupList {
            let groupName = group["description"]?.stringValue ?? "?"
            let schema: JSONSchema
            do {
                schema = try JSONSchema(group["schema"]!, registry: Self.registry)
            } catch {
                Issue.record("\(name) / \(groupName): schema does not compile: \(error)")
                continue
            }
            guard case .array(let cases)? = group["tests"] else { continue }
            for testCase in cases {
                let caseName = testCase["description"]?.stringValue ?? "?"
                let label = "\(name) / \(groupName) / \(caseName)"
                if Self.leftOut[label] != nil { continue }
                guard case .bool(let expected)? = testCase["valid"], let data = testCase["data"] else {
                    Issue.record("\(label): malformed case")
                    continue
                }
                let result = schema.validate(data)
                #expect(result.isValid == expected, "\(label): \(result)")
                #expect(schema.isValid(data) == expected, "\(label) (isValid)")
            }
        }
    }
}
