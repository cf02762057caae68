import Foundation
import Jinja
import ModelProviders

/// What to generate, as `runStage` takes it (protocol/README.md section 8.2). Everything but
/// `stage` is optional: a gen id found in the membership brings its template, model and parent;
/// the catalogs bring the mode and the parser.
public struct StageRunSpec: Sendable, Hashable {
    public var stage: GenerationStage
    /// Without one, a deterministic id is made from the template, model and parent.
    public var genId: String?
    public var templateId: String?
    /// Template variables.
    public var values: [String: TemplateValue]
    /// `llm` or `copy`; by default the template's generator.
    public var mode: Generator?
    public var model: String?
    /// By default the template's parser (identity for drafts without one).
    public var parserName: String?
    /// For copy essays and as the parent of others: the gen id whose parsed text flows in.
    public var passThroughFrom: String?
    public var maxTokens: Int?
    /// When set, this is the prompt and no template is rendered.
    public var promptText: String?
    /// Regenerate even when the generation exists.
    public var force = false
    /// On a parse failure, store a stub and report `stub_fallback` instead of failing; with it, a
    /// provider that cannot be used is answered by the embedded one (protocol/README.md 8.1).
    public var stubFallback = false
    /// Treat a truncated answer as a failure.
    public var failOnTruncation = false
    /// Groups the calls of one run in metadata and the call log.
    public var runId: String?
    /// The job whose budget (`budgets.job` in stagerunner.yaml) the call spends.
    public var budgetScope: String?
    /// Whether the answer may come from the response cache. By default `refresh` when `force`
    /// is set, else the `cache.default` of stagerunner.yaml, else `use`.
    public var cache: CachePolicy?
    /// Receives the model's answer while it is generated (see ``ProgressSink``).
    public var progress: ProgressSink?

    public init(
        stage: GenerationStage,
        genId: String? = nil,
        templateId: String? = nil,
        values: [String: TemplateValue] = [:]
    ) {
        self.stage = stage
        self.genId = genId
        self.templateId = templateId
        self.values = values
    }
}

/// What a stage run produced.
public struct StageResult: Sendable, Hashable {
    public var genId: String
    public var stage: GenerationStage
    public var status: GenerationStatus
    /// The generation already existed and was returned as it was (no model call).
    public var reused: Bool
    /// Workspace-relative paths of the generation's files.
    public var files: [String]
    public var prompt: String?
    public var raw: String?
    public var parsed: String?
    /// The score, for score parsers.
    public var score: Double?
    public var llmRawText: String?
    public var llmCleanedJSON: String?
    public var llmError: String?
    public var metadata: GenerationMetadata
    /// What the caller should know though the run went ahead (an inactive template).
    public var warnings: [String] = []
}

/// Why a stage could not run. Each case says what to fix.
public struct StageError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The request itself is wrong (a field names the problem).
        case invalidSpec = "invalid_spec"
        /// The workspace is missing something the request needs.
        case workspace
        case template
        case model
        case storage
        case truncated
        /// A budget cap refused the model call (``StageError/budget`` says which).
        case budget
        /// The caller cancelled the run; nothing was committed.
        case cancelled
    }

    public var kind: Kind
    /// The request field at fault (`templateId`, `genId`, …), when there is one.
    public var field: String?
    public var message: String
    /// Where in the workspace, for template errors (`data/1_raw/templates/draft/x.txt`, line).
    public var file: String?
    public var line: Int?
    /// The cap that refused the call, for ``Kind/budget``.
    public var budget: BudgetRefusal?
    /// The provider's failure, for ``Kind/model``: its kind, HTTP status, retries, …
    public var model: ModelError?

    public init(_ kind: Kind, _ message: String, field: String? = nil, file: String? = nil, line: Int? = nil) {
        self.kind = kind
        self.message = message
        self.field = field
        self.file = file
        self.line = line
    }

    public var description: String { message }
}
