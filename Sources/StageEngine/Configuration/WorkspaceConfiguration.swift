import Foundation
import JSON
import Jinja
import ModelProviders
import Yams

/// `stagerunner.yaml` at the workspace root. Every key is optional.
///
/// ```yaml
/// values:              # template variables every generation sees
///   idea_count: 3
/// combos:              # variables per combo_id of the membership
///   combo-1:
///     concepts: [{name: Default mode network, description: …}]
/// providers:           # model providers besides the built-in openai, anthropic, openrouter, ollama
///   local: {kind: openai, baseURL: "http://localhost:8080/v1"}
/// aliases: {sonnet-4: "anthropic:claude-sonnet-4-5"}
/// defaultProvider: embedded   # for model ids that name no provider
/// prices:              # USD per million tokens, over the built-in table (Sources/ModelProviders/prices.json)
///   local:my-model: {input: 0.1, output: 0.2}   # provider:model, or just the model
///   gpt-4o: {input: 2.5, output: 10}
/// limits:              # per provider: calls in flight, requests and tokens per minute
///   openai: {concurrency: 16, requestsPerMinute: 500, tokensPerMinute: 200000}
/// budgets:             # caps in tokens and US dollars, refused before anything is sent
///   request: {tokens: 20000}
///   job: {costUsd: 5}            # each budgetScope of runStage is one job
///   process: {costUsd: 50}
///   workspace: {costUsd: 500}    # every server on the workspace, every run
/// cache:               # answers of network providers, in .stagerunner/cache.sqlite
///   ttlSeconds: 604800           # default 30 days
///   default: use                 # use, refresh or off (force implies refresh)
/// locking: {mode: leases, leaseSeconds: 30}   # for file systems without working flock (see ``Locking``)
/// embedded:            # scripted answers of the embedded provider, first match wins
///   rules:
///     - stage: evaluation
///       template: novelty
///       promptContains: "mind-wandering"
///       response: "Solid reasoning.\nSCORE: 8"
///     - stage: draft
///       responseFile: responses/draft.txt
///       finishReason: length
/// ```
public struct WorkspaceConfiguration: Sendable, Hashable, Decodable {
    /// Template variables every generation sees; a request's own values win.
    public var values: [String: TemplateValue]?
    /// Variables per concept combination, merged in when a membership row names its `combo_id`.
    public var combos: [String: [String: TemplateValue]]?
    public var embedded: EmbeddedProvider.Configuration?
    /// Model providers beyond (or adjusting) the built-in ones, by name.
    public var providers: [String: ModelRouter.ProviderSettings]?
    /// Model ids standing for others (`sonnet-4: anthropic:claude-sonnet-4-5`).
    public var aliases: [String: String]?
    /// The provider of model ids that name none (default: embedded).
    public var defaultProvider: String?
    /// Prices per model (`provider:model` or `model`) over the built-in ``PriceTable``.
    public var prices: [String: ModelPrice]?
    /// Limits per provider name (see ``ProviderLimits``).
    public var limits: [String: ProviderLimits]?
    /// Caps per request, per job and per process (see ``Budgets``).
    public var budgets: Budgets?
    /// The response cache's TTL and default policy (see ``ResponseCache``).
    public var cache: CacheSettings?
    /// How servers sharing the workspace exclude each other (default `flock`).
    public var locking: LockingSettings?

    public init(
        values: [String: TemplateValue]? = nil,
        combos: [String: [String: TemplateValue]]? = nil,
        embedded: EmbeddedProvider.Configuration? = nil,
        providers: [String: ModelRouter.ProviderSettings]? = nil,
        aliases: [String: String]? = nil,
        defaultProvider: String? = nil,
        prices: [String: ModelPrice]? = nil,
        limits: [String: ProviderLimits]? = nil,
        budgets: Budgets? = nil,
        cache: CacheSettings? = nil,
        locking: LockingSettings? = nil
    ) {
        self.values = values
        self.combos = combos
        self.embedded = embedded
        self.providers = providers
        self.aliases = aliases
        self.defaultProvider = defaultProvider
        self.prices = prices
        self.limits = limits
        self.budgets = budgets
        self.cache = cache
        self.locking = locking
    }

    public static let fileName = "stagerunner.yaml"

