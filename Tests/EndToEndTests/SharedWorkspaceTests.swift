import Foundation
import GRDB
import JSON
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Several `stagerunner serve` processes on one workspace, as an orchestrator runs them: the
/// databases are created once, a generation is paid for once, and a job belongs to the process
/// that runs it.
@Suite("One workspace, many servers")
struct SharedWorkspaceTests {
    /// `runStage` params for a draft of the example workspace, with the response cache off: every
    /// draft has the same prompt, and a cached answer would call no model and pass no limit.
    static func draft(_ genId: String, model: String) -> String {
        #"{"stage":"draft","templateId":"systematic-analytical","genId":"\#(genId)","model":"\#(model)","promptText":"p","cache":"off"}"#
    }

    /// Sends every `(server, genId)` draft at once; returns the whole responses.
    static func drafts(_ requests: [(JobClient, String)], model: String) async throws -> [JSONValue] {
        try await withThrowingTaskGroup(of: JSONValue.self) { group in
            for (client, genId) in requests {
                group.addTask { try await client.call("runStage", draft(genId, model: model)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// Ends the servers' input and expects each to exit 0.
    static func close(_ servers: [ServerProcess]) async throws {
        for server in servers { server.closeInput() }
        for server in servers { #expect(try await server.exitStatus() == 0) }
    }

    /// The workspace's own server and `count - 1` more on the same workspace.
    static func servers(_ count: Int, on workspace: MockedWorkspace) throws -> [ServerProcess] {
        let more = try (1..<count).map { _ in
            try ServerProcess(
                ["serve", "--workspace", workspace.example.root, "--log-level", "error"],
                environment: ["MOCK_API_KEY": MockModelServer.key]
            )
        }
        return [workspace.server] + more
    }

    /// The call log's rows for `genId`.
    static func calls(_ root: String, _ genId: String) throws -> Int {
        let database = try DatabaseQueue(path: root + "/.stagerunner/calls.sqlite")
        return try database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM llm_calls WHERE genId = ?", arguments: [genId]) ?? 0
        }
    }

    @Test("eight servers opening a fresh workspace at once all answer: the databases are created once")
    func firstOpen() async throws {
        // OPEN_TRIALS=50 for the long form.
        let trials = ProcessInfo.processInfo.environment["OPEN_TRIALS"].flatMap(Int.init) ?? 10
        for trial in 0..<trials {
            let example = try ExampleCopy("daydream")
            defer { example.remove() }
            let clients = try (0..<8).map { _ in try JobClient(workspace: example.root) }
            let requests = clients.enumerated().map { ($0.element, "open-\(trial)-\($0.offset)") }
            let answers = try await Self.drafts(requests, model: "embedded:open")
            for answer in answers {
                #expect(answer["result"]?["status"] == "success", "trial \(trial): \(answer)")
            }
            try await Self.close(clients.map(\.peer))
        }
    }

    @Test("four servers asked for the same three generations at once: three model calls, the rest reuse them")
    func oneExecutionPerGeneration() async throws {
        let workspace = try MockedWorkspace { mock in "providers:\n" + MockedWorkspace.provider("mock", of: mock) }
        defer { workspace.remove() }
        // The workspace's own server is one of the four.
        let clients = try Self.servers(4, on: workspace).map { JobClient($0) }
        let genIds = ["shared-1", "shared-2", "shared-3"]
        // A model that takes a second: every server asks while the first one's call is under way.
        let responses = try await Self.drafts(
            clients.flatMap { client in genIds.map { (client, $0) } },
            model: "mock:sleep-1000"
        )
        let answers = responses.compactMap { $0["result"] }
        #expect(answers.count == responses.count, "\(responses)")
        for genId in genIds {
            let mine = answers.filter { $0["genId"] == .string(genId) }
            #expect(mine.count == 4)
            #expect(mine.filter { $0["reused"] == false }.count == 1, "\(genId): \(mine.map { $0["reused"] })")
            #expect(Set(mine.map { $0["raw"] }).count == 1, "every server answers with the committed text")
            #expect(Set(mine.map { $0["metadata"]?["runId"] }).count == 1, "and its runId")
            #expect(try Self.calls(workspace.example.root, genId) == 1, "\(genId) was paid for once")
        }
        try await Self.close(clients.map(\.peer))
    }

    @Test("a provider's concurrency holds across servers: with concurrency 1, four servers keep one call in flight")
    func sharedConcurrency() async throws {
        let workspace = try MockedWorkspace { mock in
            "providers:\n" + MockedWorkspace.provider("mock", of: mock) + "limits:\n  mock: {concurrency: 1}\n"
        }
        defer { workspace.remove() }
        let clients = try Self.servers(4, on: workspace).map { JobClient($0) }
        let responses = try await Self.drafts(
            clients.enumerated().flatMap { server in (0..<3).map { (server.element, "limited-\(server.offset)-\($0)") }
            },
            model: "mock:sleep-100"
        )
        let answers = responses.compactMap { $0["result"] }
        #expect(answers.count == 12, "\(responses)")
        #expect(answers.allSatisfy { $0["status"] == "success" && $0["reused"] == false })
        let inFlight = try workspace.mock.get("/in-flight")
        #expect(inFlight["peak"] == 1, "calls at once at the provider: \(inFlight)")
        try await Self.close(clients.map(\.peer))
    }

    @Test("a provider's requestsPerMinute holds across servers: four servers share one bucket of four")
    func sharedRate() async throws {
        let workspace = try MockedWorkspace { mock in
            "providers:\n" + MockedWorkspace.provider("mock", of: mock) + "limits:\n  mock: {requestsPerMinute: 4}\n"
        }
        defer { workspace.remove() }
        let servers = try Self.servers(4, on: workspace)
        let started = ContinuousClock.now
        for (index, server) in servers.enumerated() {
            for id in 1...2 {
                let params = Self.draft("rate-\(index)-\(id)", model: "mock:echo")
                server.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"runStage","params":\#(params)}"#)
            }
        }
        func answered() -> Int {
            servers.map { server in server.output.messages.filter { $0["id"] != nil }.count }.reduce(0, +)
        }
        // The bucket holds four requests, and refills one every 15 s.
        try await eventually("four answers", timeout: .seconds(30)) { answered() >= 4 }
        try await Task.sleep(for: .milliseconds(500))
        let refilled = Int((ContinuousClock.now - started) / .seconds(15))
        #expect(answered() <= 4 + refilled, "\(answered()) answers in \(ContinuousClock.now - started)")
        for server in servers {
            for id in 1...2 { server.send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":\#(id)}}"#) }
        }
        try await Self.close(servers)
    }

    @Test("budgets across servers: a call in flight holds the workspace's and a shared scope's caps; kill -9 frees it")
    func sharedBudgets() async throws {
        let workspace = try MockedWorkspace { mock in
            "providers:\n" + MockedWorkspace.provider("mock", of: mock)
                + "budgets:\n  job: {tokens: 1000}\n  workspace: {tokens: 1250}\n"
        }
        defer { workspace.remove() }
        let holder = JobClient(workspace.server)
        let other = JobClient(try Self.servers(2, on: workspace)[1])
        func draft(_ genId: String, _ model: String, maxTokens: Int, scope: String?) -> String {
            let scope = scope.map { #","budgetScope":"\#($0)""# } ?? ""
            return
                #"{"stage":"draft","templateId":"systematic-analytical","genId":"\#(genId)","model":"mock:\#(model)","#
                + #""promptText":"p","cache":"off","maxTokens":\#(maxTokens)\#(scope)}"#
        }
        // On the first server, a call that is never answered holds its estimate.
        let held = Task {
            try await holder.call("runStage", draft("held", "hold-budget", maxTokens: 600, scope: "cohort"))
        }
        try await eventually("the held call reaches the provider") {
            (try? workspace.mock.get("/hold/budget")["requests"]) == 1
        }
        // The scope's cap counts the other server's hold.
        let sameScope = try await other.call("runStage", draft("same", "echo", maxTokens: 600, scope: "cohort"))
        let refusal = try #require(sameScope["error"]?["data"], "\(sameScope)")
        #expect(refusal["scope"] == "job" && refusal["budgetScope"] == "cohort" && refusal["spent"] == 0)
        #expect(refusal["reserved"] == refusal["needed"], "both calls hold the same estimate: \(refusal)")
        // Another scope passes its own cap; the workspace's counts both servers' calls.
        let otherScope = try await other.call("runStage", draft("other", "echo", maxTokens: 600, scope: "elsewhere"))
        #expect(otherScope["result"]?["status"] == "success", "\(otherScope)")
        let unscoped = try await other.call("runStage", draft("unscoped", "echo", maxTokens: 700, scope: nil))
        let workspaceRefusal = try #require(unscoped["error"], "\(unscoped)")
        #expect(workspaceRefusal["data"]?["scope"] == "workspace")
        #expect(
            workspaceRefusal["message"]?.stringValue?.hasPrefix(
                "Budget: the token budget of the workspace (every server on it) is 1250 tokens: "
            ) == true,
            "\(workspaceRefusal)"
        )
        #expect(
            workspaceRefusal["message"]?.stringValue?.hasSuffix("raise budgets.workspace.tokens in stagerunner.yaml")
                == true
        )
        // The holder dies with its call in flight: its hold is given back.
        workspace.server.signal(SIGKILL)
        _ = try await workspace.server.exitStatus()
        held.cancel()
        let afterDeath = try await other.call("runStage", draft("unscoped", "echo", maxTokens: 700, scope: nil))
        #expect(afterDeath["result"]?["status"] == "success", "\(afterDeath)")
        try await Self.close([other.peer])
        let data = try #require(
            FileManager.default.contents(atPath: workspace.example.root + "/.stagerunner/budgets/ledger.json")
        )
        let ledger = try JSONParser.parse(Array(data))
        #expect(ledger["holds"] == [], "\(ledger)")
        let spent = ledger["workspace"]?["tokens"]?.integerValue ?? 0
        let scoped = ledger["scopes"]?["elsewhere"]?["tokens"]?.integerValue ?? 0
        #expect(scoped > 0 && spent > scoped, "two answered calls, one of them in scope 'elsewhere': \(ledger)")
        #expect(ledger["scopes"]?["cohort"] == nil, "the held call never settled: \(ledger)")
    }

    /// The research-task example with a first task whose command waits for a `release` file.
    static func heldJobWorkspace() throws -> ExampleCopy {
        try ExampleCopy(
            "research-task",
            files: [
                "tasks/held.yaml": JobWire.heldTask
            ]
        )
    }

    static let heldPipeline =
        #"{"pipeline":{"name":"held","tasks":[{"name":"held","task":"tasks/held.yaml"}]},"input":{}}"#

    @Test("a second server leaves a live server's job alone: not interrupted, not resumed, not cancelled")
    func liveOwner() async throws {
        let example = try Self.heldJobWorkspace()
        defer { example.remove() }
        let owner = try JobClient(workspace: example.root)
        let jobId = try #require(try await owner.result("runPipeline", Self.heldPipeline)["jobId"]?.stringValue)
        try await eventually("the command starts", timeout: .seconds(30)) {
            FileManager.default.fileExists(atPath: example.root + "/tasks/started")
        }
        let other = try JobClient(workspace: example.root)
        let listed = try await other.result("listJobs")
        guard case .array(let jobs)? = listed["jobs"] else { throw JobWire.Failure(description: "\(listed)") }
        #expect(jobs.first?["state"] == "running", "\(listed)")
        #expect(try await other.status(jobId)["state"] == "running")
        for method in ["resumeJob", "cancelJob"] {
            let refused = try await other.call(method, #"{"jobId":"\#(jobId)"}"#)
            let message = refused["error"]?["message"]?.stringValue ?? ""
            #expect(message.contains("is run by another process on the workspace"), "\(method): \(refused)")
            #expect(message.contains("\"pid\": "), "the owner is named: \(message)")
        }
        #expect(FileManager.default.createFile(atPath: example.root + "/tasks/release", contents: Data()))
        #expect(try await owner.waitForState(jobId)["state"] == "done")
        // The other server reads the job as its owner left it, not as it first saw it: once the
        // owner's last write is on disk (its own answers come from memory, a moment earlier).
        #expect(try await other.waitForState(jobId, ["done"], timeout: .seconds(30))["state"] == "done")
        try await Self.close([owner, other].map(\.peer))
    }

    /// Whether this machine lets the tests start a process in new PID, UTS and mount namespaces
    /// with its own `/proc` (root, or unprivileged user namespaces): the stand-in for another host
    /// on a shared file system.
    static let namespacesAvailable: Bool = {
        let probe = "/usr/bin/unshare --pid --uts --fork --mount-proc --kill-child /bin/true 2>/dev/null"
        return (try? runToExit(["/bin/sh", "-c", probe])) == 0
    }()

    /// A server in its own PID, UTS and mount namespaces (with its own `/proc`), named
    /// `other-host`: another host sharing the workspace's file system.
    static func serverOnAnotherHost(
        _ root: String,
        environment: [String: String] = [:],
        logLevel: String = "error"
    ) throws -> ServerProcess {
        try ServerProcess(
            ["serve", "--workspace", root, "--log-level", logLevel],
            launcher: [
                "/usr/bin/unshare", "--pid", "--uts", "--fork", "--mount-proc", "--kill-child", "/bin/sh", "-c",
                #"hostname other-host && exec "$0" "$@""#,
            ],
            environment: environment
        )
    }

    @Test(
        "each host writes its own call log and cache; another host's cached answer is used, read without a lock",
        .enabled(if: namespacesAvailable, "needs unshare --pid --uts (root or user namespaces)")
    )
    func databasesPerHost() async throws {
        let workspace = try MockedWorkspace { mock in "providers:\n" + MockedWorkspace.provider("mock", of: mock) }
        defer { workspace.remove() }
        let root = workspace.example.root
        func draft(_ genId: String, _ prompt: String) -> String {
            #"{"stage":"draft","templateId":"systematic-analytical","genId":"\#(genId)","model":"mock:once-hosts","promptText":"\#(prompt)"}"#
        }
        let home = JobClient(workspace.server)
        #expect(try await home.result("runStage", draft("first", "p"))["status"] == "success")
        try await Self.close([workspace.server])
        let other = JobClient(try Self.serverOnAnotherHost(root, environment: ["MOCK_API_KEY": MockModelServer.key]))
        // The model answers once: the same prompt is answered from the home host's cache.
        let cached = try await other.result("runStage", draft("second", "p"))
        #expect(cached["status"] == "success" && cached["metadata"]?["cached"] == true, "\(cached)")
        let fresh = try await other.call("runStage", draft("third", "q"))
        #expect(fresh["error"]?["data"]?["kind"] == "server", "the model's second request fails: \(fresh)")
        try await Self.close([other.peer])
        func genIds(_ path: String) throws -> [String] {
            try DatabaseQueue(path: root + path).read { db in
                try String.fetchAll(db, sql: "SELECT genId FROM llm_calls ORDER BY id")
            }
        }
        #expect(try genIds("/.stagerunner/calls.sqlite") == ["first"])
        #expect(try genIds("/.stagerunner/hosts/other-host/calls.sqlite") == ["second", "third"])
        #expect(FileManager.default.fileExists(atPath: root + "/.stagerunner/hosts/other-host/cache.sqlite"))
        let homeHost = try String(contentsOfFile: root + "/.stagerunner/host", encoding: .utf8)
        #expect(homeHost != "other-host\n" && !homeHost.isEmpty)
    }

    @Test("where flock(2) fails, a job is refused under the default locking, saying what to set")
    func brokenFlockIsNamed() async throws {
        let example = try Self.heldJobWorkspace()
        defer { example.remove() }
        let server = try JobClient(workspace: example.root, environment: try await BrokenFlock.environment())
        let refused = try await server.call("runPipeline", Self.heldPipeline)
        #expect(refused["error"]?["data"]?["reason"] == "storage", "\(refused)")
        let message = refused["error"]?["message"]?.stringValue ?? ""
        #expect(message.hasPrefix("Job: cannot take job '"), "\(message)")
        #expect(
            message.hasSuffix(
                "/owner.lock: No locks available; on a file system without working locks, "
                    + "set `locking: {mode: leases}` in stagerunner.yaml"
            ),
            "\(message)"
        )
        try await Self.close([server.peer])
    }

    @Test(
        "leases where flock(2) fails: another host's job is left alone while it beats; killed, it is taken over here",
        .enabled(if: namespacesAvailable, "needs unshare --pid --uts (root or user namespaces)")
    )
    func leasesAcrossHosts() async throws {
        // Long enough that a loaded machine does not starve the owner's heartbeat for a lease.
        let seconds = 4.0
        let example = try Self.heldJobWorkspace()
        defer { example.remove() }
        let configuration = try FileHandle(forWritingTo: URL(fileURLWithPath: example.root + "/stagerunner.yaml"))
        try configuration.seekToEnd()
        try configuration.write(contentsOf: Data("\nlocking: {mode: leases, leaseSeconds: \(seconds)}\n".utf8))
        try configuration.close()
        let environment = try await BrokenFlock.environment()
        let owner = JobClient(try Self.serverOnAnotherHost(example.root, environment: environment))
        let jobId = try #require(try await owner.result("runPipeline", Self.heldPipeline)["jobId"]?.stringValue)
        try await eventually("the command starts", timeout: .seconds(30)) {
            FileManager.default.fileExists(atPath: example.root + "/tasks/started")
        }
        let here = try JobClient(workspace: example.root, environment: environment)
        // Twice a lease of a beating owner: still its job.
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < .seconds(2 * seconds) {
            #expect(try await here.status(jobId)["state"] == "running")
            try await Task.sleep(for: .milliseconds(200))
        }
        let refused = try await here.call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
        #expect(
            refused["error"]?["message"]?.stringValue?.contains("\"host\": \"other-host\"") == true,
            "the owner is named: \(refused)"
        )
        owner.peer.signal(SIGKILL)
        _ = try await owner.peer.exitStatus()
        let killed = clock.now
        var state = ""
        while state != "interrupted" && clock.now - killed < .seconds(120) {
            state = try await here.status(jobId)["state"]?.stringValue ?? ""
            if state != "interrupted" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(state == "interrupted")
        // Its last beat was up to a quarter of a lease before the kill: not at once, as a pid would be.
        #expect(clock.now - killed >= .seconds(seconds / 2), "taken over before its heartbeat stood still for a lease")
        #expect(FileManager.default.createFile(atPath: example.root + "/tasks/release", contents: Data()))
        #expect(try await here.result("resumeJob", #"{"jobId":"\#(jobId)"}"#)["jobId"]?.stringValue == jobId)
        #expect(try await here.waitForState(jobId)["state"] == "done")
        try await Self.close([here.peer])
    }

    @Test("after kill -9 of its owner a job is interrupted; of two servers resuming it at once, one runs it")
    func deadOwner() async throws {
        let example = try Self.heldJobWorkspace()
        defer { example.remove() }
        let owner = try JobClient(workspace: example.root)
        let jobId = try #require(try await owner.result("runPipeline", Self.heldPipeline)["jobId"]?.stringValue)
        try await eventually("the command starts", timeout: .seconds(30)) {
            FileManager.default.fileExists(atPath: example.root + "/tasks/started")
        }
        owner.peer.signal(SIGKILL)
        _ = try await owner.peer.exitStatus()
        let first = try JobClient(workspace: example.root)
        let second = try JobClient(workspace: example.root)
        #expect(try await first.status(jobId)["state"] == "interrupted")
        #expect(try await second.status(jobId)["state"] == "interrupted")
        async let one = first.call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
        async let two = second.call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
        let answers = try await [one, two]
        #expect(answers.filter { $0["result"] != nil }.count == 1, "\(answers)")
        let refusal = try #require(answers.first { $0["error"] != nil })
        #expect(refusal["error"]?["message"]?.stringValue?.contains("run by another process") == true, "\(refusal)")
        #expect(FileManager.default.createFile(atPath: example.root + "/tasks/release", contents: Data()))
        let winner = answers[0]["result"] != nil ? first : second
        #expect(try await winner.waitForState(jobId)["state"] == "done")
        try await Self.close([first, second].map(\.peer))
    }
}
