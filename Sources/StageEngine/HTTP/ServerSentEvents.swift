import Foundation

/// An incremental parser of `text/event-stream` (server-sent events), fed whatever chunks the
/// network delivers.
struct ServerSentEvents {
    struct Event: Sendable, Hashable {
        var name: String?
        var data: String
    }

    private var buffer = Data()

    /// Adds a chunk and returns the events it completed.
    mutating func feed(_ chunk: Data) -> [Event] {
        buffer.append(chunk)
        var events: [Event] = []
        while let end = blankLine() {
            let block = String(decoding: buffer[buffer.startIndex..<end.lowerBound], as: UTF8.self)
            buffer.removeSubrange(buffer.startIndex..<end.upperBound)
            var name: String?
            var data: [String] = []
            for line in block.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
                if line.hasPrefix(":") { continue }  // a comment (keep-alive)
                let (field, value) = Self.split(line)
                switch field {
                case "event": name = value
                case "data": data.append(value)
                default: break
                }
            }
            if !data.isEmpty || name != nil { events.append(Event(name: name, data: data.joined(separator: "\n"))) }
        }
        return events
    }

    /// Whether bytes of an unfinished event remain (a stream cut short).
    var hasPartialEvent: Bool { !buffer.allSatisfy { $0 == 0x0A || $0 == 0x0D } }

    private func blankLine() -> Range<Data.Index>? {
        for separator in [Data("\n\n".utf8), Data("\r\n\r\n".utf8)] {
            if let range = buffer.range(of: separator) { return range }
        }
        return nil
    }

    private static func split(_ line: Substring) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (String(line), "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}
