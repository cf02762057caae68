import Foundation
import ModelProviders

/// How a stage produces its output.
public enum Generator: String, Sendable, Hashable, Codable {
    /// Render the template and call a model.
    case llm
    /// Pass the parent's parsed output through (essays only): no prompt, no model call.
    case copy
}

/// One row of a stage's template catalog (`data/1_raw/<stage>_templates.csv`).
public struct TemplateEntry: Sendable, Hashable, Codable {
    public var stage: GenerationStage
    public var id: String
    public var name: String
    public var description: String
    public var generator: Generator
    /// The parser that turns the raw output into `parsed.txt`; required for evaluations.
    public var parser: String?
    public var active: Bool
    /// The template text, relative to the workspace: `data/1_raw/templates/<stage>/<id>.txt`.
    public var file: String
    /// The catalog row, for diagnostics.
    public var line: Int
}

/// The template catalogs of all three stages.
///
/// The CSVs follow a strict schema (protocol/README.md section 8.1): `generator` in every file
/// (`llm` for draft and evaluation, `llm` or `copy` for essay), `parser` required for evaluation
/// and optional for draft, `active` as the last column.
public struct TemplateCatalog: Sendable {
    public private(set) var entries: [GenerationStage: [String: TemplateEntry]] = [:]

    /// The entry for `id` in `stage`.
    public func entry(_ stage: GenerationStage, _ id: String) -> TemplateEntry? { entries[stage]?[id] }

    /// Every entry, in stage then id order.
    public var all: [TemplateEntry] {
        GenerationStage.allCases.flatMap { stage in (entries[stage] ?? [:]).values.sorted { $0.id < $1.id } }
    }

    static func catalogFile(_ stage: GenerationStage) -> String { "data/1_raw/\(stage.rawValue)_templates.csv" }
    static func templateFile(_ stage: GenerationStage, _ id: String) -> String {
        "data/1_raw/templates/\(stage.rawValue)/\(id).txt"
    }

    /// Loads the catalogs; every problem becomes a diagnostic, nothing throws.
    /// - Parameter knownParsers: parser names that exist; nil skips that check.
    static func load(_ workspace: Workspace, knownParsers: Set<String>?) -> (TemplateCatalog, [Diagnostic]) {
        var catalog = TemplateCatalog()
        var diagnostics: [Diagnostic] = []
        for stage in GenerationStage.allCases {
            let file = catalogFile(stage)
            let text: String
            switch workspace.loadText(file) {
            case .text(let contents):
                text = contents
            case .notUTF8:
                diagnostics.append(Workspace.notUTF8(file))
                continue
            case .missing:
                diagnostics.append(
                    Diagnostic(
                        file: file,
                        code: "catalog.missing-file",
                        message: "the \(stage.rawValue) template catalog is missing; create it with the header "
                            + "template_id,template_name,description,\(stage == .evaluation ? "parser," : "")generator,active"
                    )
                )
                continue
            }
            let table = CSVTable(text: text, file: file)
            diagnostics += table.diagnostics
            let (entries, problems) = readEntries(table, stage: stage, workspace: workspace, knownParsers: knownParsers)
            catalog.entries[stage] = entries
            diagnostics += problems
            diagnostics += unlistedTemplateFiles(stage, listed: entries, workspace: workspace)
        }
        return (catalog, diagnostics)
    }

    /// The problems of a catalog's text (saved or not) as loading it would find them.
    static func diagnostics(
        _ text: String,
        stage: GenerationStage,
        workspace: Workspace,
        knownParsers: Set<String>?
    ) -> [Diagnostic] {
        let table = CSVTable(text: text, file: catalogFile(stage))
        let (entries, problems) = readEntries(table, stage: stage, workspace: workspace, knownParsers: knownParsers)
        return table.diagnostics + problems + unlistedTemplateFiles(stage, listed: entries, workspace: workspace)
    }

