import Foundation
import Jinja
import Logging
import ModelProviders
import OutputParsing
import Synchronization

/// Runs one generation — draft, essay or evaluation — through one stage-agnostic path: resolve
/// the template (membership first), render it strictly, call the model (or copy the parent's
/// output), parse, and commit the artifacts atomically with their metadata (protocol/README.md
/// sections 8.1 and 8.2).
///
/// Safe to use from many tasks at once; two runs of the same generation share one execution.
public final class WorkspaceEngine: Sendable {
    public let workspace: Workspace
    public let parsers: ParserRegistry
    public let store: GensStore
    public let callLog: CallLog
    /// Answers of network providers (`.stagerunner/cache.sqlite`).
    public let cache: ResponseCache
    let state: WorkspaceState
    let inFlight = InFlightGenerations()
    /// The workspace cannot be written (a read-only file system, or no permission).
    public let readOnly: Bool
    /// Spending against `budgets`: for the life of the runner (the server process), and with every
    /// server on the workspace (``WorkspaceBudgets``).
    public let budgets: BudgetLedger
    let logger: Logger

    /// Opens the runner of `workspace` (creating its call log when needed). Provider keys and
    /// overrides come from `environment` (the process's, by default).
    public init(
        workspace: Workspace,
        parsers: ParserRegistry = .standard,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "stage-runner")
    ) throws {
        // Every server on the workspace locks as its configuration says, from the first lock on.
        let (configuration, _) = WorkspaceConfiguration.load(workspace)
        var workspace = workspace
        workspace.locking = configuration.locking?.locking ?? .flock
        self.workspace = workspace
        self.parsers = parsers
        self.logger = logger
        store = GensStore(workspace: workspace)
        let abandoned =
            store.removeAbandonedTemporaries()
            + Temporaries.removeAbandoned(in: workspace, under: WorkspaceBudgets.folder, recursive: false)
            + Temporaries.removeAbandoned(in: workspace, under: MembershipFileIndex.directory, recursive: false)
        if !abandoned.isEmpty {
            logger.notice("removed the temporaries of interrupted commits", metadata: ["paths": "\(abandoned)"])
        }
        for run in RunRecords.sweep(workspace) {
            logger.notice(
                "cleaned up after a task run an earlier process did not finish",
                metadata: [
                    "folder": "\(run.folder)", "temporaries": "\(run.temporaries)", "commands": "\(run.commands)",
                ]
            )
        }
        // Servers opening a fresh workspace together would race to create and migrate the
        // databases ("table already exists", "database is locked" on the switch to WAL): they
        // open them one at a time. Without the lock (a read-only workspace) opening says why.
        let opening: FileLock?
        do {
            opening = try FileLock.acquireBlocking(workspace.path(Self.openLockPath), in: workspace)
        } catch {
            opening = nil
            if access(workspace.root, W_OK) == 0 {
                logger.error(
                    "servers sharing this workspace cannot exclude each other",
                    metadata: ["error": "\(error)"]
                )
            }
        }
        defer { opening?.release() }
        let hosts = HostDatabases.resolve(workspace)
        // A workspace nobody may write (a read-only mount) is still read: its templates listed and
        // rendered, its generations and jobs shown. Its databases live in memory; whatever would
        // write is refused before it starts (``requireWritable()``).
        readOnly = access(workspace.root, W_OK) != 0
        if readOnly {
            logger.notice(
                "the workspace cannot be written: methods that only read work, the others are refused",
                metadata: ["workspace": "\(workspace.root)", "error": "\(String(cString: strerror(errno)))"]
            )
        }
        callLog =
            try readOnly
            ? CallLog.inMemory()
            : Self.opening(hosts.own(CallLog.fileName), in: workspace) {
                try CallLog(workspace: workspace, hosts: hosts)
            }
        budgets = BudgetLedger(
            shared: WorkspaceBudgets(workspace: workspace, logger: logger) { [callLog] in
                (try? callLog.spent(excluding: EmbeddedProvider.name)) ?? (0, 0)
            }
        )
        // Expired answers are never used; they go when the workspace is opened.
        let ttl = configuration.cacheTTL
        cache =
            try readOnly
            ? ResponseCache.inMemory()
            : Self.opening(hosts.own(ResponseCache.fileName), in: workspace) {
                try ResponseCache(workspace: workspace, ttl: ttl, hosts: hosts)
            }
        state = WorkspaceState(
            workspace: workspace,
            knownParsers: Set(parsers.names),
            environment: environment,
            limiters: ProviderLimiters(
                sharedSlots: WorkspaceCallSlots(workspace: workspace),
                sharedBuckets: WorkspaceRateBuckets(workspace: workspace)
            )
        )
    }

    /// Copies the databases' logs into their files as the server ends, so that other hosts, which
    /// read the files alone, see every call and answer of this one.
    public func checkpointDatabases() async {
        let lost = await callLog.writeUnwritten()
        if lost > 0 {
            logger.error(
                "calls the call log could not take are lost with this server",
                metadata: ["calls": "\(lost)", "log": "\(CallLog.relativePath)"]
            )
        }
        await callLog.checkpoint()
        await cache.checkpoint()
    }

    /// Refuses what would write into a workspace that cannot be written, before anything starts
    /// (a model call included), naming the workspace and why.
    public func requireWritable(_ what: String) throws(StageError) {
        guard readOnly else { return }
        var reason = "it cannot be written"
        if access(workspace.root, W_OK) != 0 { reason = "it cannot be written (\(String(cString: strerror(errno))))" }
        throw StageError(.storage, "\(what) writes into the workspace \(workspace.root), but \(reason)")
    }

    /// Why a database of the workspace cannot be opened: which file, and the cause.
    public struct OpenFailure: Error, Sendable, CustomStringConvertible {
        /// The database, relative to the workspace.
        public let path: String
        public let reason: String
        public var description: String { "cannot open \(path): \(reason)" }
    }

    /// Opens the database at `relative` with `open`, saying what stands in the way when it fails:
    /// a file where a folder should be, a folder where the database should be, or SQLite's reason.
    static func opening<Database>(
        _ relative: String,
        in workspace: Workspace,
        _ open: () throws -> Database
    ) throws(OpenFailure) -> Database {
        do {
            return try open()
        } catch {
            if let problem = workspace.problem(reaching: relative) {
                throw OpenFailure(path: relative, reason: "it \(problem)")
            }
            var status = stat()
            if stat(workspace.path(relative), &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
                throw OpenFailure(path: relative, reason: "it is a folder, not a database file")
            }
            throw OpenFailure(path: relative, reason: "\(error)")
        }
    }

    /// Held while a process creates or migrates the workspace's databases.
    static let openLockPath = ".stagerunner/open.lock"

    /// Everything the workspace declares, and every problem in it (catalogs, membership, configuration).
    public func validate() async -> (catalog: WorkspaceCatalog, diagnostics: [Diagnostic]) {
        let snapshot = await state.current()
        let catalog = await state.catalog()
        var templateProblems: [Diagnostic] = []
        // Every template text that exists is compiled (and cached), so that a syntax error shows
        // before a generation needs the template.
        for entry in catalog.templates.all where entry.generator == .llm && workspace.isFile(entry.file) {
            do {
                let compiled = try await state.template(entry.file)
                // A filter or test rendering would refuse, found now rather than by a generation.
                for unknown in compiled.template.unknownNames {
                    templateProblems.append(
                        Diagnostic(
                            file: entry.file,
                            line: unknown.line,
                            severity: entry.active ? .error : .warning,
                            code: "template.unknown-\(unknown.kind.rawValue)",
                            message: unknown.message
                        )
                    )
                }
            } catch {
                // Compiled again for the error's parts: the message without the place, and the column.
                var diagnostic = Diagnostic(
                    file: entry.file,
                    line: error.line ?? 0,
                    code: "template.syntax",
                    message: error.message
                )
                if let source = workspace.readText(entry.file) {
                    do {
                        _ = try Template(source: source, name: entry.file)
                    } catch let problem {
                        diagnostic.line = problem.line
                        diagnostic.column = problem.column
                        diagnostic.message = problem.message
                    }
                }
                diagnostic.severity = entry.active ? .error : .warning
                templateProblems.append(diagnostic)
            }
        }
        let diagnostics = (catalog.diagnostics + snapshot.configurationProblems + templateProblems).sorted {
            ($0.file, $0.line, $0.column) < ($1.file, $1.line, $1.column)
        }
        return (catalog, diagnostics)
    }

    /// The provider that serves plain model ids.
    public func defaultProvider() async -> String { await state.current().router.defaultProvider }

    // MARK: - Resolution

    /// A spec with everything filled in from the membership, the catalogs and the parent.
    struct Plan: Sendable {
        var stage: GenerationStage
        var genId: String
        var template: TemplateEntry
        var mode: Generator
        var model: String?
        var parser: String?
        var parentGenId: String?
        var values: [String: TemplateValue]
        /// The parent is in the membership, so it can be generated when missing.
        var parentInMembership: Bool
        var runId: String?
        var budgetScope: String?
    }

    /// `requireModel` is false for rendering, which calls no model.
    func plan(
        _ spec: StageRunSpec,
        _ snapshot: WorkspaceState.Snapshot,
        requireModel: Bool = true
    ) throws(StageError) -> Plan {
        var spec = spec
        var comboValues: [String: TemplateValue] = [:]
        if let genId = spec.genId, let reason = Identifier.problem(genId, kind: "genId") {
            throw StageError(.invalidSpec, reason, field: "genId")
        }
        // Membership first: a known gen id brings its template, model and parent.
        if let genId = spec.genId, let row = snapshot.membership.row(genId) {
            guard row.stage == spec.stage else {
                throw StageError(
                    .invalidSpec,
                    "gen id '\(genId)' is \(row.stage.withArticle) in the membership, not \(spec.stage.withArticle)",
                    field: "stage"
                )
            }
            if let templateId = spec.templateId, templateId != row.templateId {
                throw StageError(
                    .invalidSpec,
                    "the membership gives \(genId) template '\(row.templateId)', not '\(templateId)'",
                    field: "templateId"
                )
            }
            spec.templateId = row.templateId
            spec.model = spec.model ?? row.llmModelId
            spec.passThroughFrom = spec.passThroughFrom ?? row.parentGenId
            if let combo = row.comboId { comboValues = snapshot.configuration.combos?[combo] ?? [:] }
        }
        guard let templateId = spec.templateId else {
            throw StageError(
                .invalidSpec,
                "templateId is required unless genId is in the membership",
                field: "templateId"
            )
        }
        if let reason = Identifier.problem(templateId, kind: "templateId") {
            throw StageError(.invalidSpec, reason, field: "templateId")
        }
        guard let template = snapshot.templates.entry(spec.stage, templateId) else {
            let known = (snapshot.templates.entries[spec.stage] ?? [:]).keys.sorted().joined(separator: ", ")
            throw StageError(
                .invalidSpec,
                "no \(spec.stage.rawValue) template '\(templateId)' in \(TemplateCatalog.catalogFile(spec.stage))"
                    + (known.isEmpty ? "" : " (known: \(known))"),
                field: "templateId"
            )
        }
        let mode = spec.mode ?? template.generator
        if mode == .copy && spec.stage != .essay {
            throw StageError(
                .invalidSpec,
                "only essays can be copied; \(spec.stage.rawValue)s call a model",
                field: "mode"
            )
        }
        if mode == .llm && spec.model == nil && requireModel {
            throw StageError(.invalidSpec, "model is required to generate \(spec.stage.withArticle)", field: "model")
        }
        var parser: String?
        switch spec.stage {
        case .draft: parser = spec.parserName ?? template.parser
        case .essay: parser = spec.parserName
        case .evaluation:
            guard let name = spec.parserName ?? template.parser else {
                throw StageError(.invalidSpec, "evaluations need a parser", field: "parserName")
            }
            parser = name
        }
        if let parser, !parsers.names.contains(parser) {
            throw StageError(
                .invalidSpec,
                "unknown parser '\(parser)'; known parsers: \(parsers.names.joined(separator: ", "))",
                field: "parserName"
            )
        }
        if let parent = spec.passThroughFrom, let reason = Identifier.problem(parent, kind: "passThroughFrom") {
            throw StageError(.invalidSpec, reason, field: "passThroughFrom")
        }
        if spec.stage != .draft && spec.passThroughFrom == nil && (mode == .copy || spec.stage == .evaluation)
            && spec.values["response"] == nil
        {
            throw StageError(
                .invalidSpec,
                "\(spec.stage.withArticle) needs its parent: give passThroughFrom or a gen id in the membership",
                field: "passThroughFrom"
            )
        }
        let values = (snapshot.configuration.values ?? [:]).merging(comboValues) { $1 }.merging(spec.values) { $1 }
        // A derived id covers everything that changes the output, so different requests never collide.
        let genId =
            spec.genId
            ?? GenerationID.make(
                stage: spec.stage,
                templateId: templateId,
                model: spec.model,
                parentGenId: spec.passThroughFrom,
                saltParts: [
                    TemplateValue.object(TemplateObject(values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
                        .canonicalText,
                    spec.promptText ?? "", parser ?? "", spec.maxTokens.map(String.init) ?? "", mode.rawValue,
                ]
            )
        return Plan(
            stage: spec.stage,
            genId: genId,
            template: template,
            mode: mode,
            model: spec.model,
            parser: parser,
            parentGenId: spec.passThroughFrom,
            // Request values win over the combo's, which win over the workspace defaults.
            values: values,
            parentInMembership: spec.passThroughFrom.map { snapshot.membership.row($0) != nil } ?? false,
            runId: spec.runId,
            budgetScope: spec.budgetScope
        )
    }

    /// The parent's parsed text (a draft for essays, an essay for evaluations).
    ///
    /// A parent the membership knows but that has not been generated is generated first, as
    /// `make` builds a missing prerequisite; runs of the same generation share one execution, so
    /// a client may send dependent stages together.
    func parentText(_ plan: Plan, generateMissing: Bool = true) async throws(StageError) -> String? {
        guard let parentStage = plan.stage.parentStage, let parent = plan.parentGenId else { return nil }
        var generation = try readGeneration(parentStage, parent)
        if generation == nil && plan.parentInMembership && generateMissing {
            var spec = StageRunSpec(stage: parentStage, genId: parent)
            spec.runId = plan.runId
            spec.budgetScope = plan.budgetScope
            _ = try await run(spec)
            generation = try readGeneration(parentStage, parent)
        }
        guard let generation else {
            throw StageError(
                .workspace,
                "parent \(parentStage.rawValue) '\(parent)' has not been generated yet; run it first",
                field: "passThroughFrom"
            )
        }
        guard let parsed = generation.parsed else {
            throw StageError(
                .workspace,
                "parent \(parentStage.rawValue) '\(parent)' has no parsed output (status \(generation.metadata.status.rawValue))",
                field: "passThroughFrom"
            )
        }
        return parsed
    }

    func readGeneration(_ stage: GenerationStage, _ genId: String) throws(StageError) -> GensStore.Generation? {
        do {
            return try store.read(stage, genId)
        } catch {
            throw StageError(.storage, error.description)
        }
    }

    // MARK: - Rendering

    /// The prompt a spec would send, without calling anything: the rendered text and the
    /// variables it was rendered with.
    public func renderPrompt(
        _ spec: StageRunSpec
    ) async throws(StageError) -> (
        prompt: String, variables: [String: TemplateValue], template: TemplateEntry
    ) {
        let snapshot = await state.current()
        var plan = try plan(spec, snapshot, requireModel: false)
        // A copy essay has no prompt whatever its parent's state: say so first.
        guard plan.mode == .llm || spec.promptText != nil else {
            throw StageError(.invalidSpec, "copy essays have no prompt", field: "mode")
        }
        // A dry run: a missing parent is an error here, never generated.
        try await addParentValues(&plan, generateMissing: false)
        if let prompt = spec.promptText { return (prompt, plan.values, plan.template) }
        let compiled = try await state.template(plan.template.file)
        return (try render(compiled.template, plan), plan.values, plan.template)
    }

    /// Evaluations see the essay under `response`; llm essays see the draft under `draft`.
    func addParentValues(_ plan: inout Plan, generateMissing: Bool = true) async throws(StageError) {
        guard let text = try await parentText(plan, generateMissing: generateMissing),
            let name = plan.stage.parentVariable, plan.values[name] == nil
        else { return }
        plan.values[name] = .string(text)
    }

    func render(_ template: Template, _ plan: Plan) throws(StageError) -> String {
        do {
            return try template.render(plan.values)
        } catch {
            throw StageError(.template, error.description, file: plan.template.file, line: error.line)
        }
    }

    // MARK: - Running

    /// Runs the spec: reuses the committed generation unless `force`, else generates and commits it.
    public func run(_ spec: StageRunSpec) async throws(StageError) -> StageResult {
        let snapshot = await state.current()
        let plan = try plan(spec, snapshot)
        var warnings: [String] = []
        if !plan.template.active {
            // Run all the same, as asked; but a template switched off is usually not meant to run.
            warnings.append(
                "\(plan.stage.rawValue) template '\(plan.template.id)' is not active in "
                    + TemplateCatalog.catalogFile(plan.stage)
            )
            logger.warning(
                "running an inactive template",
                metadata: ["genId": "\(plan.genId)", "template": "\(plan.template.id)"]
            )
        }
        if !spec.force, var existing = try reused(plan) {
            existing.warnings = warnings
            return existing
        }
        try requireWritable("runStage")
        let key = "\(plan.stage.rawValue)/\(plan.genId)"
        let outcome = await inFlight.run(key) { () async -> Result<StageResult, StageError> in
            do throws(StageError) {
                // One execution per generation across the processes sharing the workspace too:
                // another server generating it is waited for, and its commit is the answer.
                let lease = try await self.lease(plan)
                defer { lease?.release(removing: true) }
                // Checked again here: another run may have committed it since the check above.
                if !spec.force, let existing = try self.reused(plan) { return .success(existing) }
                return .success(try await self.generate(spec, plan, snapshot))
            } catch {
                return .failure(error)
            }
        }
        var result = try outcome.get()
        result.warnings = warnings
        if spec.failOnTruncation && result.metadata.truncated {
            let why =
                result.metadata.finishReason == FinishReason.length.rawValue || result.metadata.finishReason == nil
                ? "finish reason length" : "it used all \(spec.maxTokens.map(String.init) ?? "the") maxTokens"
            throw StageError(
                .truncated,
                "the model's answer for \(plan.genId) was cut at the token limit (\(why)); "
                    + "raise maxTokens or shorten the prompt",
                field: "maxTokens"
            )
        }
        return result
    }

    /// Where the leases of generations under way are: one lock file per generation, held by the
    /// process generating it and removed when it is done.
    static let leaseFolder = ".stagerunner/leases"

    /// Takes the lease on the plan's generation, waiting while another process holds it. A
    /// workspace where no lease can be taken (read-only, a file system without locks) runs
    /// without one, as before there were leases.
    func lease(_ plan: Plan) async throws(StageError) -> FileLock? {
        let path = workspace.path("\(Self.leaseFolder)/\(plan.stage.rawValue)/\(plan.genId).lock")
        do {
            if let lock = try FileLock.tryAcquire(path, in: workspace) { return lock }
            logger.debug(
                "waiting for another process that generates the same generation",
                metadata: ["genId": "\(plan.genId)", "stage": "\(plan.stage.rawValue)"]
            )
            return try await FileLock.acquire(path, in: workspace)
        } catch is CancellationError {
            throw InFlightGenerations.cancelled
        } catch {
            logger.warning(
                "cannot take the generation's lease; generating without it",
                metadata: ["genId": "\(plan.genId)", "error": "\(error)"]
            )
            return nil
        }
    }

    func reused(_ plan: Plan) throws(StageError) -> StageResult? {
        let generation: GensStore.Generation?
        do {
            generation = try store.read(plan.stage, plan.genId)
        } catch {
            throw StageError(.storage, error.description)
        }
        guard let generation else { return nil }
        // Parsers are pure: parsing the stored answer again gives back its score and debug fields.
        let outcome = generation.metadata.parser.flatMap { name in
            generation.raw.flatMap { raw in try? parsers.parse(raw, with: name) }
        }
        return StageResult(
            genId: plan.genId,
            stage: plan.stage,
            status: generation.metadata.status,
            reused: true,
            files: generation.metadata.files.map { GensStore.directory(plan.stage, plan.genId) + "/" + $0 },
            prompt: generation.prompt,
            raw: generation.raw,
            parsed: generation.parsed,
            score: outcome?.score,
            llmRawText: generation.raw,
            llmCleanedJSON: outcome?.llmCleanedJSON,
            llmError: generation.metadata.llmError,
            metadata: generation.metadata
        )
    }

    func generate(
        _ spec: StageRunSpec,
        _ plan: Plan,
        _ snapshot: WorkspaceState.Snapshot
    ) async throws(StageError)
        -> StageResult
    {
        var plan = plan
        let started = ContinuousClock.now
        let runId = spec.runId ?? UUID().uuidString.lowercased()
        let createdAt = Date().ISO8601Format()
        if plan.mode == .copy {
            guard let text = try await parentText(plan) else {
                throw StageError(.invalidSpec, "a copy essay needs passThroughFrom", field: "passThroughFrom")
            }
            let metadata = GenerationMetadata(
                stage: plan.stage,
                genId: plan.genId,
                templateId: plan.template.id,
                mode: .copy,
                parentGenId: plan.parentGenId,
                runId: runId,
                createdAt: createdAt,
                durationMs: milliseconds(since: started),
                truncated: false,
                status: .success,
                files: ["parsed.txt", "metadata.json"]
            )
            return try await commit(
                plan,
                prompt: nil,
                raw: nil,
                parsed: text,
                score: nil,
                debug: nil,
                metadata: metadata
            )
        }

        try await addParentValues(&plan)
        var templateSha: String?
        let prompt: String
        if let text = spec.promptText {
            prompt = text
        } else {
            let compiled = try await state.template(plan.template.file)
            templateSha = compiled.sha256
            prompt = try render(compiled.template, plan)
        }
        let model = plan.model ?? ""
        // What streamed reaches the caller's sink; an answer that came whole is sent whole below.
        let streamed = Mutex(false)
        var relay: ProgressSink?
        if let sink = spec.progress {
            relay = ProgressSink { event in
                if case .text = event { streamed.withLock { $0 = true } }
                sink.handler(event)
            }
        }
        var routed: (client: any ModelClient, model: String)
        var routingProblem: String?
        do {
            routed = try snapshot.router.route(model, progress: relay)
        } catch {
            // A provider that cannot be used (no key, say) is an error, unless the request asked
            // for `stubFallback`: the embedded provider then answers, with status `stub_fallback`.
            guard spec.stubFallback && error.kind == .unavailable else {
                var failure = StageError(.model, error.message, field: "model")
                failure.model = error
                throw failure
            }
            routingProblem = error.message
            routed = (snapshot.router.embedded, model)
        }
        var request = CompletionRequest(
            model: routed.model,
            messages: [ChatMessage(role: .user, content: prompt)],
            maxTokens: spec.maxTokens,
            stage: plan.stage,
            templateId: plan.template.id,
            genId: plan.genId
        )
        let budgets = snapshot.configuration.budgets ?? Budgets()
        // A per-request token cap bounds the answer too, so the call cannot pass it.
        if let cap = budgets.request?.tokens, request.maxTokens == nil, cap > request.estimatedPromptTokens {
            request.maxTokens = cap - request.estimatedPromptTokens
        }
        let call = CallContext(
            plan: plan,
            maxTokens: spec.maxTokens,
            provider: routed.client.provider,
            model: model,
            templateSha: templateSha,
            runId: runId,
            createdAt: createdAt,
            started: ContinuousClock.now
        )
        let policy = spec.cache ?? (spec.force ? .refresh : snapshot.configuration.cache?.default ?? .use)
        let completion: Completion
        do throws(ModelError) {
            completion = try await callModel(
                routed.client,
                request,
                budgetScope: spec.budgetScope,
                cache: routingProblem == nil ? policy : .off,
                snapshot
            )
        } catch {
            if error.kind == .cancelled {
                await log(call, nil, status: "cancelled", error: error.message, failure: error)
                throw StageError(.cancelled, "the request was cancelled during the model call")
            }
            await log(call, nil, status: "error", error: error.description, failure: error)
            if let refusal = error.budget {
                var failure = StageError(.budget, error.message)
                failure.budget = refusal
                throw failure
            }
            var failure = StageError(
                .model,
                "\(routed.client.provider) could not answer: \(error.description)",
                field: Self.modelFieldAtFault(error.kind)
            )
            failure.model = error
            failure.model?.provider = error.provider ?? routed.client.provider
            throw failure
        }
        if let sink = spec.progress, !completion.text.isEmpty, !streamed.withLock({ $0 }) {
            sink.handler(.text(completion.text))
        }
        let truncated =
            completion.finishReason == .length
            || (spec.maxTokens.map { limit in completion.usage.map { $0.completionTokens >= limit } ?? false } ?? false)

        var parsed: String? = completion.text
        var score: Double?
        var debug: ParseOutcome?
        var status: GenerationStatus = .success
        if let parserName = plan.parser {
            let stub: (() -> String)? = spec.stubFallback ? { parserName == "json" ? "{}" : completion.text } : nil
            let outcome: ParseOutcome
            do {
                outcome = try parsers.parse(completion.text, with: parserName, stubFallback: stub)
            } catch {
                await log(call, completion, status: "error", error: error.description)
                throw StageError(.invalidSpec, error.description, field: "parserName")
            }
            debug = outcome
            score = outcome.score
            parsed = outcome.text ?? score.map(Self.scoreText)
            switch outcome.status {
            case .success: status = .success
            case .jsonParseError: status = .jsonParseError
            case .parserFailure: status = .parserFailure
            case .stubFallback: status = .stubFallback
            }
            if !outcome.succeeded && outcome.status != .stubFallback { parsed = nil }
        }
        if truncated && status == .success { status = .truncated }
        if routingProblem != nil { status = .stubFallback }
        var files = ["prompt.txt", "raw.txt"]
        if parsed != nil { files.append("parsed.txt") }
        files.append("metadata.json")
        let metadata = GenerationMetadata(
            stage: plan.stage,
            genId: plan.genId,
            templateId: plan.template.id,
            mode: .llm,
            model: model,
            provider: completion.provider,
            parser: plan.parser,
            parentGenId: plan.parentGenId,
            runId: runId,
            createdAt: createdAt,
            durationMs: milliseconds(since: started),
            finishReason: completion.finishReason.rawValue,
            truncated: truncated,
            usage: completion.usage,
            usageEstimate: completion.usage == nil && !completion.cached
                ? completion.countedTokens(for: request) : nil,
            costUsd: completion.cost,
            status: status,
            llmError: routingProblem.map { "\($0); the embedded provider's answer stands in" } ?? debug?.llmError,
            files: files,
            templateSha256: templateSha,
            rawLength: completion.text.count,
            rawLines: completion.text.split(separator: "\n", omittingEmptySubsequences: false).count,
            retries: completion.retries.isEmpty ? nil : completion.retries.count,
            cached: completion.cached ? true : nil
        )
        // The call is logged before its generation is committed, so that a process that dies
        // between the two leaves a logged call without its generation (it was made and paid
        // for), never a generation whose call is missing from the log.
        if Task.isCancelled {
            // The answer came, but nobody waits for it: it is paid for and logged, not committed.
            await log(call, completion, status: "cancelled", error: "the request was cancelled before the commit")
            throw StageError(.cancelled, "the request was cancelled before its generation was committed")
        }
        let row = await log(call, completion, status: status.rawValue, error: debug?.llmError)
        do throws(StageError) {
            return try await commit(
                plan,
                prompt: prompt,
                raw: completion.text,
                parsed: parsed,
                score: score,
                debug: debug,
                metadata: metadata
            )
        } catch {
            await logStorageFailure(row, error)
            throw error
        }
    }

    /// One model call the way every path makes it (stages and task handlers alike): the response
    /// cache first (network providers only: the embedded one is deterministic and free), then the
    /// call within the budgets (its estimate reserved, then settled with its usage), and the answer
    /// stored unless it was cut short.
    func callModel(
        _ client: any ModelClient,
        _ request: CompletionRequest,
        budgetScope: String?,
        cache policy: CachePolicy,
        _ snapshot: WorkspaceState.Snapshot
    ) async throws(ModelError) -> Completion {
        let cacheable = policy != .off && client.provider != snapshot.router.embedded.provider
        let ttl = snapshot.configuration.cacheTTL
        if cacheable && policy == .use {
            do {
                if let hit = try await cache.lookup(provider: client.provider, request, ttl: ttl) {
                    logCall(client.provider, request, .success(hit), latency: .zero)
                    return hit
                }
            } catch {
                logger.error("cannot read the response cache", metadata: ["error": "\(error)"])
            }
        }
        let budgets = snapshot.configuration.budgets ?? Budgets()
        let price = snapshot.router.prices.price(provider: client.provider, model: request.model)
        let reservation = try await self.budgets.reserve(
            tokens: request.estimatedTokens,
            cost: price?.cost(
                .init(promptTokens: request.estimatedPromptTokens, completionTokens: request.maxTokens ?? 0)
            ),
            job: budgetScope,
            budgets: budgets,
            // The embedded provider is free and local: what servers share is what costs.
            shared: client.provider != snapshot.router.embedded.provider
        )
        let completion: Completion
        let started = ContinuousClock.now
        do {
            completion = try await client.complete(request)
        } catch {
            logCall(client.provider, request, .failure(error), latency: ContinuousClock.now - started)
            await self.budgets.settle(reservation, tokens: 0, cost: nil)
            throw error
        }
        logCall(client.provider, request, .success(completion), latency: ContinuousClock.now - started)
        // A call whose provider reported no usage counts by its estimate, priced where the model
        // has a price, so that a cap cannot be passed by a provider that says nothing.
        let counted = completion.countedTokens(for: request)
        let countedCost =
            completion.usage == nil && !completion.cached
            ? price?.cost(completion.estimatedUsage(for: request)) : completion.cost
        await self.budgets.settle(reservation, tokens: counted, cost: countedCost)
        let truncated =
            completion.finishReason == .length
            || (request.maxTokens.map { limit in completion.usage.map { $0.completionTokens >= limit } ?? false }
                ?? false)
        if cacheable && !truncated {
            do {
                try await cache.store(provider: client.provider, request, completion)
            } catch {
                logger.error("cannot write the response cache", metadata: ["error": "\(error)"])
            }
        }
        return completion
    }

    /// One line at `info` for every model call that ended (provider, model, outcome, latency,
    /// tokens, retries, cached), and at `debug` where it went and why each retry was needed.
    /// Never a key (messages are redacted where they are made) and never the prompt.
    func logCall(
        _ provider: String,
        _ request: CompletionRequest,
        _ outcome: Result<Completion, ModelError>,
        latency: Duration
    ) {
        guard logger.logLevel <= .info else { return }
        let milliseconds = Double(latency.components.seconds) * 1000 + Double(latency.components.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "provider": "\(provider)", "model": "\(request.model)",
            "latencyMs": "\((milliseconds * 10).rounded() / 10)",
        ]
        if let genId = request.genId { metadata["genId"] = "\(genId)" }
        let url: String?
        let retries: [String]
        switch outcome {
        case .success(let completion):
            metadata["status"] = "\(completion.finishReason.rawValue)"
            if let usage = completion.usage {
                metadata["promptTokens"] = "\(usage.promptTokens)"
                metadata["completionTokens"] = "\(usage.completionTokens)"
            } else {
                metadata["usage"] = "unreported, estimated \(completion.countedTokens(for: request)) tokens"
            }
            metadata["cached"] = "\(completion.cached)"
            url = completion.url
            retries = completion.retries
        case .failure(let error):
            metadata["status"] = "\(error.kind.rawValue)"
            if let status = error.httpStatus { metadata["httpStatus"] = "\(status)" }
            metadata["error"] = "\(error.message)"
            url = error.url
            retries = error.retryErrors
        }
        metadata["retries"] = "\(retries.count)"
        logger.info("model call ended", metadata: metadata)
        guard logger.logLevel <= .debug else { return }
        if let url { logger.debug("model call sent", metadata: ["provider": "\(provider)", "url": "\(url)"]) }
        for (attempt, cause) in retries.enumerated() {
            logger.debug(
                "model call retried",
                metadata: ["provider": "\(provider)", "attempt": "\(attempt + 1)", "cause": "\(cause)"]
            )
        }
    }

    /// `model` is the request member at fault when no provider serves it or the provider knows
    /// no such model; for the other failures the request itself may be fine.
    static func modelFieldAtFault(_ kind: ModelError.Kind) -> String? {
        switch kind {
        case .unavailable, .notFound, .permission: return "model"
        default: return nil
        }
    }

    static func scoreText(_ score: Double) -> String {
        score.rounded() == score ? String(format: "%.1f", score) : String(score)
    }

    func commit(
        _ plan: Plan,
        prompt: String?,
        raw: String?,
        parsed: String?,
        score: Double?,
        debug: ParseOutcome?,
        metadata: GenerationMetadata
    ) async throws(StageError) -> StageResult {
        do {
            try await store.commit(GensStore.Generation(prompt: prompt, raw: raw, parsed: parsed, metadata: metadata))
        } catch {
            throw StageError(.storage, "cannot store \(plan.genId): \(error.description)")
        }
        return StageResult(
            genId: plan.genId,
            stage: plan.stage,
            status: metadata.status,
            reused: false,
            files: metadata.files.map { GensStore.directory(plan.stage, plan.genId) + "/" + $0 },
            prompt: prompt,
            raw: raw,
            parsed: parsed,
            score: score,
            llmRawText: debug?.llmRawText ?? raw,
            llmCleanedJSON: debug?.llmCleanedJSON,
            llmError: metadata.llmError,
            metadata: metadata
        )
    }

    /// What the call log records about a model call besides its outcome.
    struct CallContext: Sendable {
        var plan: Plan
        var maxTokens: Int?
        var provider: String
        var model: String
        var templateSha: String?
        var runId: String
        var createdAt: String
        var started: ContinuousClock.Instant
    }

    /// Appends the call to the log; returns its row's id, nil when the log cannot be written.
    @discardableResult
    func log(
        _ call: CallContext,
        _ completion: Completion?,
        status: String,
        error: String?,
        failure: ModelError? = nil
    ) async -> Int64? {
        let parameters = call.maxTokens.map { #"{"max_tokens":\#($0)}"# } ?? "{}"
        let record = CallRecord(
            createdAt: call.createdAt,
            runId: call.runId,
            stage: call.plan.stage.rawValue,
            genId: call.plan.genId,
            templateId: call.plan.template.id,
            model: call.model,
            provider: call.provider,
            promptVersion: call.templateSha,
            parameters: parameters,
            status: status,
            error: error,
            latencyMs: milliseconds(since: call.started),
            promptTokens: completion?.usage?.promptTokens,
            completionTokens: completion?.usage?.completionTokens,
            costUsd: completion?.cost,
            cached: completion?.cached ?? false,
            retries: completion?.retries.count ?? failure?.retries ?? 0,
            retryErrors: CallRecord.retryErrors(completion?.retries ?? failure?.retryErrors ?? []),
            errorKind: failure.map { $0.kind.rawValue }
        )
        do {
            return try await callLog.record(record).id
        } catch {
            // A call log that cannot be written must not cost the caller the answer.
            logCallLogFailure(error)
            return nil
        }
    }

    /// Records on the call's row that its generation could not be committed: the call stays
    /// in the log with the tokens and cost it took, and the failure as its status.
    func logStorageFailure(_ row: Int64?, _ failure: StageError) async {
        guard let row else { return }
        do {
            try await callLog.update(row, status: "storage_error", error: failure.message)
        } catch {
            logCallLogFailure(error)
        }
    }

    func logCallLogFailure(_ error: any Error) {
        logger.error(
            "cannot write the call log; its calls are kept and written when it can take them",
            metadata: ["error": "\(error)", "waiting": "\(callLog.unwrittenCount)"]
        )
    }

    func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }
}

/// Runs of the same generation that overlap share one execution, which goes on while at least
/// one of them still waits for it: a waiter that is cancelled leaves at once with a cancellation,
/// and when the last one leaves the execution is cancelled too (its model call's transfer, retries
/// and backoff with it), so nothing is generated that nobody will read.
actor InFlightGenerations {
    typealias Outcome = Result<StageResult, StageError>

    private final class Execution {
        var task: Task<Void, Never>?
        var waiters: [Int: CheckedContinuation<Outcome, Never>] = [:]
    }

    private var running: [String: Execution] = [:]
    private var nextWaiter = 0

    /// The requests waiting for the execution of `key` (for tests).
    func waiters(_ key: String) -> Int { running[key]?.waiters.count ?? 0 }

    func run(_ key: String, _ body: @escaping @Sendable () async -> Outcome) async -> Outcome {
        nextWaiter += 1
        let waiter = nextWaiter
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                guard !Task.isCancelled else {
                    continuation.resume(returning: .failure(Self.cancelled))
                    return
                }
                if let execution = running[key] {
                    execution.waiters[waiter] = continuation
                    return
                }
                let execution = Execution()
                execution.waiters[waiter] = continuation
                running[key] = execution
                execution.task = Task {
                    let outcome = await body()
                    self.finish(key, execution, outcome)
                }
            }
        } onCancel: {
            Task { await self.leave(key, waiter) }
        }
    }

    private func finish(_ key: String, _ execution: Execution, _ outcome: Outcome) {
        if running[key] === execution { running[key] = nil }
        let waiters = execution.waiters.values
        execution.waiters = [:]
        for waiter in waiters { waiter.resume(returning: outcome) }
    }

    private func leave(_ key: String, _ waiter: Int) {
        guard let execution = running[key], execution.waiters[waiter] != nil else { return }
        guard execution.waiters.count == 1 else {
            execution.waiters.removeValue(forKey: waiter)?.resume(returning: .failure(Self.cancelled))
            return
        }
        // The last waiter: the execution is cancelled, and this waiter gets its outcome once it
        // has wound down (the transfer aborted, the call logged), so that a server exiting after
        // the answer leaves nothing half done. A later run of the generation starts afresh.
        running[key] = nil
        execution.task?.cancel()
    }

    static let cancelled = StageError(.cancelled, "the request was cancelled")
}

extension GenerationStage {
    /// The template variable that holds the parent's parsed text: `draft` for essays, `response`
    /// for evaluations.
    var parentVariable: String? {
        switch self {
        case .draft: return nil
        case .essay: return "draft"
        case .evaluation: return "response"
        }
    }
}
