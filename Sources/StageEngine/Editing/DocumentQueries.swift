import Foundation
import JSON
import Jinja
import ModelProviders
import OutputParsing

/// A suggestion an editor offers while typing.
public struct EditorCompletion: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case variable, function, value, file, keyword
    }

    public var label: String
    public var kind: Kind
    /// One line shown next to the label: where a variable comes from, what a template is.
    public var detail: String?
}

/// A named part of a task or pipeline file, for an editor's outline.
public struct EditorSymbol: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// A task stage.
        case stage
        /// A task of a pipeline.
        case task
    }

    public var name: String
    /// The handler, or the task file.
    public var detail: String
    public var kind: Kind
    public var range: TextRange
}

extension WorkspaceEngine {
    // MARK: - Hover

    /// What to show for the word under `position`, as Markdown, or nil for nothing.
    public func hover(_ document: EditorDocument, at position: TextPosition) async -> String? {
        let snapshot = await state.current()
        switch document.kind {
        case .template(let stage, _):
            guard let word = document.word(at: position)?.text else { return nil }
            if let provided = providedVariables(stage: stage, snapshot)[word] {
                return "**\(word)** — from \(provided.source)\n\nExample: `\(Self.preview(provided.example))`"
            }
            if Template.filterNames.contains(word) { return "Jinja2 filter `\(word)`" }
            return nil
        case .membership:
            guard position.line > 0, let cell = document.csvCell(at: position), !cell.value.isEmpty else { return nil }
            let value = cell.value
            switch cell.column {
            case "gen_id", "parent_gen_id": return await generationHover(value)
            case "template_id":
                return templateHover(
                    stage: cell.value(of: "stage").flatMap(GenerationStage.init(rawValue:)),
                    id: value,
                    snapshot
                )
            case "llm_model_id":
                do {
                    let (provider, name) = try snapshot.router.check(value)
                    let price = snapshot.router.prices.price(provider: provider, model: name)
                    return "**\(value)** → provider `\(provider)`, model `\(name)`"
                        + (price.map {
                            String(format: "\n\n$%.2f / $%.2f per million tokens in / out", $0.input, $0.output)
                        }
                            ?? "\n\nno price known: its cost is not counted")
                } catch {
                    return "**\(value)**: \(error.message)"
                }
            default: return nil
            }
        case .templateCatalog(let stage):
            guard position.line > 0, let cell = document.csvCell(at: position) else { return nil }
            let (column, value) = (cell.column, cell.value)
            if column == "template_id" { return templateHover(stage: stage, id: value, snapshot) }
            if column == "parser" && !value.isEmpty {
                return parsers.names.contains(value)
                    ? "parser `\(value)`" : "no parser `\(value)`; known: \(parsers.names.joined(separator: ", "))"
            }
            return nil
        case .task:
            guard let word = document.word(at: position)?.text else { return nil }
            if let text = Self.handlerDescriptions[word] { return "**\(word)** handler: \(text)" }
            if TaskStage(rawValue: word) != nil { return "task stage **\(word)**" }
            return nil
        case .configuration, .pipeline, .other:
            return nil
        }
    }

    /// What each handler kind of a task file does.
    static let handlerDescriptions: [String: String] = [
        "template": "renders a Jinja template with the context; its output is the text",
        "llm": "calls a model with the chained input as the prompt",
        "prompt": "renders a template and calls a model with it",
        "parse": "reads the input with a named parser (json, …)",
        "schema": "validates the input against a JSON Schema; failing starts a refinement cycle",
        "command": "runs a program: the invocation as JSON on stdin, {output, flags} on stdout",
        "client": "asks the connected client to run the stage (executeStage)",
        "write": "writes the input to a file of the run's folder",
    ]

    static func preview(_ value: TemplateValue) -> String {
        let text = value.json.description
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }

    func templateHover(stage: GenerationStage?, id: String, _ snapshot: WorkspaceState.Snapshot) -> String? {
        let stages = stage.map { [$0] } ?? GenerationStage.allCases
        guard let entry = stages.lazy.compactMap({ snapshot.templates.entry($0, id) }).first else {
            return "no template `\(id)` in the catalogs"
        }
        var lines = [
            "**\(entry.name)** (`\(entry.id)`, \(entry.stage.rawValue), \(entry.generator.rawValue)"
                + (entry.active ? "" : ", **inactive**") + ")",
            entry.description,
            "file: `\(entry.file)`" + (entry.parser.map { " · parser `\($0)`" } ?? ""),
        ]
        if lines[1].isEmpty { lines.remove(at: 1) }
        return lines.joined(separator: "\n\n")
    }

