/// What a model costs, in US dollars per million tokens.
public struct ModelPrice: Sendable, Hashable, Codable {
    /// Per million prompt (input) tokens.
    public var input: Double
    /// Per million completion (output) tokens.
    public var output: Double

    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }

    /// The cost of `usage` at this price.
    public func cost(_ usage: TokenUsage) -> Double {
        (Double(usage.promptTokens) * input + Double(usage.completionTokens) * output) / 1_000_000
    }
}

/// Prices per model: the `prices` section of `stagerunner.yaml`, then the built-in table
/// (`Sources/ModelProviders/prices.json`).
///
/// A model is looked up as `provider:model`, then as `model` (a vendor prefix such as OpenRouter's
/// `openai/` removed); a key matches exactly, or followed by a dated snapshot suffix
/// (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) or `-latest`. The configured prices win.
/// The built-in table prices only the providers it is about (``builtInProviders``): a provider a
/// workspace declares (a proxy, a local server) that serves `gpt-4o-mini` is not charged OpenAI's
/// price unless `prices` says so. A model found nowhere has no price: its cost is unknown (`nil`,
/// `null` on the wire), never 0. The embedded provider is free.
public struct PriceTable: Sendable, Hashable {
    /// The built-in prices.
    public var prices: [String: ModelPrice]
    /// The workspace's prices, which win and apply to every provider.
    public var configured: [String: ModelPrice] = [:]

    /// The providers whose models the built-in table prices.
    public static let builtInProviders: Set<String> = ["openai", "anthropic", "openrouter"]

    public init(prices: [String: ModelPrice]) {
        self.prices = prices
    }

    /// The built-in table with `overrides` (from `stagerunner.yaml`) on top.
    public func overridden(by overrides: [String: ModelPrice]?) -> PriceTable {
        var table = self
        table.configured.merge(overrides ?? [:]) { $1 }
        return table
    }

    /// The price of `model` served by `provider`, or nil when unknown.
    public func price(provider: String, model: String) -> ModelPrice? {
        if provider == "embedded" { return ModelPrice(input: 0, output: 0) }
        if let price = Self.find(provider: provider, model: model, in: configured) { return price }
        guard Self.builtInProviders.contains(provider) else { return nil }
        return Self.find(provider: provider, model: model, in: prices)
    }

    private static func find(provider: String, model: String, in prices: [String: ModelPrice]) -> ModelPrice? {
        if let price = lookup(provider + ":" + model, in: prices) { return price }
        if let price = lookup(model, in: prices) { return price }
        if let slash = model.lastIndex(of: "/") {
            return lookup(String(model[model.index(after: slash)...]), in: prices)
        }
        return nil
    }

    /// The cost of `usage`, or nil when the price is unknown.
    public func cost(provider: String, model: String, usage: TokenUsage) -> Double? {
        price(provider: provider, model: model)?.cost(usage)
    }

    private static func lookup(_ name: String, in prices: [String: ModelPrice]) -> ModelPrice? {
        if let price = prices[name] { return price }
        // The longest key that the name extends with a snapshot suffix: try each "-" from the right.
        var end = name.endIndex
        while let dash = name[..<end].lastIndex(of: "-") {
            if let price = prices[String(name[..<dash])],
                Self.isSnapshotSuffix(name[name.index(after: dash)...])
            {
                return price
            }
            end = dash
        }
        return nil
    }

    /// `2024-08-06`, `20250929`, `latest`.
    static func isSnapshotSuffix(_ suffix: Substring) -> Bool {
        suffix == "latest" || (suffix.first?.isNumber == true && suffix.allSatisfy { $0.isNumber || $0 == "-" })
    }
}
