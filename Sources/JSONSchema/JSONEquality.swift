import JSON

/// Equality and number comparison as JSON Schema defines them: numbers compare by mathematical
/// value (`1 == 1.0`), objects ignore member order, arrays compare element by element.
enum JSONEquality {
    /// Whether `left` and `right` are the same JSON value.
    static func equal(_ left: JSONValue, _ right: JSONValue) -> Bool {
        switch (left, right) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.string(let a), .string(let b)):
            // Code point by code point: Swift's `==` would equate canonically equivalent strings
            // (such as "é" and "e" + U+0301), which JSON Schema considers different.
            return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.integer, .integer), (.integer, .double), (.double, .integer), (.double, .double):
            return compare(left, right) == 0
        case (.array(let a), .array(let b)):
            guard a.count == b.count else { return false }
            for index in a.indices where !equal(a[index], b[index]) { return false }
            return true
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let other = b[key], equal(value, other) else { return false }
            }
            // Member names are compared by `Dictionary` (canonical equivalence); make it exact.
            for key in a.keys where key.utf8.contains(where: { $0 >= 0x80 }) {
                guard b.keys.contains(where: { $0.unicodeScalars.elementsEqual(key.unicodeScalars) }) else {
                    return false
                }
            }
            return true
        default:
            return false
        }
    }

    /// `value` with every integral double that fits in 64 bits turned into an integer, so that
    /// the synthesized `Hashable` conformance agrees with ``equal(_:_:)``.
    static func canonical(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number):
            if let integer = exactInteger(number) { return .integer(integer) }
            return value
        case .array(let elements):
            return .array(elements.map(canonical))
        case .object(let members):
            return .object(members.mapValues(canonical))
        default:
            return value
        }
    }

    /// The index pair of the first two equal elements of `elements`, or nil when all are distinct.
    static func firstDuplicate(in elements: [JSONValue]) -> (Int, Int)? {
        if elements.count <= 16 {
            for second in elements.indices {
                for first in 0..<second where equal(elements[first], elements[second]) { return (first, second) }
            }
            return nil
        }
        // Hash on a canonical form, then confirm with `equal` (hashing treats canonically
        // equivalent strings as equal; `equal` does not).
        var seen: [JSONValue: [Int]] = [:]
        for (index, element) in elements.enumerated() {
            let key = canonical(element)
            if let earlier = seen[key]?.first(where: { equal(elements[$0], element) }) { return (earlier, index) }
            seen[key, default: []].append(index)
        }
        return nil
    }

    /// `number` as an Int64 when it is integral and representable exactly.
    static func exactInteger(_ number: Double) -> Int64? {
        guard number.isFinite, number.rounded(.towardZero) == number,
            number >= -9_223_372_036_854_775_808, number < 9_223_372_036_854_775_808
        else { return nil }
        return Int64(number)
    }

    /// Compares two numbers exactly (an Int64 is never rounded to a Double): negative when
    /// `left < right`, zero when equal, positive when greater. Non-numbers compare as equal.
    static func compare(_ left: JSONValue, _ right: JSONValue) -> Int {
        switch (left, right) {
        case (.integer(let a), .integer(let b)): return a < b ? -1 : (a == b ? 0 : 1)
        case (.double(let a), .double(let b)): return a < b ? -1 : (a == b ? 0 : 1)
        case (.integer(let a), .double(let b)): return compare(integer: a, double: b)
        case (.double(let a), .integer(let b)): return -compare(integer: b, double: a)
        default: return 0
        }
    }

    private static func compare(integer: Int64, double: Double) -> Int {
        if double.isNaN { return 0 }
        if double >= 9_223_372_036_854_775_808 { return -1 }
        if double < -9_223_372_036_854_775_808 { return 1 }
        let whole = double.rounded(.down)
        let wholeInteger = Int64(whole)
        if integer != wholeInteger { return integer < wholeInteger ? -1 : 1 }
        return whole == double ? 0 : -1
    }
}
