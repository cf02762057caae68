import JSON
import Jinja
import OutputParsing

/// Reads a task document into a ``TaskDefinition``, naming the exact place of every mistake.
struct TaskFileLoader {
    let file: String
    let directory: String
    let workspace: Workspace
    let parsers: ParserRegistry
    /// Whether `command` handlers are accepted: only from files in the workspace unless the caller
    /// says otherwise, so that a protocol client cannot make the server run a program of its choice.
    var allowsCommands = true
    /// The workspace files the task file refers to (templates, schemas), as read.
    private(set) var filesRead: [(file: String, stamp: FileStamp)] = []

    func problem(_ path: String, _ message: String, line: Int? = nil) -> TaskDefinitionError {
        TaskDefinitionError(file: file, path: path, message: message, line: line)
    }

    mutating func definition(
        from document: JSONValue,
        defaultName: String
    ) throws(TaskDefinitionError) -> TaskDefinition {
        let top = try object(document, "")
        try checkKeys(
            top,
            "",
            allowed: ["name", "description", "model", "maxRefinements", "stageTimeout", "flags", "stages"]
        )
        let name = try top["name"].map { value throws(TaskDefinitionError) in try string(value, "name") } ?? defaultName
        guard Self.isTaskName(name) else {
            throw problem("name", "'\(name)' must be letters, digits, '.', '_' or '-' (it names the run's folder)")
        }
        var definition = TaskDefinition(name: name, directory: directory, handlers: [:])
        if let model = top["model"] { definition.model = try string(model, "model") }
        if let value = top["maxRefinements"] {
            guard let count = value.integerValue, count >= 0, count <= 100 else {
                throw problem("maxRefinements", "must be an integer from 0 to 100, not \(value)")
            }
            definition.maxRefinements = Int(count)
        }
        if let value = top["stageTimeout"] { definition.stageTimeout = try duration(value, "stageTimeout") }
        if let value = top["flags"] { definition.flagSchemas = FlagSchemas(declared: try flagTypes(value)) }
        guard let stagesValue = top["stages"] else {
            throw problem("stages", "is required: map stage names (\(TaskStage.namesList)) to handlers")
        }
        let stages = try object(stagesValue, "stages")
        for (key, value) in stages.sorted(by: { $0.key < $1.key }) {
            guard let stage = TaskStage(rawValue: key) else {
                throw problem("stages.\(key)", "is not a stage; the stages are \(TaskStage.namesList)")
            }
            let (handler, timeout) = try handler(value, stage: stage, path: "stages.\(key)")
            definition.handlers[stage] = handler
            if let timeout { definition.timeouts[stage] = timeout }
        }
        return definition
    }

    /// Whether `name` can name a task's or pipeline's folder: an identifier of at most 100 characters.
    static func isTaskName(_ name: String) -> Bool {
        name.utf8.count <= 100 && Identifier.problem(name, kind: "name") == nil
    }

    // MARK: - Stage handlers

    mutating func handler(
        _ value: JSONValue,
        stage: TaskStage,
        path: String
    ) throws(TaskDefinitionError) -> (any TaskStageHandler, Duration?) {
        let members = try object(value, path)
        let kinds = members.keys.filter { TaskDefinition.handlerKinds.contains($0) }.sorted()
        if kinds.isEmpty, let unknown = members.keys.filter({ $0 != "timeout" }).sorted().first {
            // A misspelt handler (`lm:`) or a stray setting: name the key, not just the stage.
            throw problem(
                "\(path).\(unknown)",
                "is not a handler; give one of " + TaskDefinition.handlerKinds.joined(separator: ", ")
            )
        }
        guard kinds.count == 1, let kind = kinds.first else {
            throw problem(
                path,
                kinds.isEmpty
                    ? "names no handler; give one of " + TaskDefinition.handlerKinds.joined(separator: ", ")
                    : "names several handlers (\(kinds.joined(separator: ", "))); a stage has exactly one"
            )
        }
        try checkKeys(members, path, allowed: [kind, "timeout"])
        let timeout = try members["timeout"].map { value throws(TaskDefinitionError) in
            try duration(value, "\(path).timeout")
        }
        let config = members[kind]!
        let configPath = "\(path).\(kind)"
        switch kind {
        case "template":
            return (try templateHandler(config, configPath), timeout)
        case "llm":
            return (try modelHandler(config, configPath, withTemplate: false), timeout)
        case "prompt":
            return (try modelHandler(config, configPath, withTemplate: true), timeout)
        case "parse":
            return (try parseHandler(config, configPath), timeout)
        case "schema":
            return (try schemaHandler(config, configPath), timeout)
        case "command":
            guard allowsCommands else {
                throw problem(
                    configPath,
                    "command handlers run only from task files in the workspace, not from a task given inline; "
                        + "put the task in a file and pass its path"
                )
            }
            return (try commandHandler(config, configPath), timeout)
        case "client":
            let name: String
            if case .string(let text) = config {
                name = text
            } else {
                let options = try object(config, configPath)
                try checkKeys(options, configPath, allowed: ["handler"])
                name = try string(options["handler"] ?? .null, "\(configPath).handler")
            }
            guard !name.isEmpty else { throw problem(configPath, "must name the client's handler") }
            return (ClientStageHandler(handlerName: name), timeout)
        case "write":
            let target: String
            if case .string(let text) = config {
                target = text
            } else {
                let options = try object(config, configPath)
                try checkKeys(options, configPath, allowed: ["path"])
                target = try string(options["path"] ?? .null, "\(configPath).path")
            }
            guard WriteStageHandler.isConfined(target) else {
                throw problem(configPath, "'\(target)' must be a relative path inside the run's folder, without '..'")
            }
            guard WriteStageHandler.isArtifactPath(target) else {
                throw problem(configPath, "'\(target)' is where a run records its running commands; write elsewhere")
            }
            return (WriteStageHandler(path: target), timeout)
        default:
            throw problem(configPath, "unknown handler kind")
        }
    }

