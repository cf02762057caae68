import Foundation
import JSON
import JSONRPC
import StageEngine
import Synchronization

/// `runPipeline` parameters.
struct RunPipelineParams: Decodable, Sendable {
    struct Options: Decodable, Sendable {
        /// Answer with the final status instead of at once.
        var wait: Bool?
    }

    /// A pipeline file's path relative to the workspace, or the pipeline document itself.
    var pipeline: JSONValue
    var input: JSONValue?
    var name: String?
    var options: Options?
    /// Check the pipeline and its tasks, start no job.
    var dryRun: Bool?
}

struct JobIdParams: Decodable, Sendable {
    var jobId: String
}

struct RetryTaskParams: Decodable, Sendable {
    var jobId: String
    var task: String
}

struct ListJobsParams: Decodable, Sendable {
    var state: String?
}

struct GetArtifactParams: Decodable, Sendable {
    var jobId: String
    var path: String
}

struct SubscribeStatusParams: Decodable, Sendable {
    var jobId: String?
    /// `snapshot` (default) or `patch`.
    var delivery: String?
}

struct UnsubscribeStatusParams: Decodable, Sendable {
    var subscriptionId: String
}

/// The status subscriptions of a server, each with the task that delivers its changes.
final class SubscriptionRegistry: Sendable {
    /// The most subscriptions a connection holds at once: each keeps a queue of changes and a
    /// delivery task, and one subscription without `jobId` follows every job.
    static let limit = 1000

    struct Entry: Sendable {
        let subscription: StatusSubscription
        var delivery: Task<Void, Never>?
    }

    private let entries = Mutex<(next: Int, byId: [String: Entry])>((0, [:]))

    /// Registers `subscription`; returns its id, or nil when ``limit`` are registered.
    func add(_ subscription: StatusSubscription) -> String? {
        entries.withLock { state in
            guard state.byId.count < Self.limit else { return nil }
            state.next += 1
            let id = "sub-\(state.next)"
            state.byId[id] = Entry(subscription: subscription)
            return id
        }
    }

    /// Starts the task that delivers the subscription's changes (unless it was removed meanwhile).
    func startDelivery(_ id: String, _ body: @escaping @Sendable () async -> Void) {
        entries.withLock { state in
            guard state.byId[id] != nil, state.byId[id]?.delivery == nil else { return }
            state.byId[id]?.delivery = Task(priority: .high, operation: body)
        }
    }

    func remove(_ id: String) -> Entry? {
        entries.withLock { $0.byId.removeValue(forKey: id) }
    }

    /// Waits until every subscription has sent what it holds.
    func waitUntilDelivered() async {
        for entry in entries.withLock({ Array($0.byId.values) }) { await entry.subscription.waitUntilDelivered() }
    }
}

extension JobError.Kind {
    var code: Int { StageErrorCode.job }
}

extension ResponseError {
    /// How a job request that cannot be done reaches a client.
    init(_ error: JobError, jobId: String?) {
        var data: [String: JSONValue] = ["kind": "job", "reason": .string(error.kind.rawValue)]
        if let jobId { data["jobId"] = .string(jobId) }
        self.init(code: StageErrorCode.job, message: "Job: \(error.message)", data: .object(data))
    }
}

extension RPCServer {
    /// Refuses `method` on a workspace that cannot be written, before anything starts.
    func requireWritable(_ method: String) async throws {
        do {
            try await engine.runner().requireWritable(method)
        } catch let error as StageError {
            throw ResponseError(error)
        }
    }

