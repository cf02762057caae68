import JSONRPC
import TestSupport
import Testing

/// What the decoder reported, in a form tests can compare.
enum Decoded: Equatable, CustomStringConvertible {
    case frame(String)
    case error(Int, String)

    var description: String {
        switch self {
        case .frame(let text): return "frame(\(text))"
        case .error(let code, let message): return "error(\(code), \(message))"
        }
    }
}

/// Feeds `bytes` cut at `cuts` and returns everything decoded, end of input included.
func decode(_ bytes: [UInt8], cuts: [Int] = [], mode: FramingMode = .auto, limit: Int = 1 << 20) -> [Decoded] {
    var decoder = FrameDecoder(mode: mode, maximumMessageSize: limit)
    var results: [Decoded] = []
    let handle: (FrameDecoder.Event) -> Void = { event in
        switch event {
        case .frame(let frame): results.append(.frame(String(decoding: frame, as: UTF8.self)))
        case .assembled(let frame): results.append(.frame(String(decoding: frame.take(), as: UTF8.self)))
        case .error(let error): results.append(.error(error.code, error.message))
        case .detected: break
        }
    }
    var start = 0
    for cut in cuts.sorted() + [bytes.count] where cut >= start {
        let chunk = Array(bytes[start..<cut])
        chunk.withUnsafeBufferPointer { decoder.feed($0, handle) }
        start = cut
    }
    decoder.finish(handle)
    return results
}

func decode(_ text: String, cuts: [Int] = [], mode: FramingMode = .auto, limit: Int = 1 << 20) -> [Decoded] {
    decode(Array(text.utf8), cuts: cuts, mode: mode, limit: limit)
}

@Suite("Frame decoder")
struct FrameDecoderTests {
    static let messages = [
        #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        #"{"jsonrpc":"2.0","id":"é☃😀","method":"ping","params":{"echo":"中文 ü"}}"#,
        #"[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]"#,
    ]

    static func stream(_ framing: Framing) -> [UInt8] {
        messages.flatMap { framed($0, framing) }
    }

    @Test("a stream split at every byte offset decodes the same", arguments: Framing.allCases)
    func splitAtEveryOffset(framing: Framing) {
        let bytes = Self.stream(framing)
        let expected = Self.messages.map(Decoded.frame)
        for offset in 0...bytes.count {
            #expect(decode(bytes, cuts: [offset]) == expected, "cut at \(offset)")
        }
        // Two cuts: every pair of offsets in the first frame and beyond.
        for first in stride(from: 0, to: bytes.count, by: 7) {
            for second in stride(from: first, to: bytes.count, by: 5) {
                #expect(decode(bytes, cuts: [first, second]) == expected, "cuts at \(first), \(second)")
            }
        }
    }

    @Test("random chunk sizes, byte by byte included", arguments: Framing.allCases)
    func randomChunks(framing: Framing) {
        let bytes = Array(repeating: Self.stream(framing), count: 20).flatMap { $0 }
        let expected = Array(repeating: Self.messages.map(Decoded.frame), count: 20).flatMap { $0 }
        var generator = SeededGenerator(seed: 42)
        for round in 0..<200 {
            var cuts: [Int] = []
            var position = 0
            let maximum = round == 0 ? 1 : Int.random(in: 1...300, using: &generator)
            while position < bytes.count {
                position += Int.random(in: 1...maximum, using: &generator)
                cuts.append(min(position, bytes.count))
            }
            #expect(decode(bytes, cuts: cuts) == expected, "round \(round)")
        }
    }

    @Test("a 4 MB message arriving in 64 KB reads, then a small one: both whole", arguments: Framing.allCases)
    func largeMessageInManyReads(framing: Framing) {
        let large =
            #"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""# + String(repeating: "ab", count: 2 << 20)
            + #""}}"#
        let small = #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
        let bytes = framed(large, framing) + framed(small, framing)
        let cuts = Array(stride(from: 65_536, to: bytes.count, by: 65_536))
        #expect(decode(bytes, cuts: cuts, limit: 8 << 20) == [.frame(large), .frame(small)])
    }

    @Test("several messages in one read")
    func severalInOneRead() {
        let bytes = Self.stream(.lsp) + Self.stream(.lsp)
        #expect(decode(bytes) == (Self.messages + Self.messages).map(Decoded.frame))
    }

    @Test("a multibyte character split across reads survives")
    func multibyteSplit() {
        let body = #"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"echo":"😀"}}"#
        let bytes = framed(body, .ndjson)
        let emoji = bytes.firstIndex(of: 0xF0)!
        for cut in emoji...(emoji + 4) {
            #expect(decode(bytes, cuts: [cut]) == [.frame(body)])
        }
    }

