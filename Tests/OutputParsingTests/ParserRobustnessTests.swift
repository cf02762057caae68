import Foundation
import OutputParsing
import Testing

@Suite("parser robustness and encoding")
struct ParserRobustnessTests {
    /// Pieces models really emit, glued in every pair: unbalanced tags, fences and braces,
    /// lone surrogates' escapes, combining marks, digits next to letters.
    static let fragments = [
        "", "\r\n", "<essay", "<essay>", "</essay>", "<essay-idea stage=\"", "<essay-idea stage=7>", "</essay-idea",
        "<thinking>", "</thinking>", "```", "```json\n", "{", "}", "\"", "\\", "{\"a\":", "[", ",]", "\u{FEFF}",
        "SCORE:", "Score", " 4 5 ", "6", "/", "0", "out of ", "-", ".", "e\u{301}", "**", "#", "1.2.3", "\\ud800",
    ]

    @Test func everyStandardParserAnswersEveryInput() throws {
        let registry = ParserRegistry.standard
        for name in registry.names {
            let parser = try registry.parser(named: name)
            for first in Self.fragments {
                for second in Self.fragments {
                    let raw = first + second + first
                    let outcome = parser.parse(raw)
                    #expect(outcome.llmRawText == raw)
                    #expect(outcome.parser == name)
                    #expect(outcome.status != .stubFallback)
                    #expect((outcome.status == .success) == (outcome.text != nil && outcome.reason == nil))
                    if let score = outcome.score { #expect((0...10).contains(score)) }
                }
            }
        }
    }

    @Test func outcomesEncodeWithSnakeCaseFieldNames() throws {
        let outcome = JSONObjectParser().parse("Here:\n```json\n{\"a\": [1, true, null]}\n```")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let encoded = String(decoding: try encoder.encode(outcome), as: UTF8.self)
        #expect(
            encoded
                == #"{"json":{"a":[1,true,null]},"llm_cleaned_json":"{\"a\": [1, true, null]}","#
                + #""llm_raw_text":"Here:\n```json\n{\"a\": [1, true, null]}\n```","parser":"json","#
                + #""status":"success","text":"{\"a\": [1, true, null]}"}"#
        )
        #expect(try JSONDecoder().decode(ParseOutcome.self, from: Data(encoded.utf8)) == outcome)

        let failure = InLastLineParser().parse("none", stubFallback: { "0.0" })
        let decoded = try JSONDecoder().decode(ParseOutcome.self, from: try encoder.encode(failure))
        #expect(decoded == failure)
        #expect(String(decoding: try encoder.encode(failure.status), as: UTF8.self) == #""stub_fallback""#)
    }
}
