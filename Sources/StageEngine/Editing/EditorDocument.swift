import Foundation
import ModelProviders

/// A place in a document as editors count it: 0-based line, and 0-based column in UTF-16 code
/// units (the Language Server Protocol's default position encoding).
public struct TextPosition: Sendable, Hashable, Comparable {
    public var line: Int
    public var character: Int

    public init(line: Int, character: Int) {
        self.line = line
        self.character = character
    }

    public static func < (left: TextPosition, right: TextPosition) -> Bool {
        (left.line, left.character) < (right.line, right.character)
    }
}

/// A span of a document, its end excluded.
public struct TextRange: Sendable, Hashable {
    public var start: TextPosition
    public var end: TextPosition

    public init(_ start: TextPosition, _ end: TextPosition) {
        self.start = start
        self.end = end
    }

    /// The whole of line `line` (0-based) up to `length` UTF-16 units.
    static func line(_ line: Int, length: Int) -> TextRange {
        TextRange(TextPosition(line: line, character: 0), TextPosition(line: line, character: length))
    }
}

/// A place in the workspace: a file and a span of it.
public struct WorkspaceLocation: Sendable, Hashable {
    /// Relative to the workspace root.
    public var path: String
    public var range: TextRange
}

/// What a file of the workspace is, by where it lies (and, for YAML and JSON files, by what it holds).
public enum DocumentKind: Sendable, Hashable {
    /// `data/1_raw/templates/<stage>/<id>.txt`.
    case template(GenerationStage, id: String)
    /// `data/1_raw/<stage>_templates.csv`.
    case templateCatalog(GenerationStage)
    /// `data/membership.csv` or `data/cohorts/<cohort>/membership.csv`.
    case membership
    /// `stagerunner.yaml`.
    case configuration
    /// A YAML or JSON file with `stages`.
    case task
    /// A YAML or JSON file with `tasks`.
    case pipeline
    case other

    /// The kind of the file at `path` (relative to the workspace) holding `text`.
    public static func of(_ path: String, text: String) -> DocumentKind {
        let parts = path.split(separator: "/").map(String.init)
        if parts.count == 5, parts[0] == "data", parts[1] == "1_raw", parts[2] == "templates",
            let stage = GenerationStage(rawValue: parts[3]), parts[4].hasSuffix(".txt")
        {
            return .template(stage, id: String(parts[4].dropLast(4)))
        }
        if parts.count == 3, parts[0] == "data", parts[1] == "1_raw", parts[2].hasSuffix("_templates.csv"),
            let stage = GenerationStage(rawValue: String(parts[2].dropLast("_templates.csv".count)))
        {
            return .templateCatalog(stage)
        }
        if path == "data/membership.csv"
            || (parts.count == 4 && parts[0] == "data" && parts[1] == "cohorts" && parts[3] == "membership.csv")
        {
            return .membership
        }
        if path == WorkspaceConfiguration.fileName { return .configuration }
        let lower = path.lowercased()
        guard lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") || lower.hasSuffix(".json") else { return .other }
        // A top-level `stages:` or `tasks:` key (YAML), or member (JSON).
        for line in text.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("stages:") || line.hasPrefix("\"stages\"") || line.contains("\"stages\":") {
                return .task
            }
            if line.hasPrefix("tasks:") || line.hasPrefix("\"tasks\"") || line.contains("\"tasks\":") {
                return .pipeline
            }
        }
        return .other
    }
}

/// A document as an editor holds it: its path in the workspace and its text, unsaved edits included.
public struct EditorDocument: Sendable {
    public var path: String
    public var text: String
    public let kind: DocumentKind
    /// The lines, without their line breaks.
    public let lines: [Substring]

    public init(path: String, text: String) {
        self.path = path
        self.text = text
        kind = DocumentKind.of(path, text: text)
        // "\r\n" is one Character: lines end at either.
        lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    }

