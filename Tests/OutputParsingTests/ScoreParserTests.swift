import OutputParsing
import Testing

@Suite("in_last_line parser")
struct InLastLineParserTests {
    static let cases: [ParserCase] = [
        ParserCase(
            "plain SCORE line",
            "The essay argues clearly and the examples are apt.\nSCORE: 8",
            .score(8)
        ),
        ParserCase(
            "markdown bold score",
            "Strong structure, weak conclusion.\n\n**Score: 8**\n",
            .score(8)
        ),
        ParserCase(
            "markdown heading score, any case",
            "## Verdict\nsolid work\n### score: 3",
            .score(3)
        ),
        ParserCase(
            "SCORE line beats a later number",
            "Reasoning: original but thin.\nSCORE: 7\nI was tempted to give it a 9.",
            .score(7)
        ),
        ParserCase(
            "SCORE line beats a later three-digit group",
            "SCORE: 6\n4 5 6",
            .score(6)
        ),
        ParserCase(
            "three spaced digits averaged",
            "Originality, depth, style:\n4 5 6",
            .score(5)
        ),
        ParserCase(
            "three-digit integer averaged",
            "Sub-scores (originality, depth, style) follow.\n456",
            .score(5)
        ),
        ParserCase("SCORE with three digits", "Evaluation done.\nSCORE: 7 8 8", .score(23.0 / 3)),
        ParserCase("SCORE with a fraction", "Verdict: promising.\nSCORE: 8/10", .score(8)),
        ParserCase("decimal score", "The draft is good.\nSCORE: 7.5.", .score(7.5)),
        ParserCase("score word inside a sentence", "Overall, my score is 6 for this piece.", .score(6)),
        ParserCase("lone fraction scaled", "Some notes.\nRating: 4/5", .score(8)),
        ParserCase("out of ten", "All things considered, 7 out of 10.", .score(7)),
        ParserCase("CRLF and trailing blank lines", "Analysis\r\nSCORE: 9\r\n\r\n", .score(9)),
        ParserCase("numbers glued to letters are not scores", "See the 3rd point.\nVersion v2, final: 7", .score(7)),
        ParserCase(
            "out-of-range score",
            "The essay is exceptional.\nSCORE: 12",
            .failure("score 12 is outside the range 0 to 10")
        ),
        ParserCase("negative score", "SCORE: -1", .failure("score -1 is outside the range 0 to 10")),
        ParserCase(
            "out-of-range fraction",
            "SCORE: 15/10",
            .failure("score 15/10 is outside the range 0 to 10")
        ),
        ParserCase(
            "no number at all",
            "I liked it.\nThe ending is moving.",
            .failure("no score found in the last 3 non-empty lines")
        ),
        ParserCase(
            "several numbers and no score word",
            "Points 3 and 4 matter, and 2 others.",
            .failure("no score found in the last 3 non-empty lines")
        ),
        ParserCase(
            "score above the last three lines",
            "SCORE: 9\nFirst remark.\nSecond remark.\nThird remark.",
            .failure("no score found in the last 3 non-empty lines")
        ),
        ParserCase("empty output", "  \n\n", .failure("the output is empty")),
    ]

    @Test(arguments: cases)
    func parses(_ row: ParserCase) {
        #expect(InLastLineParser().parse(row.raw) == row.outcome(of: "in_last_line"))
    }
}

@Suite("complex parser")
struct ComplexParserTests {
    static let cases: [ParserCase] = [
        ParserCase("plain Score line", "The essay is coherent.\nScore: 8", .score(8)),
        ParserCase("bold Final Score fraction", "## Evaluation\nGood flow.\n**Final Score:** 8/10", .score(8)),
        ParserCase("Total Score out of 5 scaled", "Total Score: 4/5", .score(8)),
        ParserCase("Total Score summed sub-scores", "Clarity 8, Depth 8, Style 8\nTotal Score: 24/30", .score(8)),
        ParserCase("header alone, value on the next line", "## Final Score\n\n**7.5**\n", .score(7.5)),
        ParserCase("last match wins", "Score: 3\nAfter reconsidering the ending:\nFinal Score: 9", .score(9)),
        ParserCase("upper case, space separator", "FINAL SCORE 6", .score(6)),
        ParserCase("list item with bold header", "- **Score**: 7\n- Notes: fine", .score(7)),
        ParserCase("out of", "Score: 8 out of 10 - a fine essay", .score(8)),
        ParserCase("CRLF", "Review\r\nFinal Score: 6\r\n", .score(6)),
        ParserCase(
            "out of range",
            "Final Score: 11",
            .failure("score 11 is outside the range 0 to 10")
        ),
        ParserCase(
            "last match out of range even after a valid one",
            "Score: 8\nTotal Score: 24",
            .failure("score 24 is outside the range 0 to 10")
        ),
        ParserCase(
            "three digits are not averaged",
            "Score: 456",
            .failure("score 456 is outside the range 0 to 10")
        ),
        ParserCase("zero denominator", "Score: 8/0", .failure("score 8/0 has a zero denominator")),
        ParserCase(
            "no header",
            "I would rate this 8/10.",
            .failure("no 'Score', 'Final Score' or 'Total Score' line with a number in the last 30 lines")
        ),
        ParserCase(
            "header without a number",
            "Score: N/A\nScoreboard: 5",
            .failure("no 'Score', 'Final Score' or 'Total Score' line with a number in the last 30 lines")
        ),
        ParserCase(
            "header above the last 30 lines",
            "Score: 8\n" + (1...30).map { "Remark \($0)." }.joined(separator: "\n"),
            .failure("no 'Score', 'Final Score' or 'Total Score' line with a number in the last 30 lines")
        ),
        ParserCase("trailing blank lines do not count", "Score: 8\n" + String(repeating: "\n", count: 40), .score(8)),
        ParserCase("empty output", "", .failure("the output is empty")),
    ]

    @Test(arguments: cases)
    func parses(_ row: ParserCase) {
        #expect(ComplexScoreParser().parse(row.raw) == row.outcome(of: "complex"))
    }
}
