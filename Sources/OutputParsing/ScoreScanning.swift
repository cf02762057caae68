/// A score as read from the text, before its range is checked.
struct ScoreReading: Equatable {
    /// The value on a 0–10 scale (fractions already scaled).
    var value: Double
    /// The text it was read from, e.g. `8/10` or `4 5 6`, for failure reasons.
    var source: String
    /// A fraction with a zero denominator has no value.
    var zeroDenominator = false

    /// The outcome of a score parser: success when the score lies in 0…10, a failure saying why
    /// otherwise.
    func outcome(parser: String, raw: String) -> ParseOutcome {
        guard !zeroDenominator else {
            return .failure(parser: parser, raw: raw, reason: "score \(source) has a zero denominator")
        }
        guard (0...10).contains(value) else {
            return .failure(parser: parser, raw: raw, reason: "score \(source) is outside the range 0 to 10")
        }
        // `+ 0` turns a written `-0` into 0; `Double.description` is the shortest round-trip
        // form, like Python's `str(float)`.
        let score = value + 0
        return .success(parser: parser, raw: raw, text: String(score), score: score)
    }
}

/// The numbers of one line and what they can mean as a score.
struct ScoreLine {
    /// A number written in the line.
    struct Token {
        var start: Int
        var end: Int
        var value: Double
        /// The digits of an unsigned integer (`7`, `456`); `nil` for signed or decimal numbers.
        var digits: [Int]?
    }

    /// A number that is not the denominator of a fraction, with its fraction if it has one.
    struct Value {
        var start: Int
        var end: Int
        var reading: ScoreReading
        /// The digits of a plain unsigned integer, `nil` for decimals, signs and fractions.
        var digits: [Int]?
    }

    let chars: [Character]
    private(set) var values: [Value] = []

    init(_ text: some StringProtocol) {
        chars = Array(text)
        let tokens = Self.tokens(in: chars)
        var index = 0
        while index < tokens.count {
            let number = tokens[index]
            if index + 1 < tokens.count, denominatorStart(after: number.end) == tokens[index + 1].start {
                let denominator = tokens[index + 1]
                let source = String(chars[number.start..<denominator.end])
                // Scaled as n*10/d rather than n/d*10 so that 4/5 gives exactly 8.0.
                let reading = ScoreReading(
                    value: denominator.value == 0 ? 0 : number.value * 10 / denominator.value,
                    source: source,
                    zeroDenominator: denominator.value == 0
                )
                values.append(Value(start: number.start, end: denominator.end, reading: reading, digits: nil))
                index += 2
            } else {
                let reading = ScoreReading(value: number.value, source: String(chars[number.start..<number.end]))
                values.append(Value(start: number.start, end: number.end, reading: reading, digits: number.digits))
                index += 1
            }
        }
    }

    /// The value at the start of the line, read literally (no three-digit averaging).
    var leadingReading: ScoreReading? {
        guard let first = values.first, first.start == 0 else { return nil }
        return first.reading
    }

    /// A three-digit score: three single digits separated by whitespace (`4 5 6`) or one
    /// three-digit integer (`456`), averaged.
    var threeDigitReading: ScoreReading? {
        for index in values.indices where isDigitGroupStart(index) {
            let group = values[index...(index + 2)]
            let sum = group.reduce(0) { $0 + ($1.digits?.first ?? 0) }
            let source = String(chars[group.first!.start..<group.last!.end])
            return ScoreReading(value: Double(sum) / 3, source: source)
        }
        for value in values {
            if let digits = value.digits, digits.count == 3 {
                return ScoreReading(value: Double(digits.reduce(0, +)) / 3, source: value.reading.source)
            }
        }
        return nil
    }

    /// The value after the last `score` word in the line (`score: 8`, `score = 8`, `score is 8`,
    /// `score of 8/10`), with three-digit integers averaged.
    var keywordReading: ScoreReading? {
        var found: ScoreReading?
        var index = 0
        while index + 5 <= chars.count {
            defer { index += 1 }
            guard matches("score", at: index), index == 0 || !chars[index - 1].isLetter else { continue }
            var position = skipSpaces(from: index + 5)
            if position < chars.count, chars[position] == ":" || chars[position] == "=" {
                position = skipSpaces(from: position + 1)
            } else if matches("is ", at: position) || matches("of ", at: position) {
                position = skipSpaces(from: position + 3)
            }
            if let value = values.first(where: { $0.start == position }) { found = reading(of: value) }
        }
        return found
    }

