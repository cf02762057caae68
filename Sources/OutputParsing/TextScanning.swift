// Small text helpers shared by the parsers. The standard library has no trimming and Foundation
// is not needed for anything else here, so these stay local and Foundation-free.

extension String {
    /// The text with CRLF and lone CR turned into LF, so line-based parsers see one kind of break.
    /// (In Swift "\r\n" is a single Character, so splitting on "\n" alone would miss it.)
    var withLFLineBreaks: String {
        guard unicodeScalars.contains("\r") else { return self }
        var result = String.UnicodeScalarView()
        var previousWasCR = false
        for scalar in unicodeScalars {
            if scalar == "\r" {
                result.append("\n")
                previousWasCR = true
                continue
            }
            if !(scalar == "\n" && previousWasCR) { result.append(scalar) }
            previousWasCR = false
        }
        return String(result)
    }

    /// The lines of an LF-normalized text, empty ones included.
    var splitLines: [Substring] { split(separator: "\n", omittingEmptySubsequences: false) }
}

extension StringProtocol {
    /// Without leading and trailing whitespace (newlines included).
    var trimmedOfWhitespace: SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? start
        return self[start..<end]
    }

    /// Without trailing whitespace (newlines included).
    var trimmingTrailingWhitespace: SubSequence {
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? startIndex
        return self[startIndex..<end]
    }

    /// Without markdown emphasis and heading marks, which models sprinkle around scores.
    var withoutMarkdownMarks: String { String(filter { $0 != "*" && $0 != "#" }) }
}

/// Where an XML-like tag was found in a byte buffer.
struct TagMatch {
    /// Offset of the `<`.
    var start: Int
    /// Offset just after the `>`.
    var end: Int
    /// The bytes between the tag name and `>`, e.g. ` stage="2"`.
    var attributes: ArraySlice<UInt8>
}

/// Searches for `<name …>` and `</name>` in UTF-8 bytes, ignoring ASCII case.
///
/// Bytes rather than Characters: tags are ASCII, byte offsets are cheap to slice, and case
/// folding of ASCII never changes lengths.
struct TagScanner {
    let bytes: [UInt8]

    init(_ text: String) { bytes = Array(text.utf8) }

    /// The first opening tag `<name>` or `<name attributes>` at or after `offset`.
    func opening(_ name: String, from offset: Int = 0) -> TagMatch? {
        let nameBytes = Array(name.utf8)
        var index = offset
        while let start = find("<", nameBytes, from: index) {
            let afterName = start + 1 + nameBytes.count
            index = start + 1
            guard afterName < bytes.count else { return nil }
            let next = bytes[afterName]
            // `<essay-idea>` must not count as `<essay>`: the name has to end here.
            guard next == UInt8(ascii: ">") || Self.isSpace(next) else { continue }
            guard let close = bytes[afterName...].firstIndex(of: UInt8(ascii: ">")) else { return nil }
            return TagMatch(start: start, end: close + 1, attributes: bytes[afterName..<close])
        }
        return nil
    }

    /// The first closing tag `</name>` (spaces allowed before `>`) at or after `offset`.
    func closing(_ name: String, from offset: Int) -> TagMatch? {
        let nameBytes = Array(name.utf8)
        var index = offset
        while let start = find("</", nameBytes, from: index) {
            var end = start + 2 + nameBytes.count
            index = start + 1
            while end < bytes.count, Self.isSpace(bytes[end]) { end += 1 }
            if end < bytes.count, bytes[end] == UInt8(ascii: ">") {
                return TagMatch(start: start, end: end + 1, attributes: [])
            }
        }
        return nil
    }

    /// The text of `bytes[range]`.
    func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    private func find(_ prefix: String, _ name: [UInt8], from offset: Int) -> Int? {
        let needle = Array(prefix.utf8) + name
        guard needle.count <= bytes.count, offset <= bytes.count - needle.count else { return nil }
        for start in offset...(bytes.count - needle.count)
        where zip(needle, bytes[start...]).allSatisfy({ Self.lower($0) == Self.lower($1) }) {
            return start
        }
        return nil
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
    }
}
