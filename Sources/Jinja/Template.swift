/// Jinja2 environment options that change how template text is read.
public struct TemplateOptions: Sendable, Hashable {
    /// Drop the first newline after a block tag (`%}`) or comment (`#}`).
    public var trimBlocks = false
    /// Strip spaces and tabs from the start of a line up to a block tag or comment (not `{{`).
    public var lstripBlocks = false
    /// Keep a single newline at the very end of the template, which Jinja2 drops by default.
    public var keepTrailingNewline = false

    /// Options matching Jinja2's `Environment` defaults unless given.
    public init(trimBlocks: Bool = false, lstripBlocks: Bool = false, keepTrailingNewline: Bool = false) {
        self.trimBlocks = trimBlocks
        self.lstripBlocks = lstripBlocks
        self.keepTrailingNewline = keepTrailingNewline
    }
}

/// A compiled Jinja2-compatible template, rendered with StrictUndefined semantics: using a missing
/// variable, attribute or item is an error naming it, while `is defined` and `default` still work.
///
/// Compile once and render many times; a `Template` is immutable and safe to share between threads.
public struct Template: Sendable {
    /// The name used in error messages.
    public let name: String
    /// The options the template was compiled with.
    public let options: TemplateOptions
    let body: Scope

    /// Compiles `source`, throwing a `.syntax` error (or `.limit` for absurd nesting) with its line.
    public init(source: String, name: String, options: TemplateOptions = .init()) throws(TemplateError) {
        self.name = name
        self.options = options
        var lexer = TemplateLexer(source: source, name: name, options: options)
        var parser = TemplateParser(tokens: try lexer.tokenize(), name: name)
        body = ScopeAnalyzer.resolve(Scope(statements: try parser.parseTemplate()), ancestors: [], parameters: [])
    }

    /// Renders with the given variables.
    public func render(_ context: [String: TemplateValue]) throws(TemplateError) -> String {
        let renderer = TemplateRenderer(templateName: name, context: context)
        return try renderer.render(body)
    }
}
