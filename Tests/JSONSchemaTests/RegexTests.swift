import JSON
import JSONSchema
import Testing

/// ECMA-262 pattern semantics where ICU's would differ.
@Suite("ECMA-262 patterns")
struct RegexTests {
    func matches(_ pattern: String, _ text: String) throws -> Bool {
        try JSONSchema(["pattern": .string(pattern)]).isValid(.string(text))
    }

    @Test func patternsAreNotAnchored() throws {
        #expect(try matches("b", "abc"))
        #expect(try !matches("^b", "abc"))
    }

    @Test func digitAndWordClassesAreASCII() throws {
        #expect(try !matches(#"^\d$"#, "٣"))  // ARABIC-INDIC DIGIT THREE
        #expect(try matches(#"^\d+$"#, "123"))
        #expect(try !matches(#"^\w$"#, "é"))
        #expect(try matches(#"^[\w-]+$"#, "a-b_9"))
        #expect(try !matches(#"^[\d]$"#, "٣"))
        #expect(try matches(#"^\D$"#, "٣"))
    }

    @Test func dollarMatchesOnlyAtTheEnd() throws {
        #expect(try !matches("^abc$", "abc\n"))
        #expect(try matches("^abc$", "abc"))
    }

    @Test func bracketsInsideClassesAreLiteral() throws {
        #expect(try matches("^[[]$", "["))
        #expect(try matches("^[a&&b]+$", "&a"))
        #expect(try matches("^[^]$", "\n"))
        #expect(try !matches("[]", "anything"))
    }

    @Test func unicodePropertiesAndCodePointEscapes() throws {
        #expect(try matches(#"^\p{L}+$"#, "héllo"))
        #expect(try matches(#"^\u{1F600}$"#, "😀"))
        #expect(try matches("^.$", "😀"))
    }

    @Test func patternPropertiesUseTheSameDialect() throws {
        let schema = try JSONSchema([
            "patternProperties": [#"^\d+$"#: ["type": "integer"]], "additionalProperties": false,
        ])
        #expect(schema.isValid(["12": 1]))
        #expect(!schema.isValid(["١٢": 1]))
    }
}
