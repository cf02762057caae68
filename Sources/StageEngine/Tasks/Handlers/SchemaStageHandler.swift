import JSON
import JSONSchema

/// Validates the chained output against a JSON Schema (draft 2020-12). In a validation stage a
/// failure sets `validationFailed` and `lastValidationError` ({message, errors: [{instancePath,
/// schemaPath, message}]}), which starts a refinement cycle while cycles remain; a success sets
/// `validationFailed` to false. In any other stage (say finalValidation) a failure fails the
/// stage. The output is the validated value, unchanged.
struct SchemaStageHandler: TaskStageHandler {
    let schema: JSONSchema
    let source: String

    var summary: String { "schema \(source)" }

    /// Validation is computation: cancelling cannot stop it.
    var isInterruptible: Bool { false }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        let value = invocation.context.output
        let result = schema.validate(value)
        if result.isValid {
            return StageOutput(output: value, flags: invocation.stage.isValidation ? ["validationFailed": false] : [:])
        }
        let errors = result.errors
        let first = errors[0]
        let message =
            "the output does not match the schema \(source): "
            + (first.instanceLocation.isEmpty ? "" : "at \(first.instanceLocation): ") + first.message
            + (errors.count > 1 ? " (and \(errors.count - 1) more)" : "")
        let details: JSONValue = .object([
            "message": .string(message),
            "schema": .string(source),
            "errors": .array(
                errors.prefix(20).map { error in
                    .object([
                        "instancePath": .string(error.instanceLocation),
                        "schemaPath": .string(error.keywordLocation),
                        "message": .string(error.message),
                    ])
                }
            ),
        ])
        guard invocation.stage.isValidation else {
            throw TaskError(.validation, message, data: details)
        }
        return StageOutput(output: value, flags: ["validationFailed": true, "lastValidationError": details])
    }
}

extension TaskFileLoader {
    mutating func schemaHandler(_ config: JSONValue, _ path: String) throws(TaskDefinitionError) -> any TaskStageHandler
    {
        var document: JSONValue
        var source: String
        if case .string(let relative) = config {
            (document, source) = try schemaFile(relative, path)
        } else {
            let options = try object(config, path)
            try checkKeys(options, path, allowed: ["file", "schema"])
            if let inline = options["schema"] {
                document = inline
                source = "\(file)#\(path).schema"
            } else if let relative = options["file"] {
                (document, source) = try schemaFile(try string(relative, "\(path).file"), "\(path).file")
            } else {
                throw problem(
                    path,
                    "needs 'file' (a JSON Schema file next to the task file) or 'schema' (the schema itself)"
                )
            }
        }
        do {
            return SchemaStageHandler(schema: try JSONSchema(document), source: source)
        } catch {
            throw TaskDefinitionError(file: source, path: "", message: "invalid JSON Schema: \(error)")
        }
    }

    mutating func schemaFile(_ relative: String, _ path: String) throws(TaskDefinitionError) -> (JSONValue, String) {
        let (text, resolved) = try readFile(relative, path)
        return (try TaskDefinition.parseDocument(text, file: resolved), resolved)
    }
}
