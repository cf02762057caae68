import Foundation
import ModelProviders

/// One generation a cohort calls for (a row of `membership.csv`): the only source of its
/// template, its model and its parent.
public struct MembershipRow: Sendable, Hashable, Codable {
    public var stage: GenerationStage
    public var genId: String
    public var templateId: String
    /// Empty for `copy` essays, which call no model.
    public var llmModelId: String?
    /// The draft of an essay, the essay of an evaluation; nil for drafts.
    public var parentGenId: String?
    public var cohortId: String?
    public var comboId: String?
    /// Where the row is, for diagnostics.
    public var file: String
    public var line: Int
}

/// All membership rows of a workspace: `data/membership.csv` and `data/cohorts/<cohort>/membership.csv`.
public struct Membership: Sendable {
    public private(set) var rows: [String: MembershipRow] = [:]

    /// The row for `genId`, whatever its stage.
    public func row(_ genId: String) -> MembershipRow? { rows[genId] }

    /// Rows in pipeline order: drafts, then essays, then evaluations, each by gen id.
    public var ordered: [MembershipRow] {
        rows.values.sorted { ($0.stage, $0.genId) < ($1.stage, $1.genId) }
    }

    static func files(in workspace: Workspace) -> [String] {
        var files: [String] = []
        if workspace.isFile("data/membership.csv") { files.append("data/membership.csv") }
        for cohort in workspace.listFiles("data/cohorts").sorted()
        where workspace.isFile("data/cohorts/\(cohort)/membership.csv") {
            files.append("data/cohorts/\(cohort)/membership.csv")
        }
        return files
    }

    static func load(_ workspace: Workspace, templates: TemplateCatalog) -> (Membership, [Diagnostic]) {
        var membership = Membership()
        var diagnostics: [Diagnostic] = []
        for file in files(in: workspace) {
            guard case .text(let text) = workspace.loadText(file) else {
                diagnostics.append(Workspace.notUTF8(file))
                continue
            }
            let table = CSVTable(text: text, file: file)
            diagnostics += table.diagnostics
            diagnostics += membership.read(table)
        }
        diagnostics += membership.check(templates: templates)
        return (membership, diagnostics)
    }

    /// The problems of one membership file's text (saved or not), checked against `templates`;
    /// a gen id listed again in another file is not seen here.
    static func diagnostics(_ text: String, file: String, templates: TemplateCatalog) -> [Diagnostic] {
        var membership = Membership()
        let table = CSVTable(text: text, file: file)
        return table.diagnostics + membership.read(table) + membership.check(templates: templates)
    }

    private mutating func read(_ table: CSVTable) -> [Diagnostic] {
        let file = table.file
        let (found, missing) = MembershipColumns.find(in: table.header, file: file)
        var diagnostics = missing
        guard let columns = found else { return diagnostics }
        for row in table.rows {
            let made: MembershipRow
            switch columns.row(row, file: file) {
            case .row(let row): made = row
            case .problem(let problem):
                diagnostics.append(problem)
                continue
            }
            if let earlier = rows[made.genId] {
                let genCell = row.cells[columns.genId]
                diagnostics.append(
                    Diagnostic(
                        file: file,
                        line: genCell.line,
                        column: genCell.column,
                        code: "membership.duplicate-gen-id",
                        message: "gen_id '\(made.genId)' is already listed at \(earlier.file):\(earlier.line)"
                    )
                )
                continue
            }
            rows[made.genId] = made
        }
        return diagnostics
    }

