import JSON
import JSONRPC
import Synchronization
import TestSupport
import Testing

/// Every example of section 7 of the JSON-RPC 2.0 specification, sent as the specification
/// writes it, over a real connection on pipes.
@Suite("JSON-RPC 2.0 specification examples")
struct SpecExamplesTests {
    /// The methods the specification's examples call.
    static func specMethods() -> MethodTable {
        var table = MethodTable()
        table.register("subtract") { context in
            switch context.params?.value() {
            case .array(let values)? where values.count == 2:
                return RawJSON(.integer(values[0].integerValue! - values[1].integerValue!))
            case .object(let members)?:
                return RawJSON(.integer(members["minuend"]!.integerValue! - members["subtrahend"]!.integerValue!))
            default:
                throw ResponseError.invalidParams(field: "params", problem: "must be [minuend, subtrahend]")
            }
        }
        table.register(immediate: "sum") { context throws(ResponseError) in
            guard case .array(let values)? = context.params?.value() else {
                throw .invalidParams(field: "params", problem: "must be an array of numbers")
            }
            return RawJSON(.integer(values.compactMap(\.integerValue).reduce(0, +)))
        }
        table.register("get_data", execution: .ordered) { _ in RawJSON(["hello", 5]) }
        table.register(immediate: "sentinel") { _ throws(ResponseError) in .null }
        for name in ["update", "notify_hello", "notify_sum", "foobar"] { table.onNotification(name) { _ in } }
        return table
    }

    /// Sends `text` as one frame, then a sentinel request; waits for the sentinel's answer and
    /// for `count` other messages (responses may overtake each other), and returns the others.
    static func exchange(_ peer: some RPCPeer, _ text: String, expecting count: Int = 1) async throws -> [JSONValue] {
        let before = peer.output.messages.count
        let sentinel = JSONValue.string("sentinel-\(before)")
        peer.send(text)
        peer.send(#"{"jsonrpc":"2.0","id":\#(sentinel),"method":"sentinel"}"#)
        try await peer.output.wait("the sentinel and \(count) responses") { messages, _ in
            let new = messages[before...]
            return new.contains { $0["id"] == sentinel } && new.count >= count + 1
        }
        return peer.output.messages[before...].filter { $0["id"] != sentinel }
    }

    /// A response reduced to what the specification fixes: id and result, or id and error code.
    static func essence(_ response: JSONValue) -> JSONValue {
        var members: [String: JSONValue] = ["id": response["id"] ?? "missing"]
        if let result = response["result"] { members["result"] = result }
        if let error = response["error"] { members["code"] = error["code"] ?? "missing" }
        #expect(response["jsonrpc"] == "2.0")
        return .object(members)
    }

    static func expectResponses(_ peer: some RPCPeer, _ request: String, _ expected: String) async throws {
        let responses = try await exchange(peer, request)
        let expectedValue = json(expected)
        if case .array(let items) = expectedValue {
            // A batch: one array back; the specification lets its elements come in any order.
            #expect(responses.count == 1, "expected one batch response to \(request)")
            guard case .array(let got)? = responses.first else {
                Issue.record("expected an array, got \(responses)")
                return
            }
            let gotEssence = got.map(essence).map(\.description).sorted()
            #expect(gotEssence == items.map(\.description).sorted())
        } else {
            #expect(responses.map(essence) == [expectedValue], "\(request)")
        }
    }

    static func expectNoResponse(_ peer: some RPCPeer, _ request: String) async throws {
        #expect(try await exchange(peer, request, expecting: 0).isEmpty, "\(request) must get no response")
    }

    @Test("all examples", arguments: Framing.allCases)
    func allExamples(framing: Framing) async throws {
        let peer = InProcessPeer(methods: Self.specMethods(), framing: framing)
        // rpc call with positional parameters
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
            #"{"result": 19, "id": 1}"#
        )
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
            #"{"result": -19, "id": 2}"#
        )
        // rpc call with named parameters
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
            #"{"result": 19, "id": 3}"#
        )
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
            #"{"result": 19, "id": 4}"#
        )
        // a Notification
        try await Self.expectNoResponse(peer, #"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#)
        try await Self.expectNoResponse(peer, #"{"jsonrpc": "2.0", "method": "foobar"}"#)
        // rpc call of non-existent method
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
            #"{"code": -32601, "id": "1"}"#
        )
        // rpc call with invalid JSON
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            #"{"code": -32700, "id": null}"#
        )
        // rpc call with invalid Request object
        try await Self.expectResponses(
            peer,
            #"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
            #"{"code": -32600, "id": null}"#
        )
        // rpc call Batch, invalid JSON
        try await Self.expectResponses(
            peer,
            #"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]"#,
            #"{"code": -32700, "id": null}"#
        )
        // rpc call with an empty Array
        try await Self.expectResponses(peer, "[]", #"{"code": -32600, "id": null}"#)
        // rpc call with an invalid Batch (but not empty)
        try await Self.expectResponses(peer, "[1]", #"[{"code": -32600, "id": null}]"#)
        // rpc call with invalid Batch
        try await Self.expectResponses(
            peer,
            "[1,2,3]",
            #"[{"code": -32600, "id": null}, {"code": -32600, "id": null}, {"code": -32600, "id": null}]"#
        )
        // rpc call Batch
        try await Self.expectResponses(
            peer,
            #"""
            [{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}, {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"}, {"foo": "boo"}, {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"}, {"jsonrpc": "2.0", "method": "get_data", "id": "9"}]
            """#,
            #"""
            [{"result": 7, "id": "1"}, {"result": 19, "id": "2"}, {"code": -32600, "id": null}, {"code": -32601, "id": "5"}, {"result": ["hello", 5], "id": "9"}]
            """#
        )
        // rpc call Batch (all notifications)
        try await Self.expectNoResponse(
            peer,
            #"[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]"#
        )
        #expect(peer.output.problems.isEmpty)
    }

    @Test("the exact error objects a client sees")
    func exactErrors() async throws {
        let peer = InProcessPeer(methods: Self.specMethods())
        let responses = try await Self.exchange(peer, #"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#)
        #expect(
            responses == [
                json(
                    #"""
                    {"jsonrpc":"2.0","id":"1","error":{"code":-32601,"message":"Method not found: 'foobar'",
                     "data":{"method":"foobar","available":["get_data","sentinel","subtract","sum"]}}}
                    """#
                )
            ]
        )
        let invalid = try await Self.exchange(peer, #"{"jsonrpc": "1.0", "method": "sum", "id": 7}"#)
        #expect(
            invalid == [
                json(
                    #"""
                    {"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"Invalid Request: \"jsonrpc\" must be exactly \"2.0\"",
                     "data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"}}}
                    """#
                )
            ]
        )
        let badID = try await Self.exchange(peer, #"{"jsonrpc": "2.0", "method": "sum", "id": {"x": 1}}"#)
        #expect(badID.first?["error"]?["message"] == "Invalid Request: \"id\" must be a string, an integer or null")
        #expect(badID.first?["id"] == .null)
        let badParams = try await Self.exchange(peer, #"{"jsonrpc": "2.0", "method": "sum", "params": 3, "id": 8}"#)
        #expect(
            badParams.first?["error"]?["message"] == "Invalid Request: \"params\" must be an object, an array or null"
        )
        #expect(badParams.first?["id"] == 8)
    }
}