    /// The only value of the line, when it has exactly one.
    var onlyReading: ScoreReading? {
        values.count == 1 ? reading(of: values[0]) : nil
    }

    /// The score when the whole line is one value or one three-digit group (a trailing `.`
    /// allowed), as in the `X` of `SCORE: X`.
    var wholeLineReading: ScoreReading? {
        var end = chars.count
        if end > 0, chars[end - 1] == "." { end -= 1 }
        if values.count == 1, values[0].start == 0, values[0].end == end { return reading(of: values[0]) }
        if values.count == 3, isDigitGroupStart(0), values[0].start == 0, values[2].end == end {
            return threeDigitReading
        }
        return nil
    }

    /// A value read as a score: a three-digit integer can never be a 0–10 score, so it is taken
    /// as three single-digit scores and averaged.
    private func reading(of value: Value) -> ScoreReading {
        guard let digits = value.digits, digits.count == 3 else { return value.reading }
        return ScoreReading(value: Double(digits.reduce(0, +)) / 3, source: value.reading.source)
    }

    /// Whether values `index…index+2` are single digits separated only by whitespace, and the run
    /// is exactly three long (four digits in a row are a list, not a three-part score).
    private func isDigitGroupStart(_ index: Int) -> Bool {
        guard index + 2 < values.count else { return false }
        let isDigit = { (position: Int) in self.values[position].digits?.count == 1 }
        let spaced = { (left: Int) in self.onlySpaces(self.values[left].end, self.values[left + 1].start) }
        guard (index...(index + 2)).allSatisfy(isDigit), spaced(index), spaced(index + 1) else { return false }
        if index > 0, isDigit(index - 1), spaced(index - 1) { return false }
        if index + 3 < values.count, isDigit(index + 3), spaced(index + 2) { return false }
        return true
    }

    private func onlySpaces(_ start: Int, _ end: Int) -> Bool {
        start < end && chars[start..<end].allSatisfy(\.isWhitespace)
    }

    /// Where the denominator starts when a fraction (`/ 10` or `out of 10`) follows `end`.
    private func denominatorStart(after end: Int) -> Int? {
        let afterSpaces = skipSpaces(from: end)
        if afterSpaces < chars.count, chars[afterSpaces] == "/" { return skipSpaces(from: afterSpaces + 1) }
        if afterSpaces > end, matches("out of ", at: afterSpaces) { return skipSpaces(from: afterSpaces + 7) }
        return nil
    }

    private func skipSpaces(from start: Int) -> Int {
        var position = start
        while position < chars.count, chars[position].isWhitespace { position += 1 }
        return position
    }

    /// Whether the line has `word` at `position`, ignoring case.
    private func matches(_ word: String, at position: Int) -> Bool {
        guard position >= 0, position + word.count <= chars.count else { return false }
        return zip(chars[position...], word).allSatisfy { $0.lowercased() == $1.lowercased() }
    }

    /// The numbers of a line: an optional `-`, digits, an optional `.digits`. A number glued to a
    /// letter (`v2`, `3rd`, `10x`) or inside a version (`1.2.3`) is not a score and is skipped.
    private static func tokens(in chars: [Character]) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        while index < chars.count {
            let isSign = chars[index] == "-" && index + 1 < chars.count && isDigit(chars[index + 1])
            guard isDigit(chars[index]) || isSign else {
                index += 1
                continue
            }
            let start = index
            if isSign { index += 1 }
            while index < chars.count, isDigit(chars[index]) { index += 1 }
            var isDecimal = false
            if index + 1 < chars.count, chars[index] == ".", isDigit(chars[index + 1]) {
                isDecimal = true
                index += 1
                while index < chars.count, isDigit(chars[index]) { index += 1 }
            }
            let before = start > 0 ? chars[start - 1] : " "
            let after = index < chars.count ? chars[index] : " "
            let glued = before.isLetter || isDigit(before) || before == "." || after.isLetter
            let gluedToVersion = index + 1 < chars.count && after == "." && isDigit(chars[index + 1])
            if !glued, !gluedToVersion, let value = Double(String(chars[start..<index])) {
                let digits = isSign || isDecimal ? nil : chars[start..<index].map { Int($0.asciiValue! - 48) }
                tokens.append(Token(start: start, end: index, value: value, digits: digits))
            }
        }
        return tokens
    }

    private static func isDigit(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue else { return false }
        return (48...57).contains(ascii)
    }
}
