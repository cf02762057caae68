import Foundation
import Testing

@testable import HTTP

@Suite("Server-sent events")
struct ServerSentEventsTests {
    /// Feeds `text` cut into pieces of `size` bytes.
    func events(_ text: String, chunk size: Int) throws -> [ServerSentEvents.Event] {
        var parser = ServerSentEvents()
        var events: [ServerSentEvents.Event] = []
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + size)
            events += try parser.feed(Data(bytes[start..<end]))
            start = end
        }
        #expect(!parser.hasPartialEvent)
        return events
    }

    @Test("fields, comments, names, multi-line data and every line end, however the chunks fall")
    func parsing() throws {
        let text =
            ": keep-alive\n\ndata: one\n\nevent: delta\ndata: {\"a\":1}\n\r\ndata:two\r\ndata:  lines\r\rid: 7\nretry: 10\ndata\n\nevent: ping\n\n"
        let expected: [ServerSentEvents.Event] = [
            .init(name: nil, data: "one"),
            .init(name: "delta", data: #"{"a":1}"#),
            .init(name: nil, data: "two\n lines"),
            .init(name: nil, data: ""),
            .init(name: "ping", data: ""),
        ]
        for size in [1, 2, 3, 7, 64, 4096] {
            #expect(try events(text, chunk: size) == expected, "chunks of \(size)")
        }
    }

    @Test("a 16 MB event in 16 KB chunks parses in linear time; past the limit it is refused")
    func bigEvents() throws {
        let payload = String(repeating: "z", count: 16 << 20)
        let started = ContinuousClock.now
        let parsed = try events("data: \(payload)\n\n", chunk: 16 << 10)
        let elapsed = ContinuousClock.now - started
        print("a 16 MB event in 1,024 chunks: parsed in \(elapsed)")
        #expect(parsed.count == 1)
        #expect(parsed.first?.data.utf8.count == 16 << 20)
        // Generous for a debug build on a loaded machine (it takes 0.06 s); the quadratic parser took 32 s.
        #expect(elapsed < .seconds(15))

        var parser = ServerSentEvents(maximumEventBytes: 1 << 20)
        let line = Data(("data: " + String(repeating: "w", count: 600 << 10) + "\n").utf8)
        _ = try parser.feed(line)
        #expect(throws: ServerSentEvents.TooLarge(limit: 1 << 20)) { try parser.feed(line) }
        var unended = ServerSentEvents(maximumEventBytes: 1 << 20)
        #expect(throws: ServerSentEvents.TooLarge(limit: 1 << 20)) {
            try unended.feed(Data(String(repeating: "v", count: 2 << 20).utf8))
        }
    }
}