    func generationHover(_ genId: String) async -> String? {
        guard let record = try? await record(of: genId) else { return "no generation `\(genId)`" }
        var text = "**\(record.genId)** — \(record.stage.rawValue), template `\(record.templateId)`, \(record.state)"
        if let metadata = record.metadata {
            text += "\n\nmodel `\(metadata.model ?? "-")`" + (metadata.provider.map { " via \($0)" } ?? "")
            if let tokens = record.tokens { text += " · \(tokens) tokens" }
            if let cost = metadata.costUsd { text += String(format: " · $%.4f", cost) }
            if let score = record.score { text += " · score \(score)" }
        }
        var prompt = (try? readGeneration(record.stage, genId))??.prompt
        if prompt == nil {
            prompt = try? await renderPrompt(StageRunSpec(stage: record.stage, genId: genId)).prompt
        }
        if let prompt {
            let shown = prompt.count > 1200 ? String(prompt.prefix(1200)) + "\n…" : prompt
            text += "\n\n```\n\(shown)\n```"
        }
        return text
    }

    // MARK: - Completion

    /// What may be typed at `position`.
    public func completions(_ document: EditorDocument, at position: TextPosition) async -> [EditorCompletion] {
        let snapshot = await state.current()
        let line = document.line(position.line)
        let before = String(line[..<EditorDocument.index(ofColumn: position.character, in: line)])
        switch document.kind {
        case .template(let stage, _):
            // Only inside {{ … }} or {% … %}.
            let open = max(
                before.range(of: "{{", options: .backwards)?.lowerBound ?? before.startIndex,
                before.range(of: "{%", options: .backwards)?.lowerBound ?? before.startIndex
            )
            let tag = before[open...]
            guard tag.hasPrefix("{{") || tag.hasPrefix("{%"), !tag.contains("}}"), !tag.contains("%}") else {
                return []
            }
            let trimmed = tag.reversed().drop { EditorDocument.isWordCharacter($0) || $0 == " " }
            if trimmed.first == "|" {
                return Template.filterNames.sorted().map {
                    EditorCompletion(label: $0, kind: .function, detail: "filter")
                }
            }
            if tag.range(of: #"\bis\s+\w*$"#, options: .regularExpression) != nil {
                return Template.testNames.sorted().map { EditorCompletion(label: $0, kind: .function, detail: "test") }
            }
            return providedVariables(stage: stage, snapshot).sorted { $0.key < $1.key }.map {
                EditorCompletion(label: $0.key, kind: .variable, detail: $0.value.source)
            }
        case .membership:
            guard position.line > 0, let cell = document.csvCell(at: position) else { return [] }
            let column = cell.column
            let stage = cell.value(of: "stage").flatMap(GenerationStage.init(rawValue:))
            switch column {
            case "stage": return GenerationStage.allCases.map { EditorCompletion(label: $0.rawValue, kind: .keyword) }
            case "template_id":
                return snapshot.templates.all.filter { stage == nil || $0.stage == stage }.map {
                    EditorCompletion(label: $0.id, kind: .value, detail: "\($0.stage.rawValue): \($0.name)")
                }
            case "combo_id":
                return (snapshot.configuration.combos ?? [:]).keys.sorted().map {
                    EditorCompletion(label: $0, kind: .value, detail: "combo")
                }
            case "llm_model_id":
                let used = Set(await state.catalog().membership.rows.values.compactMap(\.llmModelId))
                return (used.union(snapshot.router.aliases.keys)).sorted().map {
                    EditorCompletion(label: $0, kind: .value, detail: "model")
                }
            case "parent_gen_id":
                let parentStage = stage?.parentStage
                return await state.catalog().membership.rows.values
                    .filter { parentStage == nil || $0.stage == parentStage }
                    .map(\.genId).sorted().map { EditorCompletion(label: $0, kind: .value, detail: "gen id") }
            default: return []
            }
        case .templateCatalog:
            guard position.line > 0, let cell = document.csvCell(at: position) else { return [] }
            switch cell.column {
            case "parser": return parsers.names.map { EditorCompletion(label: $0, kind: .value, detail: "parser") }
            case "generator": return ["llm", "copy"].map { EditorCompletion(label: $0, kind: .keyword) }
            case "active": return ["true", "false"].map { EditorCompletion(label: $0, kind: .keyword) }
            default: return []
            }
        case .task:
            let indent = before.prefix { $0 == " " }.count
            let key = before.drop { $0 == " " }
            guard key.allSatisfy({ EditorDocument.isWordCharacter($0) }) || key.hasSuffix("{ ") || key.hasSuffix("{")
            else {
                return []
            }
            if indent == 2 && key.allSatisfy({ EditorDocument.isWordCharacter($0) }) {
                return TaskStage.allCases.map {
                    EditorCompletion(label: $0.rawValue, kind: .keyword, detail: "task stage")
                }
            }
            return TaskDefinition.handlerKinds.map {
                EditorCompletion(label: $0, kind: .keyword, detail: Self.handlerDescriptions[$0])
            }
        case .configuration, .pipeline, .other:
            return []
        }
    }

    // MARK: - Navigation

