/// Python's `textwrap.wrap(text, width, expand_tabs=False, replace_whitespace=False,
/// break_long_words=…, break_on_hyphens=…)`, as the `wordwrap` filter uses it: the text split into
/// chunks (runs of whitespace, words, words broken after their hyphens, em-dashes), then packed
/// into lines of at most `width` characters, whitespace dropped at the line ends.
func pythonTextWrap(
    _ text: String,
    width: Int,
    breakLongWords: Bool,
    breakOnHyphens: Bool
) throws(RenderFailure) -> [String] {
    guard width > 0 else { throw .value("invalid width \(width) (must be > 0)") }
    var chunks = TextWrapChunks(Array(text.unicodeScalars), breakOnHyphens: breakOnHyphens).all()
    chunks.reverse()
    var lines: [String] = []
    while !chunks.isEmpty {
        var line: [[Unicode.Scalar]] = []
        var length = 0
        // A line never starts with whitespace, except the first.
        if isBlank(chunks[chunks.count - 1]) && !lines.isEmpty { chunks.removeLast() }
        while let last = chunks.last, length + last.count <= width {
            line.append(chunks.removeLast())
            length += last.count
        }
        if let last = chunks.last, last.count > width {
            let spaceLeft = width - length
            if breakLongWords {
                var end = spaceLeft
                if breakOnHyphens && last.count > spaceLeft,
                    let hyphen = last[..<spaceLeft].lastIndex(of: "-"), hyphen > 0,
                    last[..<hyphen].contains(where: { $0 != "-" })
                {
                    // Break after the last hyphen that has something other than hyphens before it.
                    end = hyphen + 1
                }
                line.append(Array(last[..<end]))
                chunks[chunks.count - 1] = Array(last[end...])
            } else if line.isEmpty {
                line.append(chunks.removeLast())
            }
        }
        if let last = line.last, isBlank(last) { line.removeLast() }
        if !line.isEmpty { lines.append(makeString(line.joined())) }
    }
    return lines
}

/// Whether `chunk.strip() == ''` in Python.
private func isBlank(_ chunk: [Unicode.Scalar]) -> Bool {
    chunk.allSatisfy(\.isPythonWhitespace)
}

/// `TextWrapper.wordsep_re.split` (or `wordsep_simple_re` without hyphen breaking), the empty
/// pieces dropped.
private struct TextWrapChunks {
    let text: [Unicode.Scalar]
    let breakOnHyphens: Bool

    init(_ text: [Unicode.Scalar], breakOnHyphens: Bool) {
        self.text = text
        self.breakOnHyphens = breakOnHyphens
    }

    /// textwrap's whitespace: ASCII only.
    func isSpace(_ index: Int) -> Bool {
        guard index >= 0 && index < text.count else { return false }
        switch text[index] {
        case "\t", "\n", "\u{0B}", "\u{0C}", "\r", " ": return true
        default: return false
        }
    }

    /// `\w`
    func isWord(_ index: Int) -> Bool {
        index >= 0 && index < text.count && isPythonWordScalar(text[index])
    }

    /// `[^\d\W]`: a word character that is not a decimal digit.
    func isLetter(_ index: Int) -> Bool {
        isWord(index) && text[index].properties.generalCategory != .decimalNumber
    }

    /// `[\w!"\'&.,?]`
    func isWordPunctuation(_ index: Int) -> Bool {
        guard index >= 0 && index < text.count else { return false }
        return isWord(index) || "!\"'&.,?".unicodeScalars.contains(text[index])
    }

    func isHyphen(_ index: Int) -> Bool { index >= 0 && index < text.count && text[index] == "-" }

    /// `-{2,}\w` at `index`: the end of the hyphens when it matches.
    func emDash(at index: Int) -> Int? {
        var end = index
        while isHyphen(end) { end += 1 }
        return end - index >= 2 && isWord(end) ? end : nil
    }

    func all() -> [[Unicode.Scalar]] {
        var chunks: [[Unicode.Scalar]] = []
        var position = 0
        while position < text.count {
            let end = chunkEnd(from: position)
            chunks.append(Array(text[position..<end]))
            position = end
        }
        return chunks
    }

    /// Where the chunk starting at `start` ends.
    func chunkEnd(from start: Int) -> Int {
        if isSpace(start) {
            var end = start
            while isSpace(end) { end += 1 }
            return end
        }
        guard breakOnHyphens else {
            var end = start
            while end < text.count && !isSpace(end) { end += 1 }
            return end
        }
        // An em-dash between words: (?<=wp) -{2,} (?=\w)
        if isWordPunctuation(start - 1), let end = emDash(at: start) { return end }
        // A word, as short as one of its endings allows: nws+? then a hyphen that breaks it,
        // the end of the word, or an em-dash after it.
        var end = start + 1
        while true {
            // A hyphenated word: -(?: (?<=lt{2}-) | (?<=lt-lt-)) (?= lt -? lt)
            if isHyphen(end)
                && ((isLetter(end - 2) && isLetter(end - 1))
                    || (isLetter(end - 3) && isHyphen(end - 2) && isLetter(end - 1)))
                && isLetter(end + 1)
                && (isLetter(end + 2) || (isHyphen(end + 2) && isLetter(end + 3)))
            {
                return end + 1
            }
            // The end of the word: (?=ws|\Z)
            if end == text.count || isSpace(end) { return end }
            // An em-dash: (?<=wp) (?=-{2,}\w)
            if isWordPunctuation(end - 1) && emDash(at: end) != nil { return end }
            end += 1
        }
    }
}
