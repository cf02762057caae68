import Foundation
import ModelProviders

/// `metadata.json` of a generation: what produced it and how it went.
///
/// Keys are snake_case on disk, as in the Python pipelines this layout comes from; the JSON
/// Schema is `protocol/schema/metadata.json`.
public struct GenerationMetadata: Sendable, Hashable, Codable {
    public var schemaVersion = 1
    public var stage: GenerationStage
    public var genId: String
    public var templateId: String
    public var mode: Generator
    public var model: String?
    public var provider: String?
    public var parser: String?
    public var parentGenId: String?
    public var runId: String
    /// ISO 8601, UTC.
    public var createdAt: String
    public var durationMs: Double
    public var finishReason: String?
    public var truncated: Bool
    /// The tokens the provider reported; nil when it reported none (written as `null` for mode
    /// `llm`: unknown, never 0).
    public var usage: TokenUsage?
    /// When the provider reported no usage: the tokens budgets and rate limits counted instead,
    /// estimated from the prompt's and the answer's text (`usage_estimate`).
    public var usageEstimate: Int?
    /// The call's cost in US dollars (`cost_usd`): 0 for the embedded provider and for cached
    /// answers, nil when the model's price is unknown (written as `null` for mode `llm`).
    public var costUsd: Double?
    public var status: GenerationStatus
    public var llmError: String?
    /// The files of the generation, relative to its directory.
    public var files: [String]
    /// SHA-256 of the template text the prompt was rendered from (prompt versioning).
    public var templateSha256: String?
    public var rawLength: Int?
    public var rawLines: Int?
    /// Failed attempts retried before the answer (absent when there were none).
    public var retries: Int?
    /// The answer came from the response cache (absent when it did not).
    public var cached: Bool?

    public init(
        stage: GenerationStage,
        genId: String,
        templateId: String,
        mode: Generator,
        model: String? = nil,
        provider: String? = nil,
        parser: String? = nil,
        parentGenId: String? = nil,
        runId: String,
        createdAt: String,
        durationMs: Double,
        finishReason: String? = nil,
        truncated: Bool,
        usage: TokenUsage? = nil,
        usageEstimate: Int? = nil,
        costUsd: Double? = nil,
        status: GenerationStatus,
        llmError: String? = nil,
        files: [String],
        templateSha256: String? = nil,
        rawLength: Int? = nil,
        rawLines: Int? = nil,
        retries: Int? = nil,
        cached: Bool? = nil
    ) {
        self.stage = stage
        self.genId = genId
        self.templateId = templateId
        self.mode = mode
        self.model = model
        self.provider = provider
        self.parser = parser
        self.parentGenId = parentGenId
        self.runId = runId
        self.createdAt = createdAt
        self.durationMs = durationMs
        self.finishReason = finishReason
        self.truncated = truncated
        self.usage = usage
        self.usageEstimate = usageEstimate
        self.costUsd = costUsd
        self.status = status
        self.llmError = llmError
        self.files = files
        self.templateSha256 = templateSha256
        self.rawLength = rawLength
        self.rawLines = rawLines
        self.retries = retries
        self.cached = cached
    }
}

extension GenerationMetadata {
    /// The call's tokens as the provider counted them, else as estimated; nil when neither is known.
    public var tokens: Int? { usage?.totalTokens ?? usageEstimate }
}

/// How a generation ended: the parse statuses of ``ParseStatus``, plus truncation.
public enum GenerationStatus: String, Sendable, Hashable, Codable {
    case success
    case jsonParseError = "json_parse_error"
    case parserFailure = "parser_failure"
    case stubFallback = "stub_fallback"
    case truncated
}

extension GenerationMetadata {
    /// Members that do not apply are left out, except `usage` and `cost_usd`, which a model call
    /// always has: `null` there means unknown (no usage reported, no price), which is not 0.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schemaVersion, forKey: .schemaVersion)
        try container.encode(stage, forKey: .stage)
        try container.encode(genId, forKey: .genId)
        try container.encode(templateId, forKey: .templateId)
        try container.encode(mode, forKey: .mode)
        try container.encodeIfPresent(model, forKey: .model)
        try container.encodeIfPresent(provider, forKey: .provider)
        try container.encodeIfPresent(parser, forKey: .parser)
        try container.encodeIfPresent(parentGenId, forKey: .parentGenId)
        try container.encode(runId, forKey: .runId)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(durationMs, forKey: .durationMs)
        try container.encodeIfPresent(finishReason, forKey: .finishReason)
        try container.encode(truncated, forKey: .truncated)
        if mode == .llm {
            try container.encode(usage, forKey: .usage)
            try container.encodeIfPresent(usageEstimate, forKey: .usageEstimate)
            try container.encode(costUsd, forKey: .costUsd)
        }
        try container.encode(status, forKey: .status)
        try container.encodeIfPresent(llmError, forKey: .llmError)
        try container.encode(files, forKey: .files)
        try container.encodeIfPresent(templateSha256, forKey: .templateSha256)
        try container.encodeIfPresent(rawLength, forKey: .rawLength)
        try container.encodeIfPresent(rawLines, forKey: .rawLines)
        try container.encodeIfPresent(retries, forKey: .retries)
        if cached == true { try container.encode(true, forKey: .cached) }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    /// The file's bytes.
    public func encoded() throws -> Data {
        var data = try Self.encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// Reads `metadata.json`.
    public static func decode(_ data: Data) throws -> GenerationMetadata {
        try decoder.decode(GenerationMetadata.self, from: data)
    }
}
