/// One message of a chat-style prompt.
public struct ChatMessage: Sendable, Hashable, Codable {
    public enum Role: String, Sendable, Hashable, Codable {
        case system
        case user
        case assistant
    }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// What the engine asks a model for.
public struct CompletionRequest: Sendable, Hashable {
    /// The model id as the workspace names it (`llm_model_id`), possibly `provider:model`.
    public var model: String
    public var messages: [ChatMessage]
    public var maxTokens: Int?
    public var temperature: Double?
    /// Which generation asks, for routing rules and the call log.
    public var stage: Stage?
    public var templateId: String?
    public var genId: String?

    public init(
        model: String,
        messages: [ChatMessage],
        maxTokens: Int? = nil,
        temperature: Double? = nil,
        stage: Stage? = nil,
        templateId: String? = nil,
        genId: String? = nil
    ) {
        self.model = model
        self.messages = messages
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.stage = stage
        self.templateId = templateId
        self.genId = genId
    }

    /// The prompt as one text (the messages' contents).
    public var promptText: String { messages.map(\.content).joined(separator: "\n") }
}

/// Why a model stopped, mapped from each provider's own vocabulary.
public enum FinishReason: String, Sendable, Hashable, Codable {
    case stop
    /// The output hit the token limit: the text is truncated.
    case length
    case contentFilter = "content_filter"
    case toolCalls = "tool_calls"
    case other
}

/// A model's answer.
public struct Completion: Sendable, Hashable {
    public var text: String
    public var finishReason: FinishReason
    public var usage: GenerationMetadata.Usage
    /// In US dollars: 0 when cached or embedded, nil when the model's price is unknown.
    public var cost: Double?
    /// The provider that answered (`embedded`, `openai`, …).
    public var provider: String
    /// The model as the provider names it.
    public var model: String
    /// Served from the response cache.
    public var cached: Bool
    /// Failed attempts retried before this answer, and why each failed.
    public var retries: [String] = []
    /// The quota the provider's rate-limit headers announced with this answer.
    public var rateLimit: RateLimitHeaders?

    public init(
        text: String,
        finishReason: FinishReason,
        usage: GenerationMetadata.Usage,
        cost: Double?,
        provider: String,
        model: String,
        cached: Bool = false
    ) {
        self.text = text
        self.finishReason = finishReason
        self.usage = usage
        self.cost = cost
        self.provider = provider
        self.model = model
        self.cached = cached
    }
}

/// A failed model call, typed so that callers can decide what to retry and users what to fix.
public struct ModelError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable {
        case authentication
        case rateLimit = "rate_limit"
        case overloaded
        case invalidRequest = "invalid_request"
        case contextLength = "context_length"
        case server
        case network
        case timeout
        case cancelled
        /// No provider can serve this model (not configured, key missing, …).
        case unavailable
        /// A budget cap refused the call before anything was sent (``ModelError/budget`` says which).
        case budgetExceeded = "budget_exceeded"
    }

    public var kind: Kind
    public var message: String
    /// How long the provider asked to wait before trying again (`Retry-After`).
    public var retryAfter: Duration?
    /// Retries made before giving up with this error.
    public var retries = 0
    /// The quota the provider's rate-limit headers announced with the failure.
    public var rateLimit: RateLimitHeaders?
    /// The cap that refused the call, for ``Kind/budgetExceeded``.
    public var budget: BudgetRefusal?

    public init(_ kind: Kind, _ message: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
    }

    /// Whether trying again may succeed: rate limits, overload, server and network faults, and
    /// timeouts; never a bad key, a bad request, a prompt too long or a cancellation.
    public var isRetryable: Bool {
        switch kind {
        case .rateLimit, .overloaded, .server, .network, .timeout: return true
        case .authentication, .invalidRequest, .contextLength, .cancelled, .unavailable, .budgetExceeded:
            return false
        }
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

/// A provider of completions. Implementations must be safe to call concurrently.
public protocol ModelClient: Sendable {
    /// The provider's name, recorded in metadata and the call log.
    var provider: String { get }

    /// Asks the model; cancelling the calling task cancels the call.
    func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion
}
