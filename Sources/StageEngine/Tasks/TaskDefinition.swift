import Foundation
import JSON
import OutputParsing
import Yams

/// A task: which handler runs each of the eleven stages, and the run's defaults.
///
/// Load one from a task file (`TaskDefinition.load`) or build it in Swift with handlers of your own.
public struct TaskDefinition: Sendable {
    /// The task's name (a task file's `name`, else its file name without extensions).
    public var name: String
    /// The task file's folder, relative to the workspace: its stages' files are resolved there.
    public var directory: String
    /// The handler of each stage that has one.
    public var handlers: [TaskStage: any TaskStageHandler]
    /// Per-stage timeouts that differ from `stageTimeout`.
    public var timeouts: [TaskStage: Duration]
    /// The timeout of stages that give none (300 s unless the task says otherwise).
    public var stageTimeout: Duration
    /// Refinement cycles allowed (the task file's `maxRefinements`, 3 by default).
    public var maxRefinements: Int
    /// The model of `llm` and `prompt` stages that name none.
    public var model: String?
    /// Declared flag types.
    public var flagSchemas: FlagSchemas
    /// The workspace files the task was loaded from (the task file, then its templates and
    /// schemas), each stamped before it was read, so that an edit made while loading is seen.
    var sources: [(file: String, stamp: FileStamp)] = []

    public static let defaultStageTimeout = Duration.seconds(300)
    public static let defaultMaxRefinements = 3

    public init(
        name: String,
        directory: String = ".",
        handlers: [TaskStage: any TaskStageHandler],
        timeouts: [TaskStage: Duration] = [:],
        stageTimeout: Duration = defaultStageTimeout,
        maxRefinements: Int = defaultMaxRefinements,
        model: String? = nil,
        flagSchemas: FlagSchemas = FlagSchemas()
    ) {
        self.name = name
        self.directory = directory
        self.handlers = handlers
        self.timeouts = timeouts
        self.stageTimeout = stageTimeout
        self.maxRefinements = maxRefinements
        self.model = model
        self.flagSchemas = flagSchemas
    }

    /// The handler kinds a task file may name.
    public static let handlerKinds = ["template", "llm", "prompt", "parse", "schema", "command", "client", "write"]
}

/// Why a task file cannot be used: which file, where in it, what is wrong.
public struct TaskDefinitionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The task file, relative to the workspace (`<inline>` for a task given inline).
    public var file: String
    /// Where in the document (`stages.inference.llm.temperature`); empty for the whole file.
    public var path: String
    public var message: String
    /// The line, for syntax errors and template errors.
    public var line: Int?

    public init(file: String, path: String, message: String, line: Int? = nil) {
        self.file = file
        self.path = path
        self.message = message
        self.line = line
    }

    public var description: String {
        file + (line.map { ":\($0)" } ?? "") + ": " + (path.isEmpty ? "" : "\(path): ") + message
    }
}

extension TaskDefinition {
    /// Loads the task file at `file` (YAML, or JSON by its `.json` extension), relative to the
    /// workspace, compiling its templates and schemas and checking its parsers.
    public static func load(
        _ file: String,
        workspace: Workspace,
        parsers: ParserRegistry = .standard
    ) throws(TaskDefinitionError) -> TaskDefinition {
        let (document, directory, stem, stamp) = try readDefinitionFile(file, kind: "task", workspace: workspace)
        var loader = TaskFileLoader(file: file, directory: directory, workspace: workspace, parsers: parsers)
        var definition = try loader.definition(from: document, defaultName: stem)
        definition.sources = [(file, stamp)] + loader.filesRead
        return definition
    }

    /// Builds a task from a document given inline (a `runTask` request's `task` object); its
    /// files are resolved against `directory` (relative to the workspace). `command` handlers are
    /// refused unless `allowingCommands`: a task from the protocol must not run a program of the
    /// client's choice (commands come from task files in the workspace only).
    public static func inline(
        _ document: JSONValue,
        directory: String = ".",
        workspace: Workspace,
        parsers: ParserRegistry = .standard,
        allowingCommands: Bool = false
    ) throws(TaskDefinitionError) -> TaskDefinition {
        var loader = TaskFileLoader(file: "<inline>", directory: directory, workspace: workspace, parsers: parsers)
        loader.allowsCommands = allowingCommands
        var definition = try loader.definition(from: document, defaultName: "inline")
        definition.sources = loader.filesRead
        return definition
    }

    /// Reads a task or pipeline file: checks that it is a relative path inside the workspace,
    /// parses it, and gives its folder, its name without extensions and its stamp before reading.
    static func readDefinitionFile(
        _ file: String,
        kind: String,
        workspace: Workspace
    ) throws(TaskDefinitionError) -> (document: JSONValue, directory: String, stem: String, stamp: FileStamp) {
        if file.isEmpty || file.hasPrefix("/") || file.split(separator: "/").contains("..") || !workspace.contains(file)
        {
            throw TaskDefinitionError(
                file: file,
                path: "",
                message: "the \(kind) file must be a path relative to the workspace, inside it"
            )
        }
        if let folder = workspace.outputFolder(containing: file) {
            throw TaskDefinitionError(
                file: file,
                path: "",
                message: "the \(kind) file is in \(folder)/, where StageRunner writes what runs produce; "
                    + "\(kind) files are read only from the workspace's own files"
            )
        }
        let stamp = workspace.stamp(file)
        let text: String
        switch workspace.loadText(file) {
        case .missing:
            throw TaskDefinitionError(
                file: file,
                path: "",
                message: "no such \(kind) file in the workspace \(workspace.root)"
            )
        case .notUTF8: throw TaskDefinitionError(file: file, path: "", message: "is not UTF-8 text")
        case .text(let contents): text = contents
        }
        let document = try parseDocument(text, file: file)
        let (directory, stem) = folderAndStem(file)
        return (document, directory, stem, stamp)
    }

    /// A task or pipeline file's folder (`.` at the top) and its name without extensions: what
    /// its paths are relative to, and its default name.
    static func folderAndStem(_ file: String) -> (directory: String, stem: String) {
        let slash = file.lastIndex(of: "/")
        let directory = slash.map { String(file[..<$0]) } ?? "."
        var stem = String(file[(slash.map { file.index(after: $0) } ?? file.startIndex)...])
        if let dot = stem.firstIndex(of: "."), dot > stem.startIndex { stem = String(stem[..<dot]) }
        return (directory, stem)
    }

    static func parseDocument(_ text: String, file: String) throws(TaskDefinitionError) -> JSONValue {
        if file.hasSuffix(".json") {
            let bytes = Array(text.utf8)
            do {
                return try JSONParser.parse(bytes)
            } catch {
                let line = error.location(in: bytes).line
                throw TaskDefinitionError(file: file, path: "", message: "invalid JSON: \(error.reason)", line: line)
            }
        }
        do {
            return try YAMLDecoder().decode(JSONValue.self, from: text)
        } catch {
            let syntax = YAMLSyntaxError(error)
            throw TaskDefinitionError(
                file: file,
                path: "",
                message: syntax?.message ?? "invalid YAML: \(error)",
                line: syntax?.line
            )
        }
    }
}
