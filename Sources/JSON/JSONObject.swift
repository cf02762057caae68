/// The members of a JSON object, in the order they were read or added: a template iterating a
/// mapping read from a file sees its keys as written, as Jinja2 does. As in JSON, the order does
/// not make two objects different: equality and hashing ignore it. ``JSONWriter`` still writes
/// keys sorted.
///
/// Small objects are searched in place; an index of keys is kept once an object grows past a
/// few members, so lookups stay constant-time for large ones.
public struct JSONObject: Sendable {
    /// The members in order.
    public private(set) var entries: [(key: String, value: JSONValue)] = []
    /// Key → position in `entries`, kept only past `indexThreshold` members.
    private var index: [String: Int]?

    private static let indexThreshold = 12

    /// An empty object.
    public init() {}

    /// The members of `dictionary`, keys in sorted order (a dictionary has none of its own).
    public init(_ dictionary: [String: JSONValue]) {
        // Its keys are distinct: no search for an earlier one.
        entries = dictionary.sorted { $0.key < $1.key }
        if entries.count > Self.indexThreshold { reindex() }
    }

    /// `entries` in order; a key given twice keeps its first place and its last value, as
    /// Python's `json` reads `{"a": 1, "a": 2}`.
    public init<Members: Sequence>(_ entries: Members) where Members.Element == (String, JSONValue) {
        for (key, value) in entries { self[key] = value }
    }

    /// The members in key order, as ``JSONWriter`` writes them: `entries` themselves when they
    /// are in order already (an object built from a dictionary, or key by key in order), else a
    /// sorted copy.
    var entriesInKeyOrder: [(key: String, value: JSONValue)] {
        var index = entries.startIndex + 1
        while index < entries.endIndex {
            guard entries[index - 1].key < entries[index].key else {
                return entries.sorted { $0.key < $1.key }
            }
            index += 1
        }
        return entries
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    /// The keys in order.
    public var keys: [String] { entries.map(\.key) }
    /// The values in order.
    public var values: [JSONValue] { entries.map(\.value) }

    /// The members as a dictionary (order dropped).
    public var dictionary: [String: JSONValue] {
        Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    private func position(_ key: String) -> Int? {
        if let index { return index[key] }
        return entries.firstIndex { $0.key == key }
    }

    /// The value of `key`; setting nil removes it, setting a new key appends it.
    public subscript(key: String) -> JSONValue? {
        get { position(key).map { entries[$0].value } }
        set {
            if let at = position(key) {
                if let newValue {
                    entries[at].value = newValue
                } else {
                    removeValue(forKey: key)
                }
                return
            }
            guard let newValue else { return }
            entries.append((key, newValue))
            if index != nil {
                index?[key] = entries.count - 1
            } else if entries.count > Self.indexThreshold {
                reindex()
            }
        }
    }

    /// Indexes every key by its position.
    private mutating func reindex() {
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.key, $0) })
    }

    /// Removes `key`, returning its value.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        guard let at = position(key) else { return nil }
        let value = entries.remove(at: at).value
        if index != nil { reindex() }
        return value
    }

    /// The same keys in the same order, each value transformed.
    public func mapValues(_ transform: (JSONValue) throws -> JSONValue) rethrows -> JSONObject {
        var mapped = self
        for position in mapped.entries.indices {
            mapped.entries[position].value = try transform(mapped.entries[position].value)
        }
        return mapped
    }

    /// The members that pass `isIncluded`, in order.
    public func filter(_ isIncluded: ((key: String, value: JSONValue)) throws -> Bool) rethrows -> JSONObject {
        JSONObject(try entries.filter(isIncluded).map { ($0.key, $0.value) })
    }

    /// Adds `other`'s members (new keys at the end); for a key in both, `combine` decides.
    public mutating func merge(
        _ other: JSONObject,
        uniquingKeysWith combine: (JSONValue, JSONValue) throws -> JSONValue
    ) rethrows {
        for (key, value) in other.entries {
            if let existing = self[key] {
                self[key] = try combine(existing, value)
            } else {
                self[key] = value
            }
        }
    }

    /// `merge` into a copy.
    public func merging(
        _ other: JSONObject,
        uniquingKeysWith combine: (JSONValue, JSONValue) throws -> JSONValue
    ) rethrows -> JSONObject {
        var merged = self
        try merged.merge(other, uniquingKeysWith: combine)
        return merged
    }
}

extension JSONObject: Sequence {
    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { entries.makeIterator() }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self.init(elements) }
}

extension JSONObject: Hashable {
    /// Same members, whatever their order.
    public static func == (left: JSONObject, right: JSONObject) -> Bool {
        guard left.count == right.count else { return false }
        return left.entries.allSatisfy { right[$0.key] == $0.value }
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent: the members' hashes summed.
        var sum = 0
        for (key, value) in entries {
            var member = Hasher()
            member.combine(key)
            member.combine(value)
            sum = sum &+ member.finalize()
        }
        hasher.combine(count)
        hasher.combine(sum)
    }
}
