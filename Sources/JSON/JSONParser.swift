/// Why a byte sequence is not JSON, and where.
///
/// The parser records only the byte ``offset``, so that failing costs nothing extra on the hot
/// path (every protocol message goes through the parser). Line and column, which people reading
/// a document want, are computed on demand from the parsed text: ``location(in:)`` and
/// ``description(in:)``.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Zero-based byte offset of the problem within the parsed text.
    public var offset: Int
    /// What is wrong, in words a user can act on.
    public var reason: String
    /// For an unterminated string, the offset of its opening quote (``offset`` is at the end of
    /// the text, where the parser gave up).
    public var stringStart: Int?

    public var description: String { "\(reason) at byte \(offset)" }

    /// A 1-based line and column in a text.
    public struct Location: Sendable, Hashable, CustomStringConvertible {
        /// 1-based line: one more than the line feeds before the position.
        public var line: Int
        /// 1-based column, counted in characters (not bytes) from the start of the line.
        public var column: Int

        public init(line: Int, column: Int) {
            self.line = line
            self.column = column
        }

        public var description: String { "line \(line), column \(column)" }
    }

    /// Where ``offset`` is in `bytes`, which must be the text that was parsed.
    public func location(in bytes: [UInt8]) -> Location {
        Self.location(of: offset, in: bytes)
    }

    /// The error for a reader of `bytes` (the text that was parsed): `line L, column C: reason`.
    ///
    /// An unterminated string is placed at its opening quote, and a non-ASCII character the
    /// parser did not expect is named as itself (`'“'`, `U+00A0 NO-BREAK SPACE`) rather than by
    /// its first byte.
    public func description(in bytes: [UInt8]) -> String {
        var message = reason
        if offset >= 0, offset < bytes.count, bytes[offset] >= 0x80 {
            let byteName = "unexpected \(JSONParser.hexName(bytes[offset]))"
            if message.hasPrefix(byteName), let character = Self.character(at: offset, in: bytes) {
                message = "unexpected \(character)" + message.dropFirst(byteName.count)
            }
        }
        return "\(Self.location(of: stringStart ?? offset, in: bytes)): \(message)"
    }

    static func location(of offset: Int, in bytes: [UInt8]) -> Location {
        let end = min(max(offset, 0), bytes.count)
        var line = 1
        var lineStart = 0
        for index in 0..<end where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        return Location(line: line, column: String(decoding: bytes[lineStart..<end], as: UTF8.self).count + 1)
    }

    /// The character encoded at `offset`, quoted, or its code point and name when it is invisible
    /// or would not read as itself; nil when the bytes there are not UTF-8.
    static func character(at offset: Int, in bytes: [UInt8]) -> String? {
        var iterator = bytes[offset...].makeIterator()
        var decoder = UTF8()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator) else { return nil }
        switch scalar.properties.generalCategory {
        case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .nonspacingMark,
            .spacingMark, .enclosingMark, .privateUse, .surrogate, .unassigned:
            let digits = String(scalar.value, radix: 16, uppercase: true)
            let code = "U+" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
            return scalar.properties.name.map { "\(code) \($0)" } ?? code
        default:
            return "'\(scalar)'"
        }
    }
}

/// A strict JSON (RFC 8259) parser over UTF-8 bytes.
///
/// It validates UTF-8 itself (the bytes come straight from a pipe), bounds nesting depth so that
/// hostile input cannot exhaust the stack, and can validate a value without building it
/// (``skipValue()``), which is how message envelopes keep `params` as raw bytes.
public struct JSONParser: ~Copyable {
    /// Nesting deeper than this is rejected rather than risking the stack.
    public static let defaultMaximumDepth = 512

    package let bytes: UnsafeBufferPointer<UInt8>
    package let maximumDepth: Int
    /// Whether a number beyond `Double`'s range (`1e999`) is an error rather than infinity.
    package let rejectsOutOfRangeNumbers: Bool
    /// Index of the next unread byte.
    package var index: Int = 0
    package var depth: Int = 0

