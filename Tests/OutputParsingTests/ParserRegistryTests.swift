import JSON
import OutputParsing
import Testing

@Suite("parser registry")
struct ParserRegistryTests {
    @Test func standardHasTheBuiltInParsersUnderTheirNames() throws {
        let registry = ParserRegistry.standard
        #expect(
            registry.names == [
                "complex", "essay_block", "essay_block_lenient", "essay_idea_last", "identity", "in_last_line", "json",
            ]
        )
        for name in registry.names {
            #expect(try registry.parser(named: name).name == name)
        }
    }

    @Test func unknownNameListsTheKnownOnes() {
        #expect(throws: ParserRegistryError.unknownParser(name: "in-last-line", known: ParserRegistry.standard.names)) {
            try ParserRegistry.standard.parser(named: "in-last-line")
        }
        let error = ParserRegistryError.unknownParser(name: "x", known: ["identity", "json"])
        #expect(error.description == "no parser named 'x'; known parsers: identity, json")
        #expect(
            ParserRegistryError.unknownParser(name: "x", known: []).description
                == "no parser named 'x'; known parsers: none"
        )
    }

    @Test func registersMoreParsers() throws {
        var registry = ParserRegistry.standard
        let shout = ClosureParser(name: "shout") { .success(parser: "shout", raw: $0, text: $0.uppercased()) }
        try registry.register(shout)
        #expect(try registry.parse("hi", with: "shout").text == "HI")
        // The shared standard registry is a value and stays as it was.
        #expect(!ParserRegistry.standard.names.contains("shout"))
    }

    @Test func refusesDuplicatesUnlessAskedToReplace() throws {
        var registry = ParserRegistry.standard
        let custom = ClosureParser(name: "json") { .success(parser: "json", raw: $0, text: "custom") }
        #expect(throws: ParserRegistryError.duplicateName("json")) { try registry.register(custom) }
        #expect(try registry.parse("{}", with: "json").text == "{}")
        try registry.register(custom, replacingExisting: true)
        #expect(try registry.parse("{}", with: "json").text == "custom")
    }

    @Test(arguments: ["", "in last line", "tab\there"])
    func refusesNamesATemplateCannotUse(name: String) {
        var registry = ParserRegistry()
        let parser = ClosureParser(name: name) { .success(parser: name, raw: $0, text: $0) }
        #expect(throws: ParserRegistryError.invalidName(name)) { try registry.register(parser) }
    }
}

@Suite("stub fallback (parser outcomes)")
struct StubFallbackParserTests {
    @Test func failureWithStubKeepsTheOriginalError() {
        let outcome = InLastLineParser().parse("No score here.", stubFallback: { "5.0" })
        #expect(
            outcome
                == ParseOutcome(
                    parser: "in_last_line",
                    status: .stubFallback,
                    text: "5.0",
                    llmRawText: "No score here.",
                    llmError: "no score found in the last 3 non-empty lines",
                    reason: "parser 'in_last_line' failed (parser_failure); used the caller's stub output"
                )
        )
    }

    @Test func jsonFailureWithStubKeepsTheCleanedCandidate() throws {
        let outcome = try ParserRegistry.standard.parse("```json\n{\"a\": }\n```", with: "json") { "{}" }
        #expect(outcome.status == .stubFallback)
        #expect(outcome.text == "{}")
        #expect(outcome.json == nil)
        #expect(outcome.llmCleanedJSON == "```json\n{\"a\": }\n```")
        #expect(
            outcome.llmError
                == "no JSON object could be parsed from the output (fenced block 1: line 1, column 7: "
                + "unexpected '}', expected a JSON value; whole text: line 1, column 1: unexpected '`', "
                + "expected a JSON value)"
        )
        #expect(outcome.reason == "parser 'json' failed (json_parse_error); used the caller's stub output")
    }

    @Test func successNeverCallsTheStub() {
        var called = false
        let outcome = JSONObjectParser().parse(#"{"a": 1}"#) {
            called = true
            return "{}"
        }
        #expect(outcome.status == .success)
        #expect(outcome.json == .object(["a": .integer(1)]))
        #expect(!called)
    }

    @Test func withoutStubAFailureStaysAFailure() throws {
        let outcome = try ParserRegistry.standard.parse("<p>no essay</p>", with: "essay_block", stubFallback: nil)
        #expect(outcome == .failure(parser: "essay_block", raw: "<p>no essay</p>", reason: "no <essay> tag"))
        #expect(!outcome.succeeded)
    }

    @Test func stubReplacesScoreAndJSON() {
        let failed = ParseOutcome.failure(parser: "complex", raw: "x", reason: "no score")
        let stubbed = failed.replacingFailure { "0.0" }
        #expect(stubbed.status == .stubFallback && stubbed.score == nil && stubbed.text == "0.0")
        // A stub outcome is not stubbed again.
        #expect(stubbed.replacingFailure { "other" } == stubbed)
    }

    @Test func unknownParserThrowsInsteadOfUsingTheStub() {
        #expect(throws: ParserRegistryError.self) {
            try ParserRegistry.standard.parse("x", with: "nope") { "stub" }
        }
    }
}
