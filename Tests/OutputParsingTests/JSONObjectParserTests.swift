import JSON
import OutputParsing
import Testing

@Suite("json parser")
struct JSONObjectParserTests {
    struct Row: Sendable, CustomTestStringConvertible {
        enum Expected: Sendable {
            /// Parsed: the cleaned candidate and the object it holds.
            case object(String, JSONValue)
            /// Failed: the `llm_error` detail in parentheses and the last candidate tried.
            case failure(String, lastTried: String?)
        }

        var name: String
        var raw: String
        var expected: Expected

        init(_ name: String, _ raw: String, _ expected: Expected) {
            self.name = name
            self.raw = raw
            self.expected = expected
        }

        var testDescription: String { name }

        var outcome: ParseOutcome {
            switch expected {
            case .object(let cleaned, let json):
                return .success(parser: "json", raw: raw, text: cleaned, json: json, cleanedJSON: cleaned)
            case .failure(let detail, let lastTried):
                let reason = "no JSON object could be parsed from the output"
                return .failure(
                    parser: "json",
                    raw: raw,
                    status: .jsonParseError,
                    reason: reason,
                    error: "\(reason) (\(detail))",
                    cleanedJSON: lastTried
                )
            }
        }
    }

    static let rows: [Row] = [
        Row(
            "bare object",
            #"{"title": "Tides", "score": 8}"#,
            .object(#"{"title": "Tides", "score": 8}"#, .object(["title": .string("Tides"), "score": .integer(8)]))
        ),
        Row(
            "fenced json with narration",
            "Here is the result:\n```json\n{\"tasks\": [\"a\", \"b\"]}\n```\nHope this helps!",
            .object(#"{"tasks": ["a", "b"]}"#, .object(["tasks": .array([.string("a"), .string("b")])]))
        ),
        Row(
            "unlabelled fence, upper-case label elsewhere ignored",
            "```\n{\"ok\": true}\n```",
            .object(#"{"ok": true}"#, .object(["ok": .bool(true)]))
        ),
        Row(
            "narrated without a fence",
            "Sure! {\"phase\": \"plan\"} Let me know if you need more.",
            .object(#"{"phase": "plan"}"#, .object(["phase": .string("plan")]))
        ),
        Row(
            "trailing commas removed",
            "{\"a\": [1, 2,],\n \"b\": null,\n}",
            .object(
                "{\"a\": [1, 2],\n \"b\": null\n}",
                .object(["a": .array([.integer(1), .integer(2)]), "b": .null])
            )
        ),
        Row(
            "comma inside a string is kept",
            #"{"list": "x,]", "n": 1,}"#,
            .object(#"{"list": "x,]", "n": 1}"#, .object(["list": .string("x,]"), "n": .integer(1)]))
        ),
        Row(
            "braces inside strings",
            #"Result: {"template": "Use {name} here }", "inner": {"m": 1}} done"#,
            .object(
                #"{"template": "Use {name} here }", "inner": {"m": 1}}"#,
                .object(["template": .string("Use {name} here }"), "inner": .object(["m": .integer(1)])])
            )
        ),
        Row(
            "fence in another language is skipped",
            "```python\nprint({1: 2})\n```\n```json\n{\"a\": 2}\n```",
            .object(#"{"a": 2}"#, .object(["a": .integer(2)]))
        ),
        Row(
            "first fence broken, a later one fixed",
            "```json\n{oops}\n```\nCorrected:\n```json\n{\"a\": 3}\n```",
            .object(#"{"a": 3}"#, .object(["a": .integer(3)]))
        ),
        Row(
            "narration with braces before the object",
            "Use the {format} below.\n{\"a\": 1}",
            .object(#"{"a": 1}"#, .object(["a": .integer(1)]))
        ),
        Row(
            "unclosed fence (truncated answer)",
            "```json\n{\"a\": \"\\u00e9\\ud83d\\ude00\"}",
            .object(#"{"a": "\u00e9\ud83d\ude00"}"#, .object(["a": .string("é😀")]))
        ),
        Row(
            "byte-order mark and CRLF",
            "\u{FEFF}{\r\n  \"a\": -1.5e2\r\n}\r\n",
            .object("{\n  \"a\": -1.5e2\n}", .object(["a": .double(-150)]))
        ),
        Row(
            "no JSON at all",
            "I cannot help with that.",
            .failure(
                "whole text: line 1, column 1: unexpected 'I', expected a JSON value",
                lastTried: "I cannot help with that."
            )
        ),
        Row(
            "array is not an object",
            "[1, 2]",
            .failure("whole text: the value is an array, not an object", lastTried: "[1, 2]")
        ),
        Row(
            "broken fenced JSON",
            "```json\n{\"a\": 1,, }\n```",
            .failure(
                "fenced block 1: line 1, column 10: unexpected '}', expected a string key; "
                    + "whole text: line 1, column 1: unexpected '`', expected a JSON value",
                lastTried: "```json\n{\"a\": 1, }\n```"
            )
        ),
        Row(
            "smart quotes are not rewritten",
            "{“a”: 1}",
            .failure(
                "brace span: line 1, column 2: unexpected '“', expected a string key",
                lastTried: "{“a”: 1}"
            )
        ),
        Row(
            "single quotes and a second line",
            "Answer:\n{'a': 1}",
            .failure(
                "brace span: line 1, column 2: unexpected ''', expected a string key; "
                    + "whole text: line 1, column 1: unexpected 'A', expected a JSON value",
                lastTried: "Answer:\n{'a': 1}"
            )
        ),
    ]

    @Test(arguments: rows)
    func parses(_ row: Row) {
        #expect(JSONObjectParser().parse(row.raw) == row.outcome)
    }

    @Test func emptyOutputIsAJSONParseError() {
        let outcome = JSONObjectParser().parse(" \n")
        #expect(
            outcome
                == ParseOutcome(
                    parser: "json",
                    status: .jsonParseError,
                    llmRawText: " \n",
                    llmError: "the output is empty",
                    reason: "the output is empty"
                )
        )
    }

    @Test func statusesUseTheirSnakeCaseNames() {
        #expect(ParseStatus.jsonParseError.rawValue == "json_parse_error")
        #expect(ParseStatus.stubFallback.rawValue == "stub_fallback")
        #expect(ParseStatus.parserFailure.rawValue == "parser_failure")
        #expect(ParseStatus.success.rawValue == "success")
    }
}