    @Test("invalid UTF-8 passes framing untouched; the JSON layer rejects it")
    func invalidUTF8IsFramed() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8) + [0x0A]
        var frames: [[UInt8]] = []
        var decoder = FrameDecoder(mode: .ndjson, maximumMessageSize: 1024)
        bytes.withUnsafeBufferPointer { pointer in
            decoder.feed(pointer) { event in
                if case .frame(let frame) = event { frames.append(Array(frame)) }
                if case .assembled(let frame) = event { frames.append(frame.take()) }
            }
        }
        #expect(frames == [Array(bytes.dropLast())])
    }

    @Test("NDJSON: CRLF line ends, blank lines, and a missing final newline")
    func ndjsonLineEnds() {
        let text = "{\"a\":1}\r\n\r\n  \n{\"b\":2}\n{\"c\":3}"
        #expect(decode(text) == [.frame(#"{"a":1}"#), .frame(#"{"b":2}"#), .frame(#"{"c":3}"#)])
    }

    @Test("framing is detected from the first non-blank byte")
    func detection() {
        #expect(decode("\n\ncontent-length: 2\r\n\r\n{}") == [.frame("{}")])
        #expect(decode("  [1]\n") == [.frame("[1]")])
        // Forced NDJSON reads a header as a (bad) message line instead.
        #expect(decode("Content-Length: 2\r\n\r\n{}", mode: .ndjson) == [.frame("Content-Length: 2"), .frame("{}")])
    }

    @Test("LSP: header names are case-insensitive and unknown headers are ignored")
    func headers() {
        let text = "CONTENT-LENGTH:2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\nX-Extra: 1\r\n\r\n{}"
        #expect(decode(text) == [.frame("{}")])
        // Bare \n line ends are accepted too.
        #expect(decode("Content-Length: 2\n\n{}") == [.frame("{}")])
    }

    @Test("LSP: Content-Length counts bytes, not characters")
    func lengthInBytes() {
        let body = #"{"s":"😀é"}"#
        #expect(decode("Content-Length: \(body.utf8.count)\r\n\r\n\(body)") == [.frame(body)])
    }

    static let hint = "Parse error: "

    @Test(
        "LSP: bad Content-Length values are answered and the stream recovers",
        arguments: [
            ("Content-Length: 0\r\n\r\n", "Parse error: empty message body (Content-Length: 0)"),
            (
                "Content-Length: -5\r\n\r\n",
                "Parse error: invalid Content-Length '-5' (expected a non-negative whole number of bytes)"
            ),
            (
                "Content-Length: abc\r\n\r\n",
                "Parse error: invalid Content-Length 'abc' (expected a non-negative whole number of bytes)"
            ),
            (
                "Content-Length: \r\n\r\n",
                "Parse error: invalid Content-Length '' (expected a non-negative whole number of bytes)"
            ),
            (
                "Content-Length: 99999999999999999999\r\n\r\n",
                "Parse error: invalid Content-Length '99999999999999999999' (expected a non-negative whole number of bytes)"
            ),
            ("Content-Type: text/plain\r\n\r\n{}", "Parse error: missing Content-Length header"),
            (
                "Content-Length 5\r\n\r\n",
                "Parse error: malformed header line 'Content-Length 5' (expected 'Name: value')"
            ),
        ]
    )
    func badContentLength(header: String, message: String) {
        let next = #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        let results = decode(header + "Content-Length: \(next.utf8.count)\r\n\r\n" + next)
        #expect(results == [.error(-32700, message), .frame(next)])
    }

    @Test("LSP: a frame over the limit is skipped unbuffered, in any chunking, and the next one is read")
    func overLimitLSP() {
        let big = "{\"pad\":\"" + String(repeating: "x", count: 5000) + "\"}"
        let next = "{}"
        let bytes = framed(big, .lsp) + framed(next, .lsp)
        let expected: [Decoded] = [
            .error(-32600, "Invalid Request: message of \(big.utf8.count) bytes exceeds the limit of 1024 bytes"),
            .frame(next),
        ]
        #expect(decode(bytes, limit: 1024) == expected)
        #expect(decode(bytes, cuts: Array(stride(from: 1, to: bytes.count, by: 333)), limit: 1024) == expected)
    }

    @Test("NDJSON: a line over the limit is answered once and skipped")
    func overLimitNDJSON() {
        let big = String(repeating: "x", count: 3000)
        let bytes = Array((big + "\n{}\n").utf8)
        let expected: [Decoded] = [
            .error(-32600, "Invalid Request: message of more than 1024 bytes exceeds the limit of 1024 bytes"),
            .frame("{}"),
        ]
        #expect(decode(bytes, cuts: Array(stride(from: 100, to: bytes.count, by: 100)), limit: 1024) == expected)
        // Arriving whole, its exact size is known.
        #expect(
            decode(Array(("[" + String(repeating: "1,", count: 600) + "1]\n{}\n").utf8), limit: 1024).first
                == .error(-32600, "Invalid Request: message of 1203 bytes exceeds the limit of 1024 bytes")
        )
    }

    @Test("end of input inside a body or a header block is reported")
    func truncatedAtEnd() {
        #expect(
            decode("Content-Length: 10\r\n\r\n{}") == [
                .error(
                    -32700,
                    "Parse error: input ended 8 bytes short of the 10-byte body announced by Content-Length"
                )
            ]
        )
        #expect(decode("Content-Length: 10\r\n") == [.error(-32700, "Parse error: input ended inside a header block")])
    }

    @Test("an endless header block is cut off and the stream recovers")
    func endlessHeader() {
        let junk = "X-Junk: " + String(repeating: "y", count: 9000)
        let results = decode(junk + "\r\nContent-Length: 2\r\n\r\n{}", cuts: [4000, 8000], mode: .lsp)
        #expect(results == [.error(-32700, "Parse error: header block longer than 8192 bytes"), .frame("{}")])
    }
}
