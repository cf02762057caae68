import Foundation
import JSON
import JSONRPC
import ModelProviders
import StageEngine
import Synchronization

/// The documents an editor has open, and the diagnostics runs waiting on their edits.
final class OpenDocuments: Sendable {
    struct Open {
        var path: String
        var version: Int?
        var text: String
    }

    private let state = Mutex<(documents: [String: Open], pending: [String: Task<Void, Never>])>(([:], [:]))

    func set(_ uri: String, _ document: Open) { state.withLock { $0.documents[uri] = document } }

    func get(_ uri: String) -> Open? { state.withLock { $0.documents[uri] } }

    func remove(_ uri: String) {
        state.withLock { state in
            state.documents[uri] = nil
            state.pending.removeValue(forKey: uri)?.cancel()
        }
    }

    /// Starts `work` for `uri`, cancelling the run a previous edit started.
    func schedule(_ uri: String, _ work: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            state.pending[uri]?.cancel()
            state.pending[uri] = Task { await work() }
        }
    }
}

/// The commands `workspace/executeCommand` runs (also offered as code lenses).
enum EditorCommand: String, CaseIterable {
    /// Arguments: a gen id. Answers `{prompt, …}` as `renderPrompt`.
    case render = "stagerunner.render"
    /// Arguments: a gen id. Runs it as `runStage`; shows its raw answer.
    case runGeneration = "stagerunner.runGeneration"
    /// Arguments: a task file's path (relative to the workspace). Runs it as `runTask`.
    case runTask = "stagerunner.runTask"
}

extension RPCServer {
    /// The standard LSP capabilities, announced to clients that send LSP capabilities.
    static var languageCapabilities: [String: JSONValue] {
        [
            "positionEncoding": "utf-16",
            // Full text on every change, and on save.
            "textDocumentSync": ["openClose": true, "change": 1, "save": ["includeText": true]],
            "hoverProvider": true,
            "completionProvider": ["triggerCharacters": ["|", "{", " ", ","]],
            "definitionProvider": true,
            "referencesProvider": true,
            "documentSymbolProvider": true,
            "codeLensProvider": ["resolveProvider": false],
            "executeCommandProvider": ["commands": .array(EditorCommand.allCases.map { .string($0.rawValue) })],
        ]
    }

    /// Whether `initialize`'s capabilities are an LSP client's.
    static func isLanguageClient(_ capabilities: JSONValue?) -> Bool {
        guard case .object(let members)? = capabilities else { return false }
        return ["textDocument", "workspace", "general", "window"].contains { members[$0] != nil }
    }

    /// Whether the connected client asked for the language features (it sent LSP capabilities).
    var servesLanguage: Bool { lifecycle.state.withLock { $0.languageClient } }

    /// A language request from a client that did not ask for the language features is answered
    /// as a method this server does not have, as before they existed.
    func requireLanguageClient(_ context: RequestContext) throws {
        guard servesLanguage else {
            throw ResponseError.methodNotFound(context.method, available: context.connection.methods.requestMethods)
        }
    }

