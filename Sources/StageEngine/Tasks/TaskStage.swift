/// The eleven stages of a task, in the order the task runner considers them (protocol/README.md §8.7).
public enum TaskStage: String, Sendable, Hashable, Codable, CaseIterable {
    case ingestion
    case preProcessing
    case promptTemplating
    case inference
    case parsing
    case validateStructure
    case validateQuality
    case critique
    case refine
    case finalValidation
    case integration

    /// The two validation stages: they may start a refinement cycle, and their output is not
    /// chained into the next stage (it is kept in `context.data`).
    public var isValidation: Bool { self == .validateStructure || self == .validateQuality }

    /// Stages run only in the first pass: refinement cycles skip them (reason
    /// `refinement-cycle`) and start again at `promptTemplating`.
    public var runsOnlyInFirstCycle: Bool { self == .ingestion || self == .preProcessing }

    /// The stages that pre-refinement runs ahead of validation, and that are skipped while
    /// validation passes (`validationFailed` is false).
    public var isRefinement: Bool { self == .critique || self == .refine }

    /// The stage names, comma-separated, as error messages list them.
    static var namesList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
