import JSON
import JSONRPC
import Jinja
import ModelProviders
import StageEngine

/// `runStage` and `renderPrompt` parameters: a ``StageRunSpec`` on the wire (protocol/README.md
/// section 8.2).
struct StageRunParams: Decodable, Sendable {
    var stage: String
    var genId: String?
    var templateId: String?
    var values: JSONValue?
    var mode: String?
    var model: String?
    var parserName: String?
    var passThroughFrom: String?
    var maxTokens: Int?
    var promptText: String?
    var force: Bool?
    var stubFallback: Bool?
    var failOnTruncation: Bool?
    var runId: String?
    /// The job whose budget the calls spend (`budgets.job` in stagerunner.yaml).
    var budgetScope: String?
    /// `use`, `refresh` or `off`: whether the answer may come from the response cache.
    var cache: String?
    /// A string or an integer: the run's progress goes out as `$/progress` notifications with it.
    var progressToken: JSONValue?
    /// Longest `raw`/`parsed` text returned inline; the files hold everything.
    var maxTextLength: Int?

    /// The spec; the objects in `values` keep the order they were written in.
    func spec() throws(ResponseError) -> StageRunSpec {
        guard let stage = GenerationStage(rawValue: stage) else {
            throw .invalidParams(
                field: "params.stage",
                problem: "must be one of draft, essay, evaluation, not '\(self.stage)'"
            )
        }
        var spec = StageRunSpec(stage: stage, genId: genId, templateId: templateId)
        if let values {
            guard case .object(let members) = values else {
                throw .invalidParams(field: "params.values", problem: "must be an object of template variables")
            }
            spec.values = Dictionary(
                members.entries.map { ($0.key, TemplateValue(json: $0.value)) },
                uniquingKeysWith: { $1 }
            )
        }
        if let mode {
            guard let generator = Generator(rawValue: mode) else {
                throw .invalidParams(field: "params.mode", problem: "must be llm or copy, not '\(mode)'")
            }
            spec.mode = generator
        }
        if let maxTokens, maxTokens < 1 {
            throw .invalidParams(field: "params.maxTokens", problem: "must be at least 1")
        }
        if let maxTextLength, maxTextLength < 0 {
            throw .invalidParams(field: "params.maxTextLength", problem: "must be 0 or more")
        }
        spec.model = model
        spec.parserName = parserName
        spec.passThroughFrom = passThroughFrom
        spec.maxTokens = maxTokens
        spec.promptText = promptText
        spec.force = force ?? false
        spec.stubFallback = stubFallback ?? false
        spec.failOnTruncation = failOnTruncation ?? false
        spec.runId = runId
        if let budgetScope, budgetScope.isEmpty {
            throw .invalidParams(field: "params.budgetScope", problem: "must not be empty")
        }
        spec.budgetScope = budgetScope
        if let cache {
            guard let policy = CachePolicy(rawValue: cache) else {
                throw .invalidParams(field: "params.cache", problem: "must be use, refresh or off, not '\(cache)'")
            }
            spec.cache = policy
        }
        switch progressToken {
        case nil, .null, .string, .integer: break
        default: throw .invalidParams(field: "params.progressToken", problem: "must be a string or an integer")
        }
        return spec
    }
}

/// Application error codes (documented in protocol/README.md).
enum StageErrorCode {
    static let workspace = -32010
    static let template = -32011
    static let model = -32012
    static let storage = -32013
    static let truncated = -32014
    static let task = -32015
    static let job = -32016
    static let budget = -32017
}

extension ResponseError {
    /// How a stage failure reaches a client: bad requests name the field; the rest carry a code
    /// of their own and `data` that says where and what to fix.
    init(_ error: StageError) {
        switch error.kind {
        case .invalidSpec:
            // The engine's message is a whole sentence; the field goes in data.
            self.init(
                code: Code.invalidParams,
                message: "Invalid params: \(error.message)",
                data: [
                    "field": .string("params" + (error.field.map { "." + $0 } ?? "")),
                    "problem": .string(error.message),
                ]
            )
            return
        case .workspace: self.init(code: StageErrorCode.workspace, message: "Workspace: \(error.message)")
        case .template: self.init(code: StageErrorCode.template, message: "Template: \(error.message)")
        case .model: self.init(code: StageErrorCode.model, message: "Model: \(error.message)")
        case .storage: self.init(code: StageErrorCode.storage, message: "Storage: \(error.message)")
        case .truncated: self.init(code: StageErrorCode.truncated, message: "Truncated: \(error.message)")
        case .budget: self.init(code: StageErrorCode.budget, message: "Budget: \(error.message)")
        case .cancelled:
            self = .requestCancelled(error.message)
            return
        }
        var data: [String: JSONValue] = ["kind": .string(error.kind.rawValue)]
        if let field = error.field { data["field"] = .string("params." + field) }
        if let file = error.file { data["file"] = .string(file) }
        if let line = error.line, line > 0 { data["line"] = .integer(Int64(line)) }
        if let budget = error.budget {
            data["scope"] = .string(budget.scope.rawValue)
            if let scopeId = budget.scopeId { data["budgetScope"] = .string(scopeId) }
            data["unit"] = .string(budget.unit.rawValue)
            // Tokens are whole numbers; dollars are not.
            func amount(_ value: Double) -> JSONValue {
                budget.unit == .tokens ? .integer(Int64(value.rounded())) : .double(value)
            }
            data["cap"] = amount(budget.limit)
            data["spent"] = amount(budget.spent)
            data["reserved"] = amount(budget.reserved)
            data["needed"] = amount(budget.needed)
        }
        data["hint"] = .string(Self.hint(error.kind))
        if let failure = error.model { Self.describe(failure, into: &data) }
        self.data = .object(data)
    }

