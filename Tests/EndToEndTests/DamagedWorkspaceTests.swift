import Foundation
import JSON
import TestSupport
import Testing

/// A workspace whose folders and files are not what they should be: each error names the path
/// and the real cause, and the server goes on answering.
@Suite("Damaged workspaces: errors that name the cause")
struct DamagedWorkspaceTests {
    struct Damage: Sendable, CustomTestStringConvertible {
        var name: String
        /// Makes the damage in the workspace at the given root.
        var make: @Sendable (String) throws -> Void
        var method: String
        var params: String
        var message: String
        var testDescription: String { name }
    }

    static let draft =
        #"{"stage":"draft","templateId":"systematic-analytical","genId":"d1","model":"m","promptText":"p"}"#

    static let damages: [Damage] = [
        Damage(
            name: ".stagerunner is a file",
            make: { root in
                try? FileManager.default.removeItem(atPath: root + "/.stagerunner")
                _ = FileManager.default.createFile(atPath: root + "/.stagerunner", contents: Data())
            },
            method: "listTemplates",
            params: "{}",
            message: "Storage: cannot open .stagerunner/calls.sqlite: it goes through .stagerunner, which is a file, "
                + "not a folder"
        ),
        Damage(
            name: "the cache is a folder",
            make: { root in
                try? FileManager.default.removeItem(atPath: root + "/.stagerunner")
                try FileManager.default.createDirectory(
                    atPath: root + "/.stagerunner/cache.sqlite",
                    withIntermediateDirectories: true
                )
            },
            method: "validateWorkspace",
            params: "{}",
            message: "Storage: cannot open .stagerunner/cache.sqlite: it is a folder, not a database file"
        ),
        Damage(
            name: "data/gens is a file",
            make: { root in
                try? FileManager.default.removeItem(atPath: root + "/data/gens")
                _ = FileManager.default.createFile(atPath: root + "/data/gens", contents: Data())
            },
            method: "runStage",
            params: draft,
            message:
                "Storage: cannot store d1: data/gens/draft/d1: goes through data/gens, which is a file, not a folder"
        ),
    ]

    @Test("the error names the path and what is wrong with it", arguments: damages)
    func namesTheCause(_ damage: Damage) async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        try damage.make(example.root)
        let client = try JobClient(workspace: example.root)
        let answer = try await client.call(damage.method, damage.params)
        #expect(answer["error"]?["message"] == .string(damage.message), "\(answer)")
        #expect(answer["error"]?["message"]?.stringValue?.contains("error 1.)") == false, "no Swift type names")
        #expect(try await client.result("ping") == [:], "the connection goes on")
        client.peer.closeInput()
        #expect(try await client.peer.exitStatus() == 0)
    }

    /// Whether a read-only bind mount can be made in a mount namespace here (root, or user
    /// namespaces).
    static let readOnlyMountsAvailable: Bool = {
        let probe = "/usr/bin/unshare --mount /bin/sh -c 'mount --bind -o ro /tmp /tmp' 2>/dev/null"
        return (try? runToExit(["/bin/sh", "-c", probe])) == 0
    }()

    @Test(
        "a workspace on a read-only mount: reading methods work and create nothing; writing ones are refused first",
        .enabled(if: readOnlyMountsAvailable, "needs unshare --mount and mount --bind")
    )
    func readOnlyWorkspace() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        try? FileManager.default.removeItem(atPath: example.root + "/.stagerunner")
        let client = JobClient(
            try ServerProcess(
                ["serve", "--workspace", example.root],
                launcher: [
                    "/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                    "mount --bind -o ro '\(example.root)' '\(example.root)' && exec \"$0\" \"$@\"",
                ]
            )
        )
        #expect(try await client.result("validateWorkspace")["valid"] == true)
        #expect(try await client.result("listJobs") == ["jobs": []])
        let templates = try await client.result("listTemplates")
        guard case .array(let list)? = templates["templates"] else {
            throw JobWire.Failure(description: "\(templates)")
        }
        #expect(list.count == 6)
        let rendered = try await client.result(
            "renderPrompt",
            #"{"stage":"draft","templateId":"creative-synthesis","model":"m","values":{"concepts":[]}}"#
        )
        #expect(rendered["prompt"]?.stringValue?.isEmpty == false, "\(rendered)")
        let refusal =
            "Storage: runStage writes into the workspace \(example.root), but it cannot be written (Read-only file system)"
        #expect(try await client.call("runStage", Self.draft)["error"]?["message"] == .string(refusal))
        let pipeline = try await client.call("runPipeline", #"{"pipeline":"pipelines/x.yaml"}"#)
        #expect(pipeline["error"]?["data"]?["kind"] == "storage", "\(pipeline)")
        #expect(pipeline["error"]?["message"]?.stringValue?.hasPrefix("Storage: runPipeline writes into") == true)
        client.peer.closeInput()
        #expect(try await client.peer.exitStatus() == 0)
        #expect(!FileManager.default.fileExists(atPath: example.root + "/.stagerunner"), "nothing was created")
    }
}
