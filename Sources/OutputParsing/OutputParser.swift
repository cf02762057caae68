/// Turns a model's raw text into the stage's parsed output.
///
/// A parser is looked up by `name` in a ``ParserRegistry`` (a template's `parser` column names
/// one). It must not throw or trap on any input: whatever it cannot read becomes a failed
/// ``ParseOutcome`` with a reason.
public protocol OutputParser: Sendable {
    /// The name templates and stages use to pick this parser, e.g. `in_last_line`.
    var name: String { get }

    /// Parses `raw`. `llmRawText` of the result is `raw` unchanged.
    func parse(_ raw: String) -> ParseOutcome
}

extension OutputParser {
    /// Parses `raw`; when that fails and `stubFallback` is given, returns the stub's text with
    /// status `stub_fallback` and the original error kept in `llmError`.
    ///
    /// Stub output is an explicit choice of the caller: with `stubFallback == nil` a failure
    /// stays a failure.
    public func parse(_ raw: String, stubFallback: (() -> String)?) -> ParseOutcome {
        let outcome = parse(raw)
        guard let stubFallback else { return outcome }
        return outcome.replacingFailure(withStub: stubFallback)
    }
}

/// A parser made of a name and a function, for stages and users that register their own.
public struct ClosureParser: OutputParser {
    public let name: String
    private let body: @Sendable (String) -> ParseOutcome

    /// A parser called `name` that runs `body`.
    public init(name: String, body: @escaping @Sendable (String) -> ParseOutcome) {
        self.name = name
        self.body = body
    }

    public func parse(_ raw: String) -> ParseOutcome { body(raw) }
}
