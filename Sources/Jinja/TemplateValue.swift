/// A value passed to a template: the JSON data model, with integers kept apart from floats
/// (Jinja prints `1` and `1.0` differently) and objects that keep their key order.
public enum TemplateValue: Sendable, Hashable {
    /// Python's `None`; JSON `null`.
    case null
    /// Prints as `True` / `False`.
    case bool(Bool)
    /// A Python `int`; arithmetic that would leave 64 bits is an error rather than a big integer.
    case int(Int)
    /// A Python `float`, printed with Python's `repr` (`1.0`, `1e+16`).
    case double(Double)
    case string(String)
    /// A Python list.
    case array([TemplateValue])
    /// A Python dict with string keys, in insertion order.
    case object(TemplateObject)
}

/// A string-keyed map that remembers insertion order, as Python dicts do.
public struct TemplateObject: Sendable, Hashable {
    /// The keys in insertion order.
    public private(set) var keys: [String] = []
    private var storage: [String: TemplateValue] = [:]

    /// An empty object.
    public init() {}

    /// An object with the given pairs, in order; a repeated key keeps its first position and last value.
    public init(_ pairs: [(String, TemplateValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    /// The number of entries.
    public var count: Int { keys.count }

    /// The value for `key`; setting `nil` removes the entry.
    public subscript(key: String) -> TemplateValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// The entries in order.
    public var entries: [(key: String, value: TemplateValue)] {
        keys.map { ($0, storage[$0]!) }
    }

    public static func == (lhs: TemplateObject, rhs: TemplateObject) -> Bool {
        lhs.storage == rhs.storage
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage)
    }
}

extension TemplateValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TemplateValue)...) { self = .object(TemplateObject(elements)) }
}

extension TemplateValue {
    /// Parses JSON text, keeping object key order and telling `1` (int) from `1.0` (float) as Python's
    /// `json` module does. Integers too large for `Int` become doubles.
    public init(json: String) throws(TemplateError) {
        var parser = JSONTextParser(text: Array(json.utf8))
        self = try parser.parseDocument()
    }

    /// A context object parsed from JSON text; the text must hold a JSON object.
    public static func context(json: String) throws(TemplateError) -> [String: TemplateValue] {
        guard case .object(let object) = try TemplateValue(json: json) else {
            throw TemplateError(kind: .value, message: "a template context must be a JSON object", templateName: "")
        }
        var context: [String: TemplateValue] = [:]
        for (key, value) in object.entries { context[key] = value }
        return context
    }
}

/// A strict RFC 8259 reader; hand-written because Foundation's loses key order and the int/float distinction.
private struct JSONTextParser {
    let text: [UInt8]
    var position = 0
    var depth = 0

    init(text: [UInt8]) { self.text = text }

    func fail(_ message: String) -> TemplateError {
        TemplateError(kind: .value, message: "invalid JSON at byte \(position): \(message)", templateName: "")
    }

    mutating func skipSpace() {
        while position < text.count, [0x20, 0x09, 0x0A, 0x0D].contains(text[position]) { position += 1 }
    }

    mutating func parseDocument() throws(TemplateError) -> TemplateValue {
        let value = try parseValue()
        skipSpace()
        guard position == text.count else { throw fail("trailing characters") }
        return value
    }

    mutating func literal(_ word: String, _ value: TemplateValue) throws(TemplateError) -> TemplateValue {
        let bytes = Array(word.utf8)
        guard position + bytes.count <= text.count, Array(text[position..<position + bytes.count]) == bytes else {
            throw fail("unexpected character")
        }
        position += bytes.count
        return value
    }

    mutating func parseValue() throws(TemplateError) -> TemplateValue {
        skipSpace()
        guard position < text.count else { throw fail("unexpected end") }
        switch text[position] {
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            guard depth < 512 else { throw fail("nested too deeply") }
            position += 1
            var items: [TemplateValue] = []
            skipSpace()
            if position < text.count, text[position] == UInt8(ascii: "]") {
                position += 1
                return .array(items)
            }
            while true {
                items.append(try parseValue())
                skipSpace()
                guard position < text.count else { throw fail("unclosed array") }
                if text[position] == UInt8(ascii: ",") {
                    position += 1
                } else if text[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(items)
                } else {
                    throw fail("expected ',' or ']'")
                }
            }
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth < 512 else { throw fail("nested too deeply") }
            position += 1
            var object = TemplateObject()
            skipSpace()
            if position < text.count, text[position] == UInt8(ascii: "}") {
                position += 1
                return .object(object)
            }
            while true {
                skipSpace()
                guard position < text.count, text[position] == UInt8(ascii: "\"") else { throw fail("expected key") }
                let key = try parseString()
                skipSpace()
                guard position < text.count, text[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                object[key] = try parseValue()
                skipSpace()
                guard position < text.count else { throw fail("unclosed object") }
                if text[position] == UInt8(ascii: ",") {
                    position += 1
                } else if text[position] == UInt8(ascii: "}") {
                    position += 1
                    return .object(object)
                } else {
                    throw fail("expected ',' or '}'")
                }
            }
        default:
            return try parseNumber()
        }
    }

    mutating func parseNumber() throws(TemplateError) -> TemplateValue {
        let start = position
        var isFloat = false
        while position < text.count {
            let byte = text[position]
            if (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "+")
            {
                position += 1
            } else if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                isFloat = true
                position += 1
            } else {
                break
            }
        }
        let token = String(decoding: text[start..<position], as: UTF8.self)
        if !isFloat, let value = Int(token) { return .int(value) }
        guard !token.isEmpty, let value = Double(token) else { throw fail("bad number '\(token)'") }
        return .double(value)
    }

    mutating func hex4() throws(TemplateError) -> UInt32 {
        guard position + 4 <= text.count,
            let value = UInt32(String(decoding: text[position..<position + 4], as: UTF8.self), radix: 16)
        else { throw fail("bad \\u escape") }
        position += 4
        return value
    }

    mutating func parseString() throws(TemplateError) -> String {
        position += 1
        var bytes: [UInt8] = []
        while true {
            guard position < text.count else { throw fail("unclosed string") }
            let byte = text[position]
            position += 1
            if byte == UInt8(ascii: "\"") { break }
            if byte != UInt8(ascii: "\\") {
                bytes.append(byte)
                continue
            }
            guard position < text.count else { throw fail("unclosed string") }
            let escape = text[position]
            position += 1
            switch escape {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): bytes.append(escape)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800, scalar < 0xDC00, position + 1 < text.count, text[position] == UInt8(ascii: "\\"),
                    text[position + 1] == UInt8(ascii: "u")
                {
                    position += 2
                    let low = try hex4()
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00)
                }
                let character = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                bytes.append(contentsOf: Array(String(character).utf8))
            default: throw fail("bad escape")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
