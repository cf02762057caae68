import JSON

/// `json`: a JSON object extracted from a model's answer, with fences and narration around it.
///
/// Candidates are tried in this order, and the first that parses as a JSON *object* wins:
/// 1. the first fenced code block labelled ```` ```json ```` (any case) or unlabelled (blocks in
///    other languages are not candidates); an unclosed fence runs to the end of the text;
/// 2. the span from the first `{` to the last `}`;
/// 3. the whole text;
/// 4. the other json or unlabelled fenced blocks, in order;
/// 5. each balanced top-level `{…}` (braces inside strings do not count), in order, up to 16 of
///    them, which finds an object between narration that itself contains braces.
///
/// Cleaning is conservative, so that it never changes the meaning of valid JSON: a leading
/// byte-order mark and surrounding whitespace go, and commas directly before `}` or `]` outside
/// strings are dropped. Smart quotes, comments, single quotes and unquoted keys are left alone
/// (they fail), because rewriting them could corrupt string contents. Parsing is strict RFC 8259
/// (``JSONParser``, with numbers beyond `Double`'s range refused); a lone surrogate escape
/// becomes U+FFFD.
///
/// On success `text` and `llmCleanedJSON` hold the cleaned candidate and `json` the object. On
/// failure the status is `json_parse_error`, `llmCleanedJSON` holds the last candidate tried and
/// `llmError` says why each candidate failed.
public struct JSONObjectParser: OutputParser {
    public let name = "json"

    /// The parser, registered as `json`.
    public init() {}

    public func parse(_ raw: String) -> ParseOutcome {
        var text = raw.withLFLineBreaks
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        guard !text.trimmedOfWhitespace.isEmpty else {
            return .failure(parser: name, raw: raw, status: .jsonParseError, reason: "the output is empty")
        }
        var tried: Set<String> = []
        var problems: [String] = []
        var lastTried: String?
        for candidate in Self.candidates(in: text) {
            let cleaned = Self.clean(candidate.text)
            guard tried.insert(cleaned).inserted else { continue }
            lastTried = cleaned
            let bytes = Array(cleaned.utf8)
            do {
                let value = try JSONParser.parse(bytes, rejectingOutOfRangeNumbers: true)
                guard case .object = value else {
                    problems.append("\(candidate.label): the value is \(Self.kindName(value)), not an object")
                    continue
                }
                return .success(parser: name, raw: raw, text: cleaned, json: value, cleanedJSON: cleaned)
            } catch {
                problems.append("\(candidate.label): \(error.description(in: bytes))")
            }
        }
        let reason = "no JSON object could be parsed from the output"
        return .failure(
            parser: name,
            raw: raw,
            status: .jsonParseError,
            reason: reason,
            error: "\(reason) (\(problems.joined(separator: "; ")))",
            cleanedJSON: lastTried
        )
    }

    /// The kind of a value that is not an object, for messages: `an array`, `a number`, ….
    static func kindName(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a Boolean"
        case .integer, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// A piece of the text that may be the JSON, with a name for error messages.
    struct Candidate: Equatable {
        var label: String
        var text: String
    }

    /// How many balanced `{…}` spans are tried after the other candidates.
    static let maximumBalancedObjects = 16

    /// The candidates in the order they are tried (duplicates included; `parse` skips them).
    static func candidates(in text: String) -> [Candidate] {
        let bytes = Array(text.utf8)
        let string = { (range: Range<Int>) in String(decoding: bytes[range], as: UTF8.self) }
        let fenced = fences(in: bytes).enumerated().map {
            Candidate(label: "fenced block \($0.offset + 1)", text: string($0.element))
        }
        var result = Array(fenced.prefix(1))
        if let first = bytes.firstIndex(of: UInt8(ascii: "{")), let last = bytes.lastIndex(of: UInt8(ascii: "}")),
            first < last
        {
            result.append(Candidate(label: "brace span", text: string(first..<(last + 1))))
        }
        result.append(Candidate(label: "whole text", text: text))
        result += fenced.dropFirst()
        // Capped so that a text full of `{…}` cannot make `llm_error` list hundreds of failures.
        for span in balancedObjects(in: bytes).prefix(maximumBalancedObjects) {
            let line = bytes[..<span.lowerBound].reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            result.append(Candidate(label: "object on line \(line)", text: string(span)))
        }
        return result
    }

    /// The contents of the json and unlabelled fenced code blocks.
    static func fences(in bytes: [UInt8]) -> [Range<Int>] {
        let backtick = UInt8(ascii: "`")
        var result: [Range<Int>] = []
        var index = 0
        while let open = findFence(in: bytes, from: index) {
            var position = open + 3
            while position < bytes.count, bytes[position] == backtick { position += 1 }
            let languageStart = position
            while position < bytes.count, isLanguageByte(bytes[position]) { position += 1 }
            let language = String(decoding: bytes[languageStart..<position], as: UTF8.self).lowercased()
            while position < bytes.count, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t")
            {
                position += 1
            }
            // Usually the content starts on the next line; `` ```{"a": 1}``` `` on one line also works.
            if position < bytes.count, bytes[position] == UInt8(ascii: "\n") { position += 1 }
            let close = findFence(in: bytes, from: position)
            if language.isEmpty || language == "json" { result.append(position..<(close ?? bytes.count)) }
            guard let close else { break }
            index = close + 3
            while index < bytes.count, bytes[index] == backtick { index += 1 }
        }
        return result
    }

    private static func findFence(in bytes: [UInt8], from start: Int) -> Int? {
        guard start + 3 <= bytes.count else { return nil }
        let backtick = UInt8(ascii: "`")
        return (start...(bytes.count - 3)).first {
            bytes[$0] == backtick && bytes[$0 + 1] == backtick && bytes[$0 + 2] == backtick
        }
    }

    private static func isLanguageByte(_ byte: UInt8) -> Bool {
        let character = Character(Unicode.Scalar(byte))
        return byte < 0x80 && (character.isLetter || character.isNumber || "_+-.".contains(character))
    }

    /// The spans of balanced top-level `{…}`, skipping braces inside JSON strings.
    static func balancedObjects(in bytes: [UInt8]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var depth = 0
        var start = 0
        var inString = false
        var escaped = false
        for (index, byte) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            // Quotes only open strings inside an object: narration may have stray quotes.
            case UInt8(ascii: "\"") where depth > 0:
                inString = true
            case UInt8(ascii: "{"):
                if depth == 0 { start = index }
                depth += 1
            case UInt8(ascii: "}") where depth > 0:
                depth -= 1
                if depth == 0 { result.append(start..<(index + 1)) }
            default:
                break
            }
        }
        return result
    }

    /// The candidate trimmed, without a BOM, and without trailing commas before `}` or `]`.
    static func clean(_ candidate: String) -> String {
        var text = Substring(candidate).trimmedOfWhitespace
        if text.unicodeScalars.first == "\u{FEFF}" {
            text = Substring(text.unicodeScalars.dropFirst()).trimmedOfWhitespace
        }
        let bytes = Array(text.utf8)
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        var inString = false
        var escaped = false
        for (index, byte) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: ",") {
                let next = bytes[(index + 1)...].first { !TagScanner.isSpace($0) && $0 != UInt8(ascii: "\r") }
                if next == UInt8(ascii: "}") || next == UInt8(ascii: "]") { continue }
            }
            kept.append(byte)
        }
        return String(decoding: kept, as: UTF8.self)
    }
}
