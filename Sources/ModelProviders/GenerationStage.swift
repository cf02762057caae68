/// The three stages of a generation, in pipeline order. A completion request names its stage so
/// that the embedded provider can answer in kind.
public enum GenerationStage: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case draft
    case essay
    case evaluation

    /// The stage whose output this one consumes.
    public var parentStage: GenerationStage? {
        switch self {
        case .draft: return nil
        case .essay: return .draft
        case .evaluation: return .essay
        }
    }

    /// "a draft", "an essay", "an evaluation", for messages.
    public var withArticle: String { self == .draft ? "a draft" : "an \(rawValue)" }

    public static func < (left: GenerationStage, right: GenerationStage) -> Bool {
        allCases.firstIndex(of: left)! < allCases.firstIndex(of: right)!
    }
}