    /// Line `line` (0-based), empty past the end.
    func line(_ line: Int) -> Substring { lines.indices.contains(line) ? lines[line] : "" }

    /// The UTF-16 column of a character index in a line.
    static func column(of index: Substring.Index, in line: Substring) -> Int {
        line.utf16.distance(from: line.startIndex, to: index)
    }

    /// The character index of a UTF-16 column in a line (clamped to it).
    static func index(ofColumn column: Int, in line: Substring) -> Substring.Index {
        let utf16 = line.utf16
        let clamped = min(max(0, column), utf16.count)
        let position = utf16.index(utf16.startIndex, offsetBy: clamped)
        return String.Index(position, within: line) ?? line.endIndex
    }

    /// The range of the first whole-word `word` on `line` at or after `from`, else the whole line.
    func range(of word: String, onLine line: Int) -> TextRange {
        let text = self.line(line)
        var search = text[...]
        while let found = search.range(of: word) {
            let before = found.lowerBound > text.startIndex ? text[text.index(before: found.lowerBound)] : " "
            let after = found.upperBound < text.endIndex ? text[found.upperBound] : " "
            if !Self.isWordCharacter(before) && !Self.isWordCharacter(after) {
                return TextRange(
                    TextPosition(line: line, character: Self.column(of: found.lowerBound, in: text)),
                    TextPosition(line: line, character: Self.column(of: found.upperBound, in: text))
                )
            }
            search = text[found.upperBound...]
        }
        return .line(line, length: text.utf16.count)
    }

    static func isWordCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber || character == "_" || character == "-"
    }

    /// The word under `position` (letters, digits, `_` and `-`) and its range, or nil.
    func word(at position: TextPosition) -> (text: String, range: TextRange)? {
        let text = line(position.line)
        guard !text.isEmpty else { return nil }
        var start = Self.index(ofColumn: position.character, in: text)
        if start == text.endIndex || !Self.isWordCharacter(text[start]) {
            guard start > text.startIndex, Self.isWordCharacter(text[text.index(before: start)]) else { return nil }
            start = text.index(before: start)
        }
        var end = start
        while start > text.startIndex, Self.isWordCharacter(text[text.index(before: start)]) {
            start = text.index(before: start)
        }
        while end < text.endIndex, Self.isWordCharacter(text[end]) { end = text.index(after: end) }
        return (
            String(text[start..<end]),
            TextRange(
                TextPosition(line: position.line, character: Self.column(of: start, in: text)),
                TextPosition(line: position.line, character: Self.column(of: end, in: text))
            )
        )
    }

    /// The CSV cell under `position` as `CSVTable` reads the document (quoted fields and all):
    /// its column's name in the header, its value, and the row's value of any other column.
    func csvCell(at position: TextPosition) -> CSVCell? {
        let table = CSVTable(text: text, file: path)
        let lineText = line(position.line)
        let cursor = lineText.unicodeScalars.distance(
            from: lineText.startIndex,
            to: Self.index(ofColumn: position.character, in: lineText)
        )
        guard let row = table.rows.first(where: { $0.line == position.line + 1 }),
            let index = row.cells.lastIndex(where: { $0.line == row.line && $0.column <= cursor + 1 })
        else { return nil }
        return CSVCell(header: table.header.map(\.value), row: row, index: index)
    }
}

/// A cell of a CSV document, with what the rest of its row says.
struct CSVCell {
    let header: [String]
    let row: CSVTable.Row
    let index: Int

    /// The name of the cell's column ("" past the header).
    var column: String { header.indices.contains(index) ? header[index] : "" }

    var value: String { row.cells[index].value.trimmingCharacters(in: .whitespaces) }

    /// The row's value in column `name`, or nil.
    func value(of name: String) -> String? {
        guard let at = header.firstIndex(of: name), row.cells.indices.contains(at) else { return nil }
        return row.cells[at].value.trimmingCharacters(in: .whitespaces)
    }
}
