/// Decodes `Decodable` types straight from a ``JSONValue``.
///
/// Unlike Foundation's `JSONDecoder`, every failure names the path of the offending value and
/// what was found there (`params.ms must be an integer, not 1.5`), which is what a client needs
/// to fix its request; and the bytes, already validated, are not parsed a second time.
public enum JSONValueDecoder {
    /// Decodes `type` from `value`; `root` names the value in error paths (`params`).
    public static func decode<T: Decodable>(
        _ type: T.Type,
        from value: JSONValue,
        root: String = "params"
    ) throws(JSONDecodingProblem) -> T {
        do {
            return try T(from: ValueDecoder(value: value, path: []))
        } catch let problem as JSONDecodingProblem {
            throw problem.rooted(at: root)
        } catch let error as DecodingError {
            throw JSONDecodingProblem(decodingError: error).rooted(at: root)
        } catch {
            throw JSONDecodingProblem(path: [], problem: "\(error)").rooted(at: root)
        }
    }
}

/// Why a value could not be decoded, and where.
public struct JSONDecodingProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// Path components below the root: member names and `[index]` elements.
    public var path: [String]
    /// What is wrong (`must be an integer, not 1.5`).
    public var problem: String
    var root = ""

    init(path: [String], problem: String) {
        self.path = path
        self.problem = problem
    }

    init(decodingError: DecodingError) {
        func components(_ codingPath: [any CodingKey]) -> [String] {
            codingPath.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }
        }
        switch decodingError {
        case .keyNotFound(let key, let context):
            self.init(path: components(context.codingPath + [key]), problem: "is required but missing")
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            self.init(path: components(context.codingPath), problem: context.debugDescription)
        @unknown default:
            self.init(path: [], problem: "\(decodingError)")
        }
    }

    func rooted(at root: String) -> JSONDecodingProblem {
        var copy = self
        copy.root = root
        return copy
    }

    /// The full path, e.g. `params.clientInfo.name` or `params.items[2]`.
    public var field: String {
        path.reduce(root) { partial, component in
            component.hasPrefix("[") ? partial + component : (partial.isEmpty ? component : partial + "." + component)
        }
    }

    public var description: String { "\(field) \(problem)" }
}

private struct IndexKey: CodingKey {
    var stringValue: String { "\(intValue!)" }
    var intValue: Int?
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private func describe(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): return text.count > 40 ? "a string" : "\"\(text)\""
    case .array: return "an array"
    case .object: return "an object"
    default: return value.description
    }
}

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let path: [any CodingKey]
    var codingPath: [any CodingKey] { path }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func fail(_ problem: String) -> JSONDecodingProblem {
        JSONDecodingProblem(path: path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }, problem: problem)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        switch value {
        case .object(let members):
            return KeyedDecodingContainer(KeyedContainer(members: members, decoder: self))
        case .array(let elements) where elements.isEmpty:
            // Lua cannot tell an empty table from an empty list: `values = {}` arrives as `[]`.
            return KeyedDecodingContainer(KeyedContainer(members: JSONObject(), decoder: self))
        default:
            throw fail("must be an object, not \(describe(value))")
        }
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw fail("must be an array, not \(describe(value))") }
        return UnkeyedContainer(elements: elements, decoder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValue(decoder: self) }

    func child(_ value: JSONValue, _ key: any CodingKey) -> ValueDecoder {
        ValueDecoder(value: value, path: path + [key])
    }

    /// Decodes this value as `T`, with JSON's scalar types checked here for precise messages.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is String.Type:
            guard case .string(let text) = value else { throw fail("must be a string, not \(describe(value))") }
            return text as! T
        case is Bool.Type:
            guard case .bool(let flag) = value else { throw fail("must be a boolean, not \(describe(value))") }
            return flag as! T
        case is Double.Type, is Float.Type:
            let number: Double
            switch value {
            case .integer(let integer): number = Double(integer)
            case .double(let double): number = double
            default: throw fail("must be a number, not \(describe(value))")
            }
            return (type is Float.Type ? Float(number) as! T : number as! T)
        case let integerType as any FixedWidthInteger.Type:
            return try decodeInteger(integerType) as! T
        case is JSONValue.Type:
            return value as! T
        default:
            return try T(from: self)
        }
    }

    func decodeInteger<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let integer: Int64
        switch value {
        case .integer(let exact): integer = exact
        case .double(let double) where double.rounded() == double && abs(double) < 9.2e18: integer = Int64(double)
        default: throw fail("must be an integer, not \(describe(value))")
        }
        guard let result = I(exactly: integer) else {
            throw fail("must be an integer between \(I.min) and \(I.max), not \(integer)")
        }
        return result
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: JSONObject
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.path }
    var allKeys: [Key] { members.keys.compactMap(Key.init(stringValue:)) }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    func member(_ key: Key) throws -> ValueDecoder {
        guard let value = members[key.stringValue] else {
            throw JSONDecodingProblem(
                decodingError: .keyNotFound(key, .init(codingPath: codingPath, debugDescription: ""))
            )
        }
        return decoder.child(value, key)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        members[key.stringValue] == nil || members[key.stringValue] == .null
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let child = try member(key)
        if child.value == .null && !(type is JSONValue.Type) {
            throw child.fail("must not be null")
        }
        return try child.decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try member(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try member(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder { try member(key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.path }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }
    var currentIndex = 0

    init(elements: [JSONValue], decoder: ValueDecoder) {
        self.elements = elements
        self.decoder = decoder
    }

    mutating func next() throws -> ValueDecoder {
        guard !isAtEnd else { throw decoder.fail("has too few elements (\(elements.count))") }
        defer { currentIndex += 1 }
        return decoder.child(elements[currentIndex], IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, elements[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let element = try next()
        if element.value == .null && !(type is JSONValue.Type) { throw element.fail("must not be null") }
        return try element.decode(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next().unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

private struct SingleValue: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.path }

    func decodeNil() -> Bool { decoder.value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if decoder.value == .null && !(type is JSONValue.Type) { throw decoder.fail("must not be null") }
        return try decoder.decode(type)
    }
}
