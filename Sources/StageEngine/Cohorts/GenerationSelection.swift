import ModelProviders

/// Which generations of the membership a command means: a cohort, a stage, given gen ids, a
/// template or a model. Every criterion given must hold; none selects every row.
public struct GenerationSelection: Sendable, Hashable {
    public var cohort: String?
    public var stage: GenerationStage?
    /// Rows named by gen id; each must be in the membership.
    public var genIds: [String]
    public var templateId: String?
    /// The membership's `llm_model_id`.
    public var model: String?

    public init(
        cohort: String? = nil,
        stage: GenerationStage? = nil,
        genIds: [String] = [],
        templateId: String? = nil,
        model: String? = nil
    ) {
        self.cohort = cohort
        self.stage = stage
        self.genIds = genIds
        self.templateId = templateId
        self.model = model
    }

    /// The selected rows in pipeline order: drafts, then essays, then evaluations, each in the
    /// order of the membership files. A gen id or cohort the membership does not know is an
    /// error naming it, so that a typo never selects nothing in silence.
    public func rows(in membership: Membership) throws(StageError) -> [MembershipRow] {
        for genId in genIds where membership.row(genId) == nil {
            throw StageError(.invalidSpec, "no generation '\(genId)' in the membership", field: "genIds")
        }
        if let cohort, !membership.rows.values.contains(where: { $0.cohortId == cohort }) {
            let known = Set(membership.rows.values.compactMap(\.cohortId)).sorted()
            throw StageError(
                .invalidSpec,
                "no cohort '\(cohort)' in the membership"
                    + (known.isEmpty ? " (it lists no cohorts)" : " (cohorts: \(known.joined(separator: ", ")))"),
                field: "cohort"
            )
        }
        let named = Set(genIds)
        return membership.rows.values
            .filter { row in
                (cohort == nil || row.cohortId == cohort) && (stage == nil || row.stage == stage)
                    && (named.isEmpty || named.contains(row.genId))
                    && (templateId == nil || row.templateId == templateId) && (model == nil || row.llmModelId == model)
            }
            .sorted { ($0.stage, $0.file, $0.line) < ($1.stage, $1.file, $1.line) }
    }
}

extension WorkspaceEngine {
    /// The membership row of `genId`, found through the membership files' indexes.
    public func membershipRow(_ genId: String) async -> MembershipRow? {
        await state.current().membership.row(genId)
    }

    /// The membership rows `selection` selects, as ``GenerationSelection/rows(in:)`` orders them.
    public func rows(_ selection: GenerationSelection) async throws(StageError) -> [MembershipRow] {
        try selection.rows(in: await state.catalog().membership)
    }
}
