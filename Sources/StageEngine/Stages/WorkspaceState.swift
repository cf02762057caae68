import Crypto
import Foundation
import Jinja
import ModelProviders
import OutputParsing

/// The workspace's catalogs, configuration and compiled templates, reloaded when their files
/// change: a stage run costs a few `stat` calls, not a re-read of every CSV.
actor WorkspaceState {
    struct Snapshot: Sendable {
        let templates: TemplateCatalog
        /// The membership rows by gen id, read one at a time from the files' indexes.
        let membership: MembershipLookup
        let configuration: WorkspaceConfiguration
        let configurationProblems: [Diagnostic]
        let router: ModelRouter
    }

    let workspace: Workspace
    let knownParsers: Set<String>
    /// Where provider keys and overrides come from (the process's environment).
    let environment: [String: String]
    /// The providers' limiters, kept across configuration reloads.
    let limiters: ProviderLimiters
    private var snapshot: Snapshot?
    private var stamps: [String: FileStamp] = [:]
    private var templates: [String: (FileStamp, CompiledTemplate)] = [:]
    private var tasks: [String: TaskDefinition] = [:]
    /// Each membership file's index, made again only for a file that changed.
    private var membershipIndexes: [String: MembershipFileIndex] = [:]

    init(
        workspace: Workspace,
        knownParsers: Set<String>,
        environment: [String: String],
        limiters: ProviderLimiters = ProviderLimiters()
    ) {
        self.limiters = limiters
        self.workspace = workspace
        self.knownParsers = knownParsers
        self.environment = environment
    }

    private func stamp(_ relative: String) -> FileStamp { workspace.stamp(relative) }

    /// The files whose change invalidates the snapshot.
    private func watchedFiles() -> [String] {
        GenerationStage.allCases.map { TemplateCatalog.catalogFile($0) } + Membership.files(in: workspace)
            + [WorkspaceConfiguration.fileName, "data/membership.csv", "data/cohorts"]
            // A template file added or removed changes its directory's stamp.
            + GenerationStage.allCases.map { "data/1_raw/templates/\($0.rawValue)" }
    }

    /// The current catalogs and configuration, re-read only when a watched file changed.
    func current() -> Snapshot {
        let now = Dictionary(uniqueKeysWithValues: watchedFiles().map { ($0, stamp($0)) })
        if let snapshot, now == stamps { return snapshot }
        let (templates, _) = TemplateCatalog.load(workspace, knownParsers: knownParsers)
        let (configuration, problems) = WorkspaceConfiguration.load(workspace)
        let router = ModelRouter(
            embedded: EmbeddedProvider(configuration: configuration.embedded ?? .init(rules: []), workspace: workspace),
            providers: configuration.providers ?? [:],
            aliases: configuration.aliases ?? [:],
            defaultProvider: configuration.defaultProvider,
            environment: environment,
            prices: PriceTable.builtIn.overridden(by: configuration.prices),
            limits: configuration.limits ?? [:],
            limiters: limiters
        )
        let fresh = Snapshot(
            templates: templates,
            membership: membershipLookup(),
            configuration: configuration,
            configurationProblems: problems,
            router: router
        )
        snapshot = fresh
        stamps = now
        return fresh
    }

    /// For what reads only the configuration and the models it routes to (a task run): the
    /// last snapshot while `stagerunner.yaml` is unchanged, its catalogs and membership possibly
    /// older than the files; ``current()`` when it changed. One `stat`, not one per watched file.
    func currentConfiguration() -> Snapshot {
        let file = WorkspaceConfiguration.fileName
        if let snapshot, stamps[file] == stamp(file) { return snapshot }
        return current()
    }

    /// The membership's files, each through its index: kept while the file is unchanged, else
    /// opened again (a saved index, or a scan of that file alone).
    private func membershipLookup() -> MembershipLookup {
        let files = Membership.files(in: workspace)
        var indexes: [String: MembershipFileIndex] = [:]
        for file in files {
            if let known = membershipIndexes[file], FileIdentity(path: workspace.path(file)) == known.identity {
                indexes[file] = known
            } else if let index = MembershipFileIndex.open(file, in: workspace) {
                indexes[file] = index
            }
        }
        membershipIndexes = indexes
        return MembershipLookup(files: files.compactMap { indexes[$0] })
    }

    /// Everything the workspace declares, with every problem: the catalogs and the whole
    /// membership read and checked, for validation. Not kept: a large cohort's rows would stay
    /// in memory.
    func catalog() -> WorkspaceCatalog {
        WorkspaceCatalog(workspace: workspace, knownParsers: knownParsers)
    }

    /// A template compiled, with the SHA-256 of its text (the prompt version).
    struct CompiledTemplate: Sendable {
        let template: Template
        let sha256: String
    }

    /// The compiled template at `file`: read, hashed and compiled again only when the file changed.
    func template(_ file: String) throws(StageError) -> CompiledTemplate {
        if let problem = workspace.problem(reaching: file) {
            throw StageError(.workspace, "the template \(file) \(problem)", file: file)
        }
        let current = stamp(file)
        if let (stamp, compiled) = templates[file], stamp == current { return compiled }
        guard let source = workspace.readText(file) else {
            throw StageError(.workspace, "the template text \(file) cannot be read", file: file)
        }
        do {
            let compiled = CompiledTemplate(
                template: try Template(source: source, name: file),
                sha256: SHA256.hash(data: Data(source.utf8)).map { String(format: "%02x", $0) }.joined()
            )
            templates[file] = (current, compiled)
            return compiled
        } catch {
            throw StageError(.template, error.description, file: file, line: error.line)
        }
    }

    /// The task file at `file`, loaded again only when it or a file it refers to changed.
    func task(_ file: String, parsers: ParserRegistry) throws(TaskDefinitionError) -> TaskDefinition {
        if let cached = tasks[file], cached.sources.allSatisfy({ stamp($0.file) == $0.stamp }) { return cached }
        let task = try TaskDefinition.load(file, workspace: workspace, parsers: parsers)
        tasks[file] = task
        return task
    }
}
