import JSON
import JSONRPC
import TestSupport
import Testing

/// The server's methods as a client sees them, over both transports and both framings.
@Suite("Server methods")
struct ServerMethodTests {
    @Test("ping answers {} and echoes a value byte for byte", arguments: everyTransportAndFraming)
    func ping(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup().peer(transport, framing)
        #expect(try await peer.call(1, "ping") == json(#"{"jsonrpc":"2.0","id":1,"result":{}}"#))
        let echo = #"{"text":"héllo ☃ 😀 中文","n":[1,-2.5,null,true],"nested":{"a":{"b":"\"q\"\n"}}}"#
        #expect(try await peer.call(2, "ping", #"{"echo":\#(echo)}"#)["result"] == ["echo": json(echo)])
        #expect(
            try await peer.call(3, "ping", "[1]")["error"]
                == json(
                    #"{"code":-32602,"message":"Invalid params: params is an array of 1 value (positional params), but 'ping' takes its params by name: send an object such as {\"name\": value}","data":{"field":"params","problem":"is an array of 1 value (positional params), but 'ping' takes its params by name: send an object such as {\"name\": value}"}}"#
                )
        )
        #expect(peer.output.problems.isEmpty)
        peer.saveTranscript("ping-\(transport)-\(framing)")
    }

    @Test("initialize reports the server, its methods and the workspace", arguments: everyTransportAndFraming)
    func initialize(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup(workspace: "/tmp").peer(transport, framing)
        let response = try await peer.call(
            1,
            "initialize",
            #"{"processId":null,"clientInfo":{"name":"tests","version":"1"},"protocolVersion":"1.3","capabilities":{}}"#
        )
        let capabilities = json(
            #"""
            {"methods":["cancelJob","getArtifact","getStatus","initialize","listJobs","listTemplates","ping","renderPrompt","resumeJob","retryTask","runPipeline","runStage","runTask","shutdown","subscribeStatus","test/heap","test/print","test/sleep","unsubscribeStatus",
                        "validateWorkspace"],
             "notifications":["exit","initialized","$/cancelRequest"],"batches":true,"cancellation":true,
             "framing":"\#(framing.rawValue)","maxMessageSize":67108864}
            """#
        )
        guard case .object(var withExperimental) = capabilities else { return }
        withExperimental["experimental"] = ["stagerunner": capabilities]
        #expect(
            response["result"]
                == [
                    "protocolVersion": "1.0", "serverInfo": ["name": "stagerunner", "version": "0.1.0"],
                    "capabilities": .object(withExperimental), "workspace": ["root": "/tmp"],
                ]
        )
        peer.send(#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#)
        let again = try await peer.call(2, "initialize", "{}")
        #expect(again["error"]?["message"] == "Invalid Request: 'initialize' was already received")
        peer.saveTranscript("initialize-\(transport)-\(framing)")
    }

    @Test("initialize rejects what it cannot honour, naming the field", arguments: Transport.allCases)
    func initializeErrors(transport: Transport) async throws {
        let peer = try ServerSetup().peer(transport, .ndjson)
        let cases: [(String, String)] = [
            (
                #"{"protocolVersion":"2.0"}"#,
                "Invalid params: params.protocolVersion '2.0' is not supported: this server speaks protocol 1.0"
            ),
            (
                #"{"workspaceRoot":"/no/such/dir"}"#,
                "Invalid params: params.workspaceRoot '/no/such/dir' does not exist"
            ),
            (
                #"{"workspaceRoot":"/etc/hostname"}"#,
                "Invalid params: params.workspaceRoot '/etc/hostname' is not a directory"
            ),
            (#"{"clientInfo":{}}"#, "Invalid params: params.clientInfo.name is required but missing"),
            (#"{"processId":"12"}"#, #"Invalid params: params.processId must be an integer, not "12""#),
            (#"{"processId":1.5}"#, "Invalid params: params.processId must be an integer, not 1.5"),
            (
                #"{"clientInfo":{"name":"x","version":2}}"#,
                "Invalid params: params.clientInfo.version must be a string, not 2"
            ),
        ]
        for (index, (params, message)) in cases.enumerated() {
            let response = try await peer.call(index + 1, "initialize", params)
            #expect(response["error"]?["code"] == -32602, "\(params)")
            #expect(response["error"]?["message"] == .string(message), "\(params)")
        }
        // None of the failures counted as the initialize: a good one still works.
        #expect(try await peer.call(99, "initialize", "{}")["result"]?["protocolVersion"] == "1.0")
        peer.saveTranscript("initialize-errors-\(transport)")
    }

    @Test("an unknown method lists the methods that exist", arguments: Transport.allCases)
    func unknownMethod(transport: Transport) async throws {
        let peer = try ServerSetup(enableTestMethods: false).peer(transport, .ndjson)
        #expect(
            try await peer.call(1, "runStagee")
                == json(
                    #"""
                    {"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found: 'runStagee'",
                     "data":{"method":"runStagee","available":["cancelJob","getArtifact","getStatus","initialize","listJobs","listTemplates","ping","renderPrompt","resumeJob","retryTask","runPipeline","runStage","runTask",
                       "shutdown","subscribeStatus","unsubscribeStatus","validateWorkspace"]}}}
                    """#
                )
        )
        peer.saveTranscript("unknown-method-\(transport)")
    }

    @Test("shutdown waits for work under way; later requests are refused", arguments: everyTransportAndFraming)
    func shutdown(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup().peer(transport, framing)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":150}}"#)
        peer.send(#"{"jsonrpc":"2.0","id":2,"method":"shutdown"}"#)
        peer.send(#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
        let messages = try await peer.output.waitForMessages(3)
        // The ping is refused at once; shutdown answers only after the sleep has.
        #expect(messages.map { $0["id"] } == [3, 1, 2])
        #expect(
            messages[0]["error"]
                == json(
                    #"{"code":-32600,"message":"Invalid Request: the server is shutting down; only the 'exit' notification is accepted now","data":{"hint":"send the 'exit' notification, then start a new server"}}"#
                )
        )
        #expect(messages[2] == json(#"{"jsonrpc":"2.0","id":2,"result":null}"#))
        peer.send(#"{"jsonrpc":"2.0","method":"exit"}"#)
        try await peer.output.waitForEnd()
        peer.saveTranscript("shutdown-\(transport)-\(framing)")
    }

    @Test("with --require-initialize, requests before initialize get -32002", arguments: Transport.allCases)
    func requireInitialize(transport: Transport) async throws {
        let peer = try ServerSetup(requireInitialize: true).peer(transport, .lsp)
        #expect(
            try await peer.call(1, "ping")["error"]
                == json(
                    #"{"code":-32002,"message":"Server not initialized: 'ping' arrived before 'initialize'","data":{"hint":"send 'initialize' first"}}"#
                )
        )
        #expect(try await peer.call(2, "initialize", #"{"clientInfo":{"name":"strict"}}"#)["result"] != nil)
        #expect(try await peer.call(3, "ping")["result"] == [:])
        peer.saveTranscript("require-initialize-\(transport)")
    }

    @Test(
        "$/cancelRequest cancels a running request; it still gets exactly one answer",
        arguments: everyTransportAndFraming
    )
    func cancel(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup().peer(transport, framing)
        peer.send(#"{"jsonrpc":"2.0","id":"long","method":"test/sleep","params":{"ms":60000}}"#)
        _ = try await peer.call(1, "ping")  // the sleep has been read and started by now
        peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"long"}}"#)
        #expect(
            try await peer.output.response(id: "long")
                == json(
                    #"{"jsonrpc":"2.0","id":"long","error":{"code":-32800,"message":"Request cancelled: the request was cancelled"}}"#
                )
        )
        // Cancelling something finished or unknown is harmless.
        peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"long"}}"#)
        peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12345}}"#)
        #expect(try await peer.call(2, "ping")["result"] == [:])
        #expect(peer.output.messages.count == 3)
        peer.saveTranscript("cancel-\(transport)-\(framing)")
    }

    @Test(
        "end of input with work in flight: it is answered before the server exits",
        arguments: everyTransportAndFraming
    )
    func endOfInputDrains(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup().peer(transport, framing)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"test/sleep","params":{"ms":200}}"#)
        peer.send(#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        peer.closeInput()
        try await peer.output.waitForEnd()
        #expect(peer.output.messages.map { $0["id"] } == [2, 1])
        #expect(peer.output.messages[1]["result"] == ["slept": 200])
        if let process = peer as? ServerProcess { #expect(try await process.exitStatus() == 0) }
        peer.saveTranscript("eof-drain-\(transport)-\(framing)")
    }

    @Test("an oversized message is refused and the connection survives", arguments: everyTransportAndFraming)
    func oversized(transport: Transport, framing: Framing) async throws {
        let peer = try ServerSetup(maxMessageSize: 4096).peer(transport, framing)
        peer.send(
            #"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"echo":""# + String(repeating: "z", count: 10_000)
                + "\"}}"
        )
        let error = try await peer.output.waitForMessages(1)[0]
        #expect(error["id"] == .null)
        #expect(error["error"]?["code"] == -32600)
        #expect(error["error"]?["data"]?["limit"] == 4096)
        #expect(try await peer.call(2, "ping")["result"] == [:])
        peer.saveTranscript("oversized-\(transport)-\(framing)")
    }
}
