/// One lexical token. Template text and tag delimiters come out of the same stream, as in Jinja2.
struct TemplateToken: Sendable {
    enum Kind: Sendable, Equatable {
        case data
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name, string, integer, float, op
        case end
    }

    var kind: Kind
    /// The decoded text: data, a name, a string's value, a number's spelling, or an operator.
    var text: String
    var line: Int
    /// 1-based column of the token's first character.
    var column = 0
}

/// Splits template source into tokens, reproducing Jinja2's lexer rules for whitespace control
/// (`-`, `+`, trim_blocks, lstrip_blocks), comments and raw blocks.
struct TemplateLexer {
    private let source: [Unicode.Scalar]
    private let options: TemplateOptions
    private let name: String
    private var position = 0
    private var line = 1
    /// Whether the last match ended a line, which lets lstrip_blocks strip at the very start of text.
    private var lineStarting = true
    private var tokens: [TemplateToken] = []

    init(source: String, name: String, options: TemplateOptions) {
        self.source = TemplateLexer.normalizeNewlines(source, keepTrailing: options.keepTrailingNewline)
        self.options = options
        self.name = name
        var starts = [0]
        for (index, scalar) in self.source.enumerated() where scalar == "\n" { starts.append(index + 1) }
        self.lineStarts = starts
    }

    /// Offsets where each line begins, for columns.
    private let lineStarts: [Int]

