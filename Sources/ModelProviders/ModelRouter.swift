import Synchronization

/// Chooses the client that serves a model id.
///
/// Ids name their provider (`openai:gpt-4o-mini`, `anthropic:claude-sonnet-4-5`,
/// `ollama:llama3.1`) or not (a membership's `sonnet-4`); aliases from `stagerunner.yaml` are
/// resolved first. A plain id goes to the default provider: per request, else
/// `STAGERUNNER_DEFAULT_PROVIDER`, else the file's `defaultProvider`, else the embedded
/// provider, which is then named in every result and metadata file.
///
/// Built-in providers: `openai` (`OPENAI_API_KEY`, `OPENAI_BASE_URL`), `anthropic`
/// (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`), `openrouter` (`OPENROUTER_API_KEY`), `ollama`
/// (no key, `OLLAMA_BASE_URL`) and `embedded`. Keys are read from the environment only, never
/// from files, and never appear in any output.
public struct ModelRouter: Sendable {
    /// A provider as configured.
    public struct ProviderSettings: Sendable, Hashable, Decodable {
        public enum Kind: String, Sendable, Hashable, Decodable {
            case openai
            case anthropic
        }

        public var kind: Kind
        public var baseURL: String?
        /// The environment variable holding the key (no key when absent).
        public var apiKeyEnv: String?
        /// The variable that overrides `baseURL`.
        public var baseURLEnv: String?
        public var streaming: Bool?
        /// Seconds for a whole call.
        public var timeout: Double?
        /// How failed calls are retried (default: ``RetryPolicy()``).
        public var retries: RetryPolicy?

        public init(
            kind: Kind,
            baseURL: String? = nil,
            apiKeyEnv: String? = nil,
            baseURLEnv: String? = nil,
            streaming: Bool? = nil,
            timeout: Double? = nil,
            retries: RetryPolicy? = nil
        ) {
            self.kind = kind
            self.baseURL = baseURL
            self.apiKeyEnv = apiKeyEnv
            self.baseURLEnv = baseURLEnv
            self.streaming = streaming
            self.timeout = timeout
            self.retries = retries
        }
    }

    static let builtIn: [String: ProviderSettings] = [
        "openai": .init(
            kind: .openai,
            baseURL: "https://api.openai.com/v1",
            apiKeyEnv: "OPENAI_API_KEY",
            baseURLEnv: "OPENAI_BASE_URL"
        ),
        "anthropic": .init(
            kind: .anthropic,
            baseURL: "https://api.anthropic.com",
            apiKeyEnv: "ANTHROPIC_API_KEY",
            baseURLEnv: "ANTHROPIC_BASE_URL"
        ),
        "openrouter": .init(kind: .openai, baseURL: "https://openrouter.ai/api/v1", apiKeyEnv: "OPENROUTER_API_KEY"),
        "ollama": .init(kind: .openai, baseURL: "http://localhost:11434/v1", baseURLEnv: "OLLAMA_BASE_URL"),
    ]

    public let embedded: EmbeddedProvider
    /// What each model costs: every completion the router's clients return is priced with it.
    public let prices: PriceTable
    /// Limits by provider name; every provider's calls pass its limiter (which also honours the
    /// provider's rate-limit headers), limits or not.
    let limits: [String: ProviderLimits]
    let limiters: ProviderLimiters
    let settings: [String: ProviderSettings]
    package let aliases: [String: String]
    let environment: [String: String]
    /// The provider that serves ids without one.
    public let defaultProvider: String

    public init(
        embedded: EmbeddedProvider,
        providers: [String: ProviderSettings] = [:],
        aliases: [String: String] = [:],
        defaultProvider: String? = nil,
        environment: [String: String] = [:],
        prices: PriceTable = .builtIn,
        limits: [String: ProviderLimits] = [:],
        limiters: ProviderLimiters = ProviderLimiters()
    ) {
        self.embedded = embedded
        self.prices = prices
        self.limits = limits
        self.limiters = limiters
        settings = Self.builtIn.merging(providers) { $1 }
        self.aliases = aliases
        self.environment = environment
        self.defaultProvider = environment["STAGERUNNER_DEFAULT_PROVIDER"] ?? defaultProvider ?? embedded.provider
    }

    /// The provider names that can be used.
    public var providerNames: [String] { (Array(settings.keys) + [embedded.provider]).sorted() }

    /// The environment variables that hold API keys: the built-in providers' and every
    /// `apiKeyEnv` of the configuration. Programs that tasks run do not inherit them.
    public var keyVariables: Set<String> {
        Set((Array(Self.builtIn.values) + Array(settings.values)).compactMap(\.apiKeyEnv))
    }

