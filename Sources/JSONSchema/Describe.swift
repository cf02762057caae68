import JSON

/// How values, counts and URIs appear in error messages.
enum Describe {
    /// Longest JSON text quoted in a message before it is cut short with `…`.
    static let maximumLength = 60

    /// `value` as compact JSON text (so strings are quoted), cut short when long.
    static func value(_ value: JSONValue) -> String {
        let text = value.description
        guard text.count > maximumLength else { return text }
        return String(text.prefix(maximumLength)) + "…"
    }

    /// `value` with its type, as `found …` in a type mismatch: `string "x"`, `number 3.5`, `object`.
    static func typed(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "boolean \(value.description)"
        case .integer, .double: return "number \(Self.value(value))"
        case .string: return "string \(Self.value(value))"
        case .array(let items): return "array of \(count(items.count, "item"))"
        case .object(let members): return "object with \(count(members.count, "property", plural: "properties"))"
        }
    }

    /// `1 item`, `3 items`.
    static func count(_ number: Int, _ noun: String, plural: String? = nil) -> String {
        "\(number) \(number == 1 ? noun : plural ?? noun + "s")"
    }

    /// A URI as users wrote it: the internal base of schemas without an absolute `$id` is left out.
    static func uri(_ uri: String) -> String {
        if uri == SchemaCompiler.anonymousBase { return "the root schema" }
        let prefix = SchemaCompiler.anonymousScheme + "/"
        if uri.hasPrefix(prefix) { return "\"" + uri.dropFirst(prefix.count) + "\"" }
        return "\"" + uri + "\""
    }
}