    /// Where the thing under `position` is defined: a membership row's template file or parent
    /// row, a catalog row's template file, a task file's template or schema, a pipeline's task file.
    public func definition(_ document: EditorDocument, at position: TextPosition) async -> WorkspaceLocation? {
        let snapshot = await state.current()
        let start = WorkspaceLocation(
            path: "",
            range: TextRange(TextPosition(line: 0, character: 0), TextPosition(line: 0, character: 0))
        )
        func file(_ path: String) -> WorkspaceLocation? {
            guard workspace.isFile(path) else { return nil }
            var location = start
            location.path = path
            return location
        }
        switch document.kind {
        case .membership, .templateCatalog:
            guard position.line > 0, let cell = document.csvCell(at: position) else { return nil }
            let (column, value) = (cell.column, cell.value)
            var stage = cell.value(of: "stage").flatMap(GenerationStage.init(rawValue:))
            if case .templateCatalog(let catalogStage) = document.kind { stage = catalogStage }
            switch column {
            case "template_id":
                guard let stage, let entry = snapshot.templates.entry(stage, value) else { return nil }
                return file(entry.file)
            case "parent_gen_id":
                guard let row = snapshot.membership.row(value) else { return nil }
                var location = start
                location.path = row.file
                location.range = .line(max(0, row.line - 1), length: 0)
                return location
            default: return nil
            }
        case .task, .pipeline:
            // A path after `template:`, `schema:` or `task:` on the line, relative to the file's folder.
            let line = String(document.line(position.line))
            guard
                let match = line.range(
                    of: #"(template|schema|task|file)\s*:\s*"?([^",}\s]+)"#,
                    options: .regularExpression
                )
            else { return nil }
            let value =
                line[match].split(separator: ":", maxSplits: 1).last.map {
                    $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
                } ?? ""
            let folder = (document.path as NSString).deletingLastPathComponent
            return file(Self.normalized(folder.isEmpty ? value : "\(folder)/\(value)"))
        case .template, .configuration, .other:
            return nil
        }
    }

    /// The places that use the template a document is (or whose id is under `position` in a
    /// catalog): its catalog row and every membership row naming it.
    public func references(_ document: EditorDocument, at position: TextPosition) async -> [WorkspaceLocation] {
        var stage: GenerationStage
        var id: String
        switch document.kind {
        case .template(let templateStage, let templateId):
            (stage, id) = (templateStage, templateId)
        case .templateCatalog(let catalogStage):
            guard position.line > 0, let cell = document.csvCell(at: position), cell.column == "template_id" else {
                return []
            }
            (stage, id) = (catalogStage, cell.value)
        default:
            return []
        }
        let catalog = await state.catalog()
        var found: [WorkspaceLocation] = []
        if let entry = catalog.templates.entry(stage, id) {
            found.append(
                WorkspaceLocation(
                    path: TemplateCatalog.catalogFile(stage),
                    range: .line(max(0, entry.line - 1), length: 0)
                )
            )
        }
        for row in catalog.membership.rows.values where row.stage == stage && row.templateId == id {
            found.append(WorkspaceLocation(path: row.file, range: .line(max(0, row.line - 1), length: 0)))
        }
        return found.sorted { ($0.path, $0.range.start) < ($1.path, $1.range.start) }
    }

    /// A relative path with its `.` and `..` resolved (`pipelines/../tasks/a.yaml` → `tasks/a.yaml`).
    static func normalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
            } else {
                parts.append(part)
            }
        }
        return parts.joined(separator: "/")
    }

    // MARK: - Outline

    /// The stages of a task file, or the tasks of a pipeline file, where they are written.
    public func symbols(_ document: EditorDocument) -> [EditorSymbol] {
        guard case .success(let parsed) = definitionDocument(document) else { return [] }
        switch document.kind {
        case .task:
            guard case .object(let stages)? = parsed["stages"] else { return [] }
            return stages.compactMap { name, handler -> EditorSymbol? in
                guard
                    let line = document.lines.firstIndex(where: {
                        $0.contains("\(name):") || $0.contains("\"\(name)\"")
                    })
                else { return nil }
                let kind = handler.objectKeys.first { TaskDefinition.handlerKinds.contains($0) } ?? "handler"
                return EditorSymbol(
                    name: name,
                    detail: kind,
                    kind: .stage,
                    range: .line(line, length: document.line(line).utf16.count)
                )
            }
        case .pipeline:
            guard case .array(let tasks)? = parsed["tasks"] else { return [] }
            var symbols: [EditorSymbol] = []
            var searchFrom = 0
            for task in tasks {
                guard case .string(let file)? = task["task"] else { continue }
                let name =
                    task["name"]?.stringValue
                    ?? ((file as NSString).lastPathComponent.split(separator: ".").first.map(String.init) ?? file)
                guard let line = document.lines[searchFrom...].firstIndex(where: { $0.contains(file) }) else {
                    continue
                }
                searchFrom = line + 1
                symbols.append(
                    EditorSymbol(
                        name: name,
                        detail: file,
                        kind: .task,
                        range: .line(line, length: document.line(line).utf16.count)
                    )
                )
            }
            return symbols
        default:
            return []
        }
    }
}

extension JSONValue {
    /// The keys of an object, in order; empty for anything else.
    fileprivate var objectKeys: [String] {
        if case .object(let members) = self { return members.keys }
        return []
    }
}
