/// Why a template failed to compile or render, and where.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The family of failure, mirroring the Python exception Jinja2 would raise.
    public enum Kind: String, Sendable, Equatable {
        /// Malformed template text (Jinja2's `TemplateSyntaxError`).
        case syntax
        /// An undefined variable, attribute or item was used (`UndefinedError`).
        case undefined
        /// An operation on values of the wrong type (`TypeError`).
        case type
        /// A bad argument value (`ValueError`).
        case value
        /// Division or modulo by zero (`ZeroDivisionError`).
        case zeroDivision
        /// Unknown filter or test (`TemplateRuntimeError` / `TemplateAssertionError`).
        case unknownName
        /// A safety limit: nesting depth, range or string size.
        case limit
    }

    public var kind: Kind
    /// What went wrong, without the location.
    public var message: String
    /// The name the template was compiled with.
    public var templateName: String
    /// 1-based line, or 0 when unknown.
    public var line: Int
    /// 1-based column for syntax errors, or 0 when unknown (render errors give only the line).
    public var column: Int

    public init(kind: Kind, message: String, templateName: String, line: Int = 0, column: Int = 0) {
        self.kind = kind
        self.message = message
        self.templateName = templateName
        self.line = line
        self.column = column
    }

    /// For example `undefined variable 'topic' in template 'draft/idea.txt' at line 3`.
    public var description: String {
        if templateName.isEmpty && line == 0 { return message }
        var text = "\(message) in template '\(templateName)'"
        if line > 0 { text += " at line \(line)" }
        if line > 0 && column > 0 { text += ", column \(column)" }
        return text
    }
}
