import JSON

/// The declared types of control flags: the runner's own flags plus those a task file declares.
/// A stage that sets a declared flag to another type, or changes the type of a flag already set,
/// fails with a `FlagTypeError`.
public struct FlagSchemas: Sendable, Hashable {
    /// JSON type names allowed per flag (`boolean`, `number`, `string`, `object`, `array`, `null`).
    public private(set) var types: [String: Set<String>]

    /// The flags the runner itself reads.
    public static let builtIn: [String: Set<String>] = [
        "validationFailed": ["boolean"],
        "lastValidationError": ["object", "string", "null"],
        "refined": ["boolean"],
        "needsRefinement": ["boolean"],
        "truncated": ["boolean"],
        "lastArtifact": ["string"],
    ]

    static let typeNames: Set<String> = ["boolean", "number", "string", "object", "array", "null"]

    /// The built-in schemas, extended (never overridden) by `declared`.
    public init(declared: [String: Set<String>] = [:]) {
        types = declared.merging(Self.builtIn) { _, builtIn in builtIn }
    }

    /// Checks `flags`, set by `stage`, against the declared types and against the types the flags
    /// already have in `current`.
    func check(_ flags: [String: JSONValue], stage: TaskStage, current: [String: JSONValue]) throws(TaskError) {
        for (name, value) in flags.sorted(by: { $0.key < $1.key }) {
            if let allowed = types[name], !allowed.contains(value.typeName) {
                throw TaskError(
                    .flagType,
                    "stage \(stage.rawValue) set flag '\(name)' to a \(value.typeName); it must be "
                        + allowed.sorted().joined(separator: " or ")
                )
            }
            if let existing = current[name], existing != .null, value != .null, existing.typeName != value.typeName {
                throw TaskError(
                    .flagType,
                    "stage \(stage.rawValue) changed the type of flag '\(name)' from \(existing.typeName) to \(value.typeName)"
                )
            }
        }
    }
}
