import JSON

/// Asks the connected client to run the stage (the server's `executeStage` request) and uses its
/// `{output, flags}` answer.
struct ClientStageHandler: TaskStageHandler {
    let handlerName: String

    var summary: String { "client handler '\(handlerName)'" }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        let stage = invocation.stage
        guard let client = invocation.environment.clientStages, client.handlerNames.contains(handlerName) else {
            throw TaskError(.client, problem(at: stage, in: invocation.environment) ?? "")
        }
        let answer: JSONValue
        do {
            answer = try await client.executeStage(handler: handlerName, stage: stage, context: invocation.context.json)
        } catch let error as TaskError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw TaskError(.client, "the client's handler '\(handlerName)' failed: \(error)")
        }
        return try StageOutput(contract: answer, stage: stage)
    }

    /// Why the stage cannot be run here: no client connected, or one that did not declare the handler.
    func problem(at stage: TaskStage, in environment: TaskEnvironment) -> String? {
        guard let client = environment.clientStages else {
            return "stage \(stage.rawValue) is handled by the client ('\(handlerName)'), but no client is connected: "
                + "run the task through `stagerunner serve` from a client that declares the handler"
        }
        guard client.handlerNames.contains(handlerName) else {
            let declared = client.handlerNames.sorted()
            return
                "stage \(stage.rawValue) needs the client handler '\(handlerName)', which the client did not declare "
                + "in initialize's capabilities.stageHandlers"
                + (declared.isEmpty ? " (it declared none)" : " (it declared \(declared.joined(separator: ", ")))")
        }
        return nil
    }

    func problems(_ invocation: StageInvocation) -> [String] {
        problem(at: invocation.stage, in: invocation.environment).map { [$0] } ?? []
    }
}
