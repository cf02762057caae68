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
    public var stage: GenerationStage?
    public var templateId: String?
    public var genId: String?

    public init(
        model: String,
        messages: [ChatMessage],
        maxTokens: Int? = nil,
        temperature: Double? = nil,
        stage: GenerationStage? = nil,
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
    /// The tokens the provider reported; nil when it reported none (many OpenAI-compatible
    /// servers ignore `stream_options.include_usage`). Unknown is never taken for 0.
    public var usage: TokenUsage?
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
    /// Where the request went (scheme, host, port and path), for logs; nil for the embedded
    /// provider and the cache.
    public var url: String?

    public init(
        text: String,
        finishReason: FinishReason,
        usage: TokenUsage?,
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
    /// What went wrong, in words a client can branch on (`data.kind` of a `-32012` error, the
    /// call log's `errorKind`).
    public enum Kind: String, Sendable, Hashable, Codable {
        /// The key is missing, wrong or revoked (HTTP 401).
        case authentication
        /// The key may not use this model or endpoint (HTTP 403).
        case permission
        /// No such model or endpoint (HTTP 404: often a base URL or a model id that is wrong).
        case notFound = "not_found"
        case rateLimit = "rate_limit"
        case overloaded
        case invalidRequest = "invalid_request"
        case contextLength = "context_length"
        case server
        /// The provider could not be reached, or the connection broke.
        case network
        case timeout
        /// The answer, or one streamed event, was larger than the limit.
        case tooLarge = "too_large"
        /// The answer could not be read (not JSON, no choices, an event stream cut short).
        case malformed
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
    /// Why each retried attempt failed ("kind: message"), oldest first.
    public var retryErrors: [String] = []
    /// The quota the provider's rate-limit headers announced with the failure.
    public var rateLimit: RateLimitHeaders?
    /// The cap that refused the call, for ``Kind/budgetExceeded``.
    public var budget: BudgetRefusal?
    /// The provider that failed (`openai`, a workspace's own entry, …), when one was called.
    public var provider: String?
    /// The HTTP status of the provider's answer, when there was one.
    public var httpStatus: Int?
    /// Where the request went: scheme, host, port and path only (never a user, password or query).
    public var url: String?

    public init(_ kind: Kind, _ message: String, retryAfter: Duration? = nil, httpStatus: Int? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
        self.httpStatus = httpStatus
    }

    /// Whether trying again may succeed: rate limits, overload, server and network faults,
    /// timeouts and unreadable answers; never a bad key, a bad request, a prompt too long, an
    /// answer too large or a cancellation.
    public var isRetryable: Bool {
        switch kind {
        case .rateLimit, .overloaded, .server, .network, .timeout, .malformed: return true
        case .authentication, .permission, .notFound, .invalidRequest, .contextLength, .tooLarge, .cancelled,
            .unavailable, .budgetExceeded:
            return false
        }
    }

    /// What a user does about it, in one sentence.
    public var hint: String {
        switch kind {
        case .authentication: return "check the provider's API key (its environment variable) and that it is valid"
        case .permission: return "check that the key may use this model, or choose another model"
        case .notFound: return "check the model id and the provider's baseURL in stagerunner.yaml"
        case .rateLimit: return "wait and retry, lower the concurrency, or raise the provider's limits"
        case .overloaded: return "retry later, or route the model to another provider"
        case .invalidRequest:
            return "read the provider's message: the model id, or a parameter such as maxTokens or temperature, "
                + "may be one it does not take"
        case .contextLength: return "shorten the prompt or lower maxTokens"
        case .server: return "retry later; the provider failed on its side"
        case .network: return "check the provider's baseURL, the network and any proxy settings"
        case .timeout: return "retry, or raise the provider's timeout in stagerunner.yaml"
        case .tooLarge: return "lower maxTokens, or check that baseURL is a model API"
        case .malformed: return "check that the provider speaks the API its kind says (openai or anthropic)"
        case .cancelled: return "send the request again"
        case .unavailable: return "check the model id and the provider's configuration"
        case .budgetExceeded: return "raise the cap under budgets in stagerunner.yaml"
        }
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

extension Completion {
    /// The tokens this call counts for budgets and rate limits: the reported usage, else a
    /// conservative estimate from the text (three bytes a token, rounded up: more tokens than
    /// common tokenizers make of English, so a cap is not passed by a provider that reports none).
    public func countedTokens(for request: CompletionRequest) -> Int {
        (usage ?? estimatedUsage(for: request)).totalTokens
    }

    /// The usage estimated from the prompt's and the answer's text.
    public func estimatedUsage(for request: CompletionRequest) -> TokenUsage {
        .init(promptTokens: Self.estimatedTokens(request.promptText), completionTokens: Self.estimatedTokens(text))
    }

    /// Tokens estimated from a text, for calls whose provider reported no usage.
    public static func estimatedTokens(_ text: String) -> Int { (text.utf8.count + 2) / 3 }
}

/// A provider of completions. Implementations must be safe to call concurrently.
public protocol ModelClient: Sendable {
    /// The provider's name, recorded in metadata and the call log.
    var provider: String { get }

    /// Asks the model; cancelling the calling task cancels the call.
    func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion
}
