import Foundation
import JSON
import JSONRPC
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A client of a spawned `stagerunner serve` that numbers its requests itself.
final class JobClient: Sendable {
    let peer: ServerProcess
    private let ids = Mutex(0)

    init(_ peer: ServerProcess) { self.peer = peer }

    /// Spawns a server on `workspace`, with `environment` added to the test's.
    convenience init(workspace: String, outputPipeSize: Int32? = nil, environment: [String: String] = [:]) throws {
        self.init(
            try ServerProcess(
                ServerSetup(enableTestMethods: false, workspace: workspace).arguments,
                environment: environment,
                outputPipeSize: outputPipeSize
            )
        )
    }

    func nextId() -> Int {
        ids.withLock { id in
            id += 1
            return id
        }
    }

    /// Sends a request and returns the whole response.
    func call(_ method: String, _ params: String? = nil, timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let id = nextId()
        let paramsText = params.map { #","params":\#($0)"# } ?? ""
        peer.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)"\#(paramsText)}"#)
        return try await peer.output.response(id: .integer(Int64(id)), timeout: timeout)
    }

    /// Sends a request and returns its result; an error answer fails.
    func result(_ method: String, _ params: String? = nil) async throws -> JSONValue {
        let response = try await call(method, params)
        guard let result = response["result"] else {
            throw JobWire.Failure(description: "\(method) \(params ?? "") answered \(response)")
        }
        return result
    }

