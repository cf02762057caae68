import JSON
import Testing

@Suite("JSON parser")
struct JSONParserTests {
    func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    func parse(bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        try JSONParser.parse(bytes)
    }

    @Test func parsesEveryKindOfValue() throws {
        let value = try parse(#" {"a":[1,-2,3.5,1e3,true,false,null],"b":{"c":"d"},"e":""} "#)
        #expect(
            value
                == .object([
                    "a": [1, -2, 3.5, 1000.0, true, false, nil],
                    "b": ["c": "d"],
                    "e": "",
                ])
        )
    }

    @Test func keepsIntegersExactAndFallsBackToDoubleBeyond64Bits() throws {
        #expect(try parse("9223372036854775807") == .integer(Int64.max))
        #expect(try parse("-9223372036854775808") == .integer(Int64.min))
        #expect(try parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
        #expect(try parse("-0") == .integer(0))
        #expect(try parse("1.0") == .double(1))
        #expect(try parse("2E-2") == .double(0.02))
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{08}\u{0C}\n\r\t"))
        #expect(try parse(#""\u00e9\u2603\ud83d\ude00""#) == .string("é☃😀"))
        // A lone surrogate is not a character: it becomes U+FFFD rather than failing the message.
        #expect(try parse(#""x\ud800y""#) == .string("x\u{FFFD}y"))
        #expect(try parse(#""\udc00""#) == .string("\u{FFFD}"))
    }

    @Test func acceptsRawMultibyteUTF8() throws {
        #expect(try parse("\"héllo ☃ 😀 中文\"") == .string("héllo ☃ 😀 中文"))
    }

