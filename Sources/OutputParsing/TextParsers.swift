/// `identity`: the model's text as the parsed output. Never fails.
///
/// Line breaks are normalized (CRLF and lone CR become LF) and trailing whitespace at the end of
/// the text is removed, so that `parsed.txt` does not depend on the provider's line endings or a
/// final newline. Everything else is kept, including leading whitespace and spaces at the end of
/// inner lines (a markdown line break). An empty text parses to an empty text.
public struct IdentityParser: OutputParser {
    public let name = "identity"

    /// The parser, registered as `identity`.
    public init() {}

    public func parse(_ raw: String) -> ParseOutcome {
        .success(parser: name, raw: raw, text: Self.normalize(raw))
    }

    static func normalize(_ raw: String) -> String {
        String(raw.withLFLineBreaks.trimmingTrailingWhitespace)
    }
}

/// `essay_block` and `essay_block_lenient`: the content of the first `<essay>…</essay>` block.
///
/// The content is trimmed; without a closing tag it runs to the end of the text (a truncated
/// answer still has its essay). Tags match in any case and may carry attributes (`<essay id=1>`),
/// but `<essay-idea>` is not `<essay>`. No `<essay>` tag is a failure; so is an essay that is
/// empty after trimming, because an empty essay is never a usable result.
///
/// The lenient variant first removes every complete `<thinking>…</thinking>` block (an unclosed
/// `<thinking>` is left alone, so an essay after it is not lost), and when there is still no
/// `<essay>` tag it returns the text as `identity` would, thinking blocks included.
public struct EssayBlockParser: OutputParser {
    public let name: String
    /// Whether thinking blocks are removed and a missing tag falls back to identity.
    public let lenient: Bool

    /// The strict parser (`essay_block`), or with `lenient` the `essay_block_lenient` one.
    public init(lenient: Bool = false) {
        self.lenient = lenient
        name = lenient ? "essay_block_lenient" : "essay_block"
    }

    public func parse(_ raw: String) -> ParseOutcome {
        let normalized = raw.withLFLineBreaks
        let text = lenient ? Self.removingThinking(normalized) : normalized
        let scanner = TagScanner(text)
        guard let open = scanner.opening("essay") else {
            if lenient { return .success(parser: name, raw: raw, text: IdentityParser.normalize(raw)) }
            return .failure(parser: name, raw: raw, reason: "no <essay> tag")
        }
        let end = scanner.closing("essay", from: open.end)?.start ?? scanner.bytes.count
        let essay = String(scanner.text(open.end..<end).trimmedOfWhitespace)
        guard !essay.isEmpty else { return .failure(parser: name, raw: raw, reason: "the <essay> block is empty") }
        return .success(parser: name, raw: raw, text: essay)
    }

    static func removingThinking(_ text: String) -> String {
        let scanner = TagScanner(text)
        var kept: [UInt8] = []
        var offset = 0
        while let open = scanner.opening("thinking", from: offset),
            let close = scanner.closing("thinking", from: open.end)
        {
            kept += scanner.bytes[offset..<open.start]
            offset = close.end
        }
        kept += scanner.bytes[offset...]
        return String(decoding: kept, as: UTF8.self)
    }
}

/// `essay_idea_last`: the most developed of several `<essay-idea stage="N">…</essay-idea>` blocks.
///
/// The block with the highest `stage` wins; among equal stages, and among blocks without a
/// stage, the later one. A block with a stage outranks one without, and a stage that is not a
/// whole number (`stage="two"`) counts as none. The stage may be quoted with `"` or `'` or not
/// at all. A block without a closing tag runs to the end of the text. The content is trimmed;
/// no block, or an empty chosen block, is a failure.
public struct EssayIdeaLastParser: OutputParser {
    public let name = "essay_idea_last"

    /// The parser, registered as `essay_idea_last`.
    public init() {}

    public func parse(_ raw: String) -> ParseOutcome {
        let scanner = TagScanner(raw.withLFLineBreaks)
        var best: (stage: Int?, content: Range<Int>)?
        var offset = 0
        while let open = scanner.opening("essay-idea", from: offset) {
            let close = scanner.closing("essay-idea", from: open.end)
            let stage = Self.stage(in: open.attributes)
            let content = open.end..<(close?.start ?? scanner.bytes.count)
            // `>=` so that the later of two equal ranks wins; nil ranks below every stage.
            if best == nil || (stage ?? Int.min) >= (best!.stage ?? Int.min) { best = (stage, content) }
            offset = close?.end ?? scanner.bytes.count
        }
        guard let best else { return .failure(parser: name, raw: raw, reason: "no <essay-idea> block") }
        let idea = String(scanner.text(best.content).trimmedOfWhitespace)
        guard !idea.isEmpty else {
            let block = best.stage.map { "<essay-idea stage=\"\($0)\">" } ?? "<essay-idea>"
            return .failure(parser: name, raw: raw, reason: "the chosen \(block) block is empty")
        }
        return .success(parser: name, raw: raw, text: idea)
    }

    /// The integer value of a `stage` attribute.
    static func stage(in attributes: ArraySlice<UInt8>) -> Int? {
        let text = String(decoding: attributes, as: UTF8.self).lowercased()
        var rest = Substring(text)
        while let range = rest.firstRange(of: "stage") {
            let before = rest[..<range.lowerBound].last
            rest = rest[range.upperBound...]
            guard before == nil || before!.isWhitespace else { continue }
            var value = rest.drop(while: \.isWhitespace)
            guard value.first == "=" else { continue }
            value = value.dropFirst().drop(while: \.isWhitespace)
            if let quote = value.first, quote == "\"" || quote == "'" {
                value = value.dropFirst().prefix { $0 != quote }
            } else {
                value = value.prefix { !$0.isWhitespace && $0 != "/" }
            }
            return Int(value.trimmedOfWhitespace)
        }
        return nil
    }
}