    /// Parses `bytes` as exactly one JSON value (surrounding whitespace allowed).
    ///
    /// With `rejectingOutOfRangeNumbers` a number too large for a `Double` (`1e999`) is an
    /// error; otherwise it becomes infinity, which JSON cannot write back.
    public static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>,
        maximumDepth: Int = defaultMaximumDepth,
        rejectingOutOfRangeNumbers: Bool = false
    ) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(
            bytes: bytes,
            maximumDepth: maximumDepth,
            rejectsOutOfRangeNumbers: rejectingOutOfRangeNumbers
        )
        parser.skipWhitespace()
        let value = try parser.parseValue()
        try parser.expectEnd()
        return value
    }

    /// Parses `bytes` as exactly one JSON value (surrounding whitespace allowed).
    ///
    /// With `rejectingOutOfRangeNumbers` a number too large for a `Double` (`1e999`) is an
    /// error; otherwise it becomes infinity, which JSON cannot write back.
    public static func parse(
        _ bytes: [UInt8],
        maximumDepth: Int = defaultMaximumDepth,
        rejectingOutOfRangeNumbers: Bool = false
    ) throws(JSONParseError)
        -> JSONValue
    {
        do {
            return try bytes.withUnsafeBufferPointer { buffer in
                try parse(buffer, maximumDepth: maximumDepth, rejectingOutOfRangeNumbers: rejectingOutOfRangeNumbers)
            }
        } catch let error as JSONParseError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }

    package init(
        bytes: UnsafeBufferPointer<UInt8>,
        maximumDepth: Int = defaultMaximumDepth,
        rejectsOutOfRangeNumbers: Bool = false
    ) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
        self.rejectsOutOfRangeNumbers = rejectsOutOfRangeNumbers
    }

    // MARK: - Structure

    package var isAtEnd: Bool { index >= bytes.count }

    package var current: UInt8 { bytes[index] }

    package func failure(_ reason: String) -> JSONParseError {
        JSONParseError(offset: index, reason: reason)
    }

    package func unexpected(_ expectation: String) -> JSONParseError {
        guard !isAtEnd else { return failure("unexpected end of input, expected \(expectation)") }
        return failure("unexpected \(describe(current)), expected \(expectation)")
    }

    package func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return hex(byte)
    }

    package func hex(_ byte: UInt8) -> String { Self.hexName(byte) }

    /// `byte 0x0A`: how messages name a byte that is not a printable ASCII character.
    package static func hexName(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return "byte 0x\(digits.count == 1 ? "0" + digits : digits)"
    }

    package mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// Fails unless only whitespace remains.
    package mutating func expectEnd() throws(JSONParseError) {
        skipWhitespace()
        if !isAtEnd { throw failure("unexpected \(describe(current)) after the end of the JSON value") }
    }

    package mutating func consume(_ byte: UInt8, _ expectation: String) throws(JSONParseError) {
        guard !isAtEnd, current == byte else { throw unexpected(expectation) }
        index += 1
    }

    package mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        if depth > maximumDepth { throw failure("nesting deeper than \(maximumDepth) levels") }
    }

    // MARK: - Values

    /// Parses one value; the index must be at its first byte.
    package mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard !isAtEnd else { throw unexpected("a JSON value") }
        switch current {
        case UInt8(ascii: "{"):
            try enterContainer()
            defer { depth -= 1 }
            index += 1
            var members = JSONObject()
            skipWhitespace()
            if !isAtEnd && current == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard !isAtEnd, current == UInt8(ascii: "\"") else { throw unexpected("a string key") }
                let key = try parseString()
                skipWhitespace()
                try consume(UInt8(ascii: ":"), "':' after an object key")
                skipWhitespace()
                members[key] = try parseValue()
                skipWhitespace()
                if try endOfContainer(UInt8(ascii: "}"), "',' or '}' in an object") { return .object(members) }
            }
        case UInt8(ascii: "["):
            try enterContainer()
            defer { depth -= 1 }
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if !isAtEnd && current == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue())
                skipWhitespace()
                if try endOfContainer(UInt8(ascii: "]"), "',' or ']' in an array") { return .array(elements) }
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        default:
            throw unexpected("a JSON value")
        }
    }

    /// After an element: consumes ',' (returns false) or the closing byte (returns true).
    package mutating func endOfContainer(_ closing: UInt8, _ expectation: String) throws(JSONParseError) -> Bool {
        guard !isAtEnd else { throw unexpected(expectation) }
        if current == UInt8(ascii: ",") {
            index += 1
            return false
        }
        if current == closing {
            index += 1
            return true
        }
        throw unexpected(expectation)
    }

    /// Validates one value without building it.
    package mutating func skipValue() throws(JSONParseError) {
        guard !isAtEnd else { throw unexpected("a JSON value") }
        switch current {
        case UInt8(ascii: "{"):
            try enterContainer()
            defer { depth -= 1 }
            index += 1
            skipWhitespace()
            if !isAtEnd && current == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                guard !isAtEnd, current == UInt8(ascii: "\"") else { throw unexpected("a string key") }
                try skipString()
                skipWhitespace()
                try consume(UInt8(ascii: ":"), "':' after an object key")
                skipWhitespace()
                try skipValue()
                skipWhitespace()
                if try endOfContainer(UInt8(ascii: "}"), "',' or '}' in an object") { return }
            }
        case UInt8(ascii: "["):
            try enterContainer()
            defer { depth -= 1 }
            index += 1
            skipWhitespace()
            if !isAtEnd && current == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try skipValue()
                skipWhitespace()
                if try endOfContainer(UInt8(ascii: "]"), "',' or ']' in an array") { return }
            }
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            _ = try scanNumber()
        default:
            _ = try parseValue()
        }
    }

    package mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let count = word.utf8CodeUnitCount
        let start = word.utf8Start
        for offset in 0..<count {
            guard index + offset < bytes.count, bytes[index + offset] == start[offset] else {
                index += offset
                throw unexpected("'\(word)'")
            }
        }
        index += count
    }

    // MARK: - Numbers

    /// Scans the number at the index; returns whether it is a plain integer.
    package mutating func scanNumber() throws(JSONParseError) -> (start: Int, isInteger: Bool) {
        let start = index
        var isInteger = true
        if current == UInt8(ascii: "-") { index += 1 }
        guard !isAtEnd, isDigit(current) else { throw unexpected("a digit") }
        if current == UInt8(ascii: "0") {
            index += 1
            if !isAtEnd && isDigit(current) { throw failure("a number must not have leading zeros") }
        } else {
            while !isAtEnd && isDigit(current) { index += 1 }
        }
        if !isAtEnd && current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard !isAtEnd, isDigit(current) else { throw unexpected("a digit after '.'") }
            while !isAtEnd && isDigit(current) { index += 1 }
        }
        if !isAtEnd && (current == UInt8(ascii: "e") || current == UInt8(ascii: "E")) {
            isInteger = false
            index += 1
            if !isAtEnd && (current == UInt8(ascii: "+") || current == UInt8(ascii: "-")) { index += 1 }
            guard !isAtEnd, isDigit(current) else { throw unexpected("a digit in the exponent") }
            while !isAtEnd && isDigit(current) { index += 1 }
        }
        return (start, isInteger)
    }

    package func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    package mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let (start, isInteger) = try scanNumber()
        let text = UnsafeBufferPointer(rebasing: bytes[start..<index])
        if isInteger, let value = Self.integer(text) { return .integer(value) }
        // Only ASCII digits, signs, '.', 'e' reach here, so the text is valid for Double's parser.
        let string = String(decoding: text, as: UTF8.self)
        guard let value = Double(string) else { throw JSONParseError(offset: start, reason: "invalid number") }
        if rejectsOutOfRangeNumbers && !value.isFinite {
            throw JSONParseError(offset: start, reason: "number \(string) is out of range")
        }
        return .double(value)
    }

    /// The value of an integer literal, or nil when it does not fit in 64 bits.
    package static func integer(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
        var negative = false
        var position = 0
        if text[0] == UInt8(ascii: "-") {
            negative = true
            position = 1
        }
        var magnitude: UInt64 = 0
        while position < text.count {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(text[position] &- UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            magnitude = sum
            position += 1
        }
        if negative {
            if magnitude <= UInt64(Int64.max) { return -Int64(magnitude) }
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            return nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    // MARK: - Strings

    /// Parses the string literal at the index (which is at the opening quote).
    package mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes. UTF-8 is validated as we go.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw failure("control character \(describe(byte)) in a string must be escaped") }
            if byte < 0x80 {
                index += 1
            } else {
                try skipUTF8Sequence()
            }
        }
        guard index < bytes.count else { throw unterminatedString(opening: start - 1) }
        var scalars: [UInt8] = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try appendEscape(into: &scalars, opening: start - 1)
            case 0..<0x20:
                throw failure("control character \(describe(byte)) in a string must be escaped")
            case 0..<0x80:
                scalars.append(byte)
                index += 1
            default:
                let sequenceStart = index
                try skipUTF8Sequence()
                scalars.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[sequenceStart..<index]))
            }
        }
        throw unterminatedString(opening: start - 1)
    }

    /// Validates the string literal at the index without building it.
    package mutating func skipString() throws(JSONParseError) {
        let opening = index
        index += 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return
            case UInt8(ascii: "\\"):
                var discard: [UInt8] = []
                try appendEscape(into: &discard, opening: opening)
            case 0..<0x20:
                throw failure("control character \(describe(byte)) in a string must be escaped")
            case 0..<0x80:
                index += 1
            default:
                try skipUTF8Sequence()
            }
        }
        throw unterminatedString(opening: opening)
    }

    /// The error for a string that runs to the end of the text, remembering where it opened.
    package func unterminatedString(opening: Int) -> JSONParseError {
        JSONParseError(offset: index, reason: "unterminated string", stringStart: opening)
    }

    /// Decodes the escape at the index (at the backslash) into UTF-8; `opening` is the offset of
    /// the string's opening quote.
    package mutating func appendEscape(into output: inout [UInt8], opening: Int) throws(JSONParseError) {
        index += 1
        guard index < bytes.count else { throw unterminatedString(opening: opening) }
        let escape = bytes[index]
        index += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if scalar >= 0xD800 && scalar < 0xDC00 {
                // A high surrogate pairs with a following \uDC00-\uDFFF; alone it is not a character.
                if index + 1 < bytes.count && bytes[index] == UInt8(ascii: "\\")
                    && bytes[index + 1] == UInt8(ascii: "u")
                {
                    let save = index
                    index += 2
                    let low = try hex4()
                    if low >= 0xDC00 && low < 0xE000 {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        index = save
                        scalar = 0xFFFD
                    }
                } else {
                    scalar = 0xFFFD
                }
            } else if scalar >= 0xDC00 && scalar < 0xE000 {
                scalar = 0xFFFD
            }
            output.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
        default:
            index -= 1
            throw failure("invalid escape '\\\(Character(Unicode.Scalar(escape)))' in a string")
        }
    }

    package mutating func hex4() throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw failure("unterminated \\u escape") }
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw failure("\\u must be followed by four hexadecimal digits")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// Checks one multi-byte UTF-8 sequence at the index (RFC 3629: no overlongs, no surrogates,
    /// nothing above U+10FFFF) and steps over it.
    package mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[index]
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            upper = 0x9F
        case 0xF0:
            length = 4
            lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            upper = 0x8F
        default: throw failure("invalid UTF-8 (\(hex(lead)))")
        }
        guard index + length <= bytes.count else { throw failure("invalid UTF-8 (truncated sequence)") }
        let second = bytes[index + 1]
        guard second >= lower && second <= upper else {
            index += 1
            throw failure("invalid UTF-8 (\(hex(second)))")
        }
        for offset in 2..<max(2, length) {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else {
                index += offset
                throw failure("invalid UTF-8 (\(hex(byte)))")
            }
        }
        index += length
    }
}
