/// A JSON value read from a model's output by the `json` parser.
///
/// Sendable and comparable, unlike `[String: Any]`. Numbers are `Double` (integers above 2^53
/// lose precision); when an object repeats a key the last value wins.
public enum ParsedJSON: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// Any JSON number.
    case number(Double)
    /// A string, escapes decoded.
    case string(String)
    /// An array, in order.
    case array([ParsedJSON])
    /// An object; member order is not kept (the parsed text keeps it).
    case object([String: ParsedJSON])

    /// Where and why a text is not JSON.
    public struct SyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
        /// 1-based line of the problem.
        public var line: Int
        /// 1-based column (in characters) of the problem.
        public var column: Int
        /// What is wrong, e.g. `expected ',' or '}' after an object member, found '"'`.
        public var message: String

        public var description: String { "line \(line), column \(column): \(message)" }
    }

    /// Parses `text` as exactly one JSON value (RFC 8259, strictly: no comments, no trailing
    /// commas, no unescaped control characters in strings), surrounded by optional whitespace.
    public init(parsing text: String) throws(SyntaxError) {
        var reader = JSONReader(bytes: Array(text.utf8))
        self = try reader.readDocument()
    }

    /// The member `key` of an object; `nil` for a missing key or a value that is not an object.
    public subscript(key: String) -> ParsedJSON? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The element at `index` of an array; `nil` when out of range or not an array.
    public subscript(index: Int) -> ParsedJSON? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The members, when this is an object.
    public var objectValue: [String: ParsedJSON]? {
        guard case .object(let members) = self else { return nil }
        return members
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        guard case .string(let string) = self else { return nil }
        return string
    }

    /// The number, when this is a number.
    public var numberValue: Double? {
        guard case .number(let number) = self else { return nil }
        return number
    }

    /// The Boolean, when this is `true` or `false`.
    public var boolValue: Bool? {
        guard case .bool(let bool) = self else { return nil }
        return bool
    }

    /// The elements, when this is an array.
    public var arrayValue: [ParsedJSON]? {
        guard case .array(let elements) = self else { return nil }
        return elements
    }

    /// A short name of the value's kind, for messages.
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a Boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A strict recursive-descent JSON reader over UTF-8 bytes.
///
/// Our own rather than Foundation's so that error messages (which end up in `llm_error` and in
/// tests) are the same on every platform and say where the problem is.
private struct JSONReader {
    let bytes: [UInt8]
    var position = 0
    var depth = 0

    // Deep enough for any real answer, shallow enough that `[[[[…` cannot overflow the stack.
    static let maximumDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func readDocument() throws(ParsedJSON.SyntaxError) -> ParsedJSON {
        skipWhitespace()
        guard position < bytes.count else { throw error("the text is empty") }
        let value = try readValue()
        skipWhitespace()
        guard position == bytes.count else { throw error("unexpected \(found) after the JSON value") }
        return value
    }

    private mutating func readValue() throws(ParsedJSON.SyntaxError) -> ParsedJSON {
        guard position < bytes.count else { throw error("unexpected end of text, expected a value") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try nested { (reader) throws(ParsedJSON.SyntaxError) in try reader.readObject() }
        case UInt8(ascii: "["): return try nested { (reader) throws(ParsedJSON.SyntaxError) in try reader.readArray() }
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"): return try readLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try readLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try readLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try readNumber()
        default: throw error("unexpected \(found), expected a value")
        }
    }

    private mutating func nested(
        _ read: (inout JSONReader) throws(ParsedJSON.SyntaxError) -> ParsedJSON
    ) throws(ParsedJSON.SyntaxError) -> ParsedJSON {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        depth += 1
        defer { depth -= 1 }
        return try read(&self)
    }

