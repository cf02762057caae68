import JSON
import TestSupport
import Testing

@Suite("JSON value decoder")
struct JSONValueDecoderTests {
    struct Params: Decodable, Equatable {
        struct Item: Decodable, Equatable {
            var name: String
            var weight: Double?
        }

        var ms: Int
        var small: Int8?
        var flag: Bool?
        var items: [Item]?
        var tags: [String: String]?
        var anything: JSONValue?
    }

    func problem(_ text: String) -> String? {
        do {
            _ = try JSONValueDecoder.decode(Params.self, from: json(text))
            return nil
        } catch {
            return error.description
        }
    }

    @Test func decodesWhatFits() throws {
        let params = try JSONValueDecoder.decode(
            Params.self,
            from: json(
                #"{"ms":5,"small":-3,"flag":true,"items":[{"name":"a","weight":2}],"tags":{"k":"v"},"anything":[1,{"x":null}]}"#
            )
        )
        #expect(
            params
                == Params(
                    ms: 5,
                    small: -3,
                    flag: true,
                    items: [.init(name: "a", weight: 2)],
                    tags: ["k": "v"],
                    anything: [1, ["x": nil]]
                )
        )
        // Integral doubles are integers; optional members may be absent or null.
        #expect(try JSONValueDecoder.decode(Params.self, from: json(#"{"ms":2.0,"flag":null}"#)).ms == 2)
    }

    @Test("an empty array is an empty object where an object is expected (Lua's {})")
    func emptyArrayIsAnEmptyObject() throws {
        let params = try JSONValueDecoder.decode(Params.self, from: json(#"{"ms":1,"tags":[],"anything":[]}"#))
        #expect(params.tags == [:])
        // Where any value goes, the array stays an array: it may be meant.
        #expect(params.anything == [])
        #expect(problem(#"{"ms":1,"tags":["k"]}"#) == #"params.tags must be an object, not an array"#)
        #expect(problem("[]") == "params.ms is required but missing")
    }

    @Test(
        "names the field and what was found there",
        arguments: [
            (#"{"ms":1.5}"#, "params.ms must be an integer, not 1.5"),
            (#"{"ms":"5"}"#, #"params.ms must be an integer, not "5""#),
            (#"{"ms":null}"#, "params.ms must not be null"),
            (#"{}"#, "params.ms is required but missing"),
            (#"{"ms":1,"small":300}"#, "params.small must be an integer between -128 and 127, not 300"),
            (#"{"ms":1,"flag":"yes"}"#, #"params.flag must be a boolean, not "yes""#),
            (#"{"ms":1,"items":{}}"#, "params.items must be an array, not an object"),
            (#"{"ms":1,"items":[{"name":"a"},{"name":7}]}"#, "params.items[1].name must be a string, not 7"),
            (
                #"{"ms":1,"items":[{"name":"a","weight":"heavy"}]}"#,
                #"params.items[0].weight must be a number, not "heavy""#
            ),
            (#"{"ms":1,"tags":{"k":1}}"#, "params.tags.k must be a string, not 1"),
            (#"[1]"#, "params must be an object, not an array"),
        ]
    )
    func problems(text: String, expected: String) {
        #expect(problem(text) == expected)
    }
}
