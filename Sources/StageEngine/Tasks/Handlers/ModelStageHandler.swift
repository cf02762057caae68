import JSON
import Jinja
import ModelProviders

/// Calls a model (`llm`), or renders a template and calls a model with it (`prompt`). The prompt
/// of an `llm` stage is its chained input (JSON text when it is not a string). Its output is the
/// model's text, or with `parse` what that parser reads from it (a refine stage that answers JSON
/// straight to validation); a truncated answer sets the `truncated` flag, or fails with
/// `failOnTruncation`.
struct ModelStageHandler: TaskStageHandler {
    var template: Template?
    var model: String?
    var system: String?
    var maxTokens: Int?
    var temperature: Double?
    var failOnTruncation = false
    /// A parser applied to the answer.
    var parser: ParseStageHandler?

    var summary: String { template.map { "prompt \($0.name)" } ?? "llm" }

    /// The model's provider must be usable (configured, its key set), and the template must use
    /// only filters and tests that exist.
    func problems(_ invocation: StageInvocation) -> [String] {
        let environment = invocation.environment
        var problems = (template?.unknownNames ?? []).map { "\(template?.name ?? ""):\($0.line): \($0.message)" }
        do {
            _ = try environment.router.check(environment.model(stageModel: model, context: invocation.context))
        } catch {
            problems.append(error.message)
        }
        return problems
    }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        let environment = invocation.environment
        let context = invocation.context
        let prompt: String
        if let template {
            prompt = try render(template, invocation)
        } else if case .string(let text) = context.output {
            prompt = text
        } else {
            prompt = context.output.description
        }
        let modelId = environment.model(stageModel: model, context: context)
        let start = ContinuousClock.now
        var metric = LLMMetric(
            task: context.taskName,
            stage: invocation.stage.rawValue,
            provider: "",
            model: modelId,
            promptTokens: nil,
            completionTokens: nil,
            cost: nil,
            durationMs: 0,
            cached: false,
            retries: 0,
            failed: false
        )
        do {
            let (client, name) = try environment.router.route(modelId)
            metric.provider = client.provider
            metric.model = name
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: .system, content: system)) }
            messages.append(ChatMessage(role: .user, content: prompt))
            let completion = try await environment.callModel(
                client,
                CompletionRequest(model: name, messages: messages, maxTokens: maxTokens, temperature: temperature)
            )
            metric.model = completion.model
            metric.promptTokens = completion.usage?.promptTokens
            metric.completionTokens = completion.usage?.completionTokens
            metric.cost = completion.cost
            metric.cached = completion.cached
            metric.retries = completion.retries.count
            metric.retryErrors = completion.retries
            metric.finishReason = completion.finishReason.rawValue
            metric.durationMs = Double((ContinuousClock.now - start) / .microseconds(1)) / 1000
            await environment.metrics.record(metric)
            let truncated = completion.finishReason == .length
            if truncated && failOnTruncation {
                throw TaskError(
                    .model,
                    "the model's answer was cut at the token limit (\(maxTokens.map(String.init) ?? "the provider's")); "
                        + "raise maxTokens or drop failOnTruncation",
                    data: ["kind": "truncated"]
                )
            }
            var output = StageOutput(output: .string(completion.text), flags: truncated ? ["truncated": true] : [:])
            if let parser {
                var parsing = invocation
                parsing.context.output = output.output
                output.output = try await parser.run(parsing).output
            }
            return output
        } catch let error as ModelError {
            metric.failed = true
            metric.error = error.description
            metric.errorKind = error.kind.rawValue
            metric.retries = error.retries
            metric.retryErrors = error.retryErrors
            if metric.provider.isEmpty, let provider = error.provider { metric.provider = provider }
            metric.durationMs = Double((ContinuousClock.now - start) / .microseconds(1)) / 1000
            await environment.metrics.record(metric)
            throw error
        }
    }
}
