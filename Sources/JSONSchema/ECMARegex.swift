import Foundation

/// An ECMA-262 regular expression (as `pattern` and `patternProperties` use them), run by ICU
/// through `NSRegularExpression` after translating the places where the two dialects differ:
///
/// - `\d`, `\D`, `\w`, `\W` are ASCII-only in ECMA-262 (ICU makes them Unicode-aware): they become
///   explicit ASCII classes, also inside `[...]` (where the negated forms stay ICU's).
/// - `$` outside a class means "end of input" in ECMA-262 but "end, or before a final line break"
///   in ICU: it becomes `\z`.
/// - Inside a class, `[` and `&` are literal in ECMA-262 but start nested sets and set operators in
///   ICU: they are escaped. `[^]` (any character) becomes `[\s\S]`; `[]` (nothing) becomes `(?!)`.
/// - `\u{…}` code point escapes become ICU's `\x{…}`; `\cX` control escapes are passed through.
///
/// Matching is a search (patterns are not implicitly anchored) over Unicode code points, as with
/// ECMA-262's `u` flag. Remaining differences: ICU accepts some syntax ECMA-262 rejects (possessive
/// quantifiers, `\A`, inline flags), and `\b` and `\s` use ICU's Unicode-aware definitions.
final class ECMARegex: @unchecked Sendable {
    // @unchecked: NSRegularExpression is immutable after creation and documented as safe to use
    // from several threads at once.
    let source: String
    private let expression: NSRegularExpression

    /// Compiles `source`, or returns nil when it is not a valid pattern.
    init?(_ source: String) {
        self.source = source
        guard let translated = Self.translate(source),
            let expression = try? NSRegularExpression(pattern: translated, options: [])
        else { return nil }
        self.expression = expression
    }

    /// Whether the pattern matches anywhere in `text`.
    func matches(_ text: String) -> Bool {
        let range = NSRange(location: 0, length: text.utf16.count)
        return expression.firstMatch(in: text, options: [], range: range) != nil
    }

    /// The ICU pattern equivalent to the ECMA-262 `source`, or nil when `source` is malformed
    /// in a way ICU would not notice (a dangling escape).
    static func translate(_ source: String) -> String? {
        let characters = Array(source.unicodeScalars)
        var output = ""
        var index = 0
        var inClass = false
        while index < characters.count {
            let character = characters[index]
            if character == "\\" {
                guard index + 1 < characters.count else { return nil }
                let next = characters[index + 1]
                index += 2
                switch next {
                case "d": output += inClass ? "0-9" : "[0-9]"
                case "D": output += inClass ? "\\D" : "[^0-9]"
                case "w": output += inClass ? "a-zA-Z0-9_" : "[a-zA-Z0-9_]"
                case "W": output += inClass ? "\\W" : "[^a-zA-Z0-9_]"
                case "u" where index < characters.count && characters[index] == "{":
                    output += "\\x"
                default:
                    output.unicodeScalars.append("\\")
                    output.unicodeScalars.append(next)
                }
                continue
            }
            index += 1
            if inClass {
                switch character {
                case "]": inClass = false
                case "[", "&": output += "\\"
                default: break
                }
                output.unicodeScalars.append(character)
                continue
            }
            switch character {
            case "[":
                if index < characters.count, characters[index] == "]" {
                    output += "(?!)"
                    index += 1
                } else if index + 1 < characters.count, characters[index] == "^", characters[index + 1] == "]" {
                    output += "[\\s\\S]"
                    index += 2
                } else {
                    inClass = true
                    output += "["
                    // A `^` right after `[` negates; a `]` right after the opening is literal in ICU but
                    // closes an empty class in ECMA-262 (handled above), so only `^` needs copying here.
                    if index < characters.count, characters[index] == "^" {
                        output += "^"
                        index += 1
                    }
                }
            case "$":
                output += "\\z"
            default:
                output.unicodeScalars.append(character)
            }
        }
        return output
    }
}
