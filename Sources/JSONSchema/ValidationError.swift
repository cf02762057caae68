/// One way in which an instance fails its schema.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// JSON Pointer to the offending part of the instance, e.g. `/items/2/name`; empty for the whole instance.
    public var instanceLocation: String
    /// JSON Pointer to the failing keyword along the evaluation path, through any `$ref`,
    /// e.g. `/properties/items/items/required` or `/$ref/minimum`.
    public var keywordLocation: String
    /// The failing keyword as `uri#pointer` inside its schema resource, when the schema (or the
    /// resource a `$ref` led to) has an absolute `$id`; nil otherwise.
    public var absoluteKeywordLocation: String?
    /// What was found and what was expected, e.g. `expected integer, found string "x"`.
    public var message: String

    /// Creates an error.
    public init(
        instanceLocation: String,
        keywordLocation: String,
        absoluteKeywordLocation: String? = nil,
        message: String
    ) {
        self.instanceLocation = instanceLocation
        self.keywordLocation = keywordLocation
        self.absoluteKeywordLocation = absoluteKeywordLocation
        self.message = message
    }

    /// `at /items/2: "name" is required (schema /properties/items/items/required)`;
    /// the whole instance is `root`.
    public var description: String {
        let place = instanceLocation.isEmpty ? "root" : instanceLocation
        let schema = keywordLocation.isEmpty ? "root" : keywordLocation
        return "at \(place): \(message) (schema \(schema))"
    }
}

/// The outcome of validating one instance: valid when there are no errors.
public struct ValidationResult: Sendable, Hashable, CustomStringConvertible {
    /// Every failure found, in evaluation order (schema keywords in a fixed order, object members by name,
    /// array items by index), so the same instance always yields the same list.
    public var errors: [ValidationError]

    /// Creates a result holding `errors`.
    public init(errors: [ValidationError]) {
        self.errors = errors
    }

    /// Whether the instance satisfies the schema.
    public var isValid: Bool { errors.isEmpty }

    /// `valid`, or one error description per line.
    public var description: String {
        isValid ? "valid" : errors.map(\.description).joined(separator: "\n")
    }
}
