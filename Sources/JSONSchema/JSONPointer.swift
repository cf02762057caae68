import JSON

/// JSON Pointer (RFC 6901) helpers: escaping reference tokens, splitting pointers and looking values up.
enum JSONPointer {
    /// `token` escaped for use as one reference token (`~` → `~0`, `/` → `~1`).
    static func escape(_ token: String) -> String {
        guard token.contains(where: { $0 == "~" || $0 == "/" }) else { return token }
        var escaped = ""
        for character in token {
            switch character {
            case "~": escaped += "~0"
            case "/": escaped += "~1"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// The pointer made of `tokens` (unescaped), e.g. `["a", "b/c"]` → `/a/b~1c`.
    static func make(_ tokens: [String]) -> String {
        var pointer = ""
        for token in tokens { pointer += "/" + escape(token) }
        return pointer
    }

    /// The unescaped reference tokens of `pointer`, or nil when it is not a valid pointer
    /// (it must be empty or start with `/`, and `~` must be followed by `0` or `1`).
    static func tokens(_ pointer: String) -> [String]? {
        if pointer.isEmpty { return [] }
        guard pointer.first == "/" else { return nil }
        var tokens: [String] = []
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var token = ""
            var iterator = raw.makeIterator()
            while let character = iterator.next() {
                guard character == "~" else {
                    token.append(character)
                    continue
                }
                switch iterator.next() {
                case "0": token.append("~")
                case "1": token.append("/")
                default: return nil
                }
            }
            tokens.append(token)
        }
        return tokens
    }

    /// The value `pointer` designates inside `document`, or nil when there is none.
    static func resolve(_ pointer: String, in document: JSONValue) -> JSONValue? {
        guard let tokens = tokens(pointer) else { return nil }
        var current = document
        for token in tokens {
            switch current {
            case .object(let members):
                guard let next = members[token] else { return nil }
                current = next
            case .array(let elements):
                // Array indices are decimal without leading zeros.
                guard let index = Int(token), String(index) == token, index >= 0, index < elements.count
                else { return nil }
                current = elements[index]
            default:
                return nil
            }
        }
        return current
    }
}
