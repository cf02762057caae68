import OutputParsing
import Testing

@Suite("identity parser")
struct IdentityParserTests {
    static let cases: [ParserCase] = [
        ParserCase("CRLF normalized, final newline dropped", "first\r\nsecond\r\n", .text("first\nsecond")),
        ParserCase("lone CR", "a\rb", .text("a\nb")),
        ParserCase(
            "leading and inner whitespace kept",
            "  indented  \nline  \n\n\t",
            .text("  indented  \nline")
        ),
        ParserCase("empty", "", .text("")),
    ]

    @Test(arguments: cases)
    func parses(_ row: ParserCase) {
        #expect(IdentityParser().parse(row.raw) == row.outcome(of: "identity"))
    }
}

@Suite("essay_block parsers")
struct EssayBlockParserTests {
    static let strictCases: [ParserCase] = [
        ParserCase("block trimmed", "<essay>\nThe sea remembers.\n</essay>", .text("The sea remembers.")),
        ParserCase("narration around", "Here it is:\n<essay>Body</essay>\nThanks!", .text("Body")),
        ParserCase("first of two", "<essay>One</essay>\n<essay>Two</essay>", .text("One")),
        ParserCase(
            "missing closing tag",
            "<essay>\nStill going when the tokens ran out",
            .text("Still going when the tokens ran out")
        ),
        ParserCase("any case, attributes", "<ESSAY id=\"1\">Hi</Essay >", .text("Hi")),
        ParserCase("CRLF inside", "<essay>a\r\nb</essay>", .text("a\nb")),
        ParserCase("no tag", "Just an essay without tags.", .failure("no <essay> tag")),
        ParserCase("essay-idea is not essay", "<essay-idea>x</essay-idea>", .failure("no <essay> tag")),
        ParserCase("empty block", "<essay>  \n </essay>", .failure("the <essay> block is empty")),
        ParserCase(
            "thinking is not removed",
            "<thinking><essay>draft</essay></thinking><essay>final</essay>",
            .text("draft")
        ),
    ]

    static let lenientCases: [ParserCase] = [
        ParserCase(
            "thinking removed first",
            "<thinking>Try <essay>draft</essay>?</thinking>\n<essay>Final text</essay>",
            .text("Final text")
        ),
        ParserCase(
            "no essay tag: identity",
            "<thinking>hmm</thinking>\nJust text\r\n",
            .text("<thinking>hmm</thinking>\nJust text")
        ),
        ParserCase("unclosed thinking left alone", "<thinking>plan…\n<essay>Kept</essay>", .text("Kept")),
        ParserCase(
            "essay tag only inside thinking: identity",
            "<thinking><essay>x</essay></thinking>ok",
            .text("<thinking><essay>x</essay></thinking>ok")
        ),
        ParserCase("empty block still fails", "<essay></essay>", .failure("the <essay> block is empty")),
    ]

    @Test(arguments: strictCases)
    func strict(_ row: ParserCase) {
        #expect(EssayBlockParser().parse(row.raw) == row.outcome(of: "essay_block"))
    }

    @Test(arguments: lenientCases)
    func lenient(_ row: ParserCase) {
        #expect(EssayBlockParser(lenient: true).parse(row.raw) == row.outcome(of: "essay_block_lenient"))
    }
}

@Suite("essay_idea_last parser")
struct EssayIdeaLastParserTests {
    static let cases: [ParserCase] = [
        ParserCase(
            "highest stage wins, wherever it is",
            """
            <essay-idea stage="1">seed</essay-idea>
            <essay-idea stage="3">
            grown idea
            </essay-idea>
            <essay-idea stage="2">sprout</essay-idea>
            """,
            .text("grown idea")
        ),
        ParserCase(
            "no stages: the last block",
            "<essay-idea>A</essay-idea>\n<essay-idea>B</essay-idea>",
            .text("B")
        ),
        ParserCase(
            "equal stages: the later block",
            "<essay-idea stage=\"2\">first</essay-idea><essay-idea stage=\"2\">second</essay-idea>",
            .text("second")
        ),
        ParserCase(
            "a staged block outranks a later unstaged one",
            "<essay-idea stage=\"1\">staged</essay-idea><essay-idea>plain</essay-idea>",
            .text("staged")
        ),
        ParserCase(
            "single quotes and bare numbers, compared as numbers",
            "<essay-idea stage='10'>ten</essay-idea><essay-idea stage=9>nine</essay-idea>",
            .text("ten")
        ),
        ParserCase(
            "unclosed last block",
            "<essay-idea stage=\"1\">a</essay-idea><essay-idea stage=\"2\">b, cut off",
            .text("b, cut off")
        ),
        ParserCase(
            "a stage that is not a number counts as none",
            "<essay-idea stage=\"1\">one</essay-idea><essay-idea stage=\"two\">two</essay-idea>",
            .text("one")
        ),
        ParserCase("no block", "<essay>not an idea</essay>", .failure("no <essay-idea> block")),
        ParserCase(
            "empty chosen block",
            "<essay-idea stage=\"1\">a</essay-idea><essay-idea stage=\"2\"> </essay-idea>",
            .failure("the chosen <essay-idea stage=\"2\"> block is empty")
        ),
    ]

    @Test(arguments: cases)
    func parses(_ row: ParserCase) {
        #expect(EssayIdeaLastParser().parse(row.raw) == row.outcome(of: "essay_idea_last"))
    }
}
