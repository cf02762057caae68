import OutputParsing
import Testing

/// One row of a parser table: a realistic model output and what the parser must make of it.
struct ParserCase: Sendable, CustomTestStringConvertible {
    enum Expected: Sendable {
        case text(String)
        case score(Double)
        case failure(String)
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

    /// The full outcome `parser` must return for this row.
    func outcome(of parser: String) -> ParseOutcome {
        switch expected {
        case .text(let text):
            return .success(parser: parser, raw: raw, text: text)
        case .score(let score):
            return .success(parser: parser, raw: raw, text: String(score), score: score)
        case .failure(let reason):
            return .failure(parser: parser, raw: raw, reason: reason)
        }
    }
}