    func runPipeline(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(RunPipelineParams.self)
        if let name = params.name, name.isEmpty || name.count > 200 {
            throw ResponseError.invalidParams(field: "params.name", problem: "must be 1 to 200 characters")
        }
        if params.dryRun != true { try await requireWritable("runPipeline") }
        let runner = try await engine.runner()
        let pipeline: PipelineDefinition
        do {
            switch params.pipeline {
            case .string(let file) where !file.isEmpty:
                pipeline = try PipelineDefinition.load(file, workspace: runner.workspace)
            case .object:
                pipeline = try PipelineDefinition.inline(params.pipeline)
            default:
                throw ResponseError.invalidParams(
                    field: "params.pipeline",
                    problem: "must be a pipeline file's path (relative to the workspace) or a pipeline object"
                )
            }
        } catch let error as TaskDefinitionError {
            throw ResponseError(definition: error, kind: "pipeline")
        }
        if params.dryRun == true {
            let options = TaskRunOptions(input: params.input ?? [:], clientStages: stageExecutor(context))
            return RawJSON(await runner.dryRun(pipeline, options: options).json)
        }
        let jobs = try await engine.jobs()
        let id: String
        do {
            id = try await jobs.start(
                pipeline,
                input: params.input ?? [:],
                name: params.name,
                clientStages: stageExecutor(context)
            )
        } catch {
            throw ResponseError(error, jobId: nil)
        }
        guard params.options?.wait == true else { return RawJSON(["jobId": .string(id)]) }
        do {
            let document = try await withTaskCancellationHandler {
                try await jobs.waitUntilFinished(id)
            } onCancel: {
                Task { _ = try? await jobs.cancel(id) }
            }
            return RawJSON(["jobId": .string(id), "status": document.json])
        } catch let error as JobError {
            throw ResponseError(error, jobId: id)
        }
    }

    func stageExecutor(_ context: RequestContext) -> ConnectionStageExecutor {
        ConnectionStageExecutor(connection: context.connection, handlerNames: lifecycle.stageHandlers)
    }

    func getStatus(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(JobIdParams.self)
        let jobs = try await engine.jobs()
        do {
            let document = try await jobs.status(params.jobId)
            var stages: [String: JSONValue] = [:]
            for task in document.taskOrder {
                stages[task] = document.computeTaskStage(task).map(JSONValue.string) ?? .null
            }
            return RawJSON(["status": document.json, "taskStages": .object(stages)])
        } catch {
            throw ResponseError(error, jobId: params.jobId)
        }
    }

    func listJobs(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(ListJobsParams.self)
        var state: JobState?
        if let name = params.state {
            state = JobState(rawValue: name)
            guard state != nil else {
                throw ResponseError.invalidParams(
                    field: "params.state",
                    problem: "must be one of " + JobState.allCases.map(\.rawValue).joined(separator: ", ")
                        + ", not '\(name)'"
                )
            }
        }
        let jobs = try await engine.jobs()
        let summaries: [JSONValue] = await jobs.list(state: state).map { document in
            var summary: [String: JSONValue] = [:]
            for key in [
                "id", "name", "state", "current", "currentStage", "createdAt", "lastUpdated", "rev", "progress", "cost",
            ] {
                summary[key] = document.json[key] ?? nil
            }
            return .object(summary)
        }
        return RawJSON(["jobs": .array(summaries)])
    }

    func cancelJob(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(JobIdParams.self)
        try await requireWritable("cancelJob")
        let jobs = try await engine.jobs()
        do {
            return RawJSON(["status": try await jobs.cancel(params.jobId).json])
        } catch {
            throw ResponseError(error, jobId: params.jobId)
        }
    }

    func retryTask(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(RetryTaskParams.self)
        try await requireWritable("retryTask")
        let jobs = try await engine.jobs()
        do {
            try await jobs.retryTask(params.jobId, task: params.task, clientStages: stageExecutor(context))
            return RawJSON(["jobId": .string(params.jobId)])
        } catch {
            throw ResponseError(error, jobId: params.jobId)
        }
    }

    func resumeJob(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(JobIdParams.self)
        try await requireWritable("resumeJob")
        let jobs = try await engine.jobs()
        do {
            try await jobs.resume(params.jobId, clientStages: stageExecutor(context))
            return RawJSON(["jobId": .string(params.jobId)])
        } catch {
            throw ResponseError(error, jobId: params.jobId)
        }
    }

    /// Files up to this size are returned inline.
    static let artifactLimit = 16 << 20

    func getArtifact(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(GetArtifactParams.self)
        let jobs = try await engine.jobs()
        let bytes: [UInt8]
        do {
            bytes = try await jobs.artifact(params.jobId, path: params.path)
        } catch {
            throw ResponseError(error, jobId: params.jobId)
        }
        guard bytes.count <= Self.artifactLimit else {
            throw ResponseError(
                JobError(
                    .invalidPath,
                    "'\(params.path)' is \(bytes.count) bytes, more than getArtifact returns (16 MiB); read it from the job's folder"
                ),
                jobId: params.jobId
            )
        }
        var result: [String: JSONValue] = ["path": .string(params.path), "size": .integer(Int64(bytes.count))]
        if let text = String(validating: bytes, as: UTF8.self) {
            result["text"] = .string(text)
        } else {
            result["base64"] = .string(Data(bytes).base64EncodedString())
        }
        return RawJSON(.object(result))
    }

