import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

/// What other people's JSON-RPC client libraries send, as they send it: "no params" spelled four
/// ways, notifications that must never draw an answer, LSP's `initialize`, pipelined lifecycles,
/// and answers to the server's own requests written in Lua or Emacs Lisp.
@Suite("Client library habits")
struct ClientLibraryHabitsTests {
    /// The four ways libraries say "no params": absent (most), `null` (jsonrpc.el, pygls),
    /// `[]` (Lua tables) and `{}`.
    static let emptyParams: [String?] = [nil, "null", "[]", "{}", " [ ] "]

    @Test(
        "absent, null, [] and {} params mean the same for every method whose params are optional",
        arguments: everyTransportAndFraming
    )
    func emptyParamsSpellings(transport: Transport, framing: Framing) async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(transport, framing)
        var id = 0
        for method in ["ping", "listTemplates", "validateWorkspace", "listJobs"] {
            var results: [JSONValue] = []
            for params in Self.emptyParams {
                id += 1
                let response = try await peer.call(id, method, params)
                results.append(
                    try #require(response["result"], "\(method) with params \(params ?? "absent"): \(response)")
                )
            }
            #expect(Set(results).count == 1, "\(method): \(results)")
        }
        id += 1
        let initialized = try await peer.call(id, "initialize", "null")
        #expect(initialized["result"]?["workspace"]?["root"] == .string(example.root))
        id += 1
        #expect(
            try await peer.call(id, "shutdown", "[]") == ["jsonrpc": "2.0", "id": .integer(Int64(id)), "result": .null]
        )
        #expect(peer.output.problems.isEmpty)
    }

    @Test("positional params that carry values get -32602 saying the method takes named params")
    func positionalParams() async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let peer = try ServerSetup(workspace: example.root).peer(.process, .ndjson)
        let response = try await peer.call(1, "runStage", #"["draft", "d-creative"]"#)
        let problem =
            "is an array of 2 values (positional params), but 'runStage' takes its params by name: send an object such as {\"name\": value}"
        #expect(
            response["error"]
                == [
                    "code": -32602, "message": .string("Invalid params: params \(problem)"),
                    "data": ["field": "params", "problem": .string(problem)],
                ]
        )
        // A required member still has to be there when no params are sent.
        let missing = try await peer.call(2, "runStage", "[]")
        #expect(missing["error"]?["code"] == -32602)
        #expect(missing["error"]?["data"]?["field"] == "params.stage")
    }

    @Test("a notification never gets a response, however malformed", arguments: everyTransportAndFraming)
    func notificationsAreNeverAnswered(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup().peer(transport, framing)
        for notification in [
            #"{"jsonrpc":"2.0","method":"exit","params":"now"}"#,
            #"{"jsonrpc":"1.0","method":"initialized"}"#,
            #"{"method":"$/cancelRequest","params":{"id":1}}"#,
            #"{"jsonrpc":"2.0","method":"$/cancelRequest","params":7}"#,
            #"{"jsonrpc":"2.0","method":"$/setTrace","params":{"value":"off"}}"#,
            #"{"jsonrpc":"2.0","method":"workspace/didChangeConfiguration","params":{"settings":null}}"#,
            #"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///x.txt"}}}"#,
            #"[{"jsonrpc":"2.0","method":"initialized","params":true}]"#,
        ] {
            peer.send(notification)
        }
        // In a batch, a malformed notification takes no place in the answer.
        peer.send(#"[{"jsonrpc":"2.0","method":"exit","params":1},{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)
        #expect(try await peer.output.waitForMessages(1) == [[["jsonrpc": "2.0", "id": 1, "result": [:]]]])
        // `method` that is not a string is no notification: the specification answers it.
        peer.send(#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#)
        #expect(try await peer.call(2, "ping") == ["jsonrpc": "2.0", "id": 2, "result": [:]])
        let messages = peer.output.messages
        #expect(messages.count == 3, "\(messages)")
        #expect(messages.dropFirst().first?["id"] == .null)
        #expect(messages.dropFirst().first?["error"]?["code"] == -32600)
        // An unknown request is still answered; the language features are only for a client that
        // sent LSP capabilities, which this one did not.
        let hover = try await peer.call(3, "textDocument/hover", #"{"position":{"line":0,"character":0}}"#)
        #expect(hover["error"]?["code"] == -32601)
        #expect(hover["error"]?["message"] == "Method not found: 'textDocument/hover'")
    }

    @Test("exit with null params after shutdown ends the process with status 0")
    func exitWithNullParams() async throws {
        let peer = try ServerSetup().peer(.process, .lsp)
        let server = try #require(peer as? ServerProcess)
        #expect(try await peer.call(1, "shutdown", "null")["result"] == .null)
        peer.send(#"{"jsonrpc":"2.0","method":"exit","params":null}"#)
        #expect(try await server.exitStatus() == 0)
        #expect(peer.output.messages.count == 1)
    }

    /// `ping, ping, shutdown, exit` in one write, as a script pipes them: the answers come in
    /// that order every time, and the process exits 0.
    @Test("ping, ping, shutdown, exit piped together: the answers keep their order, 1,000 times")
    func pipelinedLifecycleOrder() async throws {
        let body =
            #"{"jsonrpc":"2.0","id":1,"method":"ping"}"# + "\n" + #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
            + "\n" + #"{"jsonrpc":"2.0","id":3,"method":"shutdown"}"# + "\n" + #"{"jsonrpc":"2.0","method":"exit"}"#
            + "\n"
        let runs = Int(ProcessInfo.processInfo.environment["STAGERUNNER_ORDER_RUNS"] ?? "") ?? 1_000
        var outOfOrder: [String] = []
        var badExits: [Int32] = []
        for run in 0..<runs {
            // Alternate between this process's connection and the real binary: the race was in
            // the connection, and the binary adds its own start-up and scheduling.
            let transport: Transport = run.isMultiple(of: 4) ? .process : .inProcess
            let peer = try ServerSetup(enableTestMethods: false).peer(transport, .ndjson)
            peer.send(bytes: Array(body.utf8))
            try await peer.output.waitForEnd()
            let ids = peer.output.messages.map { $0["id"] ?? .null }
            if ids != [1, 2, 3] { outOfOrder.append("run \(run) (\(transport)): \(ids)") }
            if let server = peer as? ServerProcess {
                let status = try await server.exitStatus()
                if status != 0 { badExits.append(status) }
            }
        }
        #expect(outOfOrder.isEmpty, "\(outOfOrder.count) of \(runs) runs out of order: \(outOfOrder.prefix(5))")
        #expect(badExits.isEmpty)
    }

    @Test("shutdown is answered after a slow request received before it, and after the pings around it")
    func shutdownWaitsForEarlierRequests() async throws {
        let peer = try ServerSetup().peer(.process, .lsp)
        // Long enough that the ping behind it is read first even on a loaded machine.
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":2000}}"#)
        peer.send(#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        peer.send(#"{"jsonrpc":"2.0","id":3,"method":"shutdown"}"#)
        peer.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        try await peer.output.waitForEnd()
        #expect(peer.output.messages.map { $0["id"] ?? .null } == [2, 1, 3])
    }

    @Test("requests the server sends carry integer ids, counting from 1")
    func serverRequestIDs() async throws {
        let workspace = try ExampleCopy(nil)
        defer { workspace.remove() }
        let peer = try ServerSetup(workspace: workspace.root).peer(.process, .ndjson)
        _ = try await peer.call(1, "initialize", #"{"capabilities":{"stageHandlers":["grade"]}}"#)
        peer.send(
            #"{"jsonrpc":"2.0","id":2,"method":"runTask","params":{"task":{"stages":{"ingestion":{"client":"grade"},"validateQuality":{"client":"grade"}}}}}"#
        )
        for expected in 1...2 {
            try await peer.output.wait("executeStage \(expected)") { messages, _ in
                messages.filter { $0["method"] == "executeStage" }.count >= expected
            }
            let request = try #require(peer.output.messages.last { $0["method"] == "executeStage" })
            #expect(request["id"] == .integer(Int64(expected)))
            peer.send(#"{"jsonrpc":"2.0","id":\#(expected),"result":{"output":"ok","flags":{}}}"#)
        }
        #expect(try await peer.output.response(id: 2)["result"]?["ok"] == true)
    }

    /// Lua encodes an empty table as `[]` and drops nil members; Emacs Lisp writes nil as null.
    @Test(
        "executeStage answers as client libraries write them: flags null or [], no output, or [] as a whole",
        arguments: [
            (#"{"output":"graded","flags":[]}"#, #""graded""#),
            (#"{"output":"graded","flags":null}"#, #""graded""#),
            (#"{"output":"graded"}"#, #""graded""#),
            (#"{"flags":[]}"#, "null"),
            ("[]", "null"),
            ("{}", "null"),
        ]
    )
    func executeStageAnswers(answer: String, output: String) async throws {
        let result = try await Self.critique(
            answeredWith: answer,
            initialize: #"{"initializationOptions":{"stageHandlers":["grade"]}}"#
        )
        #expect(result["ok"] == true, "\(result)")
        #expect(result["context"]?["data"]?["critique"] == json(output))
    }

    @Test("an executeStage answer with flags of another kind is still a contract error")
    func executeStageBadFlags() async throws {
        let result = try await Self.critique(
            answeredWith: #"{"output":1,"flags":["validationFailed"]}"#,
            initialize: #"{"capabilities":{"stageHandlers":["grade"]}}"#
        )
        #expect(result["ok"] == false)
        #expect(
            result["error"]
                == ["name": "ContractError", "message": "stage critique flags must be an object, not array"]
        )
    }

    /// The result of a task whose critique stage the client handles, answering `executeStage`
    /// with `answer`, after an `initialize` with `params` that declares the handler `grade`.
    static func critique(answeredWith answer: String, initialize params: String) async throws -> JSONValue {
        let workspace = try ExampleCopy(nil)
        defer { workspace.remove() }
        let peer = try ServerSetup(workspace: workspace.root).peer(.inProcess, .ndjson)
        _ = try await peer.call(1, "initialize", params)
        peer.send(
            #"{"jsonrpc":"2.0","id":2,"method":"runTask","params":{"task":{"stages":{"critique":{"client":"grade"}}}}}"#
        )
        try await peer.output.wait("executeStage") { messages, _ in messages.contains { $0["method"] == "executeStage" }
        }
        let request = try #require(peer.output.messages.first { $0["method"] == "executeStage" })
        peer.send(#"{"jsonrpc":"2.0","id":\#(request["id"]!),"result":\#(answer)}"#)
        return try #require(try await peer.output.response(id: 2)["result"])
    }

    // MARK: - LSP's initialize

    /// A workspace whose path needs percent-encoding in a URI.
    static func spacedWorkspace() throws -> (ExampleCopy, String) {
        let example = try ExampleCopy(nil, files: ["my prompts #1/stagerunner.yaml": "{}\n"])
        return (example, example.root + "/my prompts #1")
    }

    @Test(
        "initialize finds the workspace where LSP clients put it",
        arguments: [
            #"{"rootUri":"file://ROOT_URI"}"#,
            #"{"rootUri":"file://localhost ROOT_URI"}"#,
            #"{"rootUri":null,"rootPath":"ROOT"}"#,
            #"{"workspaceFolders":[{"uri":"file://ROOT_URI","name":"prompts"}]}"#,
            #"{"initializationOptions":{"workspaceRoot":"ROOT"},"rootUri":"file:///tmp"}"#,
            #"{"workspaceRoot":"ROOT","rootUri":"file:///tmp","rootPath":"/tmp"}"#,
            #"{"rootUri":"file://ROOT_URI","rootPath":"/tmp","workspaceFolders":[{"uri":"file:///tmp","name":"tmp"}]}"#,
        ]
    )
    func lspWorkspace(params: String) async throws {
        let (example, root) = try Self.spacedWorkspace()
        defer { example.remove() }
        let encoded = root.replacingOccurrences(of: " ", with: "%20").replacingOccurrences(of: "#", with: "%23")
        let text = params.replacingOccurrences(of: "localhost ", with: "localhost")
            .replacingOccurrences(of: "ROOT_URI", with: encoded).replacingOccurrences(of: "ROOT", with: root)
        let peer = try ServerSetup(workspace: "/").peer(.inProcess, .lsp)
        let response = try await peer.call(1, "initialize", text)
        #expect(response["result"]?["workspace"]?["root"] == .string(root), "\(text): \(response)")
    }

    @Test(
        "a workspace URI that names no local directory gets -32602 naming the member",
        arguments: [
            (
                #"{"rootUri":"https://example.com/prompts"}"#, "params.rootUri",
                "must be a file: URI such as file:///path/to/workspace, not 'https://example.com/prompts': the server reads the workspace from its own disk"
            ),
            (
                #"{"workspaceFolders":[{"uri":"file://buildhost/srv/prompts","name":"p"}]}"#,
                "params.workspaceFolders[0].uri",
                "names the host 'buildhost' in 'file://buildhost/srv/prompts': only this machine's files (file:///…) can be a workspace"
            ),
            (
                #"{"rootUri":"file:///srv/100%"}"#, "params.rootUri",
                "has a '%' not followed by two hex digits in 'file:///srv/100%'"
            ),
            (
                #"{"rootUri":"file:relative/dir"}"#, "params.rootUri",
                "has no absolute path in 'file:relative/dir': write file:///path/to/workspace"
            ),
            (
                #"{"initializationOptions":{"workspaceRoot":7}}"#, "params.initializationOptions.workspaceRoot",
                "must be a string, not number"
            ),
        ]
    )
    func badWorkspaceURI(params: String, field: String, problem: String) async throws {
        let peer = try ServerSetup(workspace: "/tmp").peer(.inProcess, .ndjson)
        let response = try await peer.call(1, "initialize", params)
        #expect(
            response["error"]
                == [
                    "code": -32602, "message": .string("Invalid params: \(field) \(problem)"),
                    "data": ["field": .string(field), "problem": .string(problem)],
                ]
        )
        // The server is still uninitialized: the client can try again.
        #expect(
            try await peer.call(2, "initialize", #"{"rootPath":"/tmp"}"#)["result"]?["workspace"]?["root"] == "/tmp"
        )
    }

    @Test("a rootUri naming a missing directory says which member and why")
    func missingRootURI() async throws {
        let peer = try ServerSetup(workspace: "/tmp").peer(.inProcess, .ndjson)
        let response = try await peer.call(1, "initialize", #"{"rootUri":"file:///no/such/dir"}"#)
        #expect(response["error"]?["code"] == -32602)
        #expect(response["error"]?["data"]?["field"] == "params.rootUri")
        #expect(response["error"]?["message"]?.stringValue?.contains("/no/such/dir") == true)
    }

    @Test("initialize puts the StageRunner capabilities where typed LSP clients look, too")
    func experimentalCapabilities() async throws {
        let peer = try ServerSetup(workspace: "/tmp").peer(.process, .lsp)
        // What an LSP client sends: its own capabilities, trace, locale, a process id.
        let response = try await peer.call(
            1,
            "initialize",
            #"{"processId":null,"clientInfo":{"name":"Neovim","version":"0.7.2"},"rootUri":"file:///tmp","trace":"off","locale":"en","capabilities":{"workspace":{"applyEdit":true},"textDocument":{"synchronization":{"didSave":true}}}}"#
        )
        let capabilities = try #require(response["result"]?["capabilities"])
        let nested = try #require(capabilities["experimental"]?["stagerunner"])
        guard case .object(var top) = capabilities else {
            Issue.record("capabilities is not an object: \(capabilities)")
            return
        }
        top["experimental"] = nil
        // An LSP client also gets the standard capabilities of the language features.
        #expect(top["hoverProvider"] == true && top["definitionProvider"] == true)
        #expect(top["textDocumentSync"]?["change"] == 1)
        #expect(top["positionEncoding"] == "utf-16")
        for standard in [
            "positionEncoding", "textDocumentSync", "hoverProvider", "completionProvider", "definitionProvider",
            "referencesProvider", "documentSymbolProvider", "codeLensProvider", "executeCommandProvider",
        ] {
            top[standard] = nil
        }
        #expect(JSONValue.object(top) == nested)
        guard case .array(let methods)? = nested["methods"] else {
            Issue.record("no methods: \(nested)")
            return
        }
        #expect(methods.contains("runPipeline"))
        #expect(nested["framing"] == "lsp")
        peer.send(#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#)
        peer.send(#"{"jsonrpc":"2.0","method":"$/setTrace","params":{"value":"verbose"}}"#)
        #expect(try await peer.call(2, "ping", "[]")["result"] == [:])
        #expect(peer.output.messages.count == 2)
    }
}
