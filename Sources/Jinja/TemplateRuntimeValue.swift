#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value while rendering: the data model plus what only exists inside a render (undefined values,
/// bound methods, loop state, namespaces). Not Sendable on purpose: it never leaves one render call.
enum Value {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(Dict)
    case undefined(Undefined)
    case namespace(Namespace)
    case loop(LoopState)
    indirect case method(Value, String)
    case function(String)
    case macro(MacroDefinition)
    /// The body of a `{% call %}` block, with the frames it was written in.
    case caller(MacroDefinition, [[String: Value]])
    /// `cycler(…)` and `joiner(…)`, which remember how often they were used.
    case helper(Helper)

    init(_ value: TemplateValue) {
        switch value {
        case .null: self = .none
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .string(text)
        case .array(let items): self = .list(items.map(Value.init))
        case .object(let object):
            var dict = Dict()
            for (key, item) in object.entries { dict[key] = Value(item) }
            self = .dict(dict)
        }
    }

    init(_ literal: Literal) {
        switch literal {
        case .none: self = .none
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .string(text)
        }
    }

    /// Python's type name, as used in Jinja2's messages (`'dict object' has no attribute …`).
    var typeName: String {
        switch self {
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .undefined: return "Undefined"
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case .method: return "method"
        case .function: return "function"
        case .macro, .caller: return "Macro"
        case .helper(let helper): return helper.kind.typeName
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }
}

/// Why a value is missing. Strict ones fail when used; lenient ones come from `x if c` without `else`,
/// which Jinja2 3.1 renders as an empty string even under StrictUndefined.
struct Undefined {
    var message: String
    var line: Int
    var lenient = false
    /// Placed by scope analysis to hide an outer value; takes the line of each use.
    var shadow = false
}

/// An insertion-ordered dict with string keys, like the dicts templates see.
struct Dict {
    private(set) var keys: [String] = []
    private var storage: [String: Value] = [:]

    var count: Int { keys.count }
    var values: [Value] { keys.map { storage[$0]! } }

    subscript(key: String) -> Value? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// `namespace()`: the one mutable object templates can assign into from inside a loop.
final class Namespace {
    var attributes = Dict()
}

/// The `loop` variable of a for loop.
final class LoopState {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    /// What `loop.changed()` last saw.
    var lastChanged: [Value]?
    /// For recursive loops: the loop to run again and how many frames enclosed it.
    var recursion: (loop: ForLoop, frameCount: Int)?

    init(items: [Value], depth0: Int) {
        self.items = items
        self.depth0 = depth0
    }
}

/// The stateful globals `cycler` and `joiner`.
final class Helper {
    enum Kind {
        case cycler([Value])
        case joiner(String)

        var typeName: String {
            switch self {
            case .cycler: return "Cycler"
            case .joiner: return "Joiner"
            }
        }
    }

    let kind: Kind
    /// The cycler's position, or whether the joiner was called before.
    var position = 0

    init(_ kind: Kind) { self.kind = kind }
}

// MARK: - Python string conversion

extension Value {
    /// Python's `str()`.
    func pythonString() throws(RenderFailure) -> String {
        switch self {
        case .string(let text): return text
        case .undefined(let undefined):
            if undefined.lenient { return "" }
            throw .undefined(undefined)
        default: return try pythonRepr()
        }
    }

