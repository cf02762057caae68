import Foundation
import JSON
import ModelProviders

/// Generations as the table a researcher opens: one row per generation with its metadata and
/// score, or one row per essay with its evaluations' scores pivoted into columns.
public struct ExportTable: Sendable, Hashable {
    /// Which rows the table has.
    public enum Layout: String, Sendable, Hashable, CaseIterable {
        /// One row per generation.
        case generations
        /// One row per essay; a score column per evaluation template (and model, when a template
        /// is evaluated by more than one).
        case essays
    }

    public var columns: [String]
    /// One value per column; `.null` where there is none.
    public var rows: [[JSONValue]]

    public init(_ records: [GenerationRecord], layout: Layout) {
        switch layout {
        case .generations: self = Self.generations(records)
        case .essays: self = Self.essays(records)
        }
    }

    init(columns: [String], rows: [[JSONValue]]) {
        self.columns = columns
        self.rows = rows
    }

    static func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    static func generations(_ records: [GenerationRecord]) -> ExportTable {
        let columns = [
            "gen_id", "stage", "cohort_id", "combo_id", "template_id", "model", "provider", "parent_gen_id", "state",
            "score", "prompt_tokens", "completion_tokens", "cost_usd", "finish_reason", "truncated", "created_at",
            "duration_ms", "run_id", "directory",
        ]
        let rows = records.map { record -> [JSONValue] in
            let metadata = record.metadata
            return [
                .string(record.genId), .string(record.stage.rawValue), text(record.cohortId), text(record.comboId),
                .string(record.templateId), text(record.model), text(metadata?.provider), text(record.parentGenId),
                .string(record.state), record.score.map(JSONValue.double) ?? .null,
                (metadata?.usage?.promptTokens).map { .integer(Int64($0)) } ?? .null,
                (metadata?.usage?.completionTokens).map { .integer(Int64($0)) } ?? .null,
                (metadata?.costUsd).map(JSONValue.double) ?? .null, text(metadata?.finishReason),
                metadata.map { .bool($0.truncated) } ?? .null, text(metadata?.createdAt),
                metadata.map { .double($0.durationMs) } ?? .null, text(metadata?.runId), .string(record.directory),
            ]
        }
        return ExportTable(columns: columns, rows: rows)
    }

    static func essays(_ records: [GenerationRecord]) -> ExportTable {
        let byId = Dictionary(records.map { ($0.genId, $0) }, uniquingKeysWith: { first, _ in first })
        let evaluations = Dictionary(grouping: records.filter { $0.stage == .evaluation }) { $0.parentGenId ?? "" }
        // A template evaluated by more than one model gets a column per model.
        var modelsOfTemplate: [String: Set<String>] = [:]
        for record in records where record.stage == .evaluation {
            modelsOfTemplate[record.templateId, default: []].insert(record.model ?? "")
        }
        func column(_ record: GenerationRecord) -> String {
            (modelsOfTemplate[record.templateId]?.count ?? 0) > 1
                ? "\(record.templateId)@\(record.model ?? "")" : record.templateId
        }
        let scoreColumns = Set(records.filter { $0.stage == .evaluation }.map(column)).sorted()
        let columns =
            [
                "essay_gen_id", "cohort_id", "combo_id", "draft_gen_id", "draft_template_id", "essay_template_id",
                "model", "state",
            ] + scoreColumns + ["evaluations", "mean_score"]
        let rows = records.filter { $0.stage == .essay }.map { essay -> [JSONValue] in
            let draft = essay.parentGenId.flatMap { byId[$0] }
            var scores: [String: [Double]] = [:]
            var all: [Double] = []
            for evaluation in evaluations[essay.genId] ?? [] {
                guard let score = evaluation.score else { continue }
                scores[column(evaluation), default: []].append(score)
                all.append(score)
            }
            func mean(_ values: [Double]?) -> JSONValue {
                guard let values, !values.isEmpty else { return .null }
                return .double(values.reduce(0, +) / Double(values.count))
            }
            return [
                .string(essay.genId), text(essay.cohortId), text(essay.comboId), text(essay.parentGenId),
                text(draft?.templateId), .string(essay.templateId), text(essay.model), .string(essay.state),
            ] + scoreColumns.map { mean(scores[$0]) } + [
                .integer(Int64(evaluations[essay.genId]?.count ?? 0)), mean(all),
            ]
        }
        return ExportTable(columns: columns, rows: rows)
    }

    /// RFC 4180: a header line, then a line per row; fields with commas, quotes or line breaks
    /// quoted; empty where there is no value.
    public var csv: String {
        func field(_ value: JSONValue) -> String {
            let text: String
            switch value {
            case .null: return ""
            case .string(let string): text = string
            case .bool(let flag): return flag ? "true" : "false"
            default: text = value.description
            }
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var lines = [columns.map { field(.string($0)) }.joined(separator: ",")]
        for row in rows { lines.append(row.map(field).joined(separator: ",")) }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// One JSON object per row, its members named by column (empty values left out).
    public var jsonLines: String {
        rows.map { row in
            var members: [String: JSONValue] = [:]
            for (column, value) in zip(columns, row) where value != .null { members[column] = value }
            return JSONValue.object(members).description + "\n"
        }.joined()
    }
}