    /// Where `model` goes, checked as a call would check it (the provider configured, its key
    /// set, its base URL known) without making a client: for dry runs.
    public func check(_ model: String) throws(ModelError) -> (provider: String, model: String) {
        let resolved = try resolve(model)
        return (resolved.provider, resolved.name)
    }

    /// A model id resolved: its provider, the name to send, and the endpoint of a network provider.
    struct Resolution {
        var provider: String
        var name: String
        var settings: ProviderSettings?
        var endpoint: ProviderEndpoint?
    }

    func resolve(_ model: String) throws(ModelError) -> Resolution {
        let resolved = aliases[model] ?? model
        var provider = defaultProvider
        var name = resolved
        if let colon = resolved.firstIndex(of: ":") {
            provider = String(resolved[..<colon])
            name = String(resolved[resolved.index(after: colon)...])
        }
        if provider == embedded.provider { return Resolution(provider: provider, name: name) }
        func unavailable(_ message: String) -> ModelError {
            var error = ModelError(.unavailable, message)
            error.provider = provider
            return error
        }
        guard let settings = settings[provider] else {
            throw unavailable(
                "provider '\(provider)' of model '\(model)' is not configured; available: "
                    + providerNames.joined(separator: ", ")
            )
        }
        var key: String?
        if let variable = settings.apiKeyEnv {
            guard let value = environment[variable], !value.isEmpty else {
                throw unavailable("provider '\(provider)' needs an API key: set \(variable)")
            }
            key = value
        }
        let baseURL = settings.baseURLEnv.flatMap { environment[$0] } ?? settings.baseURL
        guard let baseURL, !baseURL.isEmpty else {
            throw unavailable("provider '\(provider)' has no baseURL; set it in stagerunner.yaml")
        }
        var endpoint = ProviderEndpoint(
            name: provider,
            baseURL: baseURL,
            apiKey: key,
            apiKeyVariable: settings.apiKeyEnv
        )
        if let timeout = settings.timeout { endpoint.timeout = .milliseconds(Int(timeout * 1000)) }
        return Resolution(provider: provider, name: name, settings: settings, endpoint: endpoint)
    }

    /// The client for `model`, and the model name to send it. With `progress`, network providers
    /// stream their answer into it (whatever their `streaming` setting), and each retry is
    /// announced with ``ProgressSink/Event/restart``.
    public func route(
        _ model: String,
        progress: ProgressSink? = nil
    ) throws(ModelError) -> (client: any ModelClient, model: String) {
        let resolution = try resolve(model)
        guard let settings = resolution.settings, let endpoint = resolution.endpoint else {
            return (embedded, resolution.name)
        }
        let provider = resolution.provider
        let name = resolution.name
        let streaming = progress != nil || (settings.streaming ?? false)
        var onText: (@Sendable (String) -> Void)?
        if let handler = progress?.handler { onText = { handler(.text($0)) } }
        let client: any ModelClient
        switch settings.kind {
        case .openai: client = OpenAICompatibleProvider(endpoint: endpoint, streaming: streaming, onText: onText)
        case .anthropic: client = AnthropicProvider(endpoint: endpoint, streaming: streaming, onText: onText)
        }
        var limited: any ModelClient = LimitedClient(
            client,
            limiter: limiters.limiter(provider, limits[provider] ?? ProviderLimits())
        )
        if let progress { limited = AttemptAnnouncingClient(limited, progress: progress) }
        return (PricedClient(RetryingClient(limited, policy: settings.retries ?? RetryPolicy()), prices: prices), name)
    }
}

/// A client whose completions carry their cost from a ``PriceTable`` (nil when the price is unknown).
public struct PricedClient: ModelClient {
    public let base: any ModelClient
    public let prices: PriceTable

    public init(_ base: any ModelClient, prices: PriceTable) {
        self.base = base
        self.prices = prices
    }

    public var provider: String { base.provider }

    public func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        var completion = try await base.complete(request)
        // The name asked for first (an alias of the table's), then the one the provider answered with.
        let price =
            prices.price(provider: completion.provider, model: request.model)
            ?? prices.price(provider: completion.provider, model: completion.model)
        // Unknown usage has an unknown cost: never priced as 0 tokens.
        completion.cost = completion.cached ? 0 : completion.usage.flatMap { price?.cost($0) }
        return completion
    }
}

/// Announces every attempt after the first to a ``ProgressSink`` (a retry starts the text anew).
final class AttemptAnnouncingClient: ModelClient {
    let base: any ModelClient
    let progress: ProgressSink
    let attempts = Mutex(0)

    init(_ base: any ModelClient, progress: ProgressSink) {
        self.base = base
        self.progress = progress
    }

    var provider: String { base.provider }

    func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        let attempt = attempts.withLock { count in
            defer { count += 1 }
            return count
        }
        if attempt > 0 { progress.handler(.restart) }
        return try await base.complete(request)
    }
}