    func subscribeStatus(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(SubscribeStatusParams.self)
        let delivery = params.delivery ?? "snapshot"
        guard delivery == "snapshot" || delivery == "patch" else {
            throw ResponseError.invalidParams(
                field: "params.delivery",
                problem: "must be snapshot or patch, not '\(delivery)'"
            )
        }
        let jobs = try await engine.jobs()
        let (subscription, rev, snapshot): (StatusSubscription, Int, JSONValue)
        do {
            (subscription, rev, snapshot) = try await jobs.subscribe(jobId: params.jobId)
        } catch {
            throw ResponseError(error, jobId: params.jobId)
        }
        let connection = context.connection
        let patches = delivery == "patch"
        guard let id = subscriptions.add(subscription) else {
            subscription.close()
            throw ResponseError(
                code: StageErrorCode.job,
                message: "Job: this connection already holds \(SubscriptionRegistry.limit) status subscriptions, "
                    + "the most it may; unsubscribeStatus those it no longer needs, or subscribe without jobId "
                    + "to follow every job with one",
                data: ["kind": "job", "reason": "limit", "limit": .integer(Int64(SubscriptionRegistry.limit))]
            )
        }
        // Changes wait in the subscription until the answer that names it is on its way.
        context.afterResponse { [subscriptions] in
            // The common case: the output is not backed up, so a change goes out at once from
            // the job's own thread; otherwise it queues in the subscription for the task below.
            subscription.setImmediateSink { change in
                guard connection.pendingOutputBytes <= Self.outputBacklogLimit else { return false }
                connection.notify(
                    "statusChanged",
                    params: RawJSON(Self.notification(change, subscriptionId: id, patches: patches))
                )
                return true
            }
            subscriptions.startDelivery(id) {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        _ = try? await connection.waitUntilClosed()
                        subscription.close()
                    }
                    group.addTask {
                        while let change = await subscription.next() {
                            connection.notify(
                                "statusChanged",
                                params: RawJSON(Self.notification(change, subscriptionId: id, patches: patches))
                            )
                            // At the pace the client reads: while more than 64 KiB wait to be written,
                            // changes merge in the subscription instead of piling up in the output.
                            await connection.drainOutput(above: Self.outputBacklogLimit)
                        }
                    }
                    await group.next()
                    group.cancelAll()
                    subscription.close()
                }
            }
        }
        return RawJSON(["subscriptionId": .string(id), "rev": .integer(Int64(rev)), "snapshot": snapshot])
    }

    /// Status notifications queue in the output up to this many bytes; past it, a subscription's
    /// changes merge until the client has read (about what a pipe holds).
    static let outputBacklogLimit = 64 << 10

    static func notification(_ change: StatusChange, subscriptionId: String, patches: Bool) -> JSONValue {
        var params: [String: JSONValue] = [
            "subscriptionId": .string(subscriptionId),
            "jobId": .string(change.jobId),
            "rev": .integer(Int64(change.rev)),
            "event": change.event.json,
            "coalesced": .integer(Int64(change.coalesced)),
        ]
        if change.coalesced > 1 { params["events"] = .array(change.events.map(\.json)) }
        if patches, let operations = change.operations {
            params["baseRev"] = .integer(Int64(change.baseRev))
            params["patch"] = .array(operations.map(\.json))
        } else {
            params["snapshot"] = change.snapshot
        }
        return .object(params)
    }

    func unsubscribeStatus(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(UnsubscribeStatusParams.self)
        guard let entry = subscriptions.remove(params.subscriptionId) else {
            throw ResponseError.invalidParams(
                field: "params.subscriptionId",
                problem: "'\(params.subscriptionId)' is not a subscription of this connection"
            )
        }
        entry.subscription.close()
        return .emptyObject
    }
}

extension ResponseError {
    /// A task or pipeline file that cannot be used.
    init(definition error: TaskDefinitionError, kind: String) {
        var data: [String: JSONValue] = ["kind": .string(kind), "file": .string(error.file)]
        if !error.path.isEmpty { data["path"] = .string(error.path) }
        if let line = error.line { data["line"] = .integer(Int64(line)) }
        let label = kind == "pipeline" ? "Pipeline" : "Task"
        self.init(code: StageErrorCode.task, message: "\(label): \(error.description)", data: .object(data))
    }
}
