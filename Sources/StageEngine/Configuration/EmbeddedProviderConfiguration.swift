import ModelProviders

extension EmbeddedProvider {
    /// The embedded provider of `workspace`, reading its rules' response files from there.
    init(configuration: Configuration, workspace: Workspace) {
        self.init(configuration: configuration, readFile: { workspace.readText($0) })
    }
}

extension EmbeddedProvider.Configuration {
    /// The problems of the `embedded` section of `stagerunner.yaml`: rules without an answer,
    /// response files outside the workspace or missing.
    func check(_ workspace: Workspace) -> [Diagnostic] {
        rules.enumerated().compactMap { index, rule in
            if rule.response == nil && rule.responseFile == nil {
                return Diagnostic(
                    file: WorkspaceConfiguration.fileName,
                    code: "config.rule-without-response",
                    message: "embedded.rules[\(index)] needs 'response' or 'responseFile'"
                )
            }
            if let file = rule.responseFile {
                if let problem = Self.confinementProblem(file) {
                    return Diagnostic(
                        file: WorkspaceConfiguration.fileName,
                        code: "config.invalid-path",
                        message: "embedded.rules[\(index)].responseFile \(problem)"
                    )
                }
                if !workspace.isFile(file) {
                    return Diagnostic(
                        file: WorkspaceConfiguration.fileName,
                        code: "config.missing-file",
                        message: "embedded.rules[\(index)].responseFile '\(file)' does not exist"
                    )
                }
            }
            return nil
        }
    }
}