    /// Cross-checks rows against the catalogs and each other; the problems in file order.
    private func check(templates: TemplateCatalog) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        // Not `ordered`: sorting a million rows cost more than reading them.
        for row in rows.values {
            func problem(_ code: String, _ message: String, _ severity: Diagnostic.Severity = .error) {
                diagnostics.append(
                    Diagnostic(file: row.file, line: row.line, severity: severity, code: code, message: message)
                )
            }
            if let template = templates.entry(row.stage, row.templateId) {
                if !template.active {
                    problem(
                        "membership.inactive-template",
                        "\(row.genId) uses \(row.stage.rawValue) template '\(row.templateId)', which is not active",
                        .warning
                    )
                }
                if template.generator == .llm && row.llmModelId == nil {
                    problem("membership.missing-model", "\(row.genId) calls a model but has no llm_model_id")
                }
            } else {
                problem(
                    "membership.unknown-template",
                    "\(row.genId) uses \(row.stage.rawValue) template '\(row.templateId)', which is not in "
                        + TemplateCatalog.catalogFile(row.stage)
                )
            }
            switch (row.stage.parentStage, row.parentGenId) {
            case (nil, let parent?):
                problem("membership.unexpected-parent", "draft \(row.genId) must not have a parent (found '\(parent)')")
            case (let parentStage?, nil):
                problem(
                    "membership.missing-parent",
                    "\(row.stage.rawValue) \(row.genId) needs parent_gen_id (\(parentStage.withArticle))"
                )
            case (let parentStage?, let parent?):
                if let parentRow = rows[parent] {
                    if parentRow.stage != parentStage {
                        problem(
                            "membership.parent-stage",
                            "the parent of \(row.stage.rawValue) \(row.genId) must be \(parentStage.withArticle), "
                                + "but \(parent) is \(parentRow.stage.withArticle)"
                        )
                    }
                } else {
                    problem("membership.unknown-parent", "parent '\(parent)' of \(row.genId) is not in the membership")
                }
            case (nil, nil):
                break
            }
        }
        return diagnostics.sorted { ($0.file, $0.line) < ($1.file, $1.line) }
    }
}

/// Where a membership file keeps each field, from its header.
struct MembershipColumns: Sendable, Hashable {
    var stage: Int
    var genId: Int
    var templateId: Int
    var model: Int?
    var parent: Int?
    var cohort: Int?
    var combo: Int?

    /// The columns of `header`, and a diagnostic for each required one that is missing; nil
    /// columns when the file cannot give rows (no stage, gen_id or template_id).
    static func find(in header: [CSVTable.Cell], file: String) -> (MembershipColumns?, [Diagnostic]) {
        func index(_ name: String) -> Int? { header.firstIndex { $0.value == name } }
        let missing = ["stage", "gen_id", "template_id", "llm_model_id", "parent_gen_id"]
            .filter { index($0) == nil }
            .map { name in
                Diagnostic(
                    file: file,
                    line: 1,
                    code: "membership.missing-column",
                    message: "the header has no '\(name)' column"
                )
            }
        guard let stage = index("stage"), let genId = index("gen_id"), let templateId = index("template_id") else {
            return (nil, missing)
        }
        let columns = MembershipColumns(
            stage: stage,
            genId: genId,
            templateId: templateId,
            model: index("llm_model_id"),
            parent: index("parent_gen_id"),
            cohort: index("cohort_id"),
            combo: index("combo_id")
        )
        return (columns, missing)
    }

    /// What a CSV row makes: a membership row, or the problem that leaves it out.
    enum Made {
        case row(MembershipRow)
        case problem(Diagnostic)
    }

    /// The membership row a CSV row makes, or the problem that leaves it out.
    func row(_ row: CSVTable.Row, file: String) -> Made {
        let stageCell = row.cells[stage]
        guard let generationStage = GenerationStage(rawValue: stageCell.value) else {
            return .problem(
                Diagnostic(
                    file: file,
                    line: stageCell.line,
                    column: stageCell.column,
                    code: "membership.invalid-stage",
                    message: "stage '\(stageCell.value)' is not one of draft, essay, evaluation"
                )
            )
        }
        let genCell = row.cells[genId]
        if let reason = Identifier.problem(genCell.value, kind: "gen_id") {
            return .problem(
                Diagnostic(
                    file: file,
                    line: genCell.line,
                    column: genCell.column,
                    code: "membership.invalid-id",
                    message: reason
                )
            )
        }
        return .row(
            MembershipRow(
                stage: generationStage,
                genId: genCell.value,
                templateId: row.cells[templateId].value,
                llmModelId: Self.optional(row, model),
                parentGenId: Self.optional(row, parent),
                cohortId: Self.optional(row, cohort),
                comboId: Self.optional(row, combo),
                file: file,
                line: row.line
            )
        )
    }

    /// A cell's value without spaces at either end; nil when empty or when there is no such column.
    static func optional(_ row: CSVTable.Row, _ column: Int?) -> String? {
        guard let column else { return nil }
        let value = row.cells[column].value
        // Most cells have no space at either end: no Foundation call for them.
        func isSpace(_ scalar: Unicode.Scalar?) -> Bool {
            scalar.map { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator } ?? false
        }
        guard isSpace(value.unicodeScalars.first) || isSpace(value.unicodeScalars.last) else {
            return value.isEmpty ? nil : value
        }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }
}
