import JSON
import JSONRPC
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A counter shared between handlers and the test.
final class Counter: Sendable {
    private let value = Mutex(0)
    @discardableResult func increment() -> Int {
        value.withLock {
            $0 += 1; return $0
        }
    }
    func decrement() { value.withLock { $0 -= 1 } }
    var current: Int { value.withLock { $0 } }
}

/// Lets handlers wait until the test opens it.
final class Gate: Sendable {
    private let open = Mutex(false)
    func release() { open.withLock { $0 = true } }
    func wait() async throws {
        while !open.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
    }
}

@Suite("Connection")
struct ConnectionTests {
    @Test("a running request cancelled with $/cancelRequest answers -32800 and the connection goes on")
    func cancelRunning() async throws {
        let started = Counter()
        var table = MethodTable()
        table.register("slow") { _ in
            started.increment()
            try await Task.sleep(for: .seconds(30))
            return .null
        }
        table.register(immediate: "ping") { _ throws(ResponseError) in .emptyObject }
        let peer = InProcessPeer(methods: table)
        peer.send(#"{"jsonrpc":"2.0","id":"a","method":"slow"}"#)
        try await eventually("the handler to start") { started.current == 1 }
        peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"a"}}"#)
        let response = try await peer.output.response(id: "a")
        #expect(
            response
                == json(
                    #"{"jsonrpc":"2.0","id":"a","error":{"code":-32800,"message":"Request cancelled: the request was cancelled"}}"#
                )
        )
        #expect(try await peer.call(2, "ping") == json(#"{"jsonrpc":"2.0","id":2,"result":{}}"#))
    }

    @Test("cancel racing completion: every request gets exactly one response")
    func cancelRace() async throws {
        var table = MethodTable()
        table.register("work") { context in
            // Finish at about the moment the cancel arrives.
            if case .integer(let delay)? = context.params?.value()["spin"] {
                for _ in 0..<delay { await Task.yield() }
            }
            return RawJSON(["done": true])
        }
        let peer = InProcessPeer(methods: table)
        let count = 300
        for id in 0..<count {
            peer.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"work","params":{"spin":\#(id % 7)}}"#)
            peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":\#(id)}}"#)
        }
        let messages = try await peer.output.waitForMessages(count)
        try await Task.sleep(for: .milliseconds(100))  // room for a duplicate to show up
        #expect(peer.output.messages.count == count)
        let ids = messages.compactMap { $0["id"]?.integerValue }
        #expect(Set(ids) == Set((0..<count).map(Int64.init)))
        var cancelled = 0
        for message in messages {
            if message["error"]?["code"] == -32800 {
                cancelled += 1
            } else {
                #expect(message["result"] == ["done": true])
            }
        }
        #expect(cancelled > 0, "some cancels should win the race")
    }

    @Test("ordered requests run one at a time in arrival order; a queued one can be cancelled before it runs")
    func orderedExecution() async throws {
        let running = Counter()
        let overlaps = Counter()
        let runs = Counter()
        var table = MethodTable()
        table.register("step", execution: .ordered) { context in
            if running.increment() > 1 { overlaps.increment() }
            defer { running.decrement() }
            runs.increment()
            let delay = context.params?.value()["ms"]?.integerValue ?? 0
            try await Task.sleep(for: .milliseconds(delay))
            return context.params ?? .null
        }
        let peer = InProcessPeer(methods: table)
        for (id, ms) in [(1, 60), (2, 30), (3, 0), (4, 0)] {
            peer.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"step","params":{"ms":\#(ms)}}"#)
        }
        peer.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}"#)
        let messages = try await peer.output.waitForMessages(4)
        #expect(messages.map { $0["id"] } == [1, 2, 3, 4])
        #expect(messages[2]["error"]?["code"] == -32800)
        #expect(runs.current == 3, "the cancelled request never ran")
        #expect(overlaps.current == 0)
    }

    @Test("an id already in flight is refused")
    func duplicateID() async throws {
        var table = MethodTable()
        table.register("slow") { _ in
            try await Task.sleep(for: .milliseconds(200))
            return .null
        }
        let peer = InProcessPeer(methods: table)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"slow"}"#)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"slow"}"#)
        let messages = try await peer.output.waitForMessages(2)
        #expect(messages[0]["error"]?["message"] == "Invalid Request: id 1 is already used by a request in progress")
        #expect(messages[1] == json(#"{"jsonrpc":"2.0","id":1,"result":null}"#))
    }

    @Test("a handler's unexpected error is an internal error; its notifications arrive before its response")
    func internalErrorsAndNotifications() async throws {
        struct Broken: Error, CustomStringConvertible { var description: String { "disk on fire" } }
        var table = MethodTable()
        table.register("fail") { _ in throw Broken() }
        table.register("chatty") { context in
            context.connection.notify("progress", params: RawJSON(["done": 1]))
            return .emptyObject
        }
        let peer = InProcessPeer(methods: table)
        #expect(
            try await peer.call(1, "fail")
                == json(#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"Internal error: disk on fire"}}"#)
        )
        _ = try await peer.call(2, "chatty")
        #expect(
            Array(peer.output.messages.suffix(2)) == [
                json(#"{"jsonrpc":"2.0","method":"progress","params":{"done":1}}"#),
                json(#"{"jsonrpc":"2.0","id":2,"result":{}}"#),
            ]
        )
    }

    @Test("typed params: a wrong field is named in the error")
    func typedParams() async throws {
        struct Params: Decodable {
            struct Inner: Decodable { var count: Int }
            var name: String
            var inner: Inner
        }
        var table = MethodTable()
        table.register(immediate: "typed") { context throws(ResponseError) in
            let params = try context.decodeParams(Params.self)
            return RawJSON(["name": .string(params.name)])
        }
        let peer = InProcessPeer(methods: table)
        let missing = try await peer.call(1, "typed", #"{"inner":{"count":1}}"#)
        #expect(
            missing["error"]
                == json(
                    #"{"code":-32602,"message":"Invalid params: params.name is required but missing","data":{"field":"params.name","problem":"is required but missing"}}"#
                )
        )
        let wrongType = try await peer.call(2, "typed", #"{"name":"x","inner":{"count":"many"}}"#)
        #expect(wrongType["error"]?["message"] == #"Invalid params: params.inner.count must be an integer, not "many""#)
        #expect(try await peer.call(3, "typed", #"{"name":"ok","inner":{"count":2}}"#)["result"] == ["name": "ok"])
    }

    @Test("server-to-client requests: answered, failed by the client, and timed out with a $/cancelRequest")
    func requestsToTheClient() async throws {
        var table = MethodTable()
        table.register("askClient") { context in
            let timeout: Duration = context.params?.value()["short"] == true ? .milliseconds(50) : .seconds(10)
            let answer = try await context.connection.request(
                "client/question",
                params: RawJSON(["q": "?"]),
                timeout: timeout
            )
            return RawJSON(["clientSaid": answer.value()])
        }
        let peer = InProcessPeer(methods: table)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"askClient"}"#)
        let question = try await peer.output.waitForMessages(1)[0]
        #expect(question["method"] == "client/question")
        #expect(question["params"] == ["q": "?"])
        let questionID = question["id"]!
        peer.send(#"{"jsonrpc":"2.0","id":\#(questionID),"result":42}"#)
        #expect(try await peer.output.response(id: 1)["result"] == ["clientSaid": 42])

        peer.send(#"{"jsonrpc":"2.0","id":2,"method":"askClient"}"#)
        try await peer.output.wait("the second question") { messages, _ in messages.count >= 3 }
        let second = peer.output.messages[2]["id"]!
        peer.send(#"{"jsonrpc":"2.0","id":\#(second),"error":{"code":-32000,"message":"no idea"}}"#)
        #expect(try await peer.output.response(id: 2)["error"] == json(#"{"code":-32000,"message":"no idea"}"#))

        peer.send(#"{"jsonrpc":"2.0","id":3,"method":"askClient","params":{"short":true}}"#)
        let timedOut = try await peer.output.response(id: 3)
        #expect(timedOut["error"]?["code"] == -32803)
        #expect(timedOut["error"]?["message"] == "Request failed: 'client/question' got no answer within 0.05 seconds")
        let questions = peer.output.messages.filter { $0["method"] == "client/question" }
        #expect(questions.count == 3)
        let cancel = peer.output.messages.first { $0["method"] == "$/cancelRequest" }
        #expect(cancel?["params"] == ["id": questions[2]["id"]!])
    }

    @Test("a flooding client is slowed down: the reader stops reading while the handlers are busy")
    func backpressure() async throws {
        let started = Counter()
        let gate = Gate()
        var table = MethodTable()
        table.register("blocked") { _ in
            started.increment()
            try await gate.wait()
            return .null
        }
        let input = PipePair()
        let output = PipePair()
        var configuration = Connection.Configuration()
        configuration.maximumConcurrentRequests = 2
        let connection = Connection(
            input: input.readEnd,
            output: output.writeEnd,
            methods: table,
            configuration: configuration
        )
        let reader = FrameReader(descriptor: output.readEnd, framing: .ndjson)
        connection.start()
        _ = fcntl(input.writeEnd, F_SETFL, fcntl(input.writeEnd, F_GETFL) | O_NONBLOCK)
        var sent = 0
        while sent < 100_000 {
            let bytes = framed(#"{"jsonrpc":"2.0","id":\#(sent),"method":"blocked"}"#, .ndjson)
            let written = bytes.withUnsafeBytes { write(input.writeEnd, $0.baseAddress, $0.count) }
            if written < 0 { break }  // EAGAIN: the pipe is full because nobody reads it
            #expect(written == bytes.count)  // under PIPE_BUF, so all or nothing
            sent += 1
        }
        #expect(sent < 100_000, "the reader kept reading")
        try await Task.sleep(for: .milliseconds(100))
        #expect(started.current == 2)
        gate.release()
        _ = fcntl(input.writeEnd, F_SETFL, fcntl(input.writeEnd, F_GETFL) & ~O_NONBLOCK)
        try await reader.waitForMessages(sent)
        #expect(started.current == sent)
        close(input.writeEnd)
        #expect(try await connection.waitUntilClosed() == .endOfInput)
        close(output.writeEnd)
        close(input.readEnd)
    }

    @Test("end of input with work in flight: the work is answered, then the connection closes")
    func endOfInputDrains() async throws {
        var table = MethodTable()
        table.register("slow") { _ in
            try await Task.sleep(for: .milliseconds(150))
            return RawJSON("finished")
        }
        let peer = InProcessPeer(methods: table)
        peer.send(#"{"jsonrpc":"2.0","id":1,"method":"slow"}"#)
        peer.send(#"{"jsonrpc":"2.0","id":2,"method":"slow"}"#)
        peer.closeInput()
        #expect(try await peer.connection.waitUntilClosed() == .endOfInput)
        try await peer.output.waitForEnd()
        #expect(peer.output.messages.map { $0["result"] } == ["finished", "finished"])
    }

    @Test("a task waiting for the close is cancelled: it stops waiting, and the close still reaches the others")
    func waitingForTheCloseIsCancellable() async throws {
        let peer = InProcessPeer(methods: MethodTable())
        let cancelled = Task { try await peer.connection.waitUntilClosed() }
        let waiting = Task { try await peer.connection.waitUntilClosed() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        peer.closeInput()
        #expect(try await waiting.value == .endOfInput)
        // Once closed, a wait returns at once, and so does one from a task already cancelled.
        #expect(try await peer.connection.waitUntilClosed() == .endOfInput)
        let late = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await peer.connection.waitUntilClosed()
        }
        #expect(try await late.value == .endOfInput)
    }

    @Test("a peer that stops reading closes the connection without killing the process")
    func brokenPipe() async throws {
        signal(SIGPIPE, SIG_IGN)
        var table = MethodTable()
        table.register(immediate: "ping") { _ throws(ResponseError) in .emptyObject }
        let input = PipePair()
        let output = PipePair()
        close(output.readEnd)
        let connection = Connection(input: input.readEnd, output: output.writeEnd, methods: table)
        connection.start()
        writeAll(input.writeEnd, framed(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, .ndjson))
        #expect(try await connection.waitUntilClosed() == .outputFailed(EPIPE))
        close(input.writeEnd)
        close(output.writeEnd)
    }

    @Test("framing errors are answered with id null and the stream recovers", arguments: Framing.allCases)
    func framingErrorsRecover(framing: Framing) async throws {
        var table = MethodTable()
        table.register(immediate: "ping") { _ throws(ResponseError) in .emptyObject }
        let peer = InProcessPeer(methods: table, framing: framing) { $0.maximumMessageSize = 1024 }
        let huge =
            #"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""# + String(repeating: "x", count: 2000) + "\"}}"
        peer.send(huge)
        peer.send(bytes: Array("{not json}".utf8) + Array((framing == .ndjson ? "\n" : "\r\n\r\n").utf8))
        peer.send(
            bytes: framed(#"{"jsonrpc":"2.0","id":"\#u{FFFD}","method":"ping"}"#, framing).map {
                $0 == 0xBD ? 0xFF : $0
            }
        )
        if framing == .lsp { peer.send(bytes: Array("Content-Length: 0\r\n\r\n".utf8)) }
        let answer = try await peer.call(2, "ping")
        #expect(answer == json(#"{"jsonrpc":"2.0","id":2,"result":{}}"#))
        let errors = peer.output.messages.dropLast()
        #expect(errors.allSatisfy { $0["id"] == .null })
        #expect(errors.first?["error"]?["code"] == -32600)
        #expect(errors.first?["error"]?["data"]?["limit"] == 1024)
        #expect(errors.count == (framing == .lsp ? 4 : 3))
        // U+FFFD (EF BF BD at bytes 23-25) with its last byte made 0xFF: a parse error at byte 25.
        #expect(errors.contains { $0["error"]?["message"] == "Parse error: invalid UTF-8 (byte 0xFF) at byte 25" })
    }
}
