import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An incremental parser of `text/event-stream` (server-sent events), fed whatever chunks the
/// network delivers.
///
/// Linear in its input: each byte is looked at once (line ends are found with `memchr`), however
/// the events are cut into chunks, and no event may grow past ``maximumEventBytes``, so a
/// provider that streams one endless event gets an error instead of a server that grinds.
public struct ServerSentEvents {
    public struct Event: Sendable, Hashable {
        public var name: String?
        /// The data lines as sent, joined by line feeds: bytes, so that whoever reads them judges
        /// their encoding as strictly as a body that was not streamed.
        public var bytes: [UInt8]

        public init(name: String? = nil, bytes: [UInt8]) {
            self.name = name
            self.bytes = bytes
        }

        public init(name: String? = nil, data: String) {
            self.init(name: name, bytes: Array(data.utf8))
        }

        /// The data as text; bytes that are not UTF-8 read as U+FFFD.
        public var data: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// An event or a line longer than the limit.
    public struct TooLarge: Error, Sendable, Hashable, CustomStringConvertible {
        public var limit: Int
        public var description: String { "an event of the stream exceeded \(limit) bytes" }
    }

    /// The largest event (its data lines together) or line accepted.
    public var maximumEventBytes: Int

    public init(maximumEventBytes: Int = 32 << 20) {
        self.maximumEventBytes = maximumEventBytes
    }

    /// The line not yet ended by the chunks so far.
    private var line: [UInt8] = []
    /// The event being read: its name and its data lines, joined by newlines.
    private var name: String?
    private var data: [UInt8] = []
    private var hasData = false
    /// The last chunk ended in CR: a LF that starts the next one completes that line end.
    private var afterCarriageReturn = false

    /// Adds a chunk and returns the events it completed.
    public mutating func feed(_ chunk: Data) throws(TooLarge) -> [Event] {
        var events: [Event] = []
        var failure: TooLarge?
        chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress, raw.count > 0 else { return }
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            if afterCarriageReturn && bytes[0] == 0x0A { start = 1 }
            afterCarriageReturn = false
            while start < bytes.count {
                let remaining = bytes.count - start
                // The next LF, then a CR before it (bounded by the LF, so nothing is scanned twice).
                let newline = memchr(base + start, 0x0A, remaining).map { UnsafeRawPointer($0) - base } ?? bytes.count
                let carriage = memchr(base + start, 0x0D, newline - start).map { UnsafeRawPointer($0) - base }
                guard let end = carriage ?? (newline < bytes.count ? newline : nil) else {
                    line.append(contentsOf: bytes[start...])
                    if line.count > maximumEventBytes { failure = TooLarge(limit: maximumEventBytes) }
                    return
                }
                if line.isEmpty {
                    process(UnsafeBufferPointer(rebasing: bytes[start..<end]), into: &events)
                } else {
                    line.append(contentsOf: bytes[start..<end])
                    let whole = line
                    line.removeAll(keepingCapacity: true)
                    whole.withUnsafeBufferPointer { process($0, into: &events) }
                }
                if data.count > maximumEventBytes {
                    failure = TooLarge(limit: maximumEventBytes)
                    return
                }
                start = end + 1
                if bytes[end] == 0x0D {
                    if start < bytes.count {
                        if bytes[start] == 0x0A { start += 1 }
                    } else {
                        afterCarriageReturn = true
                    }
                }
            }
        }
        if let failure { throw failure }
        return events
    }

    /// Whether bytes of an unfinished event remain (a stream cut short).
    public var hasPartialEvent: Bool { !line.isEmpty || hasData || name != nil }

    /// One line, without its line end: a field, a comment, or (empty) the end of an event.
    private mutating func process(_ text: UnsafeBufferPointer<UInt8>, into events: inout [Event]) {
        guard let first = text.first else {
            if hasData || name != nil {
                events.append(Event(name: name, bytes: data))
            }
            name = nil
            data.removeAll(keepingCapacity: true)
            hasData = false
            return
        }
        if first == UInt8(ascii: ":") { return }  // a comment (keep-alive)
        let start = UnsafeRawPointer(text.baseAddress!)
        let colon: Int =
            memchr(start, Int32(UInt8(ascii: ":")), text.count).map { UnsafeRawPointer($0) - start } ?? text.count
        var valueStart = colon < text.endIndex ? colon + 1 : colon
        if valueStart < text.endIndex && text[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let field = UnsafeBufferPointer(rebasing: text[..<colon])
        let value = UnsafeBufferPointer(rebasing: text[valueStart...])
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            name = String(decoding: value, as: UTF8.self)
        }
    }
}
