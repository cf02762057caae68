/// `in_last_line`: an evaluation score written in the last three non-empty lines.
///
/// Rules, in order:
/// 1. `*` and `#` are removed first (so `**SCORE: 8**` reads as `SCORE: 8`), then lines are
///    trimmed and empty ones skipped.
/// 2. A line that is exactly `SCORE: X` (any case, a trailing `.` allowed) wins over every other
///    pattern; the last such line counts.
/// 3. Otherwise the lines are read from the last one up, and the first that has a score gives
///    it: three single digits `4 5 6` or a three-digit integer `456` (averaged → 5.0), else the
///    number after the line's last `score` word (`score: 8`, `score is 8`, `score of 8`), else
///    the only number of the line (a line with several numbers and no `score` has no score).
///
/// `X` may be a decimal (`7.5`), a three-digit score, or a fraction (`8/10`, `4 out of 5`) which
/// is scaled to 0–10. A three-digit integer is always averaged, so `SCORE: 100` reads as 0.33:
/// no 0–10 score has three digits. Numbers glued to letters (`3rd`, `v2`) are not scores. A score
/// outside 0–10 is a failure naming it; the parser does not then look further up for another.
/// The parsed text is the score as Python's `str(float)` writes it (`"8.0"`).
public struct InLastLineParser: OutputParser {
    public let name = "in_last_line"

    /// The parser, registered as `in_last_line`.
    public init() {}

    public func parse(_ raw: String) -> ParseOutcome {
        let lines = raw.withLFLineBreaks.splitLines
            .map { $0.withoutMarkdownMarks.trimmedOfWhitespace }
            .filter { !$0.isEmpty }
            .suffix(3)
        guard !lines.isEmpty else { return .failure(parser: name, raw: raw, reason: "the output is empty") }
        for line in lines.reversed() {
            if let reading = exactScore(line) { return reading.outcome(parser: name, raw: raw) }
        }
        for line in lines.reversed() {
            let scoreLine = ScoreLine(line)
            if let reading = scoreLine.threeDigitReading ?? scoreLine.keywordReading ?? scoreLine.onlyReading {
                return reading.outcome(parser: name, raw: raw)
            }
        }
        return .failure(parser: name, raw: raw, reason: "no score found in the last 3 non-empty lines")
    }

    /// The `X` of a line that is exactly `SCORE: X`.
    private func exactScore(_ line: Substring) -> ScoreReading? {
        guard line.prefix(5).lowercased() == "score" else { return nil }
        let afterWord = line.dropFirst(5).drop(while: \.isWhitespace)
        guard afterWord.first == ":" else { return nil }
        return ScoreLine(afterWord.dropFirst().trimmedOfWhitespace).wholeLineReading
    }
}

/// `complex`: the score of a `Score`, `Final Score` or `Total Score` line in the last 30 lines.
///
/// `*` and `#` are removed, the line trimmed, and a leading list or quote marker (`-`, `+`, `>`)
/// dropped; the line must then start with one of the headers (any case) followed by `:` or
/// spaces and a number. A header alone on its line (`## Final Score`) takes the number that
/// starts the next non-empty line. Values are plain numbers (`7.5`) or fractions scaled to 0–10
/// (`8/10` → 8.0, `4/5` → 8.0, `24 out of 30` → 8.0); three digits are not averaged here. The last
/// match wins, and it must lie in 0–10: an out-of-range last match is a failure, not a reason
/// to use an earlier one. Trailing blank lines do not count towards the 30.
public struct ComplexScoreParser: OutputParser {
    public let name = "complex"

    /// The parser, registered as `complex`.
    public init() {}

    // Longest first, so `Final Score` is not read as a line starting with something else.
    private static let headers = ["final score", "total score", "score"]

    public func parse(_ raw: String) -> ParseOutcome {
        let text = String(raw.withLFLineBreaks.trimmingTrailingWhitespace)
        guard !text.trimmedOfWhitespace.isEmpty else {
            return .failure(parser: name, raw: raw, reason: "the output is empty")
        }
        let lines = text.splitLines.suffix(30).map(Self.clean)
        var last: ScoreReading?
        for (index, line) in lines.enumerated() {
            guard let rest = Self.afterHeader(line) else { continue }
            if !rest.isEmpty {
                if let reading = ScoreLine(rest).leadingReading { last = reading }
            } else if let next = lines[(index + 1)...].first(where: { !$0.isEmpty }) {
                if let reading = ScoreLine(next).leadingReading { last = reading }
            }
        }
        guard let last else {
            let reason = "no 'Score', 'Final Score' or 'Total Score' line with a number in the last 30 lines"
            return .failure(parser: name, raw: raw, reason: reason)
        }
        return last.outcome(parser: name, raw: raw)
    }

    private static func clean(_ line: Substring) -> Substring {
        let trimmed = line.withoutMarkdownMarks.trimmedOfWhitespace
        if let first = trimmed.first, "-+>".contains(first), trimmed.dropFirst().first?.isWhitespace == true {
            return trimmed.dropFirst().trimmedOfWhitespace
        }
        return trimmed
    }

    /// What follows a header and its `:`/space separators, or `nil` when the line has no header.
    private static func afterHeader(_ line: Substring) -> Substring? {
        for header in headers where line.count >= header.count {
            let prefix = line.prefix(header.count)
            guard zip(prefix, header).allSatisfy({ $0.lowercased() == String($1) }) else { continue }
            let rest = line.dropFirst(header.count)
            guard let separator = rest.first else { return rest }
            guard separator == ":" || separator.isWhitespace else { return nil }
            return rest.drop { $0 == ":" || $0.isWhitespace }
        }
        return nil
    }
}