    /// How long a cached answer stays fresh, in seconds.
    public var cacheTTL: Double { cache?.ttlSeconds ?? CacheSettings.defaultTTL }

    /// Reads the workspace's configuration: an absent file is the defaults; a bad one is a diagnostic.
    public static func load(_ workspace: Workspace) -> (WorkspaceConfiguration, [Diagnostic]) {
        let text: String
        switch workspace.loadText(fileName) {
        case .missing: return (WorkspaceConfiguration(), [])
        case .notUTF8: return (WorkspaceConfiguration(), [Workspace.notUTF8(fileName)])
        case .text(let contents): text = contents
        }
        return parse(text, workspace: workspace)
    }

    /// The configuration in `text` (the contents of `stagerunner.yaml`, saved or not), and its problems.
    static func parse(_ text: String, workspace: Workspace) -> (WorkspaceConfiguration, [Diagnostic]) {
        do {
            let configuration = try YAMLDecoder().decode(WorkspaceConfiguration.self, from: text)
            return (configuration, configuration.embedded?.check(workspace) ?? [])
        } catch {
            if let syntax = YAMLSyntaxError(error) {
                let diagnostic = Diagnostic(
                    file: fileName,
                    line: syntax.line ?? 0,
                    column: syntax.column ?? 0,
                    code: "config.yaml-syntax",
                    message: syntax.message
                )
                return (WorkspaceConfiguration(), [diagnostic])
            }
            if let error = error as? DecodingError {
                let message = "\(error.codingPathText): \(error.plainDescription)"
                return (
                    WorkspaceConfiguration(), [Diagnostic(file: fileName, code: "config.invalid", message: message)]
                )
            }
            return (WorkspaceConfiguration(), [Diagnostic(file: fileName, code: "config.invalid", message: "\(error)")])
        }
    }
}

extension DecodingError {
    /// `embedded.rules[2].stage`
    var codingPathText: String {
        let path: [any CodingKey]
        switch self {
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        @unknown default: path = []
        }
        return path.reduce("") { partial, key in
            if let index = key.intValue { return partial + "[\(index)]" }
            return partial.isEmpty ? key.stringValue : partial + "." + key.stringValue
        }
    }

    var plainDescription: String {
        switch self {
        case .keyNotFound: return "is required but missing"
        case .typeMismatch(let type, _): return "has the wrong type (expected \(type))"
        case .valueNotFound(let type, _): return "must not be null (expected \(type))"
        case .dataCorrupted(let context): return context.debugDescription
        @unknown default: return "\(self)"
        }
    }
}

extension TemplateValue: Decodable {
    /// Decodes any YAML value. Mappings keep the decoder's key order, which for YAML is the
    /// file's: a rubric written in a deliberate order reaches the template in that order, as it
    /// does in Jinja2. (Decoders of JSON through a dictionary have no order to keep: read JSON
    /// text with ``TemplateValue/init(json:)-(String)`` instead.)
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer() {
            if container.decodeNil() {
                self = .null
                return
            }
            // The order JSONValue tries them in, so that a scalar means the same either way.
            if let value = try? container.decode(Bool.self) {
                self = .bool(value)
                return
            }
            if let value = try? container.decode(Int64.self) {
                self = .int(Int(value))
                return
            }
            if let value = try? container.decode(Double.self) {
                self = .double(value)
                return
            }
            if let value = try? container.decode(String.self) {
                self = .string(value)
                return
            }
        }
        if var items = try? decoder.unkeyedContainer() {
            var values: [TemplateValue] = []
            while !items.isAtEnd { values.append(try items.decode(TemplateValue.self)) }
            self = .array(values)
            return
        }
        let members = try decoder.container(keyedBy: AnyMemberKey.self)
        self = .object(
            TemplateObject(
                try members.allKeys.map { key in (key.stringValue, try members.decode(TemplateValue.self, forKey: key))
                }
            )
        )
    }
}

/// Any member name of a mapping.
private struct AnyMemberKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension TemplateValue {
    /// A stable text of the value (object keys sorted, strings quoted), for hashing.
    public var canonicalText: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value): return "\(value)d"
        case .string(let value): return "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case .array(let values): return "[" + values.map(\.canonicalText).joined(separator: ",") + "]"
        case .object(let object):
            return "{"
                + object.entries.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.canonicalText)" }
                .joined(separator: ",") + "}"
        }
    }
}
