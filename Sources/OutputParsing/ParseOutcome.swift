import JSON

/// How a parse (or the call it belongs to) ended, with the names the call log, the status
/// document and the UI use (`success`, `json_parse_error`, `stub_fallback`, …).
public enum ParseStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// The parser found what it looks for.
    case success
    /// The JSON parser found no candidate that parses as a JSON object.
    case jsonParseError = "json_parse_error"
    /// A non-JSON parser did not find what it looks for (no score, no tag, score out of range…).
    case parserFailure = "parser_failure"
    /// Parsing failed and the caller asked for its stub output instead.
    case stubFallback = "stub_fallback"
}

/// The result of running one named parser over a model's raw text.
///
/// A failure is a value, never a crash or a silent default: `status` says what happened,
/// `reason` says why in one line, and the debug fields (`llm_raw_text`,
/// `llm_cleaned_json`, `llm_error`) keep what is needed to look into it later.
///
/// Codable with snake_case names (`llm_raw_text`, …) so that the call log, `metadata.json`
/// and the UI show the same fields; absent values are omitted.
public struct ParseOutcome: Sendable, Hashable, Codable {
    /// The name of the parser that produced this outcome.
    public var parser: String
    /// How the parse ended.
    public var status: ParseStatus
    /// The parsed text: what goes to `parsed.txt`. For score parsers the score as Python's
    /// `str(float)` writes it (`"8.0"`, `"7.5"`); for the JSON parser the cleaned JSON that parsed;
    /// for a stub fallback the stub. `nil` when parsing failed and no stub was asked for.
    public var text: String?
    /// The score on a 0–10 scale, for score parsers that succeeded.
    public var score: Double?
    /// The parsed JSON object, for the JSON parser when it succeeded (integers stay integers).
    public var json: JSONValue?
    /// The model's text exactly as given to the parser (`llm_raw_text`).
    public var llmRawText: String
    /// The JSON candidate that parsed, or the last one tried when none did (`llm_cleaned_json`).
    /// `nil` for parsers that do not read JSON.
    public var llmCleanedJSON: String?
    /// The parse error as the call log records it (`llm_error`): for the JSON parser why every
    /// candidate failed. Kept unchanged when a stub replaces the output. `nil` on success.
    public var llmError: String?
    /// One line on why the status is not `success` (`nil` on success).
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case parser, status, text, score, json, reason
        case llmRawText = "llm_raw_text"
        case llmCleanedJSON = "llm_cleaned_json"
        case llmError = "llm_error"
    }

    /// Creates an outcome field by field; `success(…)` and `failure(…)` cover the usual cases.
    public init(
        parser: String,
        status: ParseStatus,
        text: String? = nil,
        score: Double? = nil,
        json: JSONValue? = nil,
        llmRawText: String,
        llmCleanedJSON: String? = nil,
        llmError: String? = nil,
        reason: String? = nil
    ) {
        self.parser = parser
        self.status = status
        self.text = text
        self.score = score
        self.json = json
        self.llmRawText = llmRawText
        self.llmCleanedJSON = llmCleanedJSON
        self.llmError = llmError
        self.reason = reason
    }

    /// A successful parse of `raw` into `text`.
    public static func success(
        parser: String,
        raw: String,
        text: String,
        score: Double? = nil,
        json: JSONValue? = nil,
        cleanedJSON: String? = nil
    ) -> ParseOutcome {
        ParseOutcome(
            parser: parser,
            status: .success,
            text: text,
            score: score,
            json: json,
            llmRawText: raw,
            llmCleanedJSON: cleanedJSON
        )
    }

    /// A failed parse of `raw`. `error` is the detailed `llm_error` and defaults to `reason`.
    public static func failure(
        parser: String,
        raw: String,
        status: ParseStatus = .parserFailure,
        reason: String,
        error: String? = nil,
        cleanedJSON: String? = nil
    ) -> ParseOutcome {
        ParseOutcome(
            parser: parser,
            status: status,
            llmRawText: raw,
            llmCleanedJSON: cleanedJSON,
            llmError: error ?? reason,
            reason: reason
        )
    }

    /// Whether the parser found what it looks for.
    public var succeeded: Bool { status == .success }

    /// This outcome, or when it is a failure the stub's text with status `stub_fallback`.
    ///
    /// The stub is only evaluated on failure. The original error stays in `llmError` and the
    /// cleaned candidate in `llmCleanedJSON`, so the call log still says what went wrong; score
    /// and JSON are cleared because the stub is not a parse result.
    public func replacingFailure(withStub stub: () -> String) -> ParseOutcome {
        guard status != .success, status != .stubFallback else { return self }
        var outcome = self
        outcome.status = .stubFallback
        outcome.text = stub()
        outcome.score = nil
        outcome.json = nil
        outcome.reason = "parser '\(parser)' failed (\(status.rawValue)); used the caller's stub output"
        return outcome
    }
}
