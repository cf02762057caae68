#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Python `str` methods the filters rely on, working on code points as Python does.

/// `str.strip()` / `lstrip()` / `rstrip()`; without `chars`, strips Python whitespace.
func pythonStrip(_ text: String, chars: String?, leading: Bool = true, trailing: Bool = true) -> String {
    let scalars = text.unicodeScalars
    let set = chars.map { Set($0.unicodeScalars) }
    func strippable(_ scalar: Unicode.Scalar) -> Bool { set?.contains(scalar) ?? scalar.isPythonWhitespace }
    var start = scalars.startIndex
    var end = scalars.endIndex
    if leading { while start < end, strippable(scalars[start]) { start = scalars.index(after: start) } }
    if trailing {
        while end > start {
            let previous = scalars.index(before: end)
            guard strippable(scalars[previous]) else { break }
            end = previous
        }
    }
    if start == scalars.startIndex && end == scalars.endIndex { return text }
    return String(scalars[start..<end])
}

func makeString<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
}

/// Start offsets of non-overlapping occurrences, left to right.
func pythonOccurrences(_ haystack: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> [Int] {
    guard !needle.isEmpty, needle.count <= haystack.count else { return [] }
    var found: [Int] = []
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == needle[0] && haystack[i..<i + needle.count].elementsEqual(needle) {
            found.append(i)
            i += needle.count
        } else {
            i += 1
        }
    }
    return found
}

/// `str.split(sep, maxsplit)` and `rsplit`.
func pythonSplit(_ text: String, separator: String?, maxSplit: Int, fromRight: Bool) -> [String] {
    let scalars = Array(text.unicodeScalars)
    let limit = maxSplit < 0 ? Int.max : maxSplit
    guard let separator else {
        // Runs of whitespace separate; leading and trailing whitespace yield nothing.
        var words: [Range<Int>] = []
        var i = 0
        while i < scalars.count {
            while i < scalars.count, scalars[i].isPythonWhitespace { i += 1 }
            guard i < scalars.count else { break }
            var j = i
            while j < scalars.count, !scalars[j].isPythonWhitespace { j += 1 }
            words.append(i..<j)
            i = j
        }
        guard maxSplit >= 0, words.count > maxSplit + 1 else { return words.map { makeString(scalars[$0]) } }
        if maxSplit == 0 {
            return [pythonStrip(text, chars: nil, leading: !fromRight, trailing: fromRight)]
        }
        if fromRight {
            let kept = words.suffix(maxSplit)
            let head = pythonStrip(makeString(scalars[0..<kept.first!.lowerBound]), chars: nil, leading: false)
            return [head] + kept.map { makeString(scalars[$0]) }
        }
        let kept = words.prefix(maxSplit)
        let tail = pythonStrip(makeString(scalars[kept.last!.upperBound...]), chars: nil, trailing: false)
        return kept.map { makeString(scalars[$0]) } + [tail]
    }
    let needle = Array(separator.unicodeScalars)
    var cuts = pythonOccurrences(scalars, needle)
    if cuts.count > limit { cuts = fromRight ? Array(cuts.suffix(limit)) : Array(cuts.prefix(limit)) }
    var parts: [String] = []
    var start = 0
    for cut in cuts {
        parts.append(makeString(scalars[start..<cut]))
        start = cut + needle.count
    }
    parts.append(makeString(scalars[start...]))
    return parts
}

/// `str.replace(old, new, count)`; an empty `old` inserts `new` around every code point, as Python does.
func pythonReplace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
    let scalars = Array(text.unicodeScalars)
    let limit = count < 0 ? Int.max : count
    var out = String.UnicodeScalarView()
    if old.isEmpty {
        var done = 0
        for scalar in scalars {
            if done < limit {
                out.append(contentsOf: new.unicodeScalars)
                done += 1
            }
            out.append(scalar)
        }
        if done < limit { out.append(contentsOf: new.unicodeScalars) }
        return String(out)
    }
    let cuts = pythonOccurrences(scalars, Array(old.unicodeScalars)).prefix(limit)
    var start = 0
    for cut in cuts {
        out.append(contentsOf: scalars[start..<cut])
        out.append(contentsOf: new.unicodeScalars)
        start = cut + old.unicodeScalars.count
    }
    out.append(contentsOf: scalars[start...])
    return String(out)
}