    @Test(
        "rejects invalid UTF-8 with the offending byte",
        arguments: [
            ([0x22, 0xC3, 0x28, 0x22], "invalid UTF-8 (byte 0x28) at byte 2"),
            ([0x22, 0xC0, 0x80, 0x22], "invalid UTF-8 (byte 0xC0) at byte 1"),  // overlong NUL
            ([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8 (byte 0xA0) at byte 2"),  // encoded surrogate
            ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], "invalid UTF-8 (byte 0xF5) at byte 1"),  // above U+10FFFF
            ([0x22, 0xE2, 0x98], "invalid UTF-8 (truncated sequence) at byte 1"),
            ([0x22, 0xFF, 0x22], "invalid UTF-8 (byte 0xFF) at byte 1"),
            ([0x22, 0xE2, 0x98, 0x41, 0x22], "invalid UTF-8 (byte 0x41) at byte 3"),
            ([0xFF], "unexpected byte 0xFF, expected a JSON value at byte 0"),
        ] as [([UInt8], String)]
    )
    func rejectsInvalidUTF8(bytes: [UInt8], expected: String) {
        #expect(throws: JSONParseError.self) { try parse(bytes: bytes) }
        do {
            _ = try parse(bytes: bytes)
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test(
        "rejects malformed JSON with a message and an offset",
        arguments: [
            ("", "unexpected end of input, expected a JSON value at byte 0"),
            ("{", "unexpected end of input, expected a string key at byte 1"),
            (#"{"a" 1}"#, "unexpected '1', expected ':' after an object key at byte 5"),
            (#"{"a":1,}"#, "unexpected '}', expected a string key at byte 7"),
            ("[1,]", "unexpected ']', expected a JSON value at byte 3"),
            ("[1 2]", "unexpected '2', expected ',' or ']' in an array at byte 3"),
            ("01", "a number must not have leading zeros at byte 1"),
            ("1.", "unexpected end of input, expected a digit after '.' at byte 2"),
            ("-", "unexpected end of input, expected a digit at byte 1"),
            ("tru", "unexpected end of input, expected 'true' at byte 3"),
            ("nul1", "unexpected '1', expected 'null' at byte 3"),
            (#""abc"#, "unterminated string at byte 4"),
            ("\"a\tb\"", "control character byte 0x09 in a string must be escaped at byte 2"),
            (#""\x""#, #"invalid escape '\x' in a string at byte 2"#),
            (#""\u12G4""#, #"\u must be followed by four hexadecimal digits at byte 5"#),
            ("1 2", "unexpected '2' after the end of the JSON value at byte 2"),
            ("{} x", "unexpected 'x' after the end of the JSON value at byte 3"),
            ("NaN", "unexpected 'N', expected a JSON value at byte 0"),
        ]
    )
    func rejectsMalformedJSON(text: String, expected: String) {
        do {
            let value = try parse(text)
            Issue.record("parsed \(value) from \(text)")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func boundsNestingDepth() throws {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        do {
            _ = try parse(deep)
            Issue.record("parsed 600 levels")
        } catch {
            #expect(error.description == "nesting deeper than 512 levels at byte 512")
        }
        let fine = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        _ = try parse(fine)
    }
}

@Suite("JSON writer")
struct JSONWriterTests {
    func text(_ value: JSONValue) -> String { value.description }

    @Test func writesCompactSortedJSON() {
        #expect(
            text(["b": 1, "a": [true, nil, "x"], "c": ["z": 1.5]]) == #"{"a":[true,null,"x"],"b":1,"c":{"z":1.5}}"#
        )
    }

    @Test func escapesWhatJSONRequiresAndNothingElse() {
        #expect(text("q\"b\\n\n\r\t\u{08}\u{0C}\u{01}\u{1F}/é😀") == #""q\"b\\n\n\r\t\b\f\u0001\u001f/é😀""#)
    }

    @Test func writesIntegersAndDoubles() {
        #expect(text(.integer(0)) == "0")
        #expect(text(.integer(-7)) == "-7")
        #expect(text(.integer(Int64.max)) == "9223372036854775807")
        #expect(text(.integer(Int64.min)) == "-9223372036854775808")
        #expect(text(.double(0.5)) == "0.5")
        #expect(text(.double(.infinity)) == "null")
        #expect(text(.double(.nan)) == "null")
    }

    @Test func roundTripsThroughTheParser() throws {
        let original: JSONValue = ["s": "héllo\n\"x\"", "n": [1, -2, 3.25], "o": ["deep": [[["x": nil]]]], "b": false]
        #expect(try JSONParser.parse(Array(original.description.utf8)) == original)
    }
}

/// The parser as the engine's `json` output parser uses it: messages for people, with line and
/// column computed from the offset and the parsed text.
@Suite("JSON parser errors by line and column")
struct JSONParserLocationTests {
    func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try JSONParser.parse(Array(text.utf8), rejectingOutOfRangeNumbers: true)
    }

    @Test func readsNestedValues() throws {
        let value = try parse(#" {"a": [true, false, null, 0, -0.5, "x\n\"y\""], "b": {}} "#)
        #expect(value == ["a": [true, false, nil, 0, -0.5, "x\n\"y\""], "b": [:]])
        #expect(value["a"] == [true, false, nil, .integer(0), .double(-0.5), .string("x\n\"y\"")])
        #expect(value["b"] == .object([:]))
        #expect(value["missing"] == nil)
    }

    @Test(
        "refuses what is not strict JSON, saying where",
        arguments: [
            (#"{"a": 01}"#, "line 1, column 8: a number must not have leading zeros"),
            ("[1, 2", "line 1, column 6: unexpected end of input, expected ',' or ']' in an array"),
            ("{\n  \"a\": \"x", "line 2, column 8: unterminated string"),
            ("[\"ab\\", "line 1, column 2: unterminated string"),
            ("\"a\tb\"", "line 1, column 3: control character byte 0x09 in a string must be escaped"),
            (#""\q""#, #"line 1, column 3: invalid escape '\q' in a string"#),
            ("1 2", "line 1, column 3: unexpected '2' after the end of the JSON value"),
            ("1e999", "line 1, column 1: number 1e999 is out of range"),
            ("[-1e999]", "line 1, column 2: number -1e999 is out of range"),
            ("", "line 1, column 1: unexpected end of input, expected a JSON value"),
            ("tru", "line 1, column 4: unexpected end of input, expected 'true'"),
            ("{\n\"a\": 1\n\"b\": 2}", "line 3, column 1: unexpected '\"', expected ',' or '}' in an object"),
            // Columns count characters: 'é' is two bytes, one column.
            ("[\"é\", x]", "line 1, column 7: unexpected 'x', expected a JSON value"),
            // A non-ASCII character is named, not its first byte; an invisible one by its code point.
            ("{“a”: 1}", "line 1, column 2: unexpected '“', expected a string key"),
            ("{\u{A0}\"a\": 1}", "line 1, column 2: unexpected U+00A0 NO-BREAK SPACE, expected a string key"),
            ("{} \u{200B}", "line 1, column 4: unexpected U+200B ZERO WIDTH SPACE after the end of the JSON value"),
        ]
    )
    func refuses(text: String, message: String) {
        let bytes = Array(text.utf8)
        #expect(throws: JSONParseError.self) { try parse(text) }
        do {
            _ = try parse(text)
        } catch {
            #expect(error.description(in: bytes) == message)
        }
    }

    @Test func locationIsComputedFromTheOffset() {
        let text = "{\n  \"a\": [1,\n   2 3]}"
        let bytes = Array(text.utf8)
        do {
            _ = try parse(text)
            Issue.record("parsed \(text)")
        } catch {
            #expect(error.offset == 18)
            #expect(error.location(in: bytes) == JSONParseError.Location(line: 3, column: 6))
            #expect(error.location(in: bytes).description == "line 3, column 6")
            // The byte-level description (what JSON-RPC clients see) does not change.
            #expect(error.description == "unexpected '3', expected ',' or ']' in an array at byte 18")
        }
    }

    @Test func unterminatedStringKeepsItsOffsetAtTheEnd() {
        do {
            _ = try parse("{\"a\": \"xyz")
            Issue.record("parsed an unterminated string")
        } catch {
            #expect(error.description == "unterminated string at byte 10")
            #expect(error.stringStart == 6)
        }
    }

    @Test func byteLevelMessagesStillNameBytes() {
        do {
            _ = try parse("{“a”: 1}")
        } catch {
            #expect(error.description == "unexpected byte 0xE2, expected a string key at byte 1")
        }
    }

    @Test func outOfRangeNumbersAreInfinityUnlessRejected() throws {
        #expect(try JSONParser.parse(Array("1e999".utf8)) == .double(.infinity))
        #expect(try parse("1e308") == .double(1e308))
    }

    @Test func loneSurrogateEscapeBecomesTheReplacementCharacter() throws {
        #expect(try parse(#""\ud83d""#) == .string("\u{FFFD}"))
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 600)
        do {
            _ = try parse(deep)
            Issue.record("parsed \(deep.count) open brackets")
        } catch {
            #expect(error.reason == "nesting deeper than 512 levels")
            #expect(error.description(in: Array(deep.utf8)) == "line 1, column 513: nesting deeper than 512 levels")
        }
    }
}

/// Objects keep their members in the order read or added; equality and hashing ignore it.
@Suite("JSON object order")
struct JSONObjectOrderTests {
    @Test("members are kept as written; equal and hashed the same whatever the order; written sorted")
    func order() throws {
        let parsed = try JSONParser.parse(Array(#"{"b":1,"a":{"z":1,"y":2},"c":3}"#.utf8))
        guard case .object(let members) = parsed, case .object(let inner)? = members["a"] else {
            Issue.record("not an object: \(parsed)")
            return
        }
        #expect(members.keys == ["b", "a", "c"])
        #expect(inner.keys == ["z", "y"])
        let reordered: JSONValue = ["c": 3, "a": ["y": 2, "z": 1], "b": 1]
        #expect(parsed == reordered)
        #expect(parsed.hashValue == reordered.hashValue)
        #expect(parsed.description == #"{"a":{"y":2,"z":1},"b":1,"c":3}"#)
    }

    @Test("a repeated key keeps its first place and its last value; removal and large objects keep order")
    func edits() throws {
        let parsed = try JSONParser.parse(Array(#"{"x":1,"y":2,"x":3}"#.utf8))
        guard case .object(var members) = parsed else {
            Issue.record("not an object")
            return
        }
        #expect(members.keys == ["x", "y"] && members["x"] == 3)
        members.removeValue(forKey: "x")
        members["w"] = 4
        #expect(members.keys == ["y", "w"])
        // Past a dozen members lookups go through an index; the order is the same.
        var large = JSONObject()
        let names = (0..<100).map { "k\((($0 * 37) % 100))" }
        for (position, name) in names.enumerated() { large[name] = .integer(Int64(position)) }
        #expect(large.keys == names)
        #expect(large["k37"] == 1 && large["k0"] == 0 && large["nope"] == nil)
        large.removeValue(forKey: names[10])
        #expect(large.keys == Array(names[..<10] + names[11...]))
        #expect(large[names[11]] == 11)
    }
}
