import Crypto
import Foundation

/// The model that needs no network and no key: deterministic, and scriptable from the
/// workspace's `stagerunner.yaml`, so that demos and tests produce meaningful drafts, essays and
/// scores anywhere. It is always reported as provider `embedded`, never passed off as a real model.
///
/// A request is answered by the first rule whose matchers all hold; with no matching rule the
/// answer is derived from the prompt's SHA-256, so the same prompt always gets the same answer
/// (evaluations end with a `SCORE:` line, essays come in an `<essay>` block). Usage counts are
/// estimated at four bytes per token, and `maxTokens` truncates the answer with finish reason
/// `length`, as a real model would.
public struct EmbeddedProvider: ModelClient {
    /// The `embedded` section of `stagerunner.yaml`.
    public struct Configuration: Sendable, Hashable, Decodable {
        public var rules: [Rule]

        public init(rules: [Rule]) {
            self.rules = rules
        }

        /// Why a configured path could leave the workspace, or nil.
        public static func confinementProblem(_ path: String) -> String? {
            if path.hasPrefix("/") { return "must be relative to the workspace, not absolute" }
            if path.split(separator: "/").contains("..") { return "must not contain '..'" }
            if path.utf8.contains(0) { return "must not contain a NUL byte" }
            return nil
        }
    }

    /// One scripted answer. Absent matchers match anything.
    public struct Rule: Sendable, Hashable, Decodable {
        public var stage: GenerationStage?
        public var template: String?
        public var model: String?
        public var genId: String?
        public var promptContains: String?
        public var response: String?
        /// A workspace file whose text is the answer.
        public var responseFile: String?
        public var finishReason: FinishReason?

        public init(
            stage: GenerationStage? = nil,
            template: String? = nil,
            model: String? = nil,
            genId: String? = nil,
            promptContains: String? = nil,
            response: String? = nil,
            responseFile: String? = nil,
            finishReason: FinishReason? = nil
        ) {
            self.stage = stage
            self.template = template
            self.model = model
            self.genId = genId
            self.promptContains = promptContains
            self.response = response
            self.responseFile = responseFile
            self.finishReason = finishReason
        }

        func matches(_ request: CompletionRequest) -> Bool {
            if let stage, stage != request.stage { return false }
            if let template, template != request.templateId { return false }
            if let model, model != request.model { return false }
            if let genId, genId != request.genId { return false }
            if let promptContains, !request.promptText.contains(promptContains) { return false }
            return true
        }
    }

    /// The provider name of its answers.
    public static let name = "embedded"
    public let provider = EmbeddedProvider.name
    let configuration: Configuration
    /// Reads a rule's `responseFile`, a path relative to the workspace; nil when it cannot.
    let readFile: (@Sendable (String) -> String?)?

    public init(
        configuration: Configuration = Configuration(rules: []),
        readFile: (@Sendable (String) -> String?)? = nil
    ) {
        self.configuration = configuration
        self.readFile = readFile
    }

    public func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        if Task.isCancelled { throw ModelError(.cancelled, "the request was cancelled") }
        let prompt = request.promptText
        var text: String
        var finishReason = FinishReason.stop
        if let rule = configuration.rules.first(where: { $0.matches(request) }) {
            if let file = rule.responseFile {
                guard let readFile, Configuration.confinementProblem(file) == nil,
                    let contents = readFile(file)
                else {
                    throw ModelError(.invalidRequest, "the embedded provider's response file '\(file)' cannot be read")
                }
                text = contents
            } else {
                text = rule.response ?? ""
            }
            finishReason = rule.finishReason ?? .stop
        } else {
            text = Self.derivedAnswer(prompt: prompt, stage: request.stage)
        }
        if let maxTokens = request.maxTokens, Self.tokens(text) > maxTokens {
            text = String(decoding: text.utf8.prefix(maxTokens * 4), as: UTF8.self)
            finishReason = .length
        }
        return Completion(
            text: text,
            finishReason: finishReason,
            usage: .init(promptTokens: Self.tokens(prompt), completionTokens: Self.tokens(text)),
            cost: 0,
            provider: provider,
            model: request.model
        )
    }

    /// A rough token count: four UTF-8 bytes per token, at least one for non-empty text.
    static func tokens(_ text: String) -> Int {
        text.isEmpty ? 0 : max(1, (text.utf8.count + 3) / 4)
    }

    /// The deterministic answer for a prompt no rule matched.
    static func derivedAnswer(prompt: String, stage: GenerationStage?) -> String {
        var hasher = SHA256()
        var text = prompt
        text.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        let digest = Array(hasher.finalize())
        // Views into the prompt, and a word's first 40 characters at most: a huge prompt is not copied.
        let words: [Substring] = prompt.split(whereSeparator: { !$0.isLetter }).filter { $0.count > 4 }
        let picked: [String] = (0..<min(4, words.count)).map { index in
            let word: Substring = words[Int(digest[index]) % words.count]
            return word.prefix(40).lowercased()
        }
        let theme = picked.isEmpty ? "the prompt" : picked.joined(separator: ", ")
        switch stage {
        case .evaluation:
            let score = Double(Int(digest[8]) % 19) / 2 + 0.5  // 0.5 … 9.5 in halves
            return """
                The response engages with \(theme).
                Its reasoning is \(digest[9] % 2 == 0 ? "specific" : "general") and \(digest[10] % 2 == 0 ? "coherent" : "uneven").
                SCORE: \(score)
                """
        case .essay:
            return """
                <essay>
                This essay develops \(theme) into one argument, step by step, and closes with what follows from it.
                </essay>
                """
        case .draft, nil:
            return "Ideas connecting \(theme):\n- first connection\n- second connection\n- third connection"
        }
    }
}
