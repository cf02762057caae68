import JSON

/// A schema compiled into a graph of nodes, one per subschema. Nodes refer to each other by
/// index, which is how recursive `$ref`s become cycles without reference types.
struct CompiledProgram: Sendable {
    /// Every compiled subschema; `$ref` targets are indices into this array.
    var nodes: [SchemaNode]
    /// The node the instance is validated against.
    var root: Int
    /// For each schema resource, its `$dynamicAnchor` names and the nodes they designate.
    var dynamicAnchors: [[String: Int]]
    /// Whether any `unevaluatedItems`/`unevaluatedProperties` keyword exists, so that evaluation
    /// must track which items and properties were evaluated.
    var tracksAnnotations: Bool
}

/// One compiled subschema.
struct SchemaNode: Sendable {
    /// A boolean schema, or the keywords of an object schema in evaluation order.
    enum Body: Sendable {
        case always(Bool)
        case keywords([Keyword])
    }

    var body: Body
    /// The schema resource (`$id` scope) this node belongs to: an index into the dynamic anchor table.
    var resource: Int
    /// `uri#pointer` of this subschema when its resource has an absolute URI given by the user.
    var absoluteLocation: String?
}

/// One compiled keyword of an object schema.
struct Keyword: Sendable {
    /// The keyword's name, the segment it adds to keyword locations.
    var name: String
    /// `uri#pointer` of the keyword when its resource has an absolute URI given by the user.
    var absoluteLocation: String?
    var kind: Kind

    /// What the keyword does, with its operands already checked and converted.
    enum Kind: Sendable {
        // Core vocabulary.
        case ref(Int)
        case dynamicRef(target: Int, anchor: String?)

        // Applicator vocabulary.
        case allOf([Int])
        case anyOf([Int])
        case oneOf([Int])
        case not(Int)
        case conditional(condition: Int, then: Int?, else: Int?)
        case dependentSchemas([NamedSchema])
        case prefixItems([Int])
        case items(Int, firstIndex: Int)
        case contains(Int, minimum: Int, maximum: Int?)
        case properties([NamedSchema])
        case patternProperties([PatternSchema])
        case additionalProperties(Int, declared: Set<String>, patterns: [ECMARegex])
        case propertyNames(Int)

        // Unevaluated vocabulary.
        case unevaluatedItems(Int)
        case unevaluatedProperties(Int)

        // Validation vocabulary.
        case type(JSONTypes)
        case enumeration([JSONValue])
        case constant(JSONValue)
        case multipleOf(JSONValue)
        case maximum(JSONValue)
        case exclusiveMaximum(JSONValue)
        case minimum(JSONValue)
        case exclusiveMinimum(JSONValue)
        case maxLength(Int)
        case minLength(Int)
        case pattern(ECMARegex)
        case maxItems(Int)
        case minItems(Int)
        case uniqueItems
        case maxProperties(Int)
        case minProperties(Int)
        case required([String])
        case dependentRequired([(property: String, required: [String])])
    }
}

/// A subschema applied to the member with a given name.
struct NamedSchema: Sendable {
    var name: String
    var schema: Int
}

/// A subschema applied to the members whose names match a pattern.
struct PatternSchema: Sendable {
    var pattern: ECMARegex
    var schema: Int
}

/// A set of JSON Schema type names, as the `type` keyword lists them.
struct JSONTypes: OptionSet, Sendable {
    var rawValue: UInt8

    static let null = JSONTypes(rawValue: 1)
    static let boolean = JSONTypes(rawValue: 2)
    static let object = JSONTypes(rawValue: 4)
    static let array = JSONTypes(rawValue: 8)
    static let number = JSONTypes(rawValue: 16)
    static let string = JSONTypes(rawValue: 32)
    static let integer = JSONTypes(rawValue: 64)

    /// The names in the order messages list them.
    static let named: [(String, JSONTypes)] = [
        ("object", .object), ("array", .array), ("string", .string), ("integer", .integer),
        ("number", .number), ("boolean", .boolean), ("null", .null),
    ]

    /// Whether `value` is of one of these types (`1.0` is an integer, every integer is a number).
    func admits(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return contains(.null)
        case .bool: return contains(.boolean)
        case .object: return contains(.object)
        case .array: return contains(.array)
        case .string: return contains(.string)
        case .integer: return contains(.number) || contains(.integer)
        case .double(let number):
            return contains(.number) || (contains(.integer) && number.isFinite && number.rounded() == number)
        }
    }

    /// `string`, `string or null`, `object, array or null`.
    var listing: String {
        let names = Self.named.filter { contains($0.1) }.map(\.0)
        guard names.count > 1 else { return names.first ?? "nothing" }
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }
}
