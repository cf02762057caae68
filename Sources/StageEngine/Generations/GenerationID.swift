import Crypto
import Foundation
import ModelProviders

/// Deterministic generation ids, for callers that do not bring their own: the same identifying
/// fields always give the same id, so re-running a cohort finds its earlier generations.
public enum GenerationID {
    /// 16 base-36 characters (`[0-9a-z]`) from the SHA-256 of the fields joined by `|`.
    public static func make(
        stage: GenerationStage,
        templateId: String,
        model: String?,
        parentGenId: String?,
        salt: String? = nil
    )
        -> String
    {
        let fields = [stage.rawValue, templateId, model ?? "", parentGenId ?? "", salt ?? ""]
        let digest = Array(SHA256.hash(data: Data(fields.joined(separator: "|").utf8)))
        // The first 128 bits, written in base 36 (16 digits cover 82.7 of them).
        var number = digest.prefix(16).reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        var characters: [Character] = []
        for _ in 0..<16 {
            characters.append(alphabet[Int(number % 36)])
            number /= 36
        }
        return String(characters.reversed())
    }
}