    /// A provider's failure as `data` members a client can branch on: `kind` (rate_limit,
    /// timeout, …), `provider`, `httpStatus`, `retryAfter` (seconds), `retries`, `url`, and the
    /// hint that fits the kind. Keys never appear: messages are redacted where they are made.
    static func describe(_ failure: ModelError, into data: inout [String: JSONValue]) {
        data["kind"] = .string(failure.kind.rawValue)
        data["hint"] = .string(failure.hint)
        if let provider = failure.provider { data["provider"] = .string(provider) }
        if let status = failure.httpStatus { data["httpStatus"] = .integer(Int64(status)) }
        if let wait = failure.retryAfter {
            data["retryAfter"] = .double(Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
        }
        data["retries"] = .integer(Int64(failure.retries))
        if let url = failure.url { data["url"] = .string(url) }
    }

    private static func hint(_ kind: StageError.Kind) -> String {
        switch kind {
        case .invalidSpec: return "correct the request"
        case .workspace:
            return "run the parent stage first, or fix the workspace (validateWorkspace lists its problems)"
        case .template: return "fix the template at data.file, line data.line, or pass the missing values"
        case .model: return "check the model id and the provider's configuration"
        case .storage: return "check that the workspace is writable and has free space"
        case .truncated: return "raise maxTokens, shorten the prompt, or drop failOnTruncation"
        case .budget: return "raise the cap named in data.scope and data.unit under budgets in stagerunner.yaml"
        case .cancelled: return "send the request again"
        }
    }
}

extension RPCServer {
    func runStage(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(StageRunParams.self)
        var spec = try params.spec()
        let runner = try await engine.runner()
        var notifier: ProgressNotifier?
        if let token = params.progressToken, token != .null {
            let progress = ProgressNotifier(connection: context.connection, token: token)
            progress.begin()
            spec.progress = ProgressSink { progress.handle($0) }
            notifier = progress
        }
        let result: StageResult
        do {
            result = try await runner.run(spec)
        } catch {
            notifier?.end(error.message)
            throw ResponseError(error)
        }
        notifier?.end(result.reused ? "reused" : result.status.rawValue)
        return try Self.encode(result, limit: params.maxTextLength ?? 65_536)
    }

    static func encode(_ result: StageResult, limit: Int) throws -> RawJSON {
        // At most `limit` UTF-8 bytes, never splitting a character.
        func clipped(_ text: String?) -> (JSONValue, Bool) {
            guard let text else { return (.null, false) }
            guard text.utf8.count > limit else { return (.string(text), false) }
            var bytes = 0
            var end = text.unicodeScalars.startIndex
            for index in text.unicodeScalars.indices {
                let size = UTF8.width(text.unicodeScalars[index])
                if bytes + size > limit { break }
                bytes += size
                end = text.unicodeScalars.index(after: index)
            }
            return (.string(String(text.unicodeScalars[..<end])), true)
        }
        let (raw, rawClipped) = clipped(result.raw)
        let (parsed, parsedClipped) = clipped(result.parsed)
        var members: [String: JSONValue] = [
            "genId": .string(result.genId),
            "stage": .string(result.stage.rawValue),
            "status": .string(result.status.rawValue),
            "reused": .bool(result.reused),
            "files": .array(result.files.map(JSONValue.string)),
            "raw": raw,
            "parsed": parsed,
            "textTruncated": .bool(rawClipped || parsedClipped),
            "metadata": try RawJSON(validated: Array(result.metadata.encoded())).value(),
        ]
        if let score = result.score { members["score"] = .double(score) }
        if !result.warnings.isEmpty { members["warnings"] = .array(result.warnings.map(JSONValue.string)) }
        var debug: [String: JSONValue] = [:]
        if let cleaned = result.llmCleanedJSON { debug["llm_cleaned_json"] = .string(cleaned) }
        if let error = result.llmError { debug["llm_error"] = .string(error) }
        members["debug"] = .object(debug)
        return RawJSON(.object(members))
    }

    func renderPrompt(_ context: RequestContext) async throws -> RawJSON {
        let spec = try context.decodeParams(StageRunParams.self).spec()
        let runner = try await engine.runner()
        do {
            return RawJSON(WorkspaceEngine.renderedPromptJSON(try await runner.renderPrompt(spec)))
        } catch {
            throw ResponseError(error)
        }
    }
}
