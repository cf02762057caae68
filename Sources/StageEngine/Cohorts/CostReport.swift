import JSON

/// What the calls of the call log cost, grouped as asked (by model, stage, cohort, provider or
/// day), with failures, retries and cached answers counted apart.
public struct CostReport: Sendable, Hashable {
    /// A way to group calls.
    public enum Dimension: String, Sendable, Hashable, CaseIterable {
        case model, stage, cohort, provider, day
    }

    /// The calls of one group.
    public struct Line: Sendable, Hashable {
        /// One value per dimension of the report, in its order.
        public var key: [String]
        public var calls = 0
        /// Calls that got no answer (`error`).
        public var failures = 0
        /// Failed attempts retried within the calls.
        public var retries = 0
        /// Calls answered from the response cache (no cost).
        public var cached = 0
        public var promptTokens = 0
        public var completionTokens = 0
        public var cost = 0.0
        /// Calls whose cost is unknown (no price, or no usage reported); not in `cost`.
        public var unpricedCalls = 0

        mutating func add(_ group: CallGroup) {
            calls += group.calls
            if group.status == "error" { failures += group.calls }
            retries += group.retries
            if group.cached { cached += group.calls }
            promptTokens += group.promptTokens
            completionTokens += group.completionTokens
            cost += group.cost
            unpricedCalls += group.unpricedCalls
        }
    }

    public var dimensions: [Dimension]
    /// In key order.
    public var lines: [Line]
    public var total: Line

    /// Groups `groups`; a call's cohort comes from `cohorts` (gen id → cohort id), else `-`.
    /// `cohort` keeps the calls of that cohort's generations only.
    public init(
        _ groups: [CallGroup],
        by dimensions: [Dimension],
        cohorts: [String: String],
        cohort: String? = nil
    ) {
        self.dimensions = dimensions
        var lines: [[String]: Line] = [:]
        var total = Line(key: [])
        for group in groups {
            let groupCohort = cohorts[group.genId]
            if let cohort, groupCohort != cohort { continue }
            let key = dimensions.map { dimension -> String in
                switch dimension {
                case .model: return group.model
                case .stage: return group.stage
                case .cohort: return groupCohort ?? "-"
                case .provider: return group.provider
                case .day: return group.day
                }
            }
            lines[key, default: Line(key: key)].add(group)
            total.add(group)
        }
        self.lines = lines.values.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        self.total = total
    }
}

extension WorkspaceEngine {
    /// The cost report of the whole call log (every host's), grouped by `dimensions`; with
    /// `cohort`, of that cohort's generations only.
    public func costs(
        by dimensions: [CostReport.Dimension],
        cohort: String? = nil
    ) async throws(StageError) -> CostReport {
        let membership = await state.catalog().membership
        if let cohort {
            _ = try GenerationSelection(cohort: cohort).rows(in: membership)
        }
        var cohorts: [String: String] = [:]
        for row in membership.rows.values {
            if let cohort = row.cohortId { cohorts[row.genId] = cohort }
        }
        do {
            return CostReport(try await callLog.callGroups(), by: dimensions, cohorts: cohorts, cohort: cohort)
        } catch {
            throw StageError(.storage, "cannot read the call log: \(error)")
        }
    }
}

extension CostReport.Line {
    /// The line as `stagerunner costs --json` prints it, its key by dimension.
    func json(_ dimensions: [CostReport.Dimension]) -> JSONValue {
        var members: [String: JSONValue] = [
            "calls": .integer(Int64(calls)),
            "failures": .integer(Int64(failures)),
            "retries": .integer(Int64(retries)),
            "cached": .integer(Int64(cached)),
            "promptTokens": .integer(Int64(promptTokens)),
            "completionTokens": .integer(Int64(completionTokens)),
            "costUsd": .double(cost),
            "unpricedCalls": .integer(Int64(unpricedCalls)),
        ]
        for (dimension, value) in zip(dimensions, key) { members[dimension.rawValue] = .string(value) }
        return .object(members)
    }
}

extension CostReport {
    /// The report as `stagerunner costs --json` prints it.
    public var json: JSONValue {
        [
            "by": .array(dimensions.map { .string($0.rawValue) }),
            "lines": .array(lines.map { $0.json(dimensions) }),
            "total": total.json([]),
        ]
    }
}
