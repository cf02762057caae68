/// Chooses the client that serves a model id.
///
/// Ids may name their provider (`embedded:…`); plain ids such as a membership's `llm_model_id`
/// go to the default provider. With no provider configured the default is the embedded one, and
/// every result and metadata file says `provider: embedded`.
public struct ModelRouter: Sendable {
    public let embedded: EmbeddedProvider
    /// Providers by name; the embedded one is always there.
    let providers: [String: any ModelClient]
    public let defaultProvider: String

    public init(embedded: EmbeddedProvider) {
        self.embedded = embedded
        providers = [embedded.provider: embedded]
        defaultProvider = embedded.provider
    }

    /// The client for `model`, and the model name to send it.
    public func route(_ model: String) throws(ModelError) -> (client: any ModelClient, model: String) {
        if let colon = model.firstIndex(of: ":") {
            let name = String(model[..<colon])
            guard let client = providers[name] else {
                throw ModelError(
                    .unavailable,
                    "provider '\(name)' of model '\(model)' is not configured; available: "
                        + providers.keys.sorted().joined(separator: ", ")
                )
            }
            return (client, String(model[model.index(after: colon)...]))
        }
        return (providers[defaultProvider]!, model)
    }
}
