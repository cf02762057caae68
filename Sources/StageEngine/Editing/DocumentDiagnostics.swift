import Foundation
import JSON
import Jinja
import ModelProviders
import OutputParsing

/// A problem an editor shows in a document: where, how bad, which kind, and what to do.
public struct EditorDiagnostic: Sendable, Hashable {
    public var range: TextRange
    public var severity: Diagnostic.Severity
    /// As `validateWorkspace` names it (`template.syntax`, `membership.unknown-template`, …).
    public var code: String
    public var message: String
}

extension WorkspaceEngine {
    /// The problems of a document as the editor holds it, unsaved edits included: the checks of
    /// `validateWorkspace` for its kind of file, run on its text. Templates also get the
    /// variables nothing provides; task and pipeline files what a dry run would find.
    public func diagnostics(_ document: EditorDocument) async -> [EditorDiagnostic] {
        let snapshot = await state.current()
        switch document.kind {
        case .template(let stage, _):
            return templateDiagnostics(document, stage: stage, snapshot)
        case .templateCatalog(let stage):
            let found = TemplateCatalog.diagnostics(
                document.text,
                stage: stage,
                workspace: workspace,
                knownParsers: Set(parsers.names)
            )
            return found.filter { $0.file == document.path }.map { editorDiagnostic($0, in: document) }
        case .membership:
            return Membership.diagnostics(document.text, file: document.path, templates: snapshot.templates)
                .map { editorDiagnostic($0, in: document) }
        case .configuration:
            return WorkspaceConfiguration.parse(document.text, workspace: workspace).1
                .filter { $0.file == document.path }
                .map { editorDiagnostic($0, in: document) }
        case .task:
            return await taskDiagnostics(document)
        case .pipeline:
            return await pipelineDiagnostics(document)
        case .other:
            return []
        }
    }

    /// A workspace diagnostic placed in the document: its line and column (1-based, 0 for the
    /// whole line or file) become a range running to the end of the word there.
    func editorDiagnostic(_ diagnostic: Diagnostic, in document: EditorDocument) -> EditorDiagnostic {
        let line = max(0, diagnostic.line - 1)
        let text = document.line(line)
        var range = TextRange.line(line, length: text.utf16.count)
        if diagnostic.line > 0 && diagnostic.column > 0 {
            let start = text.index(text.startIndex, offsetBy: min(diagnostic.column - 1, text.count))
            var end = start
            while end < text.endIndex, text[end] != "," { end = text.index(after: end) }
            if end == start && end < text.endIndex { end = text.index(after: end) }
            range = TextRange(
                TextPosition(line: line, character: EditorDocument.column(of: start, in: text)),
                TextPosition(line: line, character: EditorDocument.column(of: end, in: text))
            )
        }
        return EditorDiagnostic(
            range: range,
            severity: diagnostic.severity,
            code: diagnostic.code,
            message: diagnostic.message
        )
    }

    // MARK: - Templates

    /// The variables a template of `stage` can count on: the workspace's `values`, every combo's
    /// variables, and the parent's text (`draft` for essays, `response` for evaluations), each
    /// with where it comes from and an example value.
    func providedVariables(
        stage: GenerationStage,
        _ snapshot: WorkspaceState.Snapshot
    ) -> [String: (source: String, example: TemplateValue)] {
        var provided: [String: (source: String, example: TemplateValue)] = [:]
        for (name, value) in snapshot.configuration.values ?? [:] {
            provided[name] = ("the values of \(WorkspaceConfiguration.fileName)", value)
        }
        for (combo, variables) in (snapshot.configuration.combos ?? [:]).sorted(by: { $0.key < $1.key }) {
            for (name, value) in variables where provided[name] == nil {
                provided[name] = ("combo '\(combo)' in \(WorkspaceConfiguration.fileName)", value)
            }
        }
        if let name = stage.parentVariable, let parent = stage.parentStage {
            provided[name] = ("the parent \(parent.rawValue)'s parsed text", .string("…the \(parent.rawValue)…"))
        }
        return provided
    }

