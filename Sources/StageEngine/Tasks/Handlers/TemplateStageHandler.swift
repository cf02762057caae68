import JSON
import Jinja

/// Renders a template with the context: `input` (the chained output), `seed`, `data`, `flags`,
/// `meta`, `stage` and `refinementCycle`. Its output is the rendered text.
struct TemplateStageHandler: TaskStageHandler {
    let template: Template
    let templateName: String

    var summary: String { "template \(templateName)" }

    /// Rendering is computation: cancelling cannot stop it.
    var isInterruptible: Bool { false }

    /// Only filters and tests that exist.
    func problems(_ invocation: StageInvocation) -> [String] {
        template.unknownNames.map { "\(templateName):\($0.line): \($0.message)" }
    }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        StageOutput(output: .string(try render(template, invocation)))
    }
}

/// The variables a task template sees.
func templateVariables(_ invocation: StageInvocation) -> [String: TemplateValue] {
    let context = invocation.context
    return [
        "input": TemplateValue(json: context.output),
        "seed": TemplateValue(json: context.seed),
        "data": TemplateValue(json: .object(context.data)),
        "flags": TemplateValue(json: .object(context.flags)),
        "meta": TemplateValue(json: context.meta),
        "stage": .string(invocation.stage.rawValue),
        "refinementCycle": .int(context.refinementCount),
        "currentModel": .string(context.currentModel),
    ]
}

func render(_ template: Template, _ invocation: StageInvocation) throws(TaskError) -> String {
    do {
        return try template.render(templateVariables(invocation))
    } catch {
        throw TaskError(.template, error.description)
    }
}
