import JSON
import Jinja
import ModelProviders

/// A task-stage failure, normalized to the `{name, message, data}` of a result's `error`: a name
/// that says what kind of failure it is, a message that says what happened and how to fix it,
/// and details.
public struct TaskError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure; the raw value is the `name` clients see.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A handler broke the `{output, flags}` contract.
        case contract = "ContractError"
        /// A flag has the wrong type, or changed type.
        case flagType = "FlagTypeError"
        /// A stage ran past its timeout.
        case timeout = "StageTimeoutError"
        /// The whole task ran past its timeout.
        case taskTimeout = "TaskTimeoutError"
        /// Validation still failed when no refinement was left.
        case validation = "ValidationError"
        /// A template did not render.
        case template = "TemplateError"
        /// A model call failed.
        case model = "ModelError"
        /// A parser could not read the model's answer.
        case parse = "ParseError"
        /// A JSON Schema could not be loaded or compiled.
        case schema = "SchemaError"
        /// An external command failed.
        case command = "CommandError"
        /// The connected client failed to run a stage.
        case client = "ClientStageError"
        /// An artifact could not be written.
        case write = "WriteError"
        /// The task was cancelled.
        case cancelled = "CancelledError"
        /// A handler threw something else.
        case stage = "StageError"
    }

    public var kind: Kind
    public var message: String
    /// Details a program can use (exit status, stderr tail, validation errors, …).
    public var data: JSONValue?

    public init(_ kind: Kind, _ message: String, data: JSONValue? = nil) {
        self.kind = kind
        self.message = message
        self.data = data
    }

    /// Any error as a task error: task errors as they are, model and template errors by kind.
    public init(normalizing error: any Error) {
        switch error {
        case let error as TaskError: self = error
        case let error as ModelError:
            self.init(
                .model,
                error.message,
                data: ["kind": .string(error.kind.rawValue), "retries": .integer(Int64(error.retries))]
            )
        case let error as TemplateError: self.init(.template, error.description)
        case is CancellationError: self.init(.cancelled, "the task was cancelled")
        default: self.init(.stage, "\(error)")
        }
    }

    public var description: String { "\(kind.rawValue): \(message)" }

    /// `{name, message, data?}` as the result payload carries it.
    public var json: JSONValue {
        var members = JSONObject()
        if let data { members["data"] = data }
        members["message"] = .string(message)
        members["name"] = .string(kind.rawValue)
        return .object(members)
    }
}
