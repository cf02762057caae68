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

    /// Whether a small tmpfs can be mounted in a mount namespace here (root, or user namespaces).
    static let tmpfsMountsAvailable: Bool = {
        let probe = "/usr/bin/unshare --mount /bin/sh -c 'mount -t tmpfs -o size=1m tmpfs /mnt' 2>/dev/null"
        return (try? runToExit(["/bin/sh", "-c", probe])) == 0
    }()

    @Test(
        "a full disk under a job: the task fails naming it, and the document on disk says so once space is freed",
        .enabled(if: tmpfsMountsAvailable, "needs unshare --mount and a tmpfs mount")
    )
    func fullDisk() async throws {
        let example = try ExampleCopy("research-task", files: ["tasks/held.yaml": JobWire.heldTask])
        defer { example.remove() }
        // The server's jobs folder is a 1 MB file system of its own, seen from here through
        // /proc/<pid>/root.
        let client = JobClient(
            try ServerProcess(
                ["serve", "--workspace", example.root, "--log-level", "notice"],
                launcher: [
                    "/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                    "mkdir -p '\(example.root)/jobs' && mount -t tmpfs -o size=1m tmpfs '\(example.root)/jobs' "
                        + "&& exec \"$0\" \"$@\"",
                ]
            )
        )
        let jobs = "/proc/\(client.peer.pid)/root\(example.root)/jobs"
        let jobId = try #require(
            try await client.result("runPipeline", SharedWorkspaceTests.heldPipeline)["jobId"]?.stringValue
        )
        try await eventually("the command starts") {
            FileManager.default.fileExists(atPath: example.root + "/tasks/started")
        }
        func onDisk() -> JSONValue? {
            FileManager.default.contents(atPath: "\(jobs)/\(jobId)/tasks-status.json").flatMap {
                try? JSONParser.parse(Array($0))
            }
        }
        #expect(onDisk()?["state"] == "running")
        // Fill it.
        let filler = open("\(jobs)/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(filler >= 0)
        // To the last byte: a write that then fails has nothing it could free by being removed.
        let block = [UInt8](repeating: 0x41, count: 4096)
        while write(filler, block, block.count) > 0 {}
        while write(filler, block, 1) > 0 {}
        let full = errno
        close(filler)
        #expect(full == ENOSPC)

        #expect(FileManager.default.createFile(atPath: example.root + "/tasks/release", contents: Data()))
        let failed = try await client.waitForState(jobId, ["failed"], timeout: .seconds(60))
        let error = try #require(failed["tasks"]?["held"]?["error"]?["message"]?.stringValue, "\(failed)")
        // The first of the task's files to be written is the one refused.
        let refusals = ["output.json", "execution-logs.json"].map { name in
            "cannot save the task's result: \(example.root)/jobs/\(jobId)/tasks/held/\(name): "
                + "cannot write: No space left on device"
        }
        #expect(refusals.contains(error), "\(failed)")
        // Whether the document could be written while the disk was full depends on what the
        // command stage freed as it ended; either way it must say `failed` once there is room.
        unlink("\(jobs)/filler")
        try await eventually("the document on disk says failed", timeout: .seconds(60)) {
            onDisk()?["state"] == "failed"
        }
        #expect(onDisk()?["tasks"]?["held"]?["error"]?["message"]?.stringValue == error)
        client.peer.closeInput()
        #expect(try await client.peer.exitStatus() == 0)
    }
}