    func templateDiagnostics(
        _ document: EditorDocument,
        stage: GenerationStage,
        _ snapshot: WorkspaceState.Snapshot
    ) -> [EditorDiagnostic] {
        let template: Template
        do {
            template = try Template(source: document.text, name: document.path)
        } catch {
            let line = max(0, error.line - 1)
            let text = document.line(line)
            var start = 0
            if error.column > 0 {
                start = EditorDocument.column(
                    of: text.index(text.startIndex, offsetBy: min(error.column - 1, text.count)),
                    in: text
                )
            }
            return [
                EditorDiagnostic(
                    range: TextRange(
                        TextPosition(line: line, character: start),
                        TextPosition(line: line, character: text.utf16.count)
                    ),
                    severity: .error,
                    code: "template.syntax",
                    message: error.message
                )
            ]
        }
        var found = template.unknownNames.map { unknown in
            EditorDiagnostic(
                range: document.range(of: unknown.name, onLine: unknown.line - 1),
                severity: .error,
                code: "template.unknown-\(unknown.kind.rawValue)",
                message: unknown.message
            )
        }
        let provided = providedVariables(stage: stage, snapshot)
        var parent = ""
        if let name = stage.parentVariable, let parentStage = stage.parentStage {
            parent = " or the parent \(parentStage.rawValue) (\(name))"
        }
        for free in template.freeNames where provided[free.name] == nil {
            found.append(
                EditorDiagnostic(
                    range: document.range(of: free.name, onLine: free.line - 1),
                    severity: .warning,
                    code: "template.unprovided-variable",
                    message: "'\(free.name)' is not given by the values or combos of \(WorkspaceConfiguration.fileName)"
                        + "\(parent): a generation fails on it unless its request gives it in values"
                )
            )
        }
        return found
    }

    // MARK: - Task and pipeline files

    /// The text of a task or pipeline file as a document (YAML, or JSON by extension).
    func definitionDocument(_ document: EditorDocument) -> Result<JSONValue, TaskDefinitionError> {
        do {
            return .success(try TaskDefinition.parseDocument(document.text, file: document.path))
        } catch {
            return .failure(error)
        }
    }

    /// Where a task-file error points: its line, else the line of the last key of its path.
    func editorDiagnostic(_ error: TaskDefinitionError, in document: EditorDocument) -> EditorDiagnostic {
        var line = error.line.map { $0 - 1 }
        if line == nil, let key = error.path.split(separator: ".").last.map(String.init) {
            let bare = key.split(separator: "[").first.map(String.init) ?? key
            line = document.lines.firstIndex { $0.contains("\(bare):") || $0.contains("\"\(bare)\"") }
        }
        let at = max(0, line ?? 0)
        return EditorDiagnostic(
            range: .line(at, length: document.line(at).utf16.count),
            severity: .error,
            code: "task.invalid",
            message: (error.path.isEmpty ? "" : "\(error.path): ") + error.message
        )
    }

    func taskDiagnostics(_ document: EditorDocument) async -> [EditorDiagnostic] {
        let parsed: JSONValue
        switch definitionDocument(document) {
        case .failure(let error): return [editorDiagnostic(error, in: document)]
        case .success(let value): parsed = value
        }
        let (directory, stem) = TaskDefinition.folderAndStem(document.path)
        let task: TaskDefinition
        do {
            var loader = TaskFileLoader(
                file: document.path,
                directory: directory,
                workspace: workspace,
                parsers: parsers
            )
            task = try loader.definition(from: parsed, defaultName: stem)
        } catch {
            return [editorDiagnostic(error, in: document)]
        }
        // What would stop each stage, at the stage's line.
        var found: [EditorDiagnostic] = []
        for stage in await dryRun(task).stages {
            for problem in stage.problems {
                let line = document.lines.firstIndex { $0.contains("\(stage.stage.rawValue):") } ?? 0
                found.append(
                    EditorDiagnostic(
                        range: document.range(of: stage.stage.rawValue, onLine: line),
                        severity: .warning,
                        code: "task.stage-problem",
                        message: problem
                    )
                )
            }
        }
        return found
    }

    func pipelineDiagnostics(_ document: EditorDocument) async -> [EditorDiagnostic] {
        let parsed: JSONValue
        switch definitionDocument(document) {
        case .failure(let error): return [editorDiagnostic(error, in: document)]
        case .success(let value): parsed = value
        }
        let (directory, stem) = TaskDefinition.folderAndStem(document.path)
        let pipeline: PipelineDefinition
        do {
            pipeline = try PipelineLoader(file: document.path, directory: directory)
                .pipeline(from: parsed, defaultName: stem)
        } catch {
            return [editorDiagnostic(error, in: document)]
        }
        var found: [EditorDiagnostic] = []
        for step in pipeline.steps {
            do {
                _ = try await loadTask(step.file)
            } catch {
                let name = (step.file as NSString).lastPathComponent
                let line = document.lines.firstIndex { $0.contains(name) } ?? 0
                found.append(
                    EditorDiagnostic(
                        range: document.range(of: name, onLine: line),
                        severity: .error,
                        code: "pipeline.task-file",
                        message: "task \(step.name): \(error)"
                    )
                )
            }
        }
        return found
    }
}
