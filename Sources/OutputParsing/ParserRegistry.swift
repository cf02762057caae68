/// Why a parser could not be registered or found.
public enum ParserRegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No parser has this name; `known` lists the names that exist, sorted.
    case unknownParser(name: String, known: [String])
    /// A parser with this name is already registered and replacing it was not asked for.
    case duplicateName(String)
    /// The name is empty or contains whitespace, so no template could refer to it.
    case invalidName(String)

    public var description: String {
        switch self {
        case .unknownParser(let name, let known):
            let list = known.isEmpty ? "none" : known.joined(separator: ", ")
            return "no parser named '\(name)'; known parsers: \(list)"
        case .duplicateName(let name):
            return "a parser named '\(name)' is already registered; pass replacingExisting: true to replace it"
        case .invalidName(let name):
            return "'\(name)' is not a valid parser name; use a non-empty name without whitespace"
        }
    }
}

/// The parsers a run can use, by name.
///
/// A value type: a run takes a copy of ``standard``, registers its own parsers, and nobody
/// else sees them.
public struct ParserRegistry: Sendable {
    private var parsers: [String: any OutputParser]

    /// An empty registry.
    public init() { parsers = [:] }

    /// A registry holding `parsers`; on duplicate names the later parser wins.
    public init(_ parsers: [any OutputParser]) {
        self.parsers = [:]
        for parser in parsers { self.parsers[parser.name] = parser }
    }

    /// The built-in parsers: `identity`, `in_last_line`, `complex`, `essay_block`,
    /// `essay_block_lenient`, `essay_idea_last` and `json`.
    public static let standard = ParserRegistry([
        IdentityParser(),
        InLastLineParser(),
        ComplexScoreParser(),
        EssayBlockParser(),
        EssayBlockParser(lenient: true),
        EssayIdeaLastParser(),
        JSONObjectParser(),
    ])

    /// The registered names, sorted.
    public var names: [String] { parsers.keys.sorted() }

    /// Adds `parser` under its name.
    ///
    /// Refuses a name that is already taken unless `replacingExisting` is true, because silently
    /// shadowing a built-in (say `json`) would change every template that uses it.
    public mutating func register(
        _ parser: any OutputParser,
        replacingExisting: Bool = false
    ) throws(ParserRegistryError) {
        let name = parser.name
        guard !name.isEmpty, !name.contains(where: \.isWhitespace) else { throw .invalidName(name) }
        guard replacingExisting || parsers[name] == nil else { throw .duplicateName(name) }
        parsers[name] = parser
    }

    /// The parser called `name`.
    public func parser(named name: String) throws(ParserRegistryError) -> any OutputParser {
        guard let parser = parsers[name] else { throw .unknownParser(name: name, known: names) }
        return parser
    }

    /// Runs the parser called `name` over `raw`, with an optional stub fallback.
    ///
    /// An unknown name throws rather than falling back to the stub: it is a configuration error,
    /// not a model that answered badly.
    public func parse(
        _ raw: String,
        with name: String,
        stubFallback: (() -> String)? = nil
    ) throws(ParserRegistryError) -> ParseOutcome {
        try parser(named: name).parse(raw, stubFallback: stubFallback)
    }
}