    func status(_ jobId: String) async throws -> JSONValue {
        try await result("getStatus", #"{"jobId":"\#(jobId)"}"#)["status"] ?? nil
    }

    /// Polls getStatus until the job is in one of `states`; returns its document.
    func waitForState(
        _ jobId: String,
        _ states: Set<String> = ["done", "failed", "cancelled"],
        timeout: Duration = .seconds(60)
    ) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let document = try await status(jobId)
            if let state = document["state"]?.stringValue, states.contains(state) { return document }
            if ContinuousClock.now >= deadline {
                throw JobWire.Failure(description: "job \(jobId) did not reach \(states) in \(timeout): \(document)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// retryTask once the job has ended. The notification that a task failed for good goes out
    /// before the engine has let go of the run, so a retry sent the instant it arrives can be
    /// refused as "still running" (see `retryRightAfterTheFailureNotification`); this waits that out.
    func retryTask(_ jobId: String, _ task: String) async throws -> JSONValue {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let response = try await call("retryTask", #"{"jobId":"\#(jobId)","task":"\#(task)"}"#)
            let refused = response["error"]?["message"]?.stringValue?.contains("is still running") == true
            if !refused || ContinuousClock.now >= deadline {
                guard let result = response["result"] else {
                    throw JobWire.Failure(description: "retryTask answered \(response)")
                }
                return result
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The statusChanged notifications of a subscription received so far.
    func notifications(_ subscriptionId: String) -> [JSONValue] {
        peer.output.messages.compactMap { message in
            guard message["method"] == "statusChanged", message["params"]?["subscriptionId"] == .string(subscriptionId)
            else { return nil }
            return message["params"]
        }
    }

    /// Waits until the subscription has delivered the end of `jobId` (done, failed or cancelled).
    func waitForEnd(_ subscriptionId: String, jobId: String, timeout: Duration = .seconds(60)) async throws {
        try await peer.output.wait(timeout: timeout, "the end of job \(jobId) on \(subscriptionId)") { messages, _ in
            messages.contains { message in
                message["method"] == "statusChanged" && message["params"]?["subscriptionId"] == .string(subscriptionId)
                    && message["params"]?["jobId"] == .string(jobId)
                    && JobWire.isTerminal(message["params"]?["event"] ?? nil)
            }
        }
    }
}

/// What a client makes of the status notifications: events as text, documents rebuilt from
/// patches with a patch applier of its own (RFC 6902 over RFC 6901 pointers).
enum JobWire {
    static let taskStates: Set<String> = ["pending", "running", "done", "failed", "cancelled", "interrupted"]
    static let jobStates: Set<String> = ["pending", "running", "done", "failed", "cancelled", "interrupted"]

    /// The event that ends a job: the job done or cancelled, or a task failed for good (the same
    /// change fails the job).
    static func isTerminal(_ event: JSONValue) -> Bool {
        let state = event["state"]?.stringValue ?? ""
        switch event["type"]?.stringValue {
        case "job": return ["done", "failed", "cancelled"].contains(state)
        case "task": return state == "failed"
        default: return false
        }
    }

    /// `type task stage state`, for events.
    static func label(_ event: JSONValue) -> String {
        [event["type"], event["task"], event["stage"], event["state"]].compactMap { $0?.stringValue }
            .joined(separator: " ")
    }

    /// Every event the notifications stand for, in order (merged ones list theirs in `events`).
    static func events(_ notifications: [JSONValue]) -> [String] {
        notifications.flatMap { params -> [String] in
            if case .array(let events)? = params["events"] { return events.map(label) }
            return [label(params["event"] ?? nil)]
        }
    }

    /// Each notification about `jobId` with the document the client holds after it: a snapshot
    /// replaces it, a patch applies to it (its `baseRev` must be the revision held).
    static func documents(
        _ notifications: [JSONValue],
        jobId: String,
        baseline: JSONValue? = nil
    ) throws -> [(params: JSONValue, document: JSONValue)] {
        var document = baseline
        var result: [(JSONValue, JSONValue)] = []
        for params in notifications where params["jobId"] == .string(jobId) {
            if let snapshot = params["snapshot"] {
                #expect(params["patch"] == nil)
                document = snapshot
            } else {
                let held = try #require(document, "a patch before any snapshot: \(params)")
                #expect(params["baseRev"] == held["rev"], "a patch for another revision than the one held")
                guard case .array(let operations)? = params["patch"] else {
                    Issue.record("a notification with neither snapshot nor patch: \(params)")
                    continue
                }
                document = try apply(operations, to: held)
            }
            #expect(document?["rev"] == params["rev"], "the document's rev is the notification's")
            result.append((params, document!))
        }
        return result
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func apply(_ operations: [JSONValue], to document: JSONValue) throws -> JSONValue {
        var result = document
        for operation in operations {
            guard let op = operation["op"]?.stringValue, let path = operation["path"]?.stringValue else {
                throw Failure(description: "bad operation \(operation)")
            }
            let tokens: [String] =
                path.isEmpty
                ? []
                : path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
                    $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                }
            switch op {
            case "add", "replace":
                guard let value = operation["value"] else { throw Failure(description: "no value: \(operation)") }
                try change(&result, tokens[...], op: op) { $0 = value }
            case "remove":
                try change(&result, tokens[...], op: op) { $0 = nil }
            default:
                throw Failure(description: "unexpected op \(op)")
            }
        }
        return result
    }

    /// Sets (or, with nil, removes) the member at `tokens`.
    private static func change(
        _ value: inout JSONValue,
        _ tokens: ArraySlice<String>,
        op: String,
        _ body: (inout JSONValue?) -> Void
    ) throws {
        guard let name = tokens.first else {
            var whole: JSONValue? = value
            body(&whole)
            value = whole ?? nil
            return
        }
        switch value {
        case .object(var members):
            if tokens.count == 1 {
                if op != "add" && members[name] == nil {
                    throw Failure(description: "\(op) of a missing member '\(name)'")
                }
                var member = members[name]
                body(&member)
                members[name] = member
            } else {
                guard var child = members[name] else { throw Failure(description: "no member '\(name)'") }
                try change(&child, tokens.dropFirst(), op: op, body)
                members[name] = child
            }
            value = .object(members)
        case .array(var items):
            let index = name == "-" ? items.count : Int(name) ?? -1
            guard index >= 0, index <= items.count else { throw Failure(description: "bad index \(name)") }
            if tokens.count == 1 {
                var item: JSONValue? = index < items.count && op != "add" ? items[index] : nil
                body(&item)
                if op == "add" {
                    items.insert(item ?? nil, at: index)
                } else if let item {
                    items[index] = item
                } else {
                    items.remove(at: index)
                }
            } else {
                guard index < items.count else { throw Failure(description: "bad index \(name)") }
                try change(&items[index], tokens.dropFirst(), op: op, body)
            }
            value = .array(items)
        default:
            throw Failure(description: "'\(name)' inside a scalar")
        }
    }

    /// The research example with its review task made to fail at promptTemplating (its template
    /// needs a field the summary does not give).
    static let failingReview = "stages:\n  promptTemplating: { template: { text: '{{ input.subtitle }}' } }\n"
    static let fixedReview = "stages:\n  promptTemplating: { template: { text: 'Review {{ input.title }}' } }\n"

    /// A task whose only stage runs `sleep seconds`.
    static func sleepingTask(_ seconds: String) -> String {
        "stages:\n  ingestion: { command: [sleep, '\(seconds)'] }\n"
    }

    /// A task whose only stage runs `script` with `sh -c` in the task file's folder.
    static func commandTask(_ script: String) -> String {
        "stages:\n  ingestion:\n    command:\n      - sh\n      - -c\n      - |\n"
            + script.split(separator: "\n").map { "        \($0)\n" }.joined()
    }

    /// A task whose command touches `started` in its folder, waits there for a file `release`,
    /// then outputs 1: a job that runs until the test lets it go.
    static let heldTask = commandTask(
        """
        touch started
        while [ ! -f release ]; do sleep 0.02; done
        echo '{"output": 1, "flags": {}}'
        """
    )

    /// The job's status document on disk.
    static func documentOnDisk(_ root: String, _ jobId: String) -> JSONValue? {
        guard let data = FileManager.default.contents(atPath: "\(root)/jobs/\(jobId)/tasks-status.json") else {
            return nil
        }
        return try? JSONParser.parse(Array(data))
    }
}

/// The job methods over the wire, against the built binary.
@Suite("Job methods")
struct JobMethodTests {
    @Test("a connection holds at most 1,000 status subscriptions: the next is refused, saying why, until one goes")
    func subscriptionLimit() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        var ids: [String] = []
        for _ in 0..<1000 {
            ids.append(try #require(try await client.result("subscribeStatus")["subscriptionId"]?.stringValue))
        }
        let refused = try await client.call("subscribeStatus", #"{"delivery":"patch"}"#)
        #expect(
            refused["error"]
                == [
                    "code": -32016,
                    "message":
                        "Job: this connection already holds 1000 status subscriptions, the most it may; unsubscribeStatus those it no longer needs, or subscribe without jobId to follow every job with one",
                    "data": ["kind": "job", "reason": "limit", "limit": 1000],
                ]
        )
        _ = try await client.result("unsubscribeStatus", #"{"subscriptionId":"\#(ids[0])"}"#)
        #expect(try await client.result("subscribeStatus")["subscriptionId"] != nil)
        #expect(try await client.result("ping") == [:], "the connection goes on")
        client.peer.closeInput()
        #expect(try await client.peer.exitStatus() == 0)
    }

    @Test(
        "a subscription sees every lifecycle state in order; patches rebuild getStatus",
        arguments: ["snapshot", "patch"]
    )
    func lifecycle(delivery: String) async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let all = try await client.result("subscribeStatus", #"{"delivery":"\#(delivery)"}"#)
        #expect(all["rev"] == 0)
        #expect(all["snapshot"] == ["jobs": [:]])
        let allId = try #require(all["subscriptionId"]?.stringValue)
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Tide pools"}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        let one = try await client.result("subscribeStatus", #"{"jobId":"\#(jobId)","delivery":"\#(delivery)"}"#)
        let oneId = try #require(one["subscriptionId"]?.stringValue)
        #expect(one["snapshot"]?["rev"] == one["rev"])
        try await client.waitForEnd(allId, jobId: jobId)
        let final = try await client.status(jobId)
        #expect(final["state"] == "done")
        #expect(final["progress"] == ["tasksDone": 2, "tasksTotal": 2, "percent": 100])

        // Every lifecycle state, in order, each once per task.
        let notifications = client.notifications(allId)
        let events = JobWire.events(notifications)
        #expect(events.first == "job pending")
        #expect(events.last == "job done")
        let order = [
            "job pending", "job running", "task summary running", "stage summary ingestion started",
            "stage summary ingestion completed", "stage summary inference started", "stage summary inference completed",
            "task summary refining", "stage summary refine started", "stage summary refine completed",
            "stage summary integration completed", "task summary done", "task review running",
            "stage review promptTemplating started", "stage review inference completed",
            "stage review integration completed", "task review done", "job done",
        ]
        let positions = order.map { events.firstIndex(of: $0) ?? -1 }
        #expect(!positions.contains(-1), "missing: \(zip(order, positions).filter { $0.1 < 0 }.map(\.0)) in \(events)")
        #expect(positions == positions.sorted(), "\(events)")
        for once in ["job pending", "job running", "task summary done", "task review done", "job done"] {
            #expect(events.filter { $0 == once }.count == 1, "\(once) in \(events)")
        }
        // Each stage that starts completes before the next one starts.
        var open: String?
        for event in events where event.hasPrefix("stage ") {
            let words = event.split(separator: " ")
            let stage = words[1] + " " + words[2]
            if words.last == "started" {
                #expect(open == nil, "\(stage) started while \(open ?? "") ran")
                open = String(stage)
            } else {
                #expect(open == String(stage), "\(event) without its start")
                open = nil
            }
        }
        #expect(notifications.map { $0["coalesced"]?.integerValue ?? 0 }.reduce(0, +) == Int64(events.count))

        // The documents the client holds show the lifecycle's states (§8.10) at each transition.
        let documents = try JobWire.documents(notifications, jobId: jobId)
        let revs = documents.compactMap { $0.params["rev"]?.integerValue }
        #expect(revs == revs.sorted() && Set(revs).count == revs.count, "revs in order: \(revs)")
        #expect(revs.first == 1)
        for (params, document) in documents where params["coalesced"] == 1 {
            let event = params["event"] ?? nil
            let task = event["task"]?.stringValue ?? ""
            switch JobWire.label(event).split(separator: " ").first.map(String.init) {
            case "job" where event["state"] == "pending":
                #expect(document["state"] == "pending")
                #expect(document["tasks"]?["summary"]?["state"] == "pending")
                #expect(document["tasks"]?["review"]?["state"] == "pending")
            case "stage" where event["state"] == "started":
                // While a task is running in a stage.
                #expect(document["state"] == "running")
                #expect(document["current"] == .string(task))
                #expect(document["currentStage"] == event["stage"])
                #expect(document["tasks"]?[task]?["state"] == "running")
                #expect(document["tasks"]?[task]?["currentStage"] == event["stage"])
                #expect(document["tasks"]?[task]?["failedStage"] == .null)
            case "task" where event["state"] == "running":
                #expect(document["state"] == "running")
                #expect(document["current"] == .string(task))
                #expect(document["tasks"]?[task]?["attempts"] == 1)
            case "task" where event["state"] == "done":
                #expect(document["tasks"]?[task]?["state"] == "done")
                #expect(document["tasks"]?[task]?["currentStage"] == .null)
                #expect(document["tasks"]?[task]?["failedStage"] == .null)
                #expect(document["tasks"]?[task]?["endedAt"]?.stringValue != nil)
                #expect(document["tasks"]?[task]?["files"]?["output"] == .string("tasks/\(task)/output.json"))
            case "job" where event["state"] == "done":
                #expect(document["state"] == "done")
                #expect(document["current"] == .null)
                #expect(document["currentStage"] == .null)
            default: break
            }
        }
        // The client's document after the last notification is getStatus's, exactly.
        #expect(documents.last?.document == final)

        // The job's own subscription, from its baseline (on a loaded machine the job may have
        // ended before it was made: then the baseline is the final document, and nothing follows).
        let baseline = try #require(one["snapshot"])
        if baseline["state"] != "done" { try await client.waitForEnd(oneId, jobId: jobId) }
        let fromBaseline = try JobWire.documents(client.notifications(oneId), jobId: jobId, baseline: baseline)
        #expect(fromBaseline.first.map { $0.params["rev"]!.integerValue! > one["rev"]!.integerValue! } != false)
        #expect((fromBaseline.last?.document ?? baseline) == final)
        if delivery == "patch" {
            // Past the first sight of the job, every change travels as a patch.
            #expect(notifications.dropFirst().allSatisfy { $0["patch"] != nil && $0["snapshot"] == nil })
            #expect(client.notifications(oneId).allSatisfy { $0["patch"] != nil })
        } else {
            #expect(notifications.allSatisfy { $0["snapshot"] != nil && $0["patch"] == nil })
        }
        // What is on disk is the same document, once the store has caught up (it writes behind
        // the notifications, never skipping the last revision).
        try await eventually("the final document on disk") { JobWire.documentOnDisk(example.root, jobId) == final }
        #expect(client.peer.output.problems.isEmpty)
        client.peer.saveTranscript("job-lifecycle-\(delivery)")
    }

    @Test(
        "a task that fails at a stage fails the job with failedStage and currentStage; retryTask reruns only it",
        arguments: ["snapshot", "patch"]
    )
    func failureAndRetry(delivery: String) async throws {
        let example = try ExampleCopy("research-task", files: ["tasks/review.task.yaml": JobWire.failingReview])
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let all = try #require(
            try await client.result("subscribeStatus", #"{"delivery":"\#(delivery)"}"#)["subscriptionId"]?.stringValue
        )
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Tide pools"}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        try await client.waitForEnd(all, jobId: jobId)
        let failed = try await client.result("getStatus", #"{"jobId":"\#(jobId)"}"#)
        let document = try #require(failed["status"])
        #expect(document["state"] == "failed")
        #expect(document["current"] == "review")
        #expect(document["currentStage"] == "promptTemplating")
        #expect(document["tasks"]?["review"]?["state"] == "failed")
        #expect(document["tasks"]?["review"]?["currentStage"] == "promptTemplating")
        #expect(document["tasks"]?["review"]?["failedStage"] == "promptTemplating")
        #expect(document["tasks"]?["review"]?["error"]?["name"] == "TemplateError")
        #expect(document["tasks"]?["summary"]?["state"] == "done")
        #expect(failed["taskStages"] == ["summary": nil, "review": "promptTemplating"])

        let notifications = client.notifications(all)
        let events = JobWire.events(notifications)
        let order = [
            "task summary done", "task review running", "stage review promptTemplating started",
            "stage review promptTemplating failed", "task review failed", "job review failed",
        ]
        let positions = order.map { events.firstIndex(of: $0) ?? -1 }
        #expect(!positions.contains(-1) && positions == positions.sorted(), "\(events)")
        #expect(events.last == "job review failed")
        let documents = try JobWire.documents(notifications, jobId: jobId)
        #expect(documents.last?.document == document)
        // The failing change fails the task and the job in the same revision: one atomic update.
        let failure = try #require(documents.last)
        #expect(failure.params["event"]?["failedStage"] == "promptTemplating")
        #expect(failure.document["state"] == "failed")

        // Manual recovery: fix the task file, retry the task; the summary is not run again.
        try JobWire.fixedReview.write(
            toFile: example.root + "/tasks/review.task.yaml",
            atomically: true,
            encoding: .utf8
        )
        let retried = try await client.retryTask(jobId, "review")
        #expect(retried == ["jobId": .string(jobId)])
        let done = try await client.waitForState(jobId, ["done", "failed"])
        #expect(done["state"] == "done")
        #expect(done["tasks"]?["summary"]?["attempts"] == 1, "the summary was not run again")
        #expect(done["tasks"]?["review"]?["attempts"] == 2)
        #expect(done["tasks"]?["review"]?["failedStage"] == .null)
        #expect((done["tasks"]?["review"]?["error"] ?? .null) == .null)
        #expect((done["error"] ?? .null) == .null)
        #expect(done["currentStage"] == .null)
        // The subscription followed the retry to its end, and still rebuilds the document.
        try await client.waitForEnd(all, jobId: jobId)
        let after = try JobWire.documents(client.notifications(all), jobId: jobId)
        #expect(after.last?.document == done)
        let retryEvents = JobWire.events(client.notifications(all)).drop { $0 != "task review failed" }
        #expect(retryEvents.contains("job pending"))
        #expect(retryEvents.contains("task review running"))
        #expect(!retryEvents.contains("task summary running"))
        #expect(retryEvents.last == "job done")
        client.peer.saveTranscript("job-failure-retry-\(delivery)")
    }

    @Test("two jobs at once: an all-jobs subscription gets each job's revisions in increasing order")
    func twoJobs() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let all = try #require(
            try await client.result("subscribeStatus", #"{"delivery":"patch"}"#)["subscriptionId"]?.stringValue
        )
        let params = #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Kelp forests"}}"#
        // Both requests go out before either answer comes back.
        let first = client.nextId()
        let second = client.nextId()
        client.peer.send(#"{"jsonrpc":"2.0","id":\#(first),"method":"runPipeline","params":\#(params)}"#)
        client.peer.send(#"{"jsonrpc":"2.0","id":\#(second),"method":"runPipeline","params":\#(params)}"#)
        let ids = try await [first, second].asyncMap { id in
            try #require(
                try await client.peer.output.response(id: .integer(Int64(id)))["result"]?["jobId"]?.stringValue
            )
        }
        #expect(Set(ids).count == 2)
        for id in ids { try await client.waitForEnd(all, jobId: id) }
        let notifications = client.notifications(all)
        // They ran at the same time: their notifications interleave.
        let owners = notifications.compactMap { $0["jobId"]?.stringValue }
        let switches = zip(owners, owners.dropFirst()).filter { $0 != $1 }.count
        #expect(switches >= 2, "the two jobs' changes interleave: \(owners)")
        for id in ids {
            let revs = notifications.filter { $0["jobId"] == .string(id) }.compactMap { $0["rev"]?.integerValue }
            #expect(revs == revs.sorted() && Set(revs).count == revs.count, "\(id): \(revs)")
            let documents = try JobWire.documents(notifications, jobId: id)
            let status = try await client.status(id)
            #expect(status["state"] == "done")
            #expect(documents.last?.document == status)
            #expect(JobWire.events(notifications.filter { $0["jobId"] == .string(id) }).last == "job done")
        }
        let listed = try await client.result("listJobs", #"{"state":"done"}"#)
        guard case .array(let jobs)? = listed["jobs"] else {
            Issue.record("listJobs answered \(listed)")
            return
        }
        #expect(Set(jobs.compactMap { $0["id"]?.stringValue }) == Set(ids))
        client.peer.saveTranscript("job-two-at-once")
    }

    @Test("cancelJob mid-stage: the job and task show where, and the stage's command is gone")
    func cancelMidStage() async throws {
        let marker = "343.\(Int.random(in: 100...999))"
        let example = try ExampleCopy("research-task", files: ["tasks/slow.yaml": JobWire.sleepingTask(marker)])
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"},{"name":"after","task":"tasks/slow.yaml"}]}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        let sub = try await client.result("subscribeStatus", #"{"jobId":"\#(jobId)","delivery":"patch"}"#)
        let subId = try #require(sub["subscriptionId"]?.stringValue)
        try await eventually("the stage's command runs") {
            TaskMethodTests.running("sleep \(marker)")
        }
        _ = try await client.waitForState(jobId, ["running"])
        let started = ContinuousClock.now
        let response = try await client.call("cancelJob", #"{"jobId":"\#(jobId)"}"#)
        #expect(response["error"] == nil)
        // Generous for a loaded machine; the command would run for 343 s.
        #expect(ContinuousClock.now - started < .seconds(120))
        let document = try #require(response["result"]?["status"])
        #expect(document["state"] == "cancelled")
        #expect(document["cancelled"]?["task"] == "slow")
        #expect(document["cancelled"]?["stage"] == "ingestion")
        #expect(document["cancelled"]?["at"]?.stringValue != nil)
        #expect(document["tasks"]?["slow"]?["state"] == "cancelled")
        #expect(document["tasks"]?["after"]?["state"] == "pending")
        try await eventually("the command is gone") {
            !TaskMethodTests.running("sleep \(marker)")
        }
        #expect(try await client.status(jobId) == document)
        // The subscriber sees the cancellation, and its rebuilt document is the same.
        try await client.waitForEnd(subId, jobId: jobId)
        let documents = try JobWire.documents(client.notifications(subId), jobId: jobId, baseline: sub["snapshot"])
        #expect(documents.last?.document == document)
        #expect(documents.last?.params["event"] == ["type": "job", "state": "cancelled", "task": "slow"])
        // On disk too, once the store has caught up.
        try await eventually("the document on disk is cancelled") {
            JobWire.documentOnDisk(example.root, jobId)?["state"] == "cancelled"
        }
        let again = try await client.call("cancelJob", #"{"jobId":"\#(jobId)"}"#)
        #expect(
            again["error"]
                == [
                    "code": -32016,
                    "message": .string(
                        "Job: job '\(jobId)' is cancelled, not running or pending: there is nothing to cancel"
                    ),
                    "data": ["kind": "job", "reason": "invalid_state", "jobId": .string(jobId)],
                ]
        )
        client.peer.saveTranscript("job-cancel")
    }

    @Test("errors: an unknown job, a retry while running, a path out of the job's folder")
    func errors() async throws {
        let marker = "344.\(Int.random(in: 100...999))"
        let example = try ExampleCopy("research-task", files: ["tasks/slow.yaml": JobWire.sleepingTask(marker)])
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        func error(_ code: Int, _ message: String, _ data: JSONValue) -> JSONValue {
            ["code": .integer(Int64(code)), "message": .string(message), "data": data]
        }
        let unknown = try await client.call("getStatus", #"{"jobId":"20250101T000000Z-0000"}"#)
        #expect(
            unknown["error"]
                == error(
                    -32016,
                    "Job: no job '20250101T000000Z-0000' in \(example.root)/jobs",
                    ["kind": "job", "reason": "not_found", "jobId": "20250101T000000Z-0000"]
                )
        )
        let badId = try await client.call("resumeJob", #"{"jobId":"../etc"}"#)
        #expect(
            badId["error"]
                == error(
                    -32016,
                    "Job: no job '../etc': job ids look like 20261122T014501Z-3fa9",
                    ["kind": "job", "reason": "not_found", "jobId": "../etc"]
                )
        )
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"}]}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        let retry = try await client.call("retryTask", #"{"jobId":"\#(jobId)","task":"slow"}"#)
        #expect(
            retry["error"]
                == error(
                    -32016,
                    "Job: job '\(jobId)' is still running; cancel it or wait for it to end before retrying a task",
                    ["kind": "job", "reason": "invalid_state", "jobId": .string(jobId)]
                )
        )
        let resume = try await client.call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
        #expect(
            resume["error"]
                == error(
                    -32016,
                    "Job: job '\(jobId)' is already running",
                    ["kind": "job", "reason": "invalid_state", "jobId": .string(jobId)]
                )
        )
        for path in ["../../stagerunner.yaml", "tasks/../../x", "/etc/passwd"] {
            let artifact = try await client.call("getArtifact", #"{"jobId":"\#(jobId)","path":"\#(path)"}"#)
            #expect(
                artifact["error"]
                    == error(
                        -32016,
                        "Job: '\(path)' must be a path relative to the job's folder, without '..'",
                        ["kind": "job", "reason": "invalid_path", "jobId": .string(jobId)]
                    )
            )
        }
        let input = try await client.result("getArtifact", #"{"jobId":"\#(jobId)","path":"input.json"}"#)
        #expect(input["path"] == "input.json")
        #expect(input["text"]?.stringValue.map { $0.hasPrefix("{") } == true)
        let missing = try await client.call("getArtifact", #"{"jobId":"\#(jobId)","path":"tasks/none.txt"}"#)
        #expect(missing["error"]?["message"] == "Job: the job has no file 'tasks/none.txt'")
        let unknownTask = try await client.call("cancelJob", #"{"jobId":"\#(jobId)"}"#)
        #expect(unknownTask["result"]?["status"]?["state"] == "cancelled")
        let noTask = try await client.call("retryTask", #"{"jobId":"\#(jobId)","task":"nope"}"#)
        #expect(
            noTask["error"]
                == error(
                    -32016,
                    "Job: job '\(jobId)' has no task 'nope'; its tasks are slow",
                    ["kind": "job", "reason": "not_found", "jobId": .string(jobId)]
                )
        )
        let badDelivery = try await client.call("subscribeStatus", #"{"delivery":"stream"}"#)
        #expect(badDelivery["error"]?["code"] == -32602)
        #expect(
            badDelivery["error"]?["message"]
                == "Invalid params: params.delivery must be snapshot or patch, not 'stream'"
        )
        let badUnsubscribe = try await client.call("unsubscribeStatus", #"{"subscriptionId":"sub-99"}"#)
        #expect(
            badUnsubscribe["error"]?["message"]
                == "Invalid params: params.subscriptionId 'sub-99' is not a subscription of this connection"
        )
        client.peer.saveTranscript("job-errors")
    }

    @Test(
        "a subscriber that stops reading does not stall the jobs, then gets coalesced changes ending in the final state",
        arguments: ["snapshot", "patch"]
    )
    func slowSubscriber(delivery: String) async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        // A one-page stdout pipe: a few snapshots fill it.
        let client = try JobClient(workspace: example.root, outputPipeSize: 4096)
        let sub = try #require(
            try await client.result("subscribeStatus", #"{"delivery":"\#(delivery)"}"#)["subscriptionId"]?.stringValue
        )
        client.peer.output.pause()
        let count = 3
        for index in 0..<count {
            client.peer.send(
                #"{"jsonrpc":"2.0","id":\#(100 + index),"method":"runPipeline","params":{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Reef \#(index)"}}}"#
            )
        }
        // The jobs finish although nobody reads: their documents on disk say so.
        var jobIds: [String] = []
        try await eventually("the jobs finish while the client reads nothing", timeout: .seconds(90)) {
            jobIds = (try? FileManager.default.contentsOfDirectory(atPath: example.root + "/jobs")) ?? []
            return jobIds.count == count
                && jobIds.allSatisfy { JobWire.documentOnDisk(example.root, $0)?["state"] == "done" }
        }
        let receivedWhilePaused = client.peer.output.messages.count
        client.peer.output.resume()
        for id in jobIds { try await client.waitForEnd(sub, jobId: id) }
        let notifications = client.notifications(sub)
        #expect(receivedWhilePaused < notifications.count)
        #expect(
            notifications.contains { ($0["coalesced"]?.integerValue ?? 0) > 1 },
            "the changes that waited were merged"
        )
        for id in jobIds {
            let mine = notifications.filter { $0["jobId"] == .string(id) }
            let revs = mine.compactMap { $0["rev"]?.integerValue }
            #expect(revs == revs.sorted() && Set(revs).count == revs.count)
            let disk = try #require(JobWire.documentOnDisk(example.root, id))
            #expect(try JobWire.documents(mine, jobId: id).last?.document == disk, "the last change is the final state")
            #expect(JobWire.events(mine).last == "job done")
            // Merged notifications never drop a job or task transition.
            let events = JobWire.events(mine)
            for transition in ["job running", "task summary done", "task review done", "job done"] {
                #expect(events.contains(transition), "\(id): \(transition) in \(events)")
            }
        }
        // The runPipeline answers were not lost either.
        for index in 0..<count {
            #expect(try await client.peer.output.response(id: .integer(Int64(100 + index)))["result"] != nil)
        }
        client.peer.saveTranscript("job-slow-subscriber-\(delivery)")
    }

    @Test(
        "end of input, SIGTERM or a client that stops reading, with a job running: the process exits once the job is done",
        arguments: ["end of input", "SIGTERM", "stops reading"]
    )
    func endOfInputLetsTheJobFinish(ending: String) async throws {
        // The first task's command holds until the test lets it go.
        let example = try ExampleCopy(
            "research-task",
            files: [
                "tasks/held.yaml": JobWire.heldTask
            ]
        )
        defer { example.remove() }
        let client = JobClient(try ServerProcess(["serve", "--workspace", example.root, "--log-level", "notice"]))
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":{"name":"held","tasks":[{"name":"held","task":"tasks/held.yaml"},{"name":"research","task":"tasks/summary.task.yaml","input":"seed"}]},"input":{"topic":"Dunes"}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        try await eventually("the command starts") {
            FileManager.default.fileExists(atPath: example.root + "/tasks/started")
        }
        switch ending {
        case "SIGTERM": client.peer.signal(SIGTERM)
        case "end of input": client.peer.closeInput()
        default:
            // Its input stays open; the answers to these pings find no reader.
            client.peer.stopReading()
            try await eventually("the server sees that its client stopped reading", timeout: .seconds(60)) {
                client.peer.send(#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#)
                usleep(20_000)
                return client.peer.standardError.contains("the peer stopped reading")
            }
        }
        // The process stays while the job runs.
        try await Task.sleep(for: .milliseconds(300))
        #expect(!client.peer.hasExited, "the process exited with its job still running")
        #expect(JobWire.documentOnDisk(example.root, jobId)?["state"] == "running")
        #expect(FileManager.default.createFile(atPath: example.root + "/tasks/release", contents: Data()))
        // A client that stopped reading without `shutdown` lost answers: 1, as LSP's exit without it.
        #expect(try await client.peer.exitStatus(timeout: .seconds(60)) == (ending == "stops reading" ? 1 : 0))
        let document = try #require(JobWire.documentOnDisk(example.root, jobId))
        #expect(document["state"] == "done", "\(document)")
        #expect(document["tasks"]?["held"]?["state"] == "done")
        #expect(document["tasks"]?["research"]?["state"] == "done")
        try await client.peer.output.waitForEnd()
        if ending != "stops reading" {
            client.peer.saveTranscript("job-\(ending == "SIGTERM" ? "sigterm" : "end-of-input")")
        }
    }

    @Test("SIGINT cancels the running job; its document on disk says cancelled, where")
    func sigintCancels() async throws {
        let marker = "345.\(Int.random(in: 100...999))"
        let example = try ExampleCopy("research-task", files: ["tasks/slow.yaml": JobWire.sleepingTask(marker)])
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"}]}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        try await eventually("the stage's command runs") {
            TaskMethodTests.running("sleep \(marker)")
        }
        client.peer.signal(SIGINT)
        #expect(try await client.peer.exitStatus(timeout: .seconds(30)) == 0)
        let document = try #require(JobWire.documentOnDisk(example.root, jobId))
        #expect(document["state"] == "cancelled")
        #expect(document["cancelled"]?["task"] == "slow")
        #expect(document["cancelled"]?["stage"] == "ingestion")
        #expect(document["tasks"]?["slow"]?["state"] == "cancelled")
        try await eventually("the command is gone") {
            !TaskMethodTests.running("sleep \(marker)")
        }

        // A new server resumes the cancelled job from its first unfinished task.
        try JobWire.commandTask(#"echo '{"output": 1, "flags": {}}'"#).write(
            toFile: example.root + "/tasks/slow.yaml",
            atomically: true,
            encoding: .utf8
        )
        let next = try JobClient(workspace: example.root)
        #expect(try await next.result("resumeJob", #"{"jobId":"\#(jobId)"}"#) == ["jobId": .string(jobId)])
        let done = try await next.waitForState(jobId)
        #expect(done["state"] == "done")
        #expect((done["cancelled"] ?? .null) == .null)
        #expect(done["tasks"]?["slow"]?["attempts"] == 2)
        client.peer.saveTranscript("job-sigint")
    }
    @Test("cancelJob right after a retry of a failed task answers with the cancelled document")
    func cancelRightAfterRetry() async throws {
        // A race: a retry accepted while the failed run's last write was still under way used to
        // let that run's end answer the cancel of the retry, with the document still running.
        var early: [String] = []
        for _ in 0..<30 {
            let example = try ExampleCopy(
                "research-task",
                files: [
                    "tasks/first.yaml": JobWire.failingReview,
                    "tasks/slow.yaml": JobWire.commandTask("sleep 5; exit 3"),
                ]
            )
            defer { example.remove() }
            let client = try JobClient(workspace: example.root)
            let sub = try #require(
                try await client.result("subscribeStatus", #"{"delivery":"patch"}"#)["subscriptionId"]?.stringValue
            )
            let run = try await client.result(
                "runPipeline",
                #"{"pipeline":{"name":"p","tasks":[{"name":"first","task":"tasks/first.yaml"},{"name":"slow","task":"tasks/slow.yaml"}]}}"#
            )
            let jobId = try #require(run["jobId"]?.stringValue)
            try await client.waitForEnd(sub, jobId: jobId)
            try "stages:\n  promptTemplating: { template: { text: 'hello' } }\n"
                .write(toFile: example.root + "/tasks/first.yaml", atomically: true, encoding: .utf8)
            _ = try await client.retryTask(jobId, "first")
            let cancel = try await client.result("cancelJob", #"{"jobId":"\#(jobId)"}"#)
            let state = cancel["status"]?["state"]?.stringValue ?? "?"
            if state != "cancelled" { early.append(state) }
            #expect(try await client.waitForState(jobId)["state"] == "cancelled")
        }
        #expect(early.isEmpty, "cancelJob answered before the job ended, with the job \(early)")
    }
    @Test("retryTask sent the instant the failure notification arrives is accepted")
    func retryRightAfterTheFailureNotification() async throws {
        // Known race (reported): the change that fails the task and the job is published while
        // the run is still registered, so retryTask (and resumeJob) can answer "still running"
        // for a job whose document already says failed. Intermittent: it depends on scheduling.
        var refused: [String] = []
        for _ in 0..<20 {
            let example = try ExampleCopy("research-task", files: ["tasks/first.yaml": JobWire.failingReview])
            defer { example.remove() }
            let client = try JobClient(workspace: example.root)
            let sub = try #require(
                try await client.result("subscribeStatus", #"{"delivery":"patch"}"#)["subscriptionId"]?.stringValue
            )
            let run = try await client.result(
                "runPipeline",
                #"{"pipeline":{"name":"p","tasks":[{"name":"first","task":"tasks/first.yaml"}]}}"#
            )
            let jobId = try #require(run["jobId"]?.stringValue)
            try await client.waitForEnd(sub, jobId: jobId)
            let response = try await client.call("retryTask", #"{"jobId":"\#(jobId)","task":"first"}"#)
            if let message = response["error"]?["message"]?.stringValue { refused.append(message) }
            _ = try await client.waitForState(jobId, ["failed"])
        }
        #expect(refused.isEmpty, "\(refused.count) of 20 refused: \(refused.first ?? "")")
    }
    @Test("unsubscribeStatus stops the notifications; subscribing to an unknown job is an error")
    func unsubscribe() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let kept = try #require(try await client.result("subscribeStatus")["subscriptionId"]?.stringValue)
        let dropped = try #require(try await client.result("subscribeStatus")["subscriptionId"]?.stringValue)
        #expect(kept != dropped)
        #expect(try await client.result("unsubscribeStatus", #"{"subscriptionId":"\#(dropped)"}"#) == [:])
        let again = try await client.call("unsubscribeStatus", #"{"subscriptionId":"\#(dropped)"}"#)
        #expect(again["error"]?["code"] == -32602)
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Tide pools"}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        try await client.waitForEnd(kept, jobId: jobId)
        #expect(!client.notifications(kept).isEmpty)
        #expect(client.notifications(dropped).isEmpty)
        let unknown = try await client.call("subscribeStatus", #"{"jobId":"20250101T000000Z-0000"}"#)
        #expect(
            unknown["error"]
                == [
                    "code": -32016,
                    "message": .string("Job: no job '20250101T000000Z-0000' in \(example.root)/jobs"),
                    "data": ["kind": "job", "reason": "not_found", "jobId": "20250101T000000Z-0000"],
                ]
        )
        // A finished job's subscription starts from its final document and stays quiet.
        let late = try await client.result("subscribeStatus", #"{"jobId":"\#(jobId)","delivery":"patch"}"#)
        #expect(late["snapshot"] == (try await client.status(jobId)))
        #expect(late["rev"] == late["snapshot"]?["rev"])
        let review = try await client.result(
            "getArtifact",
            #"{"jobId":"\#(jobId)","path":"tasks/review/review.md"}"#
        )
        #expect(review["text"]?.stringValue?.contains("0.72") == true)
        client.peer.saveTranscript("job-unsubscribe")
    }
    @Test("runPipeline with wait answers with the final document; jobs past four wait as pending")
    func waitAndQueue() async throws {
        let example = try ExampleCopy(
            "research-task",
            files: [
                "tasks/slow.yaml": JobWire.commandTask(
                    #"while [ ! -f release ]; do sleep 0.02; done; echo '{"output": 1, "flags": {}}'"#
                )
            ]
        )
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let waited = try await client.result(
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Tide pools"},"name":"waited","options":{"wait":true}}"#
        )
        let jobId = try #require(waited["jobId"]?.stringValue)
        #expect(waited["status"]?["state"] == "done")
        #expect(waited["status"]?["name"] == "waited")
        #expect(waited["status"] == (try await client.status(jobId)))

        // Five at once: four run, the fifth waits for a slot.
        let requests = (0..<5).map { _ in client.nextId() }
        for id in requests {
            client.peer.send(
                #"{"jsonrpc":"2.0","id":\#(id),"method":"runPipeline","params":{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"}]}}}"#
            )
        }
        let ids = try await requests.asyncMap { id in
            try #require(
                try await client.peer.output.response(id: .integer(Int64(id)))["result"]?["jobId"]?.stringValue
            )
        }
        var states: [String] = []
        for id in ids { states.append(try await client.status(id)["state"]?.stringValue ?? "?") }
        #expect(states.sorted() == ["pending", "running", "running", "running", "running"], "\(states)")
        let pending = try await client.result("listJobs", #"{"state":"pending"}"#)
        let queued = ids[states.firstIndex(of: "pending") ?? 0]
        #expect(pending["jobs"] == .array([pending["jobs"].flatMap(CrashPipeline.first) ?? nil]))
        #expect(pending["jobs"].flatMap(CrashPipeline.first)?["id"] == .string(queued), "\(pending)")
        #expect(FileManager.default.createFile(atPath: example.root + "/tasks/release", contents: Data()))
        for id in ids { #expect(try await client.waitForState(id)["state"] == "done") }
        let bad = try await client.call("listJobs", #"{"state":"sleeping"}"#)
        #expect(
            bad["error"]?["message"]
                == "Invalid params: params.state must be one of pending, running, done, failed, cancelled, interrupted, not 'sleeping'"
        )
        client.peer.saveTranscript("job-wait-and-queue")
    }
    @Test("getArtifact does not follow a symbolic link out of the job's folder")
    func artifactSymbolicLinks() async throws {
        let example = try ExampleCopy("research-task", files: ["secret.txt": "not the job's\n"])
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        let run = try await client.result(
            "runPipeline",
            #"{"pipeline":"pipelines/research.pipeline.yaml","input":{"topic":"Tide pools"},"options":{"wait":true}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        // A task's command can leave links in its folder; one to /etc leaves the workspace, one to
        // the workspace's root leaves only the job's folder.
        let folder = example.root + "/jobs/\(jobId)/tasks/review"
        try FileManager.default.createSymbolicLink(atPath: folder + "/etc", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: folder + "/root", withDestinationPath: example.root)
        let etc = try await client.call("getArtifact", #"{"jobId":"\#(jobId)","path":"tasks/review/etc/hostname"}"#)
        #expect(
            etc["error"]?["message"]
                == "Job: 'tasks/review/etc/hostname' leads outside the job's folder through a symbolic link"
        )
        let root = try await client.call("getArtifact", #"{"jobId":"\#(jobId)","path":"tasks/review/root/secret.txt"}"#)
        #expect(root["result"] == nil, "a file outside the job's folder was served: \(root)")
        #expect(
            root["error"]?["message"]
                == "Job: 'tasks/review/root/secret.txt' leads outside the job's folder through a symbolic link"
        )
        client.peer.saveTranscript("job-artifact-links")
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