/// `str.lower()`, including Python's final-sigma rule (`ΟΔΟΣ` → `οδος`), which Swift's `lowercased()` lacks.
/// With `droppingFirst`, lower-cases all but the first code point while still letting it give context.
func pythonLower(_ text: String, droppingFirst: Bool = false) -> String {
    guard text.unicodeScalars.contains("\u{3A3}") else {
        return droppingFirst ? makeString(text.unicodeScalars.dropFirst()).lowercased() : text.lowercased()
    }
    let scalars = Array(text.unicodeScalars)
    var out = ""
    for index in (droppingFirst ? 1 : 0)..<scalars.count {
        if scalars[index] == "\u{3A3}" && isFinalSigma(scalars, at: index) {
            out += "\u{3C2}"
        } else {
            out += scalars[index].properties.lowercaseMapping
        }
    }
    return out
}

/// Unicode's Final_Sigma condition: a cased letter before (skipping case-ignorables), none after.
private func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
    var before = index - 1
    while before >= 0 && scalars[before].properties.isCaseIgnorable { before -= 1 }
    guard before >= 0, scalars[before].properties.isCased else { return false }
    var after = index + 1
    while after < scalars.count && scalars[after].properties.isCaseIgnorable { after += 1 }
    return after == scalars.count || !scalars[after].properties.isCased
}

/// `str.capitalize()`: first code point upper-cased, the rest lower-cased.
func pythonCapitalize(_ text: String) -> String {
    guard let first = text.unicodeScalars.first else { return text }
    return first.properties.titlecaseMapping + pythonLower(text, droppingFirst: true)
}

/// Jinja2's `title` upper-cases (rather than title-cases) the first code point of each word.
private func upperFirst(_ text: String) -> String {
    guard let first = text.unicodeScalars.first else { return text }
    return first.properties.uppercaseMapping + pythonLower(makeString(text.unicodeScalars.dropFirst()))
}

/// Jinja2's `title` filter: words start after runs of `-`, whitespace, `(`, `{`, `[` or `<`.
func pythonTitle(_ text: String) -> String {
    var out = ""
    var word = String.UnicodeScalarView()
    func flush() {
        if !word.isEmpty { out += upperFirst(String(word)) }
        word = String.UnicodeScalarView()
    }
    for scalar in text.unicodeScalars {
        if scalar.isPythonWhitespace || "-({[<".unicodeScalars.contains(scalar) {
            flush()
            out.unicodeScalars.append(scalar)
        } else {
            word.append(scalar)
        }
    }
    flush()
    return out
}

/// Python's `str.title()` method (not the filter): a word starts after any uncased character.
func pythonStrTitle(_ text: String) -> String {
    var out = ""
    var previousCased = false
    let scalars = Array(text.unicodeScalars)
    for (index, scalar) in scalars.enumerated() {
        let cased = scalar.properties.isCased
        if cased && previousCased && scalar == "\u{3A3}" && isFinalSigma(scalars, at: index) {
            out += "\u{3C2}"
        } else if cased {
            out += previousCased ? scalar.properties.lowercaseMapping : scalar.properties.titlecaseMapping
        } else {
            out.unicodeScalars.append(scalar)
        }
        previousCased = cased
    }
    return out
}

/// `str.splitlines()`, which breaks on more than `\n`.
func pythonSplitLines(_ text: String) -> [String] {
    var lines: [String] = []
    var current = String.UnicodeScalarView()
    var previousCR = false
    for scalar in text.unicodeScalars {
        if scalar == "\n" && previousCR {
            previousCR = false
            continue
        }
        previousCR = scalar == "\r"
        switch scalar.value {
        case 0x0A, 0x0D, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
            lines.append(String(current))
            current = String.UnicodeScalarView()
        default:
            current.append(scalar)
        }
    }
    if !current.isEmpty { lines.append(String(current)) }
    return lines
}

/// Python's `\w`: letters, digits and underscore, in Unicode.
func isPythonWordScalar(_ scalar: Unicode.Scalar) -> Bool {
    scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType != nil
}

