import JSON

/// What a stage handler returns: the `{output, flags}` contract (another shape fails the stage
/// with `ContractError`).
public struct StageOutput: Sendable, Hashable {
    /// The stage's result, stored as `context.data[stage]` and chained into the next stage
    /// unless this is a validation stage.
    public var output: JSONValue
    /// Control flags merged into `context.flags` (`validationFailed`, `lastValidationError`, …).
    public var flags: [String: JSONValue]

    public init(output: JSONValue, flags: [String: JSONValue] = [:]) {
        self.output = output
        self.flags = flags
    }

    /// Checks a handler's answer against the contract, as `assertStageResult` does: an object
    /// with an `output` member and a `flags` object.
    public init(contract value: JSONValue, stage: TaskStage) throws(TaskError) {
        guard case .object(let members) = value else {
            throw TaskError(
                .contract,
                "stage \(stage.rawValue) must return an object {\"output\": …, \"flags\": {…}}, not \(value.typeName)"
            )
        }
        guard let output = members["output"] else {
            throw TaskError(.contract, "stage \(stage.rawValue) result is missing the required member 'output'")
        }
        guard let flags = members["flags"] else {
            throw TaskError(.contract, "stage \(stage.rawValue) result is missing the required member 'flags'")
        }
        guard case .object(let flagMembers) = flags else {
            throw TaskError(
                .contract,
                "stage \(stage.rawValue) flags must be an object, not \(flags.typeName)"
            )
        }
        self.init(output: output, flags: flagMembers.dictionary)
    }

    /// The contract as JSON.
    public var json: JSONValue { .object(["output": output, "flags": .object(flags)]) }
}