    func registerLanguageMethods(in table: inout MethodTable) {
        table.onNotification("textDocument/didOpen", listed: false) { [self] context in
            guard servesLanguage, let document = context.params?.value()["textDocument"],
                case .string(let uri)? = document["uri"],
                case .string(let text)? = document["text"]
            else { return }
            documentChanged(
                uri,
                text: text,
                version: document["version"]?.integerValue.map(Int.init),
                context.connection
            )
        }
        table.onNotification("textDocument/didChange", listed: false) { [self] context in
            guard servesLanguage, let params = context.params?.value(),
                case .string(let uri)? = params["textDocument"]?["uri"],
                case .array(let changes)? = params["contentChanges"], let last = changes.last,
                case .string(let text)? = last["text"]
            else { return }
            documentChanged(
                uri,
                text: text,
                version: params["textDocument"]?["version"]?.integerValue.map(Int.init),
                context.connection
            )
        }
        table.onNotification("textDocument/didSave", listed: false) { [self] context in
            guard servesLanguage, let params = context.params?.value(),
                case .string(let uri)? = params["textDocument"]?["uri"]
            else {
                return
            }
            let text = params["text"]?.stringValue ?? documents.get(uri)?.text
            guard let text else { return }
            documentChanged(uri, text: text, version: documents.get(uri)?.version, context.connection)
        }
        table.onNotification("textDocument/didClose", listed: false) { [self] context in
            guard servesLanguage, case .string(let uri)? = context.params?.value()["textDocument"]?["uri"] else {
                return
            }
            documents.remove(uri)
            // Closed: its problems are no longer shown.
            context.connection.notify(
                "textDocument/publishDiagnostics",
                params: RawJSON(["uri": .string(uri), "diagnostics": []])
            )
        }
        table.onNotification("$/setTrace", listed: false) { _ in }
        table.register("textDocument/hover", listed: false) { [self] context in
            try requireLanguageClient(context)
            guard let (document, position) = try await located(context) else { return .null }
            guard let markdown = await (try engine.runner()).hover(document, at: position) else { return .null }
            guard lifecycle.state.withLock({ $0.hoverMarkdown }) else {
                return RawJSON(["contents": ["kind": "plaintext", "value": .string(Self.plainText(markdown))]])
            }
            return RawJSON(["contents": ["kind": "markdown", "value": .string(markdown)]])
        }
        table.register("textDocument/completion", listed: false) { [self] context in
            try requireLanguageClient(context)
            guard let (document, position) = try await located(context) else { return RawJSON(.array([])) }
            let items = await (try engine.runner()).completions(document, at: position)
            return RawJSON(
                .array(
                    items.map { item in
                        var members: [String: JSONValue] = [
                            "label": .string(item.label),
                            "kind": .integer(Self.completionKind(item.kind)),
                        ]
                        if let detail = item.detail { members["detail"] = .string(detail) }
                        return .object(members)
                    }
                )
            )
        }
        table.register("textDocument/definition", listed: false) { [self] context in
            try requireLanguageClient(context)
            guard let (document, position) = try await located(context) else { return .null }
            let runner = try await engine.runner()
            guard let location = await runner.definition(document, at: position) else { return .null }
            return RawJSON(Self.json(location, root: runner.workspace.root))
        }
        table.register("textDocument/references", listed: false) { [self] context in
            try requireLanguageClient(context)
            guard let (document, position) = try await located(context) else { return RawJSON(.array([])) }
            let runner = try await engine.runner()
            let locations = await runner.references(document, at: position)
            return RawJSON(.array(locations.map { Self.json($0, root: runner.workspace.root) }))
        }
        table.register("textDocument/documentSymbol", listed: false) { [self] context in
            try requireLanguageClient(context)
            guard let document = try await opened(context) else { return RawJSON(.array([])) }
            let symbols = await (try engine.runner()).symbols(document)
            return RawJSON(
                .array(
                    symbols.map { symbol in
                        [
                            "name": .string(symbol.name),
                            "detail": .string(symbol.detail),
                            // Method for a stage, Module for a pipeline's task.
                            "kind": symbol.kind == .stage ? 6 : 2,
                            "range": Self.json(symbol.range),
                            "selectionRange": Self.json(symbol.range),
                        ]
                    }
                )
            )
        }
        table.register("textDocument/codeLens", listed: false) { [self] context in
            try requireLanguageClient(context)
            guard let document = try await opened(context) else { return RawJSON(.array([])) }
            return RawJSON(.array(Self.codeLenses(document)))
        }
        table.register("workspace/executeCommand", listed: false) { [self] context in
            try requireLanguageClient(context)
            return try await executeCommand(context)
        }
    }

