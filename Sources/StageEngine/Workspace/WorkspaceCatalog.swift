/// Everything a workspace declares: template catalogs and membership, with every problem found
/// while reading them. This is what `validateWorkspace` reports.
public struct WorkspaceCatalog: Sendable {
    public let workspace: Workspace
    public let templates: TemplateCatalog
    public let membership: Membership
    /// Problems in file, line, column order.
    public let diagnostics: [Diagnostic]

    /// Reads the workspace; never throws: a bad workspace is a list of diagnostics.
    /// - Parameter knownParsers: the parser names that exist, to check catalogs against.
    public init(workspace: Workspace, knownParsers: Set<String>? = nil) {
        self.workspace = workspace
        let (templates, templateProblems) = TemplateCatalog.load(workspace, knownParsers: knownParsers)
        let (membership, membershipProblems) = Membership.load(workspace, templates: templates)
        self.templates = templates
        self.membership = membership
        diagnostics = (templateProblems + membershipProblems).sorted {
            ($0.file, $0.line, $0.column) < ($1.file, $1.line, $1.column)
        }
    }

    /// Whether any diagnostic is an error.
    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}