    /// Python's `repr()`, used for items inside lists and dicts.
    func pythonRepr() throws(RenderFailure) -> String {
        switch self {
        case .none: return "None"
        case .bool(let flag): return flag ? "True" : "False"
        case .int(let number): return String(number)
        case .double(let number): return formatPythonFloat(number)
        case .string(let text): return pythonStringRepr(text)
        case .list(let items):
            var parts: [String] = []
            for item in items { parts.append(try item.pythonRepr()) }
            return "[" + parts.joined(separator: ", ") + "]"
        case .tuple(let items):
            var parts: [String] = []
            for item in items { parts.append(try item.pythonRepr()) }
            return "(" + parts.joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let dict):
            var parts: [String] = []
            for key in dict.keys { parts.append(pythonStringRepr(key) + ": " + (try dict[key]!.pythonRepr())) }
            return "{" + parts.joined(separator: ", ") + "}"
        case .undefined:
            // StrictUndefined leaves __repr__ alone, so Jinja2 prints a missing list item as `Undefined`.
            return "Undefined"
        case .namespace(let namespace):
            var parts: [String] = []
            for key in namespace.attributes.keys {
                parts.append(key + "=" + (try namespace.attributes[key]!.pythonRepr()))
            }
            return "<Namespace " + parts.joined(separator: ", ") + ">"
        case .loop(let loop): return "<LoopContext \(loop.index0 + 1)/\(loop.items.count)>"
        case .method(_, let name): return "<built-in method \(name)>"
        case .function(let name): return "<function \(name)>"
        case .macro(let macro), .caller(let macro, _): return "<Macro '\(macro.name)'>"
        case .helper(let helper): return "<\(helper.kind.typeName) object>"
        }
    }
}

/// Python's `repr()` of a str: single quotes unless the text has `'` and no `"`.
func pythonStringRepr(_ text: String) -> String {
    let quote: Unicode.Scalar = text.contains("'") && !text.contains("\"") ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(quote)
    for scalar in text.unicodeScalars {
        switch scalar {
        case quote, "\\":
            out.append("\\")
            out.append(scalar)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        default:
            if scalar.isPythonPrintable {
                out.append(scalar)
            } else {
                let hex = String(scalar.value, radix: 16)
                let (prefix, width) =
                    scalar.value < 0x100 ? ("\\x", 2) : (scalar.value < 0x10000 ? ("\\u", 4) : ("\\U", 8))
                out.append(contentsOf: (prefix + String(repeating: "0", count: width - hex.count) + hex).unicodeScalars)
            }
        }
    }
    out.append(quote)
    return String(out)
}

extension Unicode.Scalar {
    /// Approximates Python's `str.isprintable()`: not a control, format, separator (other than space)
    /// or unassigned code point.
    var isPythonPrintable: Bool {
        if value == 0x20 { return true }
        switch properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
            .spaceSeparator:
            return false
        default:
            return true
        }
    }
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents in [-4, 16).
func formatPythonFloat(_ number: Double) -> String {
    if number.isNaN { return "nan" }
    if number.isInfinite { return number < 0 ? "-inf" : "inf" }
    if number == 0 { return number.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description already yields the shortest round-trip digits; only the layout differs,
    // and only when Swift chose an exponent or Python would have.
    let plain = number.description
    let magnitude = number.magnitude
    if magnitude >= 1e-4 && magnitude < 1e16 && !plain.contains("e") { return plain }
    let text = magnitude.description
    var digits = ""
    var exponent = 0
    var mantissa = Substring(text)
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exponent = Int(text[text.index(after: e)...]) ?? 0
        mantissa = text[..<e]
    }
    if let dot = mantissa.firstIndex(of: ".") {
        let integerPart = mantissa[..<dot]
        let fraction = mantissa[mantissa.index(after: dot)...]
        digits = String(integerPart) + String(fraction)
        exponent += integerPart.count - 1
    } else {
        digits = String(mantissa)
        exponent += mantissa.count - 1
    }
    // Normalize: strip leading zeros (0.001 → "0001") and trailing zeros.
    while digits.hasPrefix("0") && digits.count > 1 {
        digits.removeFirst()
        exponent -= 1
    }
    while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
    let sign = number < 0 ? "-" : ""
    if exponent >= -4 && exponent < 16 {
        if exponent < 0 {
            return sign + "0." + String(repeating: "0", count: -exponent - 1) + digits
        }
        if digits.count <= exponent + 1 {
            return sign + digits + String(repeating: "0", count: exponent + 1 - digits.count) + ".0"
        }
        let split = digits.index(digits.startIndex, offsetBy: exponent + 1)
        return sign + digits[..<split] + "." + digits[split...]
    }
    var result = sign + String(digits.first!)
    if digits.count > 1 { result += "." + digits.dropFirst() }
    let exponentDigits = String(abs(exponent))
    result += (exponent < 0 ? "e-" : "e+") + (exponentDigits.count < 2 ? "0" : "") + exponentDigits
    return result
}

// MARK: - Truth, equality, ordering

extension Value {
    /// Python's `bool()`.
    func truthy() throws(RenderFailure) -> Bool {
        switch self {
        case .none: return false
        case .bool(let flag): return flag
        case .int(let number): return number != 0
        case .double(let number): return number != 0
        case .string(let text): return !text.isEmpty
        case .list(let items), .tuple(let items): return !items.isEmpty
        case .dict(let dict): return dict.count > 0
        case .undefined(let undefined):
            if undefined.lenient { return false }
            throw .undefined(undefined)
        default: return true
        }
    }

