/// Why a schema cannot be compiled: a keyword with a value of the wrong kind, a pattern that is
/// not a regular expression, or a `$ref` that names no known schema.
public struct SchemaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is: a JSON Pointer into the schema being compiled (e.g. `/properties/age/minimum`),
    /// or `uri#pointer` when it is inside another document of the registry.
    public var schemaLocation: String
    /// What is wrong and what was expected.
    public var message: String

    /// Creates an error at `schemaLocation`.
    public init(schemaLocation: String, message: String) {
        self.schemaLocation = schemaLocation
        self.message = message
    }

    /// `invalid schema at /properties/age/minimum: …`
    public var description: String {
        "invalid schema at \(schemaLocation.isEmpty ? "root" : schemaLocation): \(message)"
    }
}