    /// A template from `file` (relative to the task file) or inline `text`.
    mutating func template(
        _ config: JSONValue,
        _ path: String,
        key: String = "file"
    ) throws(TaskDefinitionError) -> (Template, String) {
        var source: String
        var name: String
        if case .string(let relative) = config {
            (source, name) = try readFile(relative, path)
        } else {
            let options = try object(config, path)
            if let text = options["text"] {
                source = try string(text, "\(path).text")
                name = "\(file)#\(path)"
            } else if let relative = options[key] {
                (source, name) = try readFile(try string(relative, "\(path).\(key)"), "\(path).\(key)")
            } else {
                throw problem(
                    path,
                    "needs '\(key)' (a template file next to the task file) or 'text' (the template itself)"
                )
            }
        }
        do {
            return (try Template(source: source, name: name), name)
        } catch {
            throw TaskDefinitionError(file: name, path: "", message: error.description, line: error.line)
        }
    }

    mutating func readFile(_ relative: String, _ path: String) throws(TaskDefinitionError) -> (String, String) {
        if relative.hasPrefix("/") || relative.split(separator: "/").contains("..") {
            throw problem(path, "'\(relative)' must be a relative path inside the task's folder, without '..'")
        }
        let resolved = directory == "." ? relative : "\(directory)/\(relative)"
        if let reason = workspace.problem(reaching: resolved) {
            throw problem(path, "'\(relative)' \(reason)")
        }
        let stamp = workspace.stamp(resolved)
        switch workspace.loadText(resolved) {
        case .missing: throw problem(path, "'\(resolved)' does not exist")
        case .notUTF8: throw problem(path, "'\(resolved)' is not UTF-8 text")
        case .text(let text):
            filesRead.append((resolved, stamp))
            return (text, resolved)
        }
    }

    mutating func templateHandler(
        _ config: JSONValue,
        _ path: String
    ) throws(TaskDefinitionError) -> any TaskStageHandler {
        if case .object(let options) = config { try checkKeys(options, path, allowed: ["file", "text"]) }
        let (template, name) = try template(config, path)
        return TemplateStageHandler(template: template, templateName: name)
    }

    mutating func modelHandler(
        _ config: JSONValue,
        _ path: String,
        withTemplate: Bool
    ) throws(TaskDefinitionError) -> any TaskStageHandler {
        var handler = ModelStageHandler()
        var options = JSONObject()
        switch config {
        case .string(let text):
            if withTemplate { options["template"] = .string(text) } else { options["model"] = .string(text) }
        case .object(let members): options = members
        default:
            if !withTemplate, config == .null { break }
            throw problem(path, "must be an object of options, not \(config.typeName)")
        }
        try checkKeys(
            options,
            path,
            allowed: ["model", "system", "maxTokens", "temperature", "failOnTruncation", "parse"]
                + (withTemplate ? ["template", "text"] : [])
        )
        if withTemplate {
            guard options["template"] != nil || options["text"] != nil else {
                throw problem(
                    path,
                    "needs 'template' (a template file next to the task file) or 'text' (the template itself)"
                )
            }
            let source: JSONValue =
                options["text"].map { .object(["text": $0]) } ?? .object(["file": options["template"]!])
            (handler.template, _) = try template(source, path)
        }
        if let value = options["model"] { handler.model = try string(value, "\(path).model") }
        if let value = options["system"] { handler.system = try string(value, "\(path).system") }
        if let value = options["maxTokens"] {
            guard let tokens = value.integerValue, tokens >= 1 else {
                throw problem("\(path).maxTokens", "must be an integer of at least 1, not \(value)")
            }
            handler.maxTokens = Int(tokens)
        }
        if let value = options["temperature"] {
            guard let temperature = value.numberValue, temperature >= 0, temperature <= 2 else {
                throw problem("\(path).temperature", "must be a number from 0 to 2, not \(value)")
            }
            handler.temperature = temperature
        }
        if let value = options["parse"] {
            handler.parser = try parseHandler(value, "\(path).parse") as? ParseStageHandler
        }
        if let value = options["failOnTruncation"] {
            guard case .bool(let flag) = value else {
                throw problem("\(path).failOnTruncation", "must be true or false, not \(value)")
            }
            handler.failOnTruncation = flag
        }
        return handler
    }