    private mutating func readObject() throws(ParsedJSON.SyntaxError) -> ParsedJSON {
        position += 1
        var members: [String: ParsedJSON] = [:]
        skipWhitespace()
        if consume("}") { return .object(members) }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw error("expected a member name in double quotes, found \(found)")
            }
            let key = try readString()
            skipWhitespace()
            guard consume(":") else { throw error("expected ':' after a member name, found \(found)") }
            skipWhitespace()
            members[key] = try readValue()
            skipWhitespace()
            if consume(",") { continue }
            if consume("}") { return .object(members) }
            throw error("expected ',' or '}' after an object member, found \(found)")
        }
    }

    private mutating func readArray() throws(ParsedJSON.SyntaxError) -> ParsedJSON {
        position += 1
        var elements: [ParsedJSON] = []
        skipWhitespace()
        if consume("]") { return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try readValue())
            skipWhitespace()
            if consume(",") { continue }
            if consume("]") { return .array(elements) }
            throw error("expected ',' or ']' after an array element, found \(found)")
        }
    }

    private mutating func readString() throws(ParsedJSON.SyntaxError) -> String {
        let start = position
        position += 1
        var scalars = String.UnicodeScalarView()
        var runStart = position
        // Copies runs of plain bytes at once; escapes are decoded one by one.
        func flush(_ reader: JSONReader, upTo end: Int) {
            scalars.append(contentsOf: String(decoding: reader.bytes[runStart..<end], as: UTF8.self).unicodeScalars)
        }
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                flush(self, upTo: position)
                position += 1
                return String(scalars)
            }
            if byte < 0x20 { throw error("unescaped control character in a string") }
            if byte == UInt8(ascii: "\\") {
                flush(self, upTo: position)
                scalars.append(try readEscape())
                runStart = position
                continue
            }
            position += 1
        }
        position = start
        throw error("unterminated string")
    }

    private mutating func readEscape() throws(ParsedJSON.SyntaxError) -> Unicode.Scalar {
        position += 1
        guard position < bytes.count else { throw error("unterminated escape sequence") }
        let byte = bytes[position]
        position += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{8}"
        case UInt8(ascii: "f"): return "\u{C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try readHexUnit()
            if UTF16.isLeadSurrogate(unit) {
                guard consume("\\"), consume("u") else { throw error("unpaired surrogate in \\u escape") }
                let trail = try readHexUnit()
                guard UTF16.isTrailSurrogate(trail) else { throw error("unpaired surrogate in \\u escape") }
                let value = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(trail) - 0xDC00)
                return Unicode.Scalar(value)!
            }
            guard let scalar = Unicode.Scalar(unit) else { throw error("unpaired surrogate in \\u escape") }
            return scalar
        default:
            position -= 1
            throw error("invalid escape sequence \\\(found.dropFirst().dropLast())")
        }
    }

    private mutating func readHexUnit() throws(ParsedJSON.SyntaxError) -> UInt16 {
        guard position + 4 <= bytes.count,
            let unit = UInt16(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16),
            bytes[position..<position + 4].allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") })
        else { throw error("expected four hex digits after \\u") }
        position += 4
        return unit
    }

    private mutating func readLiteral(_ word: String, _ value: ParsedJSON) throws(ParsedJSON.SyntaxError) -> ParsedJSON
    {
        let expected = Array(word.utf8)
        guard bytes[position...].starts(with: expected) else { throw error("unexpected \(found), expected a value") }
        position += expected.count
        return value
    }

    private mutating func readNumber() throws(ParsedJSON.SyntaxError) -> ParsedJSON {
        let start = position
        _ = consume("-")
        if consume("0") {
            // A leading zero stands alone: `01` is not JSON.
        } else {
            guard digits() > 0 else { throw error("expected a digit in a number, found \(found)") }
        }
        if consume(".") {
            guard digits() > 0 else { throw error("expected a digit after the decimal point, found \(found)") }
        }
        if consume("e") || consume("E") {
            if !consume("+") { _ = consume("-") }
            guard digits() > 0 else { throw error("expected a digit in the exponent, found \(found)") }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            position = start
            throw error("number \(text) is out of range")
        }
        return .number(value)
    }

    private mutating func digits() -> Int {
        let start = position
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
            position += 1
        }
        return position - start
    }

    private mutating func consume(_ character: Unicode.Scalar) -> Bool {
        guard position < bytes.count, bytes[position] == UInt8(ascii: character) else { return false }
        position += 1
        return true
    }

    private mutating func skipWhitespace() {
        while position < bytes.count,
            [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r")].contains(bytes[position])
        {
            position += 1
        }
    }

    /// The character at the current position, quoted, or "end of text".
    private var found: String {
        guard position < bytes.count else { return "end of text" }
        let rest = String(decoding: bytes[position..<min(position + 4, bytes.count)], as: UTF8.self)
        return "'\(rest.first.map(String.init) ?? "?")'"
    }

    /// An error at the current position, with line and column counted in characters.
    private func error(_ message: String) -> ParsedJSON.SyntaxError {
        let end = min(position, bytes.count)
        let lineStart = bytes[..<end].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let line = bytes[..<end].reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
        let column = String(decoding: bytes[lineStart..<end], as: UTF8.self).count + 1
        return ParsedJSON.SyntaxError(line: line, column: column, message: message)
    }
}

// Codable so that outcomes can be written to `metadata.json` and sent over the wire as the
// JSON they are, not as an encoded enum.
extension ParsedJSON: Codable {
    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let elements = try? container.decode([ParsedJSON].self) {
            self = .array(elements)
        } else if let members = try? container.decode([String: ParsedJSON].self) {
            self = .object(members)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    /// Encodes the value as itself: `.number(8)` as `8`, `.object` as a JSON object.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let bool): try container.encode(bool)
        case .number(let number): try container.encode(number)
        case .string(let string): try container.encode(string)
        case .array(let elements): try container.encode(elements)
        case .object(let members): try container.encode(members)
        }
    }
}
