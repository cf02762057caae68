import JSON
import OutputParsing

/// Reads the chained text with a parser from the registry. The `json` parser's output is the JSON
/// value; a score parser's is the score; the others' the parsed text. A failed parse fails the
/// stage (`ParseError`); outside the validation stages, that fails the task.
struct ParseStageHandler: TaskStageHandler {
    let parser: String

    var summary: String { "parse \(parser)" }

    /// Parsing is computation: cancelling cannot stop it.
    var isInterruptible: Bool { false }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        guard case .string(let text) = invocation.context.output else {
            throw TaskError(
                .parse,
                "the \(parser) parser reads text, but the previous stage produced \(invocation.context.output.typeName)"
            )
        }
        let outcome = try invocation.environment.parsers.parse(text, with: parser)
        guard outcome.succeeded, let parsed = outcome.text else {
            throw TaskError(
                .parse,
                "the \(parser) parser could not read the text: \(outcome.reason ?? outcome.llmError ?? outcome.status.rawValue)",
                data: .object(
                    ["status": .string(outcome.status.rawValue)].merging(
                        outcome.llmError.map { ["llmError": JSONValue.string($0)] } ?? [:]
                    ) { first, _ in first }
                )
            )
        }
        if let json = outcome.json { return StageOutput(output: json) }
        if let score = outcome.score { return StageOutput(output: .double(score)) }
        return StageOutput(output: .string(parsed))
    }
}
