import Foundation
import JSON
import ModelProviders
import OutputParsing

/// One generation as a listing shows it: what the membership asks for and, once generated, how
/// it went. Generations made outside the membership (a `runStage` with a template id) are listed
/// too, from their metadata alone.
public struct GenerationRecord: Sendable, Hashable {
    public var stage: GenerationStage
    public var genId: String
    public var cohortId: String?
    public var comboId: String?
    public var templateId: String
    /// The membership's model, else the one the generation used.
    public var model: String?
    public var parentGenId: String?
    /// Whether the membership lists it.
    public var inMembership: Bool
    /// Nil until it is generated.
    public var metadata: GenerationMetadata?
    /// The parser's score, for score parsers.
    public var score: Double?

    /// `pending` until generated, then the generation's status (`success`, `parser_failure`, …).
    public var state: String { metadata?.status.rawValue ?? "pending" }

    /// Tokens of the call, counted by the provider or, when it reported none, estimated.
    public var tokens: Int? { metadata?.tokens }

    /// The generation's folder, relative to the workspace.
    public var directory: String { GensStore.directory(stage, genId) }
}

/// Everything about one generation: its record, its texts, its calls and its family.
public struct GenerationDetail: Sendable {
    public var record: GenerationRecord
    public var prompt: String?
    public var raw: String?
    public var parsed: String?
    /// Every call the call log holds for it (retries, failures and regenerations included), oldest first.
    public var calls: [CallRecord]
    /// The membership row of its parent, or a record made from its metadata.
    public var parent: GenerationRecord?
    /// The generations the membership lists with it as their parent.
    public var children: [GenerationRecord]
}

extension WorkspaceEngine {
    /// The records of the selected generations, membership rows first in pipeline order; with no
    /// cohort, gen id, template or model criterion, the generations committed outside the
    /// membership follow. `states` keeps those whose ``GenerationRecord/state`` it names.
    public func generations(
        _ selection: GenerationSelection,
        states: Set<String> = []
    ) async throws(StageError) -> [GenerationRecord] {
        let membership = await state.catalog().membership
        var records = try selection.rows(in: membership).map { row throws(StageError) in try record(row) }
        if selection.cohort == nil && selection.genIds.isEmpty && selection.templateId == nil && selection.model == nil
        {
            for stage in GenerationStage.allCases where selection.stage == nil || selection.stage == stage {
                for genId in workspace.listFiles("data/gens/\(stage.rawValue)").sorted()
                where membership.row(genId) == nil && Identifier.problem(genId, kind: "genId") == nil {
                    if let record = try unlisted(stage, genId) { records.append(record) }
                }
            }
        }
        guard !states.isEmpty else { return records }
        return records.filter { states.contains($0.state) }
    }

    /// One generation by gen id: in the membership, or committed outside it.
    public func generation(_ genId: String) async throws(StageError) -> GenerationDetail {
        guard let record = try await record(of: genId) else {
            throw StageError(
                .invalidSpec,
                "no generation '\(genId)': it is neither in the membership nor in data/gens",
                field: "genId"
            )
        }
        let generation = try readGeneration(record.stage, genId)
        var parent: GenerationRecord?
        if let parentId = record.parentGenId { parent = try await self.record(of: parentId) }
        // Who names it as parent: only the whole membership says.
        let children = try await state.catalog().membership.rows.values
            .filter { $0.parentGenId == genId }
            .sorted { ($0.stage, $0.file, $0.line) < ($1.stage, $1.file, $1.line) }
            .map { row throws(StageError) in try self.record(row) }
        let calls: [CallRecord]
        do {
            calls = try await callLog.calls(genId: genId, stage: record.stage.rawValue)
        } catch {
            throw StageError(.storage, "cannot read the call log: \(error)")
        }
        return GenerationDetail(
            record: record,
            prompt: generation?.prompt,
            raw: generation?.raw,
            parsed: generation?.parsed,
            calls: calls,
            parent: parent,
            children: children
        )
    }

