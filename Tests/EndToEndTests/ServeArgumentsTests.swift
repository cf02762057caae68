import ArgumentParser
import Testing

@testable import stagerunner

@Suite("serve's arguments")
struct ServeArgumentsTests {
    /// What `serve` reads on its quick path is what ArgumentParser reads from the same words.
    @Test(arguments: [
        [],
        ["--workspace", "/tmp/ws"],
        ["--workspace=/tmp/ws", "--framing", "ndjson", "--log-level=error"],
        ["--framing=lsp", "--max-message-size", "4096", "--max-running-jobs=100", "--require-initialize"],
        ["--enable-test-methods", "--workspace", "a b", "--workspace", "second"],
        ["--log-level", "trace", "--max-running-jobs", "1"],
    ])
    func quickPathReadsAsArgumentParser(arguments: [String]) throws {
        let quick = try #require(ServeSettings(quickParse: arguments))
        #expect(quick == (try ServeCommand.parse(arguments)).settings)
    }

    /// Help, mistakes and words it does not know are left to ArgumentParser, which answers them.
    @Test(arguments: [
        ["--help"], ["-h"], ["help"], ["--workspace"], ["--workspace", "--framing", "lsp"], ["--framing", "xml"],
        ["--max-running-jobs", "many"], ["--log-level", "loud"], ["--bogus"], ["--require-initialize=yes"],
        ["--", "--workspace", "x"], ["stray"],
    ])
    func quickPathLeavesTheRest(arguments: [String]) {
        #expect(ServeSettings(quickParse: arguments) == nil)
    }
}