    func parseHandler(_ config: JSONValue, _ path: String) throws(TaskDefinitionError) -> any TaskStageHandler {
        let name: String
        if case .string(let text) = config {
            name = text
        } else {
            let options = try object(config, path)
            try checkKeys(options, path, allowed: ["parser"])
            name = try string(options["parser"] ?? .null, "\(path).parser")
        }
        guard parsers.names.contains(name) else {
            throw problem(path, "unknown parser '\(name)'; known parsers: " + parsers.names.joined(separator: ", "))
        }
        return ParseStageHandler(parser: name)
    }

    func commandHandler(_ config: JSONValue, _ path: String) throws(TaskDefinitionError) -> any TaskStageHandler {
        var argvValue = config
        var environment: [String: String] = [:]
        var passed: Set<String> = []
        if case .object(let options) = config {
            try checkKeys(options, path, allowed: ["argv", "env", "passEnv"])
            argvValue = options["argv"] ?? .null
            if let env = options["env"] {
                for (key, value) in try object(env, "\(path).env") {
                    environment[key] = try string(value, "\(path).env.\(key)")
                }
            }
            if let names = options["passEnv"] {
                guard case .array(let elements) = names else {
                    throw problem(
                        "\(path).passEnv",
                        "must be a list of environment variable names, not \(names.typeName)"
                    )
                }
                for (index, element) in elements.enumerated() {
                    let name = try string(element, "\(path).passEnv[\(index)]")
                    guard !name.isEmpty, !name.contains("="), !name.utf8.contains(0) else {
                        throw problem("\(path).passEnv[\(index)]", "'\(name)' is not an environment variable name")
                    }
                    passed.insert(name)
                }
            }
        }
        guard case .array(let elements) = argvValue, !elements.isEmpty else {
            throw problem(
                path,
                "must be a non-empty list of arguments, the program first (for example [python3, stage.py])"
            )
        }
        var argv: [String] = []
        for (index, element) in elements.enumerated() {
            argv.append(try string(element, "\(path)[\(index)]"))
        }
        return CommandStageHandler(argv: argv, environment: environment, passedKeys: passed, directory: directory)
    }

    // MARK: - Values

    func object(_ value: JSONValue, _ path: String) throws(TaskDefinitionError) -> JSONObject {
        guard case .object(let members) = value else {
            throw problem(path, "must be an object, not \(value.typeName)")
        }
        return members
    }

    func string(_ value: JSONValue, _ path: String) throws(TaskDefinitionError) -> String {
        guard case .string(let text) = value else {
            throw problem(path, value == .null ? "is required" : "must be a string, not \(value.typeName)")
        }
        return text
    }

    func duration(_ value: JSONValue, _ path: String) throws(TaskDefinitionError) -> Duration {
        guard let seconds = value.numberValue, seconds > 0, seconds <= 86_400 else {
            throw problem(path, "must be a number of seconds above 0 and at most 86400, not \(value)")
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    func checkKeys(_ members: JSONObject, _ path: String, allowed: [String]) throws(TaskDefinitionError) {
        for key in members.keys.sorted() where !allowed.contains(key) {
            throw problem(
                path.isEmpty ? key : "\(path).\(key)",
                "is not a known setting; expected " + allowed.joined(separator: ", ")
            )
        }
    }

    func flagTypes(_ value: JSONValue) throws(TaskDefinitionError) -> [String: Set<String>] {
        var types: [String: Set<String>] = [:]
        for (name, declared) in try object(value, "flags") {
            let names: [JSONValue]
            if case .array(let list) = declared { names = list } else { names = [declared] }
            var set: Set<String> = []
            for entry in names {
                guard case .string(let type) = entry, FlagSchemas.typeNames.contains(type) else {
                    throw problem(
                        "flags.\(name)",
                        "must be a type or a list of types among "
                            + FlagSchemas.typeNames.sorted().joined(separator: ", ")
                    )
                }
                set.insert(type)
            }
            types[name] = set
        }
        return types
    }
}