    private static func readEntries(
        _ table: CSVTable,
        stage: GenerationStage,
        workspace: Workspace,
        knownParsers: Set<String>?
    ) -> ([String: TemplateEntry], [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        let file = table.file
        func problem(
            _ line: Int,
            _ column: Int,
            _ code: String,
            _ message: String,
            _ severity: Diagnostic.Severity = .error
        ) {
            diagnostics.append(
                Diagnostic(file: file, line: line, column: column, severity: severity, code: code, message: message)
            )
        }
        var required = ["template_id", "generator", "active"]
        if stage == .evaluation { required.append("parser") }
        for name in required where table.columnIndex(name) == nil {
            problem(1, 0, "catalog.missing-column", "the header has no '\(name)' column")
        }
        if let active = table.columnIndex("active"), active != table.header.count - 1 {
            problem(1, table.header[active].column, "catalog.active-not-last", "'active' must be the last column")
        }
        if stage == .essay, let parser = table.columnIndex("parser") {
            problem(
                1,
                table.header[parser].column,
                "catalog.unused-parser",
                "essay templates do not use a parser; this column is ignored",
                .warning
            )
        }
        guard let idColumn = table.columnIndex("template_id"), let generatorColumn = table.columnIndex("generator"),
            let activeColumn = table.columnIndex("active")
        else { return ([:], diagnostics) }
        let parserColumn = stage == .essay ? nil : table.columnIndex("parser")
        let nameColumn = table.columnIndex("template_name")
        let descriptionColumn = table.columnIndex("description")

        var entries: [String: TemplateEntry] = [:]
        for row in table.rows {
            let idCell = row.cells[idColumn]
            if let reason = Identifier.problem(idCell.value, kind: "template_id") {
                problem(idCell.line, idCell.column, "catalog.invalid-id", reason)
                continue
            }
            if let earlier = entries[idCell.value] {
                problem(
                    idCell.line,
                    idCell.column,
                    "catalog.duplicate-id",
                    "template '\(idCell.value)' is already listed on line \(earlier.line)"
                )
                continue
            }
            let generatorCell = row.cells[generatorColumn]
            let allowed: [Generator] = stage == .essay ? [.llm, .copy] : [.llm]
            guard let generator = Generator(rawValue: generatorCell.value), allowed.contains(generator) else {
                let choices = allowed.map { "'\($0.rawValue)'" }.joined(separator: " or ")
                problem(
                    generatorCell.line,
                    generatorCell.column,
                    "catalog.invalid-generator",
                    "generator '\(generatorCell.value)' is not valid for \(stage.rawValue) templates; use \(choices)"
                )
                continue
            }
            let activeCell = row.cells[activeColumn]
            guard let active = parseBoolean(activeCell.value) else {
                problem(
                    activeCell.line,
                    activeCell.column,
                    "catalog.invalid-active",
                    "active must be true or false, not '\(activeCell.value)'"
                )
                continue
            }
            var parser: String?
            if let parserColumn {
                let cell = row.cells[parserColumn]
                let value = cell.value.trimmingCharacters(in: .whitespaces)
                if value.isEmpty {
                    if stage == .evaluation {
                        problem(
                            cell.line,
                            cell.column,
                            "catalog.missing-parser",
                            "evaluation template '\(idCell.value)' needs a parser (for example in_last_line)"
                        )
                        continue
                    }
                } else {
                    parser = value
                    if let knownParsers, !knownParsers.contains(value) {
                        problem(
                            cell.line,
                            cell.column,
                            "catalog.unknown-parser",
                            "unknown parser '\(value)'; known parsers: \(knownParsers.sorted().joined(separator: ", "))"
                        )
                    }
                }
            }
            let templateFile = templateFile(stage, idCell.value)
            if generator == .llm && !workspace.isFile(templateFile) {
                problem(
                    idCell.line,
                    idCell.column,
                    "catalog.missing-template-file",
                    "template '\(idCell.value)' has no text at \(templateFile)",
                    active ? .error : .warning
                )
            }
            entries[idCell.value] = TemplateEntry(
                stage: stage,
                id: idCell.value,
                name: nameColumn.map { row.cells[$0].value } ?? idCell.value,
                description: descriptionColumn.map { row.cells[$0].value } ?? "",
                generator: generator,
                parser: parser,
                active: active,
                file: templateFile,
                line: row.line
            )
        }
        return (entries, diagnostics)
    }

    private static func unlistedTemplateFiles(
        _ stage: GenerationStage,
        listed: [String: TemplateEntry],
        workspace: Workspace
    )
        -> [Diagnostic]
    {
        let directory = "data/1_raw/templates/\(stage.rawValue)"
        return workspace.listFiles(directory).filter { $0.hasSuffix(".txt") }.sorted().compactMap { name in
            let id = String(name.dropLast(4))
            guard listed[id] == nil else { return nil }
            return Diagnostic(
                file: "\(directory)/\(name)",
                severity: .warning,
                code: "catalog.unlisted-template",
                message: "template file is not listed in \(catalogFile(stage)), so it cannot be used"
            )
        }
    }

    static func parseBoolean(_ text: String) -> Bool? {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }
}