    /// The record of `genId`, found through the membership's index (no scan of the whole
    /// membership), else among the generations committed outside it; nil when neither has it.
    func record(of genId: String) async throws(StageError) -> GenerationRecord? {
        if let reason = Identifier.problem(genId, kind: "genId") {
            throw StageError(.invalidSpec, reason, field: "genId")
        }
        if let row = await state.current().membership.row(genId) { return try record(row) }
        for stage in GenerationStage.allCases {
            if let record = try unlisted(stage, genId) { return record }
        }
        return nil
    }

    func record(_ row: MembershipRow) throws(StageError) -> GenerationRecord {
        let generation = try readGeneration(row.stage, row.genId)
        return GenerationRecord(
            stage: row.stage,
            genId: row.genId,
            cohortId: row.cohortId,
            comboId: row.comboId,
            templateId: row.templateId,
            model: row.llmModelId ?? generation?.metadata.model,
            parentGenId: row.parentGenId,
            inMembership: true,
            metadata: generation?.metadata,
            score: generation.flatMap(score)
        )
    }

    /// A committed generation the membership does not list, or nil when there is none.
    func unlisted(_ stage: GenerationStage, _ genId: String) throws(StageError) -> GenerationRecord? {
        guard let generation = try readGeneration(stage, genId) else { return nil }
        let metadata = generation.metadata
        return GenerationRecord(
            stage: stage,
            genId: genId,
            templateId: metadata.templateId,
            model: metadata.model,
            parentGenId: metadata.parentGenId,
            inMembership: false,
            metadata: metadata,
            score: score(generation)
        )
    }

    /// Parsers are pure: the stored answer parsed again gives its score.
    func score(_ generation: GensStore.Generation) -> Double? {
        guard let parser = generation.metadata.parser, let raw = generation.raw else { return nil }
        return (try? parsers.parse(raw, with: parser))?.score
    }
}

extension GenerationRecord {
    /// The record as `stagerunner gens --json` prints it; the metadata as `metadata.json` holds it.
    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "genId": .string(genId),
            "stage": .string(stage.rawValue),
            "templateId": .string(templateId),
            "state": .string(state),
            "inMembership": .bool(inMembership),
            "directory": .string(directory),
        ]
        if let cohortId { members["cohortId"] = .string(cohortId) }
        if let comboId { members["comboId"] = .string(comboId) }
        if let model { members["model"] = .string(model) }
        if let parentGenId { members["parentGenId"] = .string(parentGenId) }
        if let score { members["score"] = .double(score) }
        if let tokens { members["tokens"] = .integer(Int64(tokens)) }
        if let metadata, let data = try? metadata.encoded(), let value = try? JSONParser.parse(Array(data)) {
            members["metadata"] = value
        }
        return .object(members)
    }
}

extension GenerationDetail {
    /// The detail as `stagerunner gens show --json` prints it.
    public var json: JSONValue {
        guard case .object(var members) = record.json else { return record.json }
        if let prompt { members["prompt"] = .string(prompt) }
        if let raw { members["raw"] = .string(raw) }
        if let parsed { members["parsed"] = .string(parsed) }
        members["calls"] = .array(calls.map(\.json))
        if let parent { members["parent"] = parent.json }
        members["children"] = .array(children.map(\.json))
        return .object(members)
    }
}

extension CallRecord {
    /// A call-log row as JSON, its columns by name (null when empty).
    public var json: JSONValue {
        func optional<T>(_ value: T?, _ make: (T) -> JSONValue) -> JSONValue { value.map(make) ?? .null }
        return [
            "id": optional(id) { .integer($0) },
            "createdAt": .string(createdAt),
            "runId": .string(runId),
            "stage": .string(stage),
            "genId": .string(genId),
            "templateId": optional(templateId) { .string($0) },
            "model": .string(model),
            "provider": .string(provider),
            "status": .string(status),
            "error": optional(error) { .string($0) },
            "errorKind": optional(errorKind) { .string($0) },
            "latencyMs": .double(latencyMs),
            "promptTokens": optional(promptTokens) { .integer(Int64($0)) },
            "completionTokens": optional(completionTokens) { .integer(Int64($0)) },
            "costUsd": optional(costUsd) { .double($0) },
            "cached": .bool(cached),
            "retries": .integer(Int64(retries)),
        ]
    }
}
