import JSON
import JSONRPC
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What only the real process can show: exit statuses, signals, the bytes on stdout, the CLI.
@Suite("The stagerunner process")
struct ProcessTests {
    @Test("a piped request gets exactly its response on stdout, and the process exits 0", arguments: Framing.allCases)
    func pipedRequest(framing: Framing) async throws {
        let server = try ServerProcess(["serve"], framing: framing)
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        try await server.output.waitForEnd()
        let expected: [UInt8] =
            switch framing {
            case .ndjson: Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n".utf8)
            case .lsp: Array("Content-Length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}".utf8)
            }
        #expect(server.output.rawBytes == expected)
        #expect(server.standardError == "")
    }

    @Test("exit after shutdown exits 0; exit without shutdown exits 1")
    func exitStatus() async throws {
        let clean = try ServerProcess(["serve"])
        _ = try await clean.call(1, "shutdown")
        clean.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        #expect(try await clean.exitStatus() == 0)

        let abrupt = try ServerProcess(["serve"])
        _ = try await abrupt.call(1, "ping")
        abrupt.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        #expect(try await abrupt.exitStatus() == 1)
    }

    @Test("shutdown and exit piped together: the work under way still finishes, and the status is 0")
    func shutdownThenExitDrains() async throws {
        let server = try ServerProcess(["serve", "--enable-test-methods"])
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":200}}"#)
        server.send(#"{"jsonrpc":"2.0","id":2,"method":"shutdown"}"#)
        server.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        #expect(try await server.exitStatus() == 0)
        try await server.output.waitForEnd()
        #expect(server.output.messages.map { $0["id"] } == [1, 2])
        #expect(server.output.messages[0]["result"] == ["slept": 200])
    }

    @Test("after SIGTERM no new work starts")
    func nothingStartsAfterSigterm() async throws {
        let server = try ServerProcess(["serve", "--enable-test-methods"])
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":300}}"#)
        _ = try await server.call(2, "ping")
        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(50))
        server.send(#"{"jsonrpc":"2.0","id":3,"method":"test/sleep","params":{"ms":60000}}"#)
        let started = ContinuousClock.now
        #expect(try await server.exitStatus() == 0)
        #expect(ContinuousClock.now - started < .seconds(30), "the late request (60 s) must not run")
        try await server.output.waitForEnd()
        #expect(server.output.messages.map { $0["id"] } == [2, 1])
    }

    @Test("exit cancels work still running, answering it -32800")
    func exitCancels() async throws {
        let server = try ServerProcess(["serve", "--enable-test-methods"])
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":60000}}"#)
        _ = try await server.call(2, "ping")
        server.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        #expect(try await server.exitStatus() == 1)
        try await server.output.waitForEnd()
        #expect(server.output.messages.last?["error"]?["code"] == -32800)
        server.saveTranscript("exit-cancels")
    }

    @Test("a handler that prints to stdout cannot corrupt the protocol stream", arguments: Framing.allCases)
    func stdoutIsProtected(framing: Framing) async throws {
        let server = try ServerProcess(["serve", "--enable-test-methods"], framing: framing)
        #expect(
            try await server.call(1, "test/print", #"{"text":"STRAY OUTPUT {\"jsonrpc\":\"2.0\"}"}"#)["result"] == [:]
        )
        #expect(try await server.call(2, "ping")["result"] == [:])
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
        try await server.output.waitForEnd()
        // stdout holds exactly the two framed responses and nothing else.
        var expected: [UInt8] = []
        framing.frame(Array(#"{"jsonrpc":"2.0","id":1,"result":{}}"#.utf8), into: &expected)
        framing.frame(Array(#"{"jsonrpc":"2.0","id":2,"result":{}}"#.utf8), into: &expected)
        #expect(server.output.rawBytes == expected)
        #expect(server.standardError.contains("STRAY OUTPUT"))
    }

    @Test("SIGTERM finishes the work under way, answers it, and exits 0")
    func sigterm() async throws {
        let server = try ServerProcess(["serve", "--enable-test-methods"])
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":300}}"#)
        _ = try await server.call(2, "ping")
        server.signal(SIGTERM)
        #expect(try await server.exitStatus() == 0)
        try await server.output.waitForEnd()
        #expect(server.output.messages.last == json(#"{"jsonrpc":"2.0","id":1,"result":{"slept":300}}"#))
    }

    @Test("SIGINT cancels the work under way, answers it -32800, and exits 0")
    func sigint() async throws {
        let server = try ServerProcess(["serve", "--enable-test-methods"])
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":60000}}"#)
        _ = try await server.call(2, "ping")
        server.signal(SIGINT)
        #expect(try await server.exitStatus() == 0)
        try await server.output.waitForEnd()
        #expect(server.output.messages.last?["error"]?["code"] == -32800)
    }

    @Test("a SIGINT after SIGTERM cancels what SIGTERM was letting finish: requests and jobs")
    func sigintAfterSigterm() async throws {
        let marker = "47.\(Int.random(in: 100...999))"
        let example = try ExampleCopy("research-task", files: ["tasks/slow.yaml": JobWire.sleepingTask(marker)])
        defer { example.remove() }
        let server = try ServerProcess(["serve", "--enable-test-methods", "--workspace", example.root])
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":60000}}"#)
        let run = try await server.call(
            2,
            "runPipeline",
            #"{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"}]}}"#
        )
        let jobId = try #require(run["result"]?["jobId"]?.stringValue)
        try await eventually("the job's command runs", timeout: .seconds(30)) {
            TaskMethodTests.running("sleep \(marker)")
        }
        server.signal(SIGTERM)
        try await eventually("SIGTERM to be handled") { server.standardError.contains("received SIGTERM") }
        let started = ContinuousClock.now
        server.signal(SIGINT)
        #expect(try await server.exitStatus() == 0)
        // Well before the 60 s the request and the job's command would take.
        #expect(ContinuousClock.now - started < .seconds(30))
        try await server.output.waitForEnd()
        #expect(try await server.output.response(id: 1)["error"]?["code"] == -32800)
        #expect(JobWire.documentOnDisk(example.root, jobId)?["state"] == "cancelled")
        #expect(!TaskMethodTests.running("sleep \(marker)"))
    }

    @Test("many requests pipelined over the real pipe all come back")
    func pipelined() async throws {
        let server = try ServerProcess(["serve"], framing: .lsp)
        var bytes: [UInt8] = []
        for id in 0..<5000 {
            Framing.lsp.frame(
                Array(#"{"jsonrpc":"2.0","id":\#(id),"method":"ping","params":{"echo":\#(id)}}"#.utf8),
                into: &bytes
            )
        }
        server.send(bytes: bytes)
        let messages = try await server.output.waitForMessages(5000)
        #expect(messages.allSatisfy { $0["result"]?["echo"] == $0["id"] })
        #expect(Set(messages.compactMap { $0["id"]?.integerValue }).count == 5000)
    }

    @Test("--version and --help")
    func commandLine() async throws {
        let version = try ServerProcess(["--version"])
        #expect(try await version.exitStatus() == 0)
        // The process may end before the reader has read all it wrote.
        try await version.output.waitForEnd()
        let text = String(decoding: version.output.rawBytes, as: UTF8.self)
        #expect(text.hasPrefix("stagerunner 0.1.0 (protocol 1.0; libcurl/"))

        let help = try ServerProcess(["serve", "--help"])
        #expect(try await help.exitStatus() == 0)
        try await help.output.waitForEnd()
        let helpText = String(decoding: help.output.rawBytes, as: UTF8.self)
        for option in [
            "--framing <framing>", "--workspace <workspace>", "--log-level <log-level>", "--max-message-size",
            "--require-initialize",
        ] {
            #expect(helpText.contains(option), "serve --help lacks \(option)")
        }
        #expect(!helpText.contains("enable-test-methods"))
    }

    @Test(
        "bad command-line values are refused with a message that says what to fix",
        arguments: [
            (
                ["serve", "--framing", "xml"],
                "Error: The value 'xml' is invalid for '--framing <framing>'. Please provide one of 'auto', 'lsp' or 'ndjson'."
            ),
            (["serve", "--workspace", "/no/such/dir"], "Error: --workspace '/no/such/dir' does not exist"),
            (["serve", "--max-message-size", "10"], "Error: --max-message-size must be at least 1024 bytes (got 10)"),
        ]
    )
    func badArguments(arguments: [String], message: String) async throws {
        let server = try ServerProcess(arguments)
        #expect(try await server.exitStatus() == 64)
        // The process may end before the reader has read all it wrote to stderr.
        try? await eventually("the message on stderr") { server.standardError.hasPrefix(message) }
        #expect(server.standardError.hasPrefix(message), "\(server.standardError)")
    }
}
