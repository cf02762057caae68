import Foundation
import JSON
import Logging
import ModelProviders
import TestSupport
import Testing

@testable import StageEngine

/// Jobs (protocol/README.md §8.9–8.11): the status document through a job's life, subscriptions, control and recovery.
@Suite("Jobs")
struct JobTests {
    static func manager(_ workspace: TemporaryWorkspace, maxRunningJobs: Int = 4) throws -> JobManager {
        JobManager(
            runner: try WorkspaceEngine(workspace: workspace.workspace, environment: [:]),
            maxRunningJobs: maxRunningJobs
        )
    }

    static func research() throws -> TemporaryWorkspace { try TemporaryWorkspace(copying: "research-task") }

    /// Replaces the review task's stages with `stages` (YAML).
    static func writeReview(_ stages: String, in workspace: TemporaryWorkspace) throws {
        try ("stages:\n" + stages)
            .write(toFile: workspace.workspace.path("tasks/review.task.yaml"), atomically: true, encoding: .utf8)
    }

    /// Appends `text` to the workspace's `stagerunner.yaml`.
    static func configure(_ text: String, in workspace: TemporaryWorkspace) throws {
        let configuration = try #require(workspace.read("stagerunner.yaml"))
        try (configuration + text)
            .write(toFile: workspace.workspace.path("stagerunner.yaml"), atomically: true, encoding: .utf8)
    }

    /// The review's template needs a title the summary does not give: it fails at promptTemplating.
    static let reviewWithoutItsInput = "  promptTemplating: { template: { text: '{{ input.subtitle }}' } }\n"

    /// Drains a subscription until the job ends; returns every change.
    static func follow(_ subscription: StatusSubscription) async -> [StatusChange] {
        var changes: [StatusChange] = []
        while let change = await subscription.next() {
            changes.append(change)
            if ["done", "failed", "cancelled"].contains(change.snapshot["state"]?.stringValue ?? "") { break }
        }
        return changes
    }