/// `format % args` for the conversions templates use: s r d i f F e E g G x X o c and %%.
func pythonPercentFormat(_ format: String, _ arguments: Value) throws(RenderFailure) -> String {
    var args: [Value]
    if case .tuple(let items) = arguments { args = items } else { args = [arguments] }
    var next = 0
    var out = ""
    let scalars = Array(format.unicodeScalars)
    var i = 0
    while i < scalars.count {
        let scalar = scalars[i]
        i += 1
        guard scalar == "%" else {
            out.unicodeScalars.append(scalar)
            continue
        }
        // `%(name)s` takes the value of `name` from a mapping argument.
        var mapped: Value?
        if i < scalars.count, scalars[i] == "(" {
            guard case .dict(let mapping) = arguments else { throw .type("format requires a mapping") }
            var depth = 1
            var key = ""
            i += 1
            while i < scalars.count {
                if scalars[i] == "(" { depth += 1 }
                if scalars[i] == ")" {
                    depth -= 1
                    if depth == 0 { break }
                }
                key.unicodeScalars.append(scalars[i])
                i += 1
            }
            guard i < scalars.count else { throw .value("incomplete format key") }
            i += 1
            guard let value = mapping[key] else { throw .type("KeyError: '\(key)'") }
            mapped = value
        }
        var flags = ""
        while i < scalars.count, "-+ 0#".unicodeScalars.contains(scalars[i]) {
            flags.unicodeScalars.append(scalars[i])
            i += 1
        }
        var width = ""
        while i < scalars.count, scalars[i].isASCIIDigit {
            width.unicodeScalars.append(scalars[i])
            i += 1
        }
        var precision: String?
        if i < scalars.count, scalars[i] == "." {
            i += 1
            var digits = ""
            while i < scalars.count, scalars[i].isASCIIDigit {
                digits.unicodeScalars.append(scalars[i])
                i += 1
            }
            _ = try formatSize(digits, "precision")
            precision = digits
        }
        guard i < scalars.count else { throw .value("incomplete format") }
        let conversion = scalars[i]
        i += 1
        if conversion == "%" {
            out += "%"
            continue
        }
        let argument: Value
        if let mapped {
            argument = mapped
        } else {
            guard next < args.count else { throw .type("not enough arguments for format string") }
            argument = args[next]
            next += 1
        }
        var body: String
        switch conversion {
        case "s": body = try argument.pythonString()
        case "r": body = try argument.pythonRepr()
        case "d", "i", "x", "X", "o":
            guard let number = argument.integer ?? argument.numeric.map({ Int($0) }) else {
                throw .type("%\(Character(conversion)) format: a real number is required, not \(argument.typeName)")
            }
            let radix = conversion == "x" || conversion == "X" ? 16 : (conversion == "o" ? 8 : 10)
            body = String(number.magnitude, radix: radix, uppercase: conversion == "X")
            if number < 0 { body = "-" + body } else if flags.contains("+") { body = "+" + body }
        case "f", "F", "e", "E", "g", "G":
            guard let number = argument.numeric else {
                throw .type("must be real number, not \(argument.typeName)")
            }
            body = cFormat("%" + (flags.contains("+") ? "+" : "") + ".\(precision ?? "6")" + String(conversion), number)
        case "c":
            guard case .string(let text) = argument else { throw .type("%c requires a character") }
            body = text
        default:
            throw .value("unsupported format character '\(Character(conversion))'")
        }
        if conversion == "s" || conversion == "r", let precision, let limit = Int(precision) {
            body = makeString(body.unicodeScalars.prefix(limit))
        }
        if let width = try formatSize(width, "width"), body.unicodeScalars.count < width {
            let padding = width - body.unicodeScalars.count
            if flags.contains("-") {
                body += String(repeating: " ", count: padding)
            } else if flags.contains("0") && conversion != "s" && conversion != "r" {
                let negative = body.hasPrefix("-") || body.hasPrefix("+")
                let sign = negative ? String(body.removeFirst()) : ""
                body = sign + String(repeating: "0", count: padding) + body
            } else {
                body = String(repeating: " ", count: padding) + body
            }
        }
        out += body
    }
    // Python treats a lone list or dict argument as a mapping, which need not be consumed.
    var mappingLike = false
    switch arguments {
    case .list, .dict: mappingLike = true
    default: break
    }
    if next < args.count && !(mappingLike && next == 0) {
        throw .type("not all arguments converted during string formatting")
    }
    return out
}