    /// A number's value when it takes part in arithmetic (bools count as ints, as in Python).
    var numeric: Double? {
        switch self {
        case .bool(let flag): return flag ? 1 : 0
        case .int(let number): return Double(number)
        case .double(let number): return number
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case .bool(let flag): return flag ? 1 : 0
        case .int(let number): return number
        default: return nil
        }
    }

    /// Python's `==`; comparing a strict undefined fails as StrictUndefined's `__eq__` does.
    func pythonEquals(_ other: Value) throws(RenderFailure) -> Bool {
        switch (self, other) {
        case (.undefined(let undefined), _), (_, .undefined(let undefined)):
            if undefined.lenient {
                if case .undefined(let a) = self, case .undefined(let b) = other { return a.lenient && b.lenient }
                return false
            }
            throw .undefined(undefined)
        case (.none, .none): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            guard a.count == b.count else { return false }
            for (x, y) in zip(a, b) where !(try x.pythonEquals(y)) { return false }
            return true
        case (.dict(let a), .dict(let b)):
            guard a.count == b.count else { return false }
            for key in a.keys {
                guard let y = b[key], try a[key]!.pythonEquals(y) else { return false }
            }
            return true
        case (.namespace(let a), .namespace(let b)): return a === b
        default:
            if let a = integer, let b = other.integer { return a == b }
            if let a = numeric, let b = other.numeric { return a == b }
            return false
        }
    }

    /// Python's `<`, for the types Python orders.
    func pythonLess(_ other: Value) throws(RenderFailure) -> Bool {
        switch (self, other) {
        case (.undefined(let undefined), _), (_, .undefined(let undefined)):
            throw .undefined(undefined)
        case (.string(let a), .string(let b)):
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !(try x.pythonEquals(y)) { return try x.pythonLess(y) }
            return a.count < b.count
        default:
            if let a = integer, let b = other.integer { return a < b }
            if let a = numeric, let b = other.numeric { return a < b }
            throw .type("'<' not supported between instances of '\(typeName)' and '\(other.typeName)'")
        }
    }

    /// The elements `for` walks over: list items, dict keys, string characters (code points).
    func iterate() throws(RenderFailure) -> [Value] {
        switch self {
        case .list(let items), .tuple(let items): return items
        case .dict(let dict): return dict.keys.map { .string($0) }
        case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
        case .undefined(let undefined):
            if undefined.lenient { return [] }
            throw .undefined(undefined)
        default: throw .type("'\(typeName)' object is not iterable")
        }
    }

    /// Python's `len()`.
    func length() throws(RenderFailure) -> Int {
        switch self {
        case .list(let items), .tuple(let items): return items.count
        case .dict(let dict): return dict.count
        case .string(let text): return text.unicodeScalars.count
        case .undefined(let undefined):
            if undefined.lenient { return 0 }
            throw .undefined(undefined)
        default: throw .type("object of type '\(typeName)' has no len()")
        }
    }
}

/// A failure inside rendering, before the template's name and line are attached.
enum RenderFailure: Error {
    case undefined(Undefined)
    case type(String)
    case value(String)
    case zeroDivision(String)
    case unknownName(String)
    case limit(String)
    /// Already turned into a `TemplateError` with a line; passed through unchanged.
    case located(TemplateError)

    /// Integer arithmetic whose result leaves 64 bits, where Python's integers would go on.
    static let integerOverflow = RenderFailure.limit(
        "integer overflow: the result is outside the 64-bit range templates support (\(Int.min) to \(Int.max)); "
            + "Python's integers have no limit: compute such numbers before rendering, or use floats"
    )
}