    @Test func aPipelineRunsAsAJobWithEveryTransitionInTheDocument() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let (subscription, rev, snapshot) = try await jobs.subscribe(jobId: id)
        let changes = await Self.follow(subscription)
        let final = try await jobs.waitUntilFinished(id)
        #expect(final.state == .done)
        #expect(final.json["progress"] == ["tasksDone": 2, "tasksTotal": 2, "percent": 100])
        #expect(final.taskState("summary") == .done)
        #expect(final.task("summary")?["refinementAttempts"] == 1)
        #expect(final.task("summary")?["attempts"] == 1)
        #expect(
            final.task("review")?["artifacts"] == [
                "tasks/review/execution-logs.json", "tasks/review/output.json", "tasks/review/review.md",
            ]
        )
        #expect(final.task("summary")?["modelCalls"] == 4)
        // Every change patches the document before it into the one after it.
        var document = snapshot
        var expected = rev
        for change in changes {
            #expect(change.baseRev == expected)
            let operations = try #require(change.operations)
            document = try document.applying(operations)
            #expect(document == change.snapshot)
            expected = change.rev
        }
        // On disk: the final document, whole.
        let text = try #require(workspace.read("jobs/\(id)/tasks-status.json"))
        #expect(try JSONParser.parse(Array(text.utf8)) == final.json)
        // The review read the summary's output.
        #expect(workspace.read("jobs/\(id)/tasks/review/review.md")?.contains("0.72") == true)
    }

    @Test func aSubscriptionSeesEveryLifecycleStateInOrder() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let (all, _, _) = try await jobs.subscribe(jobId: nil)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let changes = await Self.follow(all)
        // A reader that falls behind gets changes merged, each with every event it stands for.
        let events = changes.flatMap(\.events).map(\.json).map { event -> String in
            [event["type"], event["task"], event["stage"], event["state"]].compactMap { $0?.stringValue }.joined(
                separator: " "
            )
        }
        #expect(changes.allSatisfy { $0.jobId == id })
        #expect(events.first == "job pending")
        #expect(events.contains("job running"))
        #expect(events.contains("task summary running"))
        #expect(events.contains("stage summary ingestion started"))
        #expect(events.contains("stage summary ingestion completed"))
        #expect(events.contains("task summary refining"))
        #expect(events.contains("task summary done"))
        #expect(events.contains("task review running"))
        #expect(events.last == "job done")
        let order = [
            "job running", "task summary running", "stage summary ingestion started", "task summary done",
            "task review running", "job done",
        ]
        let positions = order.map { events.firstIndex(of: $0) ?? -1 }
        #expect(positions == positions.sorted())
        #expect(changes.map(\.rev) == changes.map(\.rev).sorted())
        #expect(changes.map(\.coalesced).reduce(0, +) == events.count)
    }

    @Test func aFailedTaskFailsTheJobAndRetryTaskRerunsItKeepingEarlierResults() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        try Self.writeReview(Self.reviewWithoutItsInput, in: workspace)
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let failed = try await jobs.waitUntilFinished(id)
        #expect(failed.state == .failed)
        #expect(failed.json["current"] == "review")
        #expect(failed.json["currentStage"] == "promptTemplating")
        #expect(failed.task("review")?["failedStage"] == "promptTemplating")
        #expect(failed.task("review")?["error"]?["name"] == "TemplateError")
        #expect(failed.computeTaskStage("review") == "promptTemplating")

        try Self.writeReview("  promptTemplating: { template: { text: 'Review {{ input.title }}' } }\n", in: workspace)
        try await jobs.retryTask(id, task: "review")
        let done = try await jobs.waitUntilFinished(id)
        #expect(done.state == .done)
        #expect(done.task("summary")?["attempts"] == 1, "the summary was not run again")
        #expect(done.task("review")?["attempts"] == 2)
    }

    /// A two-task pipeline whose first task's command answers `output` (JSON text).
    static func twoTasks(answering output: String, in workspace: TemporaryWorkspace) throws -> PipelineDefinition {
        let stages = "stages:\n  ingestion: { command: [echo, '{\"output\": \(output), \"flags\": {}}'] }\n"
        try stages.write(toFile: workspace.workspace.path("tasks/deep.task.yaml"), atomically: true, encoding: .utf8)
        try "stages:\n  ingestion: { command: [cat] }\n"
            .write(toFile: workspace.workspace.path("tasks/echo.task.yaml"), atomically: true, encoding: .utf8)
        return PipelineDefinition(
            name: "depth",
            steps: [
                .init(name: "first", file: "tasks/deep.task.yaml"), .init(name: "second", file: "tasks/echo.task.yaml"),
            ]
        )
    }

    @Test func aResultTooDeepToReadBackFailsItsTaskNeverPassingNull() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        // 510 arrays: the command's answer parses, but wrapped in the task's result it is 513 deep.
        let deep = String(repeating: "[", count: 510) + String(repeating: "]", count: 510)
        let jobs = try Self.manager(workspace)
        let id = try await jobs.start(try Self.twoTasks(answering: deep, in: workspace), input: [:])
        let failed = try await jobs.waitUntilFinished(id)
        #expect(failed.state == .failed)
        #expect(failed.task("first")?["failedStage"] == "output")
        #expect(
            failed.task("first")?["error"]?["message"]?.stringValue
                == "the task's result nests 513 levels deep, past the 512 that output.json may have to be read back; "
                + "return an output that nests less"
        )
        #expect(failed.task("second")?["state"] == "pending", "the next task never ran")
    }

    @Test func aFinishedTasksOutputThatCannotBeReadFailsTheTaskThatNeedsIt() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        let pipeline = try Self.twoTasks(answering: "[1]", in: workspace)
        try "stages:\n  ingestion: { command: [sh, -c, 'exit 3'] }\n"
            .write(toFile: workspace.workspace.path("tasks/echo.task.yaml"), atomically: true, encoding: .utf8)
        let id = try await jobs.start(pipeline, input: [:])
        #expect(try await jobs.waitUntilFinished(id).state == .failed)
        // The first task's output is damaged before the second is retried.
        try "{\"ok\": tru".write(
            toFile: workspace.workspace.path("jobs/\(id)/tasks/first/output.json"),
            atomically: true,
            encoding: .utf8
        )
        try "stages:\n  ingestion: { command: [cat] }\n"
            .write(toFile: workspace.workspace.path("tasks/echo.task.yaml"), atomically: true, encoding: .utf8)
        try await jobs.retryTask(id, task: "second")
        let failed = try await jobs.waitUntilFinished(id)
        #expect(failed.state == .failed)
        #expect(failed.task("second")?["failedStage"] == "input")
        let message = failed.task("second")?["error"]?["message"]?.stringValue ?? ""
        #expect(
            message.hasPrefix(
                "its input, the output of task first (jobs/\(id)/tasks/first/output.json), cannot be read: "
            ),
            "\(message)"
        )
        #expect(message.hasSuffix("; retry task first"))
    }

    @Test func jobsAreListedNewestFirstEvenWithinOneSecond() {
        // Ids carry the second and a random suffix: within a second only createdAt orders them.
        func document(_ id: String, _ created: String) -> JobStatusDocument {
            JobStatusDocument(json: ["id": .string(id), "createdAt": .string(created)])
        }
        let documents = [
            document("20261206T010203Z-ffff", "2026-12-06T01:02:03.120Z"),
            document("20261206T010203Z-0000", "2026-12-06T01:02:03.870Z"),
            document("20261206T010159Z-aaaa", "2026-12-06T01:01:59.999Z"),
            document("20261206T010203Z-7777", "2026-12-06T01:02:03.500Z"),
        ]
        #expect(
            JobStatusDocument.newestFirst(documents).map(\.id) == [
                "20261206T010203Z-0000", "20261206T010203Z-7777", "20261206T010203Z-ffff", "20261206T010159Z-aaaa",
            ]
        )
    }

    @Test func aStatusWriteThatFailsIsTriedAgainUntilTheFileHoldsTheLatestDocument() async throws {
        let workspace = try TemporaryWorkspace()
        defer { workspace.remove() }
        let store = JobStatusStore(
            document: JobStatusDocument(id: "job-1", name: "t", pipelineFile: nil, tasks: ["a"], createdAt: "x"),
            workspace: workspace.workspace,
            hub: StatusHub(),
            logger: Logger(label: "test")
        )
        // A folder where the document goes: the rename over it fails until it is gone.
        let file = workspace.workspace.path("jobs/job-1/tasks-status.json")
        try FileManager.default.createDirectory(atPath: file + "/blocked", withIntermediateDirectories: true)
        await store.update(.job(.running)) { $0.setState(.running) }
        await store.flush()
        #expect(await store.unwritten == "\(file): cannot move into place: Is a directory")
        await store.update(.job(.done)) { $0.setState(.done) }
        await store.flush()
        #expect(await store.unwritten != nil)
        try FileManager.default.removeItem(atPath: file)
        // No further change comes: the write is tried again on its own.
        let deadline = ContinuousClock.now + TestTimeouts.wait
        while await store.unwritten != nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(await store.unwritten == nil)
        let written = try JSONParser.parse(Array(try #require(workspace.read("jobs/job-1/tasks-status.json")).utf8))
        #expect(written["state"] == "done")
        #expect(written["rev"] == .integer(Int64(await store.rev)))
    }

    @Test func taskRetriesWithBackoffAreVisibleInTheDocument() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        var pipeline = PipelineDefinition(
            name: "flaky",
            steps: [.init(name: "fails", file: "tasks/fails.yaml")],
            retry: .init(attempts: 3, delay: .milliseconds(50), maxDelay: .seconds(1))
        )
        pipeline.file = nil
        try "stages:\n  ingestion: { command: [python3, -c, 'import sys; sys.exit(4)'] }\n"
            .write(toFile: workspace.workspace.path("tasks/fails.yaml"), atomically: true, encoding: .utf8)
        let (subscription, _, _) = try await jobs.subscribe(jobId: nil)
        let id = try await jobs.start(pipeline, input: [:])
        let changes = await Self.follow(subscription)
        let final = try await jobs.waitUntilFinished(id)
        #expect(final.state == .failed)
        #expect(final.task("fails")?["attempts"] == 3)
        let retrying = changes.filter {
            if case .taskRetrying(task: "fails", failedStage: _) = $0.event { return true }
            return false
        }
        #expect(retrying.count == 2)
        #expect(retrying.first?.snapshot["tasks"]?["fails"]?["retrying"] == true)
        #expect(retrying.first?.snapshot["tasks"]?["fails"]?["nextRetryAt"]?.stringValue != nil)
        #expect(retrying.first?.snapshot["tasks"]?["fails"]?["lastRetryError"]?["name"] == "CommandError")
        #expect(final.task("fails")?["retrying"] == false)
    }

    @Test func cancellingAJobStopsTheCommandAndShowsWhere() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        try "stages:\n  ingestion: { command: [sleep, '347.5'] }\n"
            .write(toFile: workspace.workspace.path("tasks/slow.yaml"), atomically: true, encoding: .utf8)
        let jobs = try Self.manager(workspace)
        let id = try await jobs.start(
            PipelineDefinition(name: "slow", steps: [.init(name: "slow", file: "tasks/slow.yaml")]),
            input: [:]
        )
        for _ in 0..<500 where try await jobs.status(id).json["currentStage"] != "ingestion" {
            try await Task.sleep(for: .milliseconds(20))
        }
        let clock = ContinuousClock()
        let start = clock.now
        let cancelled = try await jobs.cancel(id)
        // Generous for a loaded machine; the command would sleep 347 s.
        #expect(clock.now - start < .seconds(120))
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.json["cancelled"]?["task"] == "slow")
        #expect(cancelled.json["cancelled"]?["stage"] == "ingestion")
        #expect(cancelled.taskState("slow") == .cancelled)
        await #expect(
            throws: JobError(
                .invalidState,
                "job '\(id)' is cancelled, not running or pending: there is nothing to cancel"
            )
        ) {
            try await jobs.cancel(id)
        }
    }

    @Test func jobsBeyondTheLimitWaitAsPending() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace, maxRunningJobs: 1)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let first = try await jobs.start(pipeline, input: ["topic": "one"])
        let second = try await jobs.start(pipeline, input: ["topic": "two"])
        #expect(try await jobs.status(second).state == .pending)
        #expect(try await jobs.waitUntilFinished(first).state == .done)
        #expect(try await jobs.waitUntilFinished(second).state == .done)
        #expect(await jobs.list(state: .done).map(\.id).sorted() == [first, second].sorted())
    }

    @Test func aJobLeftRunningByACrashIsInterruptedAndResumesWithoutRerunningFinishedTasks() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let first = try Self.manager(workspace)
        let id = try await first.start(pipeline, input: ["topic": "Tide pools"])
        let done = try await first.waitUntilFinished(id)
        #expect(done.state == .done)
        // As a crash during the review would leave it: running, the review's result not written.
        var crashed = done.json
        crashed.set("running", at: ["state"])
        crashed.set("running", at: ["tasks", "review", "state"])
        crashed.set("inference", at: ["tasks", "review", "currentStage"])
        try crashed.prettyDescription.write(
            toFile: workspace.workspace.path("jobs/\(id)/tasks-status.json"),
            atomically: true,
            encoding: .utf8
        )
        try FileManager.default.removeItem(atPath: workspace.workspace.path("jobs/\(id)/tasks/review/output.json"))

        let restarted = try Self.manager(workspace)
        #expect(await restarted.recoverInterruptedJobs() == [id])
        let interrupted = try await restarted.status(id)
        #expect(interrupted.state == .interrupted)
        #expect(interrupted.taskState("review") == .interrupted)
        try await restarted.resume(id)
        let resumed = try await restarted.waitUntilFinished(id)
        #expect(resumed.state == .done)
        #expect(resumed.task("summary")?["attempts"] == 1)
        #expect(resumed.task("review")?["attempts"] == 2)
    }

    @Test func aSlowSubscriberGetsCoalescedChangesEndingWithTheLatestState() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let (subscription, rev, snapshot) = try await jobs.subscribe(jobId: id)
        let final = try await jobs.waitUntilFinished(id)  // the subscriber reads nothing meanwhile
        let change = try #require(await subscription.next())
        #expect(change.rev == final.rev)
        #expect(change.coalesced > 1)
        #expect(change.baseRev == rev)
        #expect(try snapshot.applying(try #require(change.operations)) == final.json)
        subscription.close()
        #expect(await subscription.next() == nil)
    }

    @Test func artifactsAreConfinedToTheJobsFolder() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        _ = try await jobs.waitUntilFinished(id)
        let review = try await jobs.artifact(id, path: "tasks/review/review.md")
        #expect(String(decoding: review, as: UTF8.self).contains("0.72"))
        await #expect(
            throws: JobError(
                .invalidPath,
                "'../../stagerunner.yaml' must be a path relative to the job's folder, without '..'"
            )
        ) {
            try await jobs.artifact(id, path: "../../stagerunner.yaml")
        }
        await #expect(throws: JobError(.invalidPath, "the job has no file 'tasks/none.txt'")) {
            try await jobs.artifact(id, path: "tasks/none.txt")
        }
        await #expect(throws: JobError(.notFound, "no job 'nope' in \(workspace.workspace.root)/jobs")) {
            try await jobs.status("nope")
        }
    }

    @Test func aJobsModelCallsSpendTheJobsBudget() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        try Self.configure("budgets:\n  job: {tokens: 60}\n", in: workspace)
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let final = try await jobs.waitUntilFinished(id)
        #expect(final.state == .failed)
        #expect(final.task("summary")?["failedStage"] == "inference")
        #expect(final.task("summary")?["error"]?["name"] == "ModelError")
        #expect(final.task("summary")?["error"]?["message"]?.stringValue?.contains("job '\(id)'") == true)
    }

    @Test func callsWithoutReportedUsageAreCountedApartNotAsZero() async throws {
        let mock = try MockModelServer()
        let workspace = try Self.research()
        defer { workspace.remove() }
        try Self.configure(
            "providers:\n  mock: {kind: openai, baseURL: \"\(mock.url("/v1"))\", apiKeyEnv: MOCK_KEY, streaming: true}\n",
            in: workspace
        )
        try Self.writeReview(
            "  promptTemplating: { template: { text: 'Review {{ input.title }}' } }\n"
                + "  inference: { llm: { model: 'mock:no-usage' } }\n",
            in: workspace
        )
        let jobs = JobManager(
            runner: try WorkspaceEngine(workspace: workspace.workspace, environment: ["MOCK_KEY": MockModelServer.key]),
            maxRunningJobs: 1
        )
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let final = try await jobs.waitUntilFinished(id)
        #expect(final.state == .done, "\(final.json)")
        let summary = try #require(final.task("summary")?["tokenUsage"])
        let review = try #require(final.task("review")?["tokenUsage"])
        #expect(summary["unreportedCalls"] == nil)
        #expect(review == ["promptTokens": 0, "completionTokens": 0, "totalTokens": 0, "unreportedCalls": 1])
        #expect(final.json["tokenUsage"]?["unreportedCalls"] == 1)
        #expect(final.json["tokenUsage"]?["totalTokens"] == summary["totalTokens"])
        let calls = try await jobs.runner.callLog.recent()
        let unreported = try #require(calls.first { $0.stage == "inference" && $0.genId == "review" })
        #expect(unreported.promptTokens == nil && unreported.completionTokens == nil && unreported.costUsd == nil)
    }

    @Test func aJobsBudgetCountsItsEarlierRunsAfterARestart() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        // The review fails on its template; the summary spends tokens.
        try Self.writeReview(Self.reviewWithoutItsInput, in: workspace)
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        let id = try await jobs.start(pipeline, input: ["topic": "Tide pools"])
        let failed = try await jobs.waitUntilFinished(id)
        #expect(failed.state == .failed)
        let spent = try #require(failed.json["tokenUsage"]?["totalTokens"]?.integerValue)
        #expect(spent > 0)
        #expect(await jobs.runner.budgets.spent(job: id) == (0, 0), "the ledger forgets a job that ended")

        // A new server with a job budget the first run nearly used up: the retried review is
        // refused, counting what the first run spent.
        try Self.configure("budgets:\n  job: {tokens: \(spent + 1)}\n", in: workspace)
        try Self.writeReview(
            "  promptTemplating: { template: { text: 'Review {{ input.title }}' } }\n  inference: { llm: {} }\n",
            in: workspace
        )
        let restarted = try Self.manager(workspace)
        try await restarted.retryTask(id, task: "review")
        let retried = try await restarted.waitUntilFinished(id)
        #expect(retried.task("review")?["failedStage"] == "inference")
        let message = try #require(retried.task("review")?["error"]?["message"]?.stringValue)
        #expect(message.contains(": \(spent) tokens spent"), "\(message)")
    }

    @Test func finishedJobsLeaveMemoryAndStayReachable() async throws {
        let workspace = try Self.research()
        defer { workspace.remove() }
        let jobs = try Self.manager(workspace)
        let pipeline = try PipelineDefinition.load("pipelines/research.pipeline.yaml", workspace: workspace.workspace)
        var ids: [String] = []
        for n in 0..<(JobManager.idleJobsKept + 4) {
            let id = try await jobs.start(pipeline, input: ["topic": .string("Topic \(n)")])
            _ = try await jobs.waitUntilFinished(id)
            ids.append(id)
        }
        #expect(await jobs.jobsInMemory == JobManager.idleJobsKept)
        // Listing every job reads their folders without keeping them.
        #expect(await jobs.list().count == ids.count)
        #expect(await jobs.jobsInMemory == JobManager.idleJobsKept)
        // The first job left memory long ago: read back from its folder, at the same revision.
        let first = try await jobs.status(ids[0])
        #expect(first.state == .done)
        let onDisk = try #require(workspace.read("jobs/\(ids[0])/tasks-status.json"))
        #expect(try JSONParser.parse(Array(onDisk.utf8)) == first.json)
        // Subscribed and retried from there, it continues its revisions.
        let (subscription, rev, _) = try await jobs.subscribe(jobId: ids[0])
        #expect(rev == first.rev)
        try await jobs.retryTask(ids[0], task: "review")
        let changes = await Self.follow(subscription)
        #expect(changes.first?.baseRev == first.rev)
        #expect(changes.last?.snapshot["state"] == "done")
        let retried = try await jobs.waitUntilFinished(ids[0])
        #expect(retried.task("review")?["attempts"] == 2, "\(retried.json)")
        #expect(await jobs.jobsInMemory == JobManager.idleJobsKept)
    }
}
