import Foundation
import JSON

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the CLI writes numbers, times and errors.
public enum Format {
    /// The local time of day with milliseconds: `12:00:01.123`.
    public static func timeOfDay(_ seconds: Double = Date().timeIntervalSince1970) -> String {
        var whole = time_t(seconds.rounded(.down))
        let milliseconds = min(999, Int((seconds - Double(whole)) * 1000))
        var parts = tm()
        localtime_r(&whole, &parts)
        return String(format: "%02d:%02d:%02d.%03d", parts.tm_hour, parts.tm_min, parts.tm_sec, milliseconds)
    }

    /// Seconds since the epoch of a document timestamp (`2026-11-22T01:52:03.101Z`).
    public static func epochSeconds(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T") else { return nil }
        func number(_ start: Int, _ count: Int) -> Int32? {
            var value: Int32 = 0
            for byte in bytes[start..<start + count] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int32(byte - 48)
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2)
        else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        var fraction = 0.0
        if bytes[19] == UInt8(ascii: ".") {
            var scale = 0.1
            for byte in bytes[20...] {
                guard (48...57).contains(byte) else { break }
                fraction += Double(byte - 48) * scale
                scale /= 10
            }
        }
        return Double(timegm(&parts)) + fraction
    }

    /// `1,234,567`.
    public static func count<Number: BinaryInteger>(_ value: Number) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    /// `$0.0123`.
    public static func cost(_ value: Double) -> String { String(format: "$%.4f", value) }

    /// `3.2 ms`, `420 ms`, `4.20 s`, `12.3 s`, `2:03.4`.
    public static func duration(_ seconds: Double) -> String {
        if seconds < 0.01 { return String(format: "%.1f ms", seconds * 1000) }
        if seconds < 1 { return String(format: "%.0f ms", seconds * 1000) }
        if seconds < 10 { return String(format: "%.2f s", seconds) }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let minutes = Int(seconds / 60)
        return String(format: "%d:%04.1f", minutes, seconds - Double(minutes * 60))
    }

    /// A task error from the document, on one line: `TemplateError: 'subtitle' is undefined`.
    public static func error(_ error: JSONValue) -> String {
        let message = (error["message"]?.stringValue ?? error.description).split(separator: "\n").first ?? ""
        guard let name = error["name"]?.stringValue else { return String(message) }
        return "\(name): \(message)"
    }
}