    private func column(of offset: Int) -> Int {
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= offset { low = middle } else { high = middle - 1 }
        }
        return offset - lineStarts[low] + 1
    }

    private mutating func append(_ kind: TemplateToken.Kind, _ text: String, at offset: Int, line: Int? = nil) {
        tokens.append(TemplateToken(kind: kind, text: text, line: line ?? self.line, column: column(of: offset)))
    }

    /// Jinja2 turns `\r\n` and `\r` into `\n` everywhere, and drops one trailing newline unless told not to.
    private static func normalizeNewlines(_ text: String, keepTrailing: Bool) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                out.append("\n")
                previousWasCR = true
                continue
            }
            if scalar == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = false
            out.append(scalar)
        }
        if !keepTrailing, out.last == "\n" { out.removeLast() }
        return out
    }

    private func error(_ message: String) -> TemplateError {
        TemplateError(kind: .syntax, message: message, templateName: name, line: line, column: column(of: position))
    }

    private func at(_ index: Int) -> Unicode.Scalar? { index < source.count ? source[index] : nil }

    private func matches(_ text: String, at index: Int) -> Bool {
        var i = index
        for scalar in text.unicodeScalars {
            guard i < source.count, source[i] == scalar else { return false }
            i += 1
        }
        return true
    }

    private func skipWhitespace(from index: Int) -> Int {
        var i = index
        while i < source.count, source[i].isPythonWhitespace { i += 1 }
        return i
    }

    private func newlines(_ range: Range<Int>) -> Int {
        var count = 0
        for i in range where source[i] == "\n" { count += 1 }
        return count
    }

    private func string(_ range: Range<Int>) -> String {
        var text = String.UnicodeScalarView()
        text.append(contentsOf: source[range])
        return String(text)
    }

    mutating func tokenize() throws(TemplateError) -> [TemplateToken] {
        while position < source.count {
            try lexRoot()
        }
        append(.end, "", at: source.count)
        return tokens
    }

    private enum TagKind { case variable, block, comment }

    /// Data up to the next tag, then the tag itself.
    private mutating func lexRoot() throws(TemplateError) {
        var start = position
        var tag: TagKind?
        while start + 1 < source.count {
            if source[start] == "{" {
                switch source[start + 1] {
                case "{": tag = .variable
                case "%": tag = .block
                case "#": tag = .comment
                default: break
                }
                if tag != nil { break }
            }
            start += 1
        }
        guard let tag else {
            emitData(position..<source.count, sign: nil, isVariable: true)
            position = source.count
            return
        }
        var afterTag = start + 2
        var sign: Unicode.Scalar?
        if let next = at(afterTag), next == "-" || next == "+" {
            sign = next
            afterTag += 1
        }
        if tag == .block, let rawEnd = rawBeginEnd(from: afterTag) {
            emitData(position..<start, sign: sign, isVariable: false)
            line += newlines(start..<rawEnd)
            lineStarting = source[rawEnd - 1] == "\n"
            position = rawEnd
            try lexRawBody()
            return
        }
        emitData(position..<start, sign: sign, isVariable: tag == .variable)
        position = afterTag
        lineStarting = false
        switch tag {
        case .comment: try lexComment()
        case .variable: try lexTag(block: false)
        case .block: try lexTag(block: true)
        }
    }

    /// Emits the text before a tag, applying `-` (strip all whitespace) or lstrip_blocks.
    private mutating func emitData(_ range: Range<Int>, sign: Unicode.Scalar?, isVariable: Bool) {
        var end = range.upperBound
        if sign == "-" {
            while end > range.lowerBound, source[end - 1].isPythonWhitespace { end -= 1 }
        } else if sign != "+" && options.lstripBlocks && !isVariable {
            var lineStart = range.upperBound
            while lineStart > range.lowerBound, source[lineStart - 1] != "\n" { lineStart -= 1 }
            if lineStart > range.lowerBound || lineStarting {
                let tail = source[lineStart..<range.upperBound]
                if !tail.isEmpty, tail.allSatisfy(\.isPythonWhitespace) { end = lineStart }
            }
        }
        if end > range.lowerBound {
            append(.data, string(range.lowerBound..<end), at: range.lowerBound)
        }
        line += newlines(range)
    }

    /// If `{% raw %}` starts here (after `{%` and its sign), where the opening tag ends.
    private func rawBeginEnd(from index: Int) -> Int? {
        var i = skipWhitespace(from: index)
        guard matches("raw", at: i) else { return nil }
        i = skipWhitespace(from: i + 3)
        if matches("-%}", at: i) { return skipWhitespace(from: i + 3) }
        if matches("%}", at: i) { return i + 2 }
        return nil
    }

    /// Where a tag closer starting at `index` ends (`+%}`, `-%}` plus whitespace, `%}` plus a trimmed newline).
    private func closerEnd(at index: Int, close: String, trims: Bool) -> Int? {
        if matches("+" + close, at: index) { return index + 1 + close.unicodeScalars.count }
        if matches("-" + close, at: index) { return skipWhitespace(from: index + 1 + close.unicodeScalars.count) }
        if matches(close, at: index) {
            let end = index + close.unicodeScalars.count
            if trims && options.trimBlocks && at(end) == "\n" { return end + 1 }
            return end
        }
        return nil
    }

    private mutating func lexRawBody() throws(TemplateError) {
        // Jinja2's lexer stops quietly when a raw block (or comment) opens at the very end of the source.
        if position == source.count { return }
        var i = position
        while i < source.count {
            if source[i] == "{" && at(i + 1) == "%" {
                var j = i + 2
                var sign: Unicode.Scalar?
                if let next = at(j), next == "-" || next == "+" {
                    sign = next
                    j += 1
                }
                j = skipWhitespace(from: j)
                if matches("endraw", at: j) {
                    j = skipWhitespace(from: j + 6)
                    if let end = closerEnd(at: j, close: "%}", trims: true) {
                        emitData(position..<i, sign: sign, isVariable: false)
                        line += newlines(i..<end)
                        lineStarting = source[end - 1] == "\n"
                        position = end
                        return
                    }
                }
            }
            i += 1
        }
        throw error("missing end of raw directive")
    }

    private mutating func lexComment() throws(TemplateError) {
        if position == source.count { return }
        var i = position
        while i < source.count {
            if let end = closerEnd(at: i, close: "#}", trims: true) {
                line += newlines(position..<end)
                lineStarting = source[end - 1] == "\n"
                position = end
                return
            }
            i += 1
        }
        throw error("missing end of comment tag")
    }

    private mutating func lexTag(block: Bool) throws(TemplateError) {
        let close = block ? "%}" : "}}"
        append(block ? .blockBegin : .variableBegin, "", at: position)
        var balancing: [Unicode.Scalar] = []
        while true {
            guard position < source.count else {
                throw error("unexpected end of template, expected '\(close)'")
            }
            if balancing.isEmpty, let end = closerEnd(at: position, close: close, trims: block) {
                append(block ? .blockEnd : .variableEnd, "", at: position)
                line += newlines(position..<end)
                lineStarting = source[end - 1] == "\n"
                position = end
                return
            }
            let scalar = source[position]
            if scalar.isPythonWhitespace {
                let end = skipWhitespace(from: position)
                line += newlines(position..<end)
                position = end
                continue
            }
            if scalar.isASCIIDigit {
                try lexNumber()
                continue
            }
            if scalar.isIdentifierStart {
                var end = position + 1
                while end < source.count, source[end].isIdentifierContinue { end += 1 }
                append(.name, string(position..<end), at: position)
                position = end
                continue
            }
            if scalar == "'" || scalar == "\"" {
                try lexString(quote: scalar)
                continue
            }
            try lexOperator(&balancing)
        }
    }

    private mutating func lexOperator(_ balancing: inout [Unicode.Scalar]) throws(TemplateError) {
        for op in ["//", "**", "==", "!=", "<=", ">="] where matches(op, at: position) {
            append(.op, op, at: position)
            position += 2
            return
        }
        let scalar = source[position]
        guard "+-/*%~[](){}<>=.:|,;".unicodeScalars.contains(scalar) else {
            throw error("unexpected char '\(Character(scalar))'")
        }
        switch scalar {
        case "(": balancing.append(")")
        case "[": balancing.append("]")
        case "{": balancing.append("}")
        case ")", "]", "}":
            guard let expected = balancing.popLast() else { throw error("unexpected '\(Character(scalar))'") }
            guard expected == scalar else {
                throw error("unexpected '\(Character(scalar))', expected '\(Character(expected))'")
            }
        default: break
        }
        append(.op, String(Character(scalar)), at: position)
        position += 1
    }

    private func digits(from index: Int, where accept: (Unicode.Scalar) -> Bool) -> Int {
        // Digits with single underscores between them, as Python literals allow.
        var i = index
        while i < source.count {
            if accept(source[i]) {
                i += 1
            } else if source[i] == "_", i > index, let next = at(i + 1), accept(next) {
                i += 1
            } else {
                break
            }
        }
        return i
    }

    private mutating func lexNumber() throws(TemplateError) {
        let start = position
        if source[start] == "0", let marker = at(start + 1), "xXoObB".unicodeScalars.contains(marker) {
            let radix = marker == "x" || marker == "X" ? 16 : (marker == "o" || marker == "O" ? 8 : 2)
            let end = digits(from: start + 2) { $0.value < 128 && Int(String($0), radix: radix) != nil }
            let text = string(start + 2..<end).replacingUnderscores()
            guard end > start + 2, let value = Int(text, radix: radix) else { throw error("invalid integer literal") }
            append(.integer, String(value), at: start)
            position = end
            return
        }
        var end = digits(from: start) { $0.isASCIIDigit }
        var isFloat = false
        if at(end) == ".", let next = at(end + 1), next.isASCIIDigit {
            end = digits(from: end + 1) { $0.isASCIIDigit }
            isFloat = true
        }
        if let e = at(end), e == "e" || e == "E" {
            var i = end + 1
            if let sign = at(i), sign == "+" || sign == "-" { i += 1 }
            if let d = at(i), d.isASCIIDigit {
                end = digits(from: i) { $0.isASCIIDigit }
                isFloat = true
            }
        }
        let text = string(start..<end).replacingUnderscores()
        if !isFloat {
            // Python rejects "007"; Jinja2 lexes it as 0 then 07, which fails to parse either way.
            if text.count > 1, text.hasPrefix("0"), text.contains(where: { $0 != "0" }) {
                throw error("invalid integer literal '\(text)'")
            }
            guard Int(text) != nil else {
                throw TemplateError(
                    kind: .limit,
                    message: "integer literal \(text) is outside the 64-bit range templates support "
                        + "(\(Int.min) to \(Int.max)); Python's integers have no limit: pass such a number as a string",
                    templateName: name,
                    line: line
                )
            }
        }
        append(isFloat ? .float : .integer, text, at: start)
        position = end
    }

    private mutating func lexString(quote: Unicode.Scalar) throws(TemplateError) {
        let startLine = line
        var i = position + 1
        var value = String.UnicodeScalarView()
        while true {
            guard i < source.count else { throw error("unexpected char '\(Character(quote))'") }
            let scalar = source[i]
            if scalar == quote { break }
            if scalar == "\n" { line += 1 }
            guard scalar == "\\", i + 1 < source.count else {
                value.append(scalar)
                i += 1
                continue
            }
            let escape = source[i + 1]
            i += 2
            switch escape {
            case "n": value.append("\n")
            case "t": value.append("\t")
            case "r": value.append("\r")
            case "\\": value.append("\\")
            case "'": value.append("'")
            case "\"": value.append("\"")
            case "a": value.append("\u{07}")
            case "b": value.append("\u{08}")
            case "f": value.append("\u{0C}")
            case "v": value.append("\u{0B}")
            case "\n":
                line += 1
            case "0"..."7":
                var code = UInt32(escape.value - 48)
                var count = 1
                while count < 3, let d = at(i), ("0"..."7").contains(d) {
                    code = code * 8 + (d.value - 48)
                    i += 1
                    count += 1
                }
                value.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            case "x", "u", "U":
                let width = escape == "x" ? 2 : (escape == "u" ? 4 : 8)
                guard i + width <= source.count, let code = UInt32(string(i..<i + width), radix: 16),
                    let decoded = Unicode.Scalar(code)
                else { throw error("invalid \\\(Character(escape)) escape in string literal") }
                value.append(decoded)
                i += width
            default:
                // Python keeps unknown escapes as written.
                value.append("\\")
                value.append(escape)
            }
        }
        append(.string, String(value), at: position, line: startLine)
        position = i + 1
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { filter { $0 != "_" } }
}

extension Unicode.Scalar {
    /// Python's `str.isspace()`, which `\s` and `str.strip()` follow.
    var isPythonWhitespace: Bool {
        switch value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    var isASCIIDigit: Bool { value >= 48 && value <= 57 }
    var isASCIIHexDigit: Bool { isASCIIDigit || (value >= 65 && value <= 70) || (value >= 97 && value <= 102) }

    var isIdentifierStart: Bool {
        self == "_"
            || (value < 128
                ? (value >= 65 && value <= 90) || (value >= 97 && value <= 122)
                : properties.isXIDStart)
    }

    var isIdentifierContinue: Bool {
        isIdentifierStart || isASCIIDigit || (value >= 128 && properties.isXIDContinue)
    }
}
