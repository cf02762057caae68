/// A problem found in a workspace, placed the way an editor shows it.
public struct Diagnostic: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error
        case warning
        case information
    }

    /// Path relative to the workspace root.
    public var file: String
    /// 1-based line; 0 when the problem is about the whole file.
    public var line: Int
    /// 1-based column; 0 when the problem is about the whole line or file.
    public var column: Int
    public var severity: Severity
    /// A stable identifier for the kind of problem (`csv.missing-column`, `membership.unknown-template`, …).
    public var code: String
    public var message: String

    public init(
        file: String,
        line: Int = 0,
        column: Int = 0,
        severity: Severity = .error,
        code: String,
        message: String
    ) {
        self.file = file
        self.line = line
        self.column = column
        self.severity = severity
        self.code = code
        self.message = message
    }

    /// `file:line:column: severity: message [code]`, the form compilers and editors read.
    public var description: String {
        var place = file
        if line > 0 { place += ":\(line)" }
        if column > 0 { place += ":\(column)" }
        return "\(place): \(severity.rawValue): \(message) [\(code)]"
    }
}