    /// Records the document's text and (re)computes its diagnostics after a short pause, so that
    /// a burst of keystrokes is checked once; a newer edit cancels the check of an older one.
    func documentChanged(_ uri: String, text: String, version: Int?, _ connection: Connection) {
        guard let path = try? workspacePath(uri) else { return }
        documents.set(uri, .init(path: path, version: version, text: text))
        documents.schedule(uri) { [self] in
            try? await Task.sleep(for: .milliseconds(150))
            guard !Task.isCancelled, let runner = try? await engine.runner() else { return }
            let found = await runner.diagnostics(EditorDocument(path: path, text: text))
            guard !Task.isCancelled, documents.get(uri)?.text == text else { return }
            var params: [String: JSONValue] = [
                "uri": .string(uri),
                "diagnostics": .array(
                    found.map { diagnostic in
                        [
                            "range": Self.json(diagnostic.range),
                            "severity": .integer(Self.severity(diagnostic.severity)),
                            "code": .string(diagnostic.code),
                            "source": "stagerunner",
                            "message": .string(diagnostic.message),
                        ]
                    }
                ),
            ]
            if let version { params["version"] = .integer(Int64(version)) }
            connection.notify("textDocument/publishDiagnostics", params: RawJSON(.object(params)))
        }
    }

    /// The workspace-relative path of a `file:` URI inside the workspace.
    func workspacePath(_ uri: String) throws -> String {
        let absolute = URL(fileURLWithPath: try FileURI.path(of: uri)).standardizedFileURL.path
        let root = URL(fileURLWithPath: lifecycle.workspace.root).standardizedFileURL.path
        guard absolute.hasPrefix(root + "/") else {
            throw ResponseError.invalidParams(
                field: "params.textDocument.uri",
                problem: "is outside the workspace \(root)"
            )
        }
        return String(absolute.dropFirst(root.count + 1))
    }

    /// The document at `uri` as the editor holds it, else as saved; nil when it cannot be read.
    func document(_ uri: String) async throws -> EditorDocument? {
        if let open = documents.get(uri) { return EditorDocument(path: open.path, text: open.text) }
        let path = try workspacePath(uri)
        guard let text = try await engine.runner().workspace.readText(path) else { return nil }
        return EditorDocument(path: path, text: text)
    }

    /// The document a `textDocument/*` request names.
    func opened(_ context: RequestContext) async throws -> EditorDocument? {
        let params = try context.decodeParams(JSONValue.self)
        guard case .string(let uri)? = params["textDocument"]?["uri"] else {
            throw ResponseError.invalidParams(field: "params.textDocument.uri", problem: "is required")
        }
        return try await document(uri)
    }

    /// The document and position of a `TextDocumentPositionParams` request.
    func located(_ context: RequestContext) async throws -> (EditorDocument, TextPosition)? {
        let params = try context.decodeParams(JSONValue.self)
        guard case .string(let uri)? = params["textDocument"]?["uri"],
            let line = params["position"]?["line"]?.integerValue,
            let character = params["position"]?["character"]?.integerValue
        else {
            throw ResponseError.invalidParams(
                field: "params",
                problem: "must have textDocument.uri and position {line, character}"
            )
        }
        guard let document = try await document(uri) else { return nil }
        return (document, TextPosition(line: Int(line), character: Int(character)))
    }

    // MARK: - Commands

    /// Code lenses: "run" and "render" on each membership row (the first thousand), "run this
    /// task" at the top of a task file.
    static func codeLenses(_ document: EditorDocument) -> [JSONValue] {
        func lens(_ line: Int, _ title: String, _ command: EditorCommand, _ argument: String) -> JSONValue {
            [
                "range": json(
                    TextRange(TextPosition(line: line, character: 0), TextPosition(line: line, character: 0))
                ),
                "command": [
                    "title": .string(title), "command": .string(command.rawValue), "arguments": [.string(argument)],
                ],
            ]
        }
        switch document.kind {
        case .membership:
            let table = CSVTable(text: document.text, file: document.path)
            guard let genColumn = table.header.firstIndex(where: { $0.value == "gen_id" }) else { return [] }
            var lenses: [JSONValue] = []
            for row in table.rows.prefix(1000) where row.cells.indices.contains(genColumn) {
                let genId = row.cells[genColumn].value.trimmingCharacters(in: .whitespaces)
                guard !genId.isEmpty else { continue }
                lenses.append(lens(row.line - 1, "▶ run \(genId)", .runGeneration, genId))
                lenses.append(lens(row.line - 1, "render", .render, genId))
            }
            return lenses
        case .task:
            return [lens(0, "▶ run this task", .runTask, document.path)]
        default:
            return []
        }
    }

