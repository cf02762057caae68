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
        make(
            stage: stage,
            templateId: templateId,
            model: model,
            parentGenId: parentGenId,
            saltParts: salt.map { [$0] } ?? []
        )
    }

    /// The same id as ``make(stage:templateId:model:parentGenId:salt:)`` with the salt given as
    /// parts joined by U+001F; the parts are hashed where they lie, so a long prompt in them is
    /// never copied.
    public static func make(
        stage: GenerationStage,
        templateId: String,
        model: String?,
        parentGenId: String?,
        saltParts: [String]
    ) -> String {
        var hasher = SHA256()
        func add(_ text: String) {
            var text = text
            text.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        for (index, field) in [stage.rawValue, templateId, model ?? "", parentGenId ?? ""].enumerated() {
            if index > 0 { add("|") }
            add(field)
        }
        add("|")
        for (index, part) in saltParts.enumerated() {
            if index > 0 { add("\u{1F}") }
            add(part)
        }
        let digest = Array(hasher.finalize())
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
