import JSON
import Jinja
import ModelProviders

/// What `validateWorkspace` and `stagerunner validate` report: the workspace's size and every
/// problem found in it.
public struct ValidationReport: Sendable {
    public var root: String
    public var templates: Int
    public var generations: Int
    /// In file, line, column order.
    public var diagnostics: [Diagnostic]

    public var errors: Int { diagnostics.filter { $0.severity == .error }.count }
    public var warnings: Int { diagnostics.filter { $0.severity == .warning }.count }

    /// The report as `validateWorkspace` answers, listing at most `limit` diagnostics
    /// (`diagnosticsOmitted` counts the rest; `errors` and `warnings` count them all).
    public func json(listing limit: Int) -> JSONValue {
        [
            "root": .string(root),
            "valid": .bool(errors == 0),
            "errors": .integer(Int64(errors)),
            "warnings": .integer(Int64(warnings)),
            "templates": .integer(Int64(templates)),
            "generations": .integer(Int64(generations)),
            "diagnosticsOmitted": .integer(Int64(max(0, diagnostics.count - limit))),
            "diagnostics": .array(diagnostics.prefix(limit).map(\.json)),
        ]
    }
}

extension Diagnostic {
    public var json: JSONValue {
        [
            "file": .string(file),
            "line": .integer(Int64(line)),
            "column": .integer(Int64(column)),
            "severity": .string(severity.rawValue),
            "code": .string(code),
            "message": .string(message),
        ]
    }

    /// `file:line:column: severity: code: message`, the form editors and CI read (line and column
    /// left out when 0).
    public var compilerLine: String {
        var place = file
        if line > 0 { place += ":\(line)" }
        if column > 0 { place += ":\(column)" }
        return "\(place): \(severity.rawValue): \(code): \(message)"
    }
}

extension TemplateEntry {
    /// The entry as `listTemplates` lists it.
    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "stage": .string(stage.rawValue),
            "id": .string(id),
            "name": .string(name),
            "description": .string(description),
            "generator": .string(generator.rawValue),
            "active": .bool(active),
            "file": .string(file),
        ]
        if let parser { members["parser"] = .string(parser) }
        return .object(members)
    }
}

extension WorkspaceEngine {
    /// Validates the workspace (``validate()``) into a report.
    public func validationReport() async -> ValidationReport {
        let (catalog, diagnostics) = await validate()
        return ValidationReport(
            root: workspace.root,
            templates: catalog.templates.all.count,
            generations: catalog.membership.rows.count,
            diagnostics: diagnostics
        )
    }

    /// The templates of `stage` (all stages when nil), inactive ones unless `activeOnly`.
    public func templates(stage: GenerationStage? = nil, activeOnly: Bool = false) async -> [TemplateEntry] {
        await state.catalog().templates.all.filter { entry in
            (stage == nil || entry.stage == stage) && (!activeOnly || entry.active)
        }
    }

    /// The answer of `renderPrompt` (and of `stagerunner render --json`).
    public static func renderedPromptJSON(
        _ rendered: (prompt: String, variables: [String: TemplateValue], template: TemplateEntry)
    ) -> JSONValue {
        [
            "prompt": .string(rendered.prompt),
            "variables": .object(rendered.variables.mapValues(\.json)),
            "templateId": .string(rendered.template.id),
            "templateFile": .string(rendered.template.file),
        ]
    }
}
