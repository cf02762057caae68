import JSON
import JSONRPC
import StageEngine

/// `runTask` parameters.
struct RunTaskParams: Decodable, Sendable {
    struct ModelConfigParams: Decodable, Sendable {
        var defaultProvider: String?
        var defaultModel: String?
        var models: [String]?
    }

    /// A task file's path relative to the workspace, or the task document itself.
    var task: JSONValue
    var input: JSONValue?
    var modelConfig: ModelConfigParams?
    var maxRefinements: Int?
    /// Seconds the whole task may take.
    var timeout: Double?
    var runId: String?
    /// Check the task, run no stage.
    var dryRun: Bool?
}

/// Runs `executeStage` on the connected client for `client` stages.
struct ConnectionStageExecutor: ClientStageExecutor {
    let connection: Connection
    let handlerNames: Set<String>

    func executeStage(handler: String, stage: TaskStage, context: JSONValue) async throws -> JSONValue {
        let params: JSONValue = ["handler": .string(handler), "stage": .string(stage.rawValue), "context": context]
        do {
            // The stage's own timeout governs; this one only guards against a request never answered.
            let answer = try await connection.request(
                "executeStage",
                params: RawJSON(params),
                timeout: .seconds(86_400)
            )
            return Self.contract(try answer.checkedValue(as: "result"))
        } catch let error as ResponseError {
            throw TaskError(
                .client,
                "the client's handler '\(handler)' answered executeStage with error \(error.code): \(error.message)",
                data: error.data
            )
        }
    }

    /// The answer as the `{output, flags}` contract, read as client libraries write it: Lua
    /// sends an empty table as `[]` and leaves out a nil `output`, so `flags` of `null` or `[]`
    /// is `{}`, a missing `output` is `null`, and an answer of `[]` is `{output: null, flags: {}}`.
    static func contract(_ answer: JSONValue) -> JSONValue {
        var members: JSONObject
        switch answer {
        case .object(let object): members = object
        case .array(let values) where values.isEmpty: members = JSONObject()
        default: return answer
        }
        if members["output"] == nil { members["output"] = .null }
        switch members["flags"] {
        case nil, .null?, .array([])?: members["flags"] = .object([:])
        default: break
        }
        return .object(members)
    }
}

extension RPCServer {
    func runTask(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(RunTaskParams.self)
        if params.dryRun != true { try await requireWritable("runTask") }
        if let maxRefinements = params.maxRefinements, !(0...100).contains(maxRefinements) {
            throw ResponseError.invalidParams(field: "params.maxRefinements", problem: "must be from 0 to 100")
        }
        if let timeout = params.timeout, !(timeout > 0 && timeout <= 86_400) {
            throw ResponseError.invalidParams(
                field: "params.timeout",
                problem: "must be a number of seconds above 0, at most 86400"
            )
        }
        if let runId = params.runId, !JobFolder.isJobId(runId) {
            throw ResponseError.invalidParams(
                field: "params.runId",
                problem: "must be 1 to 100 letters, digits, '.', '_' or '-' (it names the run's folder)"
            )
        }
        let runner = try await engine.runner()
        let task: TaskDefinition
        do {
            switch params.task {
            case .string(let file) where file.isEmpty:
                throw ResponseError.invalidParams(
                    field: "params.task",
                    problem: "must not be empty: give a task file's path"
                )
            case .string(let file):
                task = try await runner.loadTask(file)
            case .object:
                task = try TaskDefinition.inline(params.task, workspace: runner.workspace, parsers: runner.parsers)
            default:
                throw ResponseError.invalidParams(
                    field: "params.task",
                    problem:
                        "must be a task file's path (relative to the workspace) or a task object, not \(params.task.typeName)"
                )
            }
        } catch let error as TaskDefinitionError {
            throw ResponseError(definition: error, kind: "task")
        }
        let options = TaskRunOptions(
            input: params.input ?? .object([:]),
            modelConfig: ModelConfig(
                defaultProvider: params.modelConfig?.defaultProvider,
                defaultModel: params.modelConfig?.defaultModel,
                models: params.modelConfig?.models
            ),
            maxRefinements: params.maxRefinements,
            timeout: params.timeout.map { .milliseconds(Int64($0 * 1000)) },
            runId: params.runId,
            clientStages: ConnectionStageExecutor(connection: context.connection, handlerNames: lifecycle.stageHandlers)
        )
        if params.dryRun == true { return RawJSON(await runner.dryRun(task, options: options).json) }
        do {
            return RawJSON(try await runner.runTask(task, options: options).json)
        } catch {
            throw ResponseError.requestCancelled()
        }
    }

}