    func executeCommand(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(JSONValue.self)
        guard case .string(let name)? = params["command"], let command = EditorCommand(rawValue: name) else {
            throw ResponseError.invalidParams(
                field: "params.command",
                problem: "must be one of \(EditorCommand.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard case .array(let arguments)? = params["arguments"], case .string(let argument)? = arguments.first else {
            throw ResponseError.invalidParams(field: "params.arguments", problem: "must be [\"<gen id or task file>\"]")
        }
        let runner = try await engine.runner()
        switch command {
        case .render:
            let row = await runner.membershipRow(argument)
            do {
                let rendered = try await runner.renderPrompt(StageRunSpec(stage: row?.stage ?? .draft, genId: argument))
                return RawJSON(WorkspaceEngine.renderedPromptJSON(rendered))
            } catch {
                throw ResponseError(error)
            }
        case .runGeneration:
            guard let row = await runner.membershipRow(argument) else {
                throw ResponseError.invalidParams(
                    field: "params.arguments[0]",
                    problem: "no generation '\(argument)' in the membership"
                )
            }
            try await requireWritable("runStage")
            let result: StageResult
            do {
                result = try await runner.run(StageRunSpec(stage: row.stage, genId: argument))
            } catch {
                throw ResponseError(error)
            }
            if let file = result.files.first(where: { $0.hasSuffix("/raw.txt") }) ?? result.files.first {
                showDocument(runner.workspace.path(file), context.connection)
            }
            return try Self.encode(result, limit: 65_536)
        case .runTask:
            try await requireWritable("runTask")
            let task: TaskDefinition
            do {
                task = try await runner.loadTask(argument)
            } catch {
                throw ResponseError(definition: error, kind: "task")
            }
            return RawJSON(try await runner.runTask(task).json)
        }
    }

    /// Asks the editor to open `path` (LSP 3.16 `window/showDocument`) when it said it can,
    /// without waiting for it.
    func showDocument(_ path: String, _ connection: Connection) {
        guard lifecycle.state.withLock({ $0.showsDocuments }) else { return }
        let uri = FileURI.uri(of: path)
        Task {
            _ = try? await connection.request(
                "window/showDocument",
                params: RawJSON(["uri": .string(uri), "takeFocus": false]),
                timeout: .seconds(30)
            )
        }
    }

    // MARK: - LSP JSON

    /// Hover Markdown as plain text, for a client that shows it as it is: no `**`, backticks or fences.
    static func plainText(_ markdown: String) -> String {
        markdown.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("```") }
            .joined(separator: "\n")
            .replacingOccurrences(of: "**", with: "")
            .replacingOccurrences(of: "`", with: "")
    }

    static func json(_ range: TextRange) -> JSONValue {
        [
            "start": ["line": .integer(Int64(range.start.line)), "character": .integer(Int64(range.start.character))],
            "end": ["line": .integer(Int64(range.end.line)), "character": .integer(Int64(range.end.character))],
        ]
    }

    static func json(_ location: WorkspaceLocation, root: String) -> JSONValue {
        ["uri": .string(FileURI.uri(of: root + "/" + location.path)), "range": json(location.range)]
    }

    static func severity(_ severity: Diagnostic.Severity) -> Int64 {
        switch severity {
        case .error: return 1
        case .warning: return 2
        case .information: return 3
        }
    }

    static func completionKind(_ kind: EditorCompletion.Kind) -> Int64 {
        switch kind {
        case .variable: return 6
        case .function: return 3
        case .value: return 12
        case .file: return 17
        case .keyword: return 14
        }
    }
}
