import Yams

/// A YAML syntax error as users see it: what is wrong and where.
struct YAMLSyntaxError: Sendable, Hashable {
    var message: String
    var line: Int?
    var column: Int?

    /// The syntax error behind `error`, if it is one. `YAMLDecoder` wraps syntax errors, which
    /// carry the position, in a `DecodingError`.
    init?(_ error: any Error) {
        var cause = error
        if case DecodingError.dataCorrupted(let context) = error, let underlying = context.underlyingError {
            cause = underlying
        }
        guard let yaml = cause as? YamlError else { return nil }
        switch yaml {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }
            message = "invalid YAML: " + detail.joined(separator: ": ")
            line = mark.line
            column = mark.column
        default:
            message = "invalid YAML: \(yaml)"
        }
    }
}