/// The width or precision `digits` of a format spec (nil when there are none). One above the
/// size a rendered string may reach, or beyond any integer, is a limit error rather than an
/// allocation of that size (`'{:.99999999999f}'.format(1.5)`).
func formatSize(_ digits: String, _ what: String) throws(RenderFailure) -> Int? {
    guard !digits.isEmpty else { return nil }
    guard let size = Int(digits) else { throw .limit("format \(what) \(digits) is too large") }
    return try TemplateRenderer.checkedSize(size, "format \(what)")
}

/// C's printf for one double, which rounds exactly as Python's float formatting does.
func cFormat(_ format: String, _ number: Double) -> String {
    var buffer = [CChar](repeating: 0, count: 512)
    let written = withVaList([number]) { vsnprintf(&buffer, buffer.count, format, $0) }
    if written >= buffer.count {
        buffer = [CChar](repeating: 0, count: Int(written) + 1)
        _ = withVaList([number]) { vsnprintf(&buffer, buffer.count, format, $0) }
    }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// `str.format(*args, **kwargs)` with Python's format-spec mini-language for strings, ints and floats.
/// Nested fields inside a spec are not supported.
func pythonStrFormat(
    _ format: String,
    _ positional: [Value],
    _ keyword: [String: Value]
) throws(RenderFailure) -> String {
    let scalars = Array(format.unicodeScalars)
    var out = ""
    var automatic = 0
    var i = 0
    while i < scalars.count {
        let scalar = scalars[i]
        if scalar == "}" {
            guard i + 1 < scalars.count, scalars[i + 1] == "}" else {
                throw .value("Single '}' encountered in format string")
            }
            out += "}"
            i += 2
            continue
        }
        guard scalar == "{" else {
            out.unicodeScalars.append(scalar)
            i += 1
            continue
        }
        if i + 1 < scalars.count && scalars[i + 1] == "{" {
            out += "{"
            i += 2
            continue
        }
        guard let close = scalars[(i + 1)...].firstIndex(of: "}") else {
            throw .value("Single '{' encountered in format string")
        }
        let field = makeString(scalars[(i + 1)..<close])
        i = close + 1
        var name = field
        var spec = ""
        var conversion: Character?
        if let colon = name.firstIndex(of: ":") {
            spec = String(name[name.index(after: colon)...])
            name = String(name[..<colon])
        }
        if let bang = name.firstIndex(of: "!") {
            conversion = name[name.index(after: bang)...].first
            name = String(name[..<bang])
        }
        // The first part names an argument; `.attr` and `[key]` then look inside it.
        let head = String(name.prefix { $0 != "." && $0 != "[" })
        var value: Value
        if head.isEmpty {
            guard automatic < positional.count else {
                throw .value("Replacement index \(automatic) out of range for positional args tuple")
            }
            value = positional[automatic]
            automatic += 1
        } else if head.allSatisfy({ $0.isASCII && $0.isNumber }), let index = Int(head) {
            guard index < positional.count else {
                throw .value("Replacement index \(index) out of range for positional args tuple")
            }
            value = positional[index]
        } else {
            guard let named = keyword[head] else { throw .value("KeyError: '\(head)'") }
            value = named
        }
        var rest = name.dropFirst(head.count)
        while let first = rest.first {
            var key: String
            if first == "." {
                rest = rest.dropFirst()
                key = String(rest.prefix { $0 != "." && $0 != "[" })
                rest = rest.dropFirst(key.count)
                // `.name` is Python getattr, which sees namespace attributes but not dict items.
                guard case .namespace(let namespace) = value, let attribute = namespace.attributes[key] else {
                    throw .type("'\(value.typeName)' object has no attribute '\(key)'")
                }
                value = attribute
                continue
            } else {
                guard let end = rest.firstIndex(of: "]") else { throw .value("Missing ']' in format string") }
                key = String(rest[rest.index(after: rest.startIndex)..<end])
                rest = rest[rest.index(after: end)...]
            }
            switch value {
            case .dict(let dict) where dict[key] != nil: value = dict[key]!
            case .list(let items), .tuple(let items):
                guard let index = Int(key), index >= 0, index < items.count else {
                    throw .type("list indices must be integers or in range")
                }
                value = items[index]
            default: throw .value("cannot look up '\(key)' in a \(value.typeName)")
            }
        }
        if case .undefined(let undefined) = value { throw .undefined(undefined) }
        switch conversion {
        case "r": value = .string(try value.pythonRepr())
        case "s": value = .string(try value.pythonString())
        case nil: break
        default: throw .value("Unknown conversion specifier")
        }
        out += try formatSpec(value, spec)
    }
    return out
}

/// Python's `format(value, spec)` for str, int, bool and float.
func formatSpec(_ value: Value, _ spec: String) throws(RenderFailure) -> String {
    if spec.isEmpty { return try value.pythonString() }
    var chars = Array(spec)
    var fill: Character = " "
    var explicitFill = false
    var align: Character?
    if chars.count >= 2 && "<>^=".contains(chars[1]) {
        fill = chars[0]
        explicitFill = true
        align = chars[1]
        chars.removeFirst(2)
    } else if let first = chars.first, "<>^=".contains(first) {
        align = first
        chars.removeFirst()
    }
    var sign: Character = "-"
    var explicitSign = false
    if let first = chars.first, "+- ".contains(first) {
        sign = first
        explicitSign = true
        chars.removeFirst()
    }
    var alternate = false
    if chars.first == "#" {
        alternate = true
        chars.removeFirst()
    }
    var zeroFlag = false
    if chars.first == "0" {
        zeroFlag = true
        chars.removeFirst()
    }
    var widthText = ""
    while let first = chars.first, first.isASCII, first.isNumber {
        widthText.append(first)
        chars.removeFirst()
    }
    var grouping: Character?
    if let first = chars.first, first == "," || first == "_" {
        grouping = first
        chars.removeFirst()
    }
    var precision: Int?
    if chars.first == "." {
        chars.removeFirst()
        var digits = ""
        while let first = chars.first, first.isASCII, first.isNumber {
            digits.append(first)
            chars.removeFirst()
        }
        guard let number = try formatSize(digits, "precision") else {
            throw .value("Format specifier missing precision")
        }
        precision = number
    }
    guard chars.count <= 1 else { throw .value("Invalid format specifier '\(spec)'") }
    var type = chars.first
    let width = try formatSize(widthText, "width") ?? 0
    if zeroFlag && !explicitFill { fill = "0" }
    if let grouping, type == "n" { throw .value("Cannot specify '\(grouping)' with 'n'.") }
    if let grouping, let type, "xXob".contains(type), grouping == "," {
        throw .value("Cannot specify ',' with '\(type)'.")
    }

    var body: String
    var signText = ""
    var isNumber = true
    var groupSize = 3
    switch value {
    case .string(let text):
        guard type == nil || type == "s" else {
            throw .value("Unknown format code '\(type!)' for object of type 'str'")
        }
        guard !explicitSign else { throw .value("Sign not allowed in string format specifier") }
        guard !alternate else { throw .value("Alternate form (#) not allowed in string format specifier") }
        guard grouping == nil, align != "=" else { throw .value("Invalid format specifier for str") }
        zeroFlag = false
        body = precision.map { makeString(text.unicodeScalars.prefix($0)) } ?? text
        isNumber = false
    case .int, .bool:
        let number = value.integer!
        if type == nil || type == "n" { type = "d" }
        switch type! {
        case "d", "x", "X", "o", "b":
            guard precision == nil else { throw .value("Precision not allowed in integer format specifier") }
            let radix = type == "d" ? 10 : (type == "o" ? 8 : (type == "b" ? 2 : 16))
            body = String(number.magnitude, radix: radix, uppercase: type == "X")
            groupSize = radix == 10 ? 3 : 4
            if let grouping { body = groupDigits(body, String(grouping), every: groupSize) }
            if alternate && radix != 10 { body = "0" + String(type!) + body }
            if number < 0 { signText = "-" }
        case "c":
            body = Unicode.Scalar(UInt32(clamping: max(number, 0))).map { String(Character($0)) } ?? ""
        case "e", "E", "f", "F", "g", "G", "%":
            return try formatSpec(.double(Double(number)), spec)
        case "s":
            throw .value("Unknown format code 's' for object of type 'int'")
        default:
            throw .value("Unknown format code '\(type!)' for object of type 'int'")
        }
    case .double(let number):
        if number.sign == .minus && !number.isNaN { signText = "-" }
        let magnitude = abs(number)
        if type == "n" { type = "g" }
        switch type {
        case nil:
            if let precision, magnitude.isFinite {
                body = shortFloat(magnitude, precision: max(precision, 1))
            } else {
                body = formatPythonFloat(magnitude)
            }
        case "f", "F", "e", "E", "g", "G":
            body = cFormat("%\(alternate ? "#" : "").\(precision ?? 6)\(type!)", magnitude)
        case "%":
            body = cFormat("%.\(precision ?? 6)f", magnitude * 100) + "%"
        default:
            throw .value("Unknown format code '\(type!)' for object of type 'float'")
        }
        if magnitude.isInfinite { body = type == "F" || type == "E" || type == "G" ? "INF" : "inf" }
        if number.isNaN { body = type == "F" || type == "E" || type == "G" ? "NAN" : "nan" }
        if let grouping, let dot = body.firstIndex(where: { !$0.isNumber }) ?? Optional(body.endIndex) {
            body = groupDigits(String(body[..<dot]), String(grouping), every: 3) + body[dot...]
        }
    case .undefined(let undefined):
        throw .undefined(undefined)
    default:
        throw .type("unsupported format string passed to \(value.typeName).__format__")
    }
    if isNumber && signText.isEmpty {
        if sign == "+" { signText = "+" } else if sign == " " { signText = " " }
    }
    if zeroFlag && align == nil && isNumber { align = "=" }
    // Sign-aware zero padding also groups the padding digits.
    if let grouping, zeroFlag, fill == "0", align == "=", let first = body.first, first.isHexDigit {
        let isDigit: (Character) -> Bool = { groupSize == 4 ? $0.isHexDigit : $0.isNumber }
        let end = body.firstIndex(where: { !isDigit($0) && $0 != grouping }) ?? body.endIndex
        var digits = body[..<end].filter { $0 != grouping }
        let tail = body[end...]
        var grouped = groupDigits(String(digits), String(grouping), every: groupSize)
        while signText.count + grouped.count + tail.count < width {
            digits = "0" + digits
            grouped = groupDigits(String(digits), String(grouping), every: groupSize)
        }
        body = grouped + tail
    }
    let length = signText.unicodeScalars.count + body.unicodeScalars.count
    guard width > length else { return signText + body }
    let padding = width - length
    let pad = String(repeating: fill, count: padding)
    switch align ?? (isNumber ? ">" : "<") {
    case "<": return signText + body + pad
    case "^":
        let left = padding / 2
        return String(repeating: fill, count: left) + signText + body + String(repeating: fill, count: padding - left)
    case "=": return signText + pad + body
    default: return pad + signText + body
    }
}

/// No type with a precision: like 'g', but a fixed-point result keeps a digit after the point, and
/// switches to an exponent one place earlier to leave room for it (CPython's `Py_DTSF_ADD_DOT_0`).
private func shortFloat(_ magnitude: Double, precision: Int) -> String {
    let scientific = cFormat("%.\(precision - 1)e", magnitude)
    let exponent = Int(scientific.split(separator: "e").last ?? "0") ?? 0
    let decimalPoint = exponent + 1
    if magnitude != 0 && (decimalPoint <= -4 || decimalPoint > precision - 1) {
        var parts = scientific.split(separator: "e", maxSplits: 1).map(String.init)
        if parts[0].contains(".") {
            while parts[0].hasSuffix("0") { parts[0].removeLast() }
            if parts[0].hasSuffix(".") { parts[0].removeLast() }
        }
        return parts[0] + "e" + parts[1]
    }
    var fixed = cFormat("%.\(max(precision - decimalPoint, 1))f", magnitude)
    while fixed.hasSuffix("0") && !fixed.hasSuffix(".0") { fixed.removeLast() }
    return fixed
}

private func groupDigits(_ digits: String, _ separator: String, every size: Int) -> String {
    var out = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % size == 0 { out += separator }
        out.append(digit)
    }
    return out
}
