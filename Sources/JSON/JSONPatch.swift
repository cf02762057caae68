/// One operation of a JSON Patch (RFC 6902). Status changes travel as these: a change to one
/// task is a few small operations rather than the whole document.
public struct JSONPatchOperation: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case add
        case remove
        case replace
    }

    public var op: Kind
    /// A JSON Pointer (RFC 6901); `""` is the whole document.
    public var path: String
    /// The new value (absent for `remove`).
    public var value: JSONValue?

    public init(op: Kind, path: String, value: JSONValue? = nil) {
        self.op = op
        self.path = path
        self.value = value
    }

    /// `{"op": …, "path": …, "value": …}`.
    public var json: JSONValue {
        var members: [String: JSONValue] = ["op": .string(op.rawValue), "path": .string(path)]
        if let value { members["value"] = value }
        return .object(members)
    }

    public var description: String { json.description }

    /// The JSON Pointer of a path of object member names: `~` and `/` escaped as `~0` and `~1`.
    public static func pointer<Path: Sequence<String>>(_ path: Path) -> String {
        path.reduce(into: "") { pointer, name in
            pointer += "/"
            for character in name {
                switch character {
                case "~": pointer += "~0"
                case "/": pointer += "~1"
                default: pointer.append(character)
                }
            }
        }
    }

    /// The member names of a pointer, unescaped.
    static func names(_ pointer: String) -> [String] {
        guard !pointer.isEmpty else { return [] }
        return pointer.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { escaped in
            var name = ""
            var index = escaped.startIndex
            while index < escaped.endIndex {
                let character = escaped[index]
                let next = escaped.index(after: index)
                if character == "~", next < escaped.endIndex, escaped[next] == "0" || escaped[next] == "1" {
                    name.append(escaped[next] == "0" ? "~" : "/")
                    index = escaped.index(after: next)
                } else {
                    name.append(character)
                    index = next
                }
            }
            return name
        }
    }
}

/// Why a patch does not apply.
public struct JSONPatchError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

extension JSONValue {
    /// Sets the member at `path` (object member names from the root) to `value`, creating the
    /// objects on the way, and returns the operation that does the same to a copy: `replace`
    /// where the member existed, else `add` at the first level that was missing.
    @discardableResult
    public mutating func set(_ value: JSONValue, at path: [String]) -> JSONPatchOperation {
        var missingFrom: Int?
        assign(value, at: path[...], depth: 0, missingFrom: &missingFrom)
        guard let level = missingFrom else {
            return JSONPatchOperation(op: .replace, path: JSONPatchOperation.pointer(path), value: value)
        }
        let prefix = Array(path.prefix(level + 1))
        return JSONPatchOperation(op: .add, path: JSONPatchOperation.pointer(prefix), value: self[path: prefix])
    }

    /// Removes the member at `path`; returns the operation, or nil when there was none.
    @discardableResult
    public mutating func remove(at path: [String]) -> JSONPatchOperation? {
        guard let last = path.last, self[path: path] != nil else { return nil }
        update(at: path.dropLast()[...]) { parent in
            guard case .object(var members) = parent else { return }
            parent = .null
            members.removeValue(forKey: last)
            parent = .object(members)
        }
        return JSONPatchOperation(op: .remove, path: JSONPatchOperation.pointer(path))
    }

    /// The value at a path of object member names, or nil.
    public subscript(path path: [String]) -> JSONValue? {
        var current = self
        for name in path {
            guard let next = current[name] else { return nil }
            current = next
        }
        return current
    }

    /// Applies `operations` in order (objects only: this is the subset status patches use, plus
    /// array indices and `-` for `add`).
    public func applying(_ operations: [JSONPatchOperation]) throws(JSONPatchError) -> JSONValue {
        var result = self
        for operation in operations {
            let names = JSONPatchOperation.names(operation.path)
            switch operation.op {
            case .add, .replace:
                guard let value = operation.value else {
                    throw JSONPatchError(description: "\(operation.op.rawValue) at '\(operation.path)' has no value")
                }
                guard !names.isEmpty else {
                    result = value
                    continue
                }
                guard let parent = result[path: Array(names.dropLast())], case .object(let members) = parent else {
                    throw JSONPatchError(description: "no object at the parent of '\(operation.path)'")
                }
                if operation.op == .replace, members[names.last!] == nil {
                    throw JSONPatchError(description: "replace at '\(operation.path)': there is no such member")
                }
                result.set(value, at: names)
            case .remove:
                guard result.remove(at: names) != nil else {
                    throw JSONPatchError(description: "remove at '\(operation.path)': there is no such member")
                }
            }
        }
        return result
    }

    private mutating func assign(_ value: JSONValue, at path: ArraySlice<String>, depth: Int, missingFrom: inout Int?) {
        guard let name = path.first else {
            self = value
            return
        }
        var members: JSONObject
        if case .object(let existing) = self { members = existing } else { members = JSONObject() }
        self = .null  // leaves `members` the only reference, so it is changed in place
        var child = members[name]
        // The member keeps its place; null meanwhile leaves `child` the only reference.
        if child != nil { members[name] = .null }
        if child == nil, missingFrom == nil { missingFrom = depth }
        var updated = child ?? .null
        child = nil
        updated.assign(value, at: path.dropFirst(), depth: depth + 1, missingFrom: &missingFrom)
        members[name] = updated
        self = .object(members)
    }

    private mutating func update(at path: ArraySlice<String>, _ body: (inout JSONValue) -> Void) {
        guard let name = path.first else {
            body(&self)
            return
        }
        guard case .object(var members) = self, members[name] != nil else { return }
        self = .null  // as in `assign`: change the members in place
        var child = members.removeValue(forKey: name)!
        child.update(at: path.dropFirst(), body)
        members[name] = child
        self = .object(members)
    }
}
