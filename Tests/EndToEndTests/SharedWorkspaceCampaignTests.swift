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

/// Many servers on one workspace at once, seeded: four servers generate overlapping generations
/// against the loopback provider under a shared `concurrency: 2`, while a fifth runs a job that
/// the others try to take; the job's owner is killed with SIGKILL and two servers race to resume
/// it. `make test` runs three rounds; `make shared-campaign` many (`SHARED_ROUNDS`, `SHARED_SEED`).
@Suite("Shared workspace campaign")
struct SharedWorkspaceCampaignTests {
    static let pipeline = CrashPipeline(taskNames: ["s1", "s2", "s3", "s4"])
    static let concurrency = 2
    static let genIds = (1...8).map { "c\($0)" }

    /// How the servers of a campaign lock: `stagerunner.yaml`'s `locking`, and what they run with.
    struct Locking {
        var name: String
        var configuration: String
        var environment: [String: String]
        var rounds: Int
    }

    static func files(_ mock: MockModelServer, locking: Locking) -> [String: String] {
        var files: [String: String] = [
            "stagerunner.yaml": "providers:\n" + MockedWorkspace.provider("mock", of: mock)
                + "limits:\n  mock: {concurrency: \(concurrency)}\n" + locking.configuration,
            CrashPipeline.path: pipeline.file,
        ]
        for name in pipeline.taskNames {
            files["tasks/\(name).task.yaml"] = JobWire.commandTask(
                """
                echo \(name) >> ../runs.log
                sleep 0.1
                echo '{"output": {"task": "\(name)"}, "flags": {}}'
                """
            )
        }
        return files
    }

    /// What one round saw.
    struct Round {
        var generations = 0
        var duplicateCalls = 0
        var takeovers = 0
        var revRegressions = 0
        var peakInFlight = 0
        var killedAt = "not killed"
        /// The owner died with the job unfinished, and two servers raced to resume it.
        var resumeRace = false
        /// Status documents read from disk during the round, for `rev`.
        var revSamples = 0
        /// Generations the worker on another host called (in its own call log).
        var otherHostCalls = 0
    }

    @Test("servers share generations, limits and a job through kills and resume races")
    func campaign() async throws {
        try await Self.run(Locking(name: "shared-workspace", configuration: "", environment: [:], rounds: 3))
    }

    @Test("the same with lease files, on a file system where flock(2) fails (locking: {mode: leases})")
    func campaignWithLeases() async throws {
        try await Self.run(
            Locking(
                name: "shared-workspace-leases",
                // The default lease: a worker starved for seconds by the machine's load must not
                // lose its leases (no owner elsewhere is killed here).
                configuration: "locking: {mode: leases}\n",
                environment: try await BrokenFlock.environment(),
                rounds: 2
            )
        )
    }

    static func run(_ locking: Locking) async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["SHARED_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64(UInt32.max))
        let rounds = environment["SHARED_ROUNDS"].flatMap { Int($0) } ?? locking.rounds
        let problems = CrashCampaign.Problems()
        // Before the rounds, so that a round that throws can be replayed.
        print("\(locking.name) campaign: seed \(seed) (SHARED_SEED replays it)")
        var results: [Round] = []
        for round in 0..<rounds {
            var random = SeededGenerator(seed: seed &+ UInt64(round))
            results.append(try await Self.round(&random, problems, locking: locking))
        }
        let summary =
            "\(locking.name) campaign (seed \(seed)): \(rounds) rounds of 5 servers, "
            + "\(results.map(\.generations).reduce(0, +)) generations, each asked for by up to 4 servers "
            + "(\(results.map(\.otherHostCalls).reduce(0, +)) called from another host's namespaces); "
            + "duplicate calls \(results.map(\.duplicateCalls).reduce(0, +)), "
            + "owners killed mid-job and resume races \(results.filter(\.resumeRace).count), "
            + "takeovers \(results.map(\.takeovers).reduce(0, +)), "
            + "rev regressions \(results.map(\.revRegressions).reduce(0, +)) "
            + "in \(results.map(\.revSamples).reduce(0, +)) reads, "
            + "peak in-flight \(results.map(\.peakInFlight).max() ?? 0) (limit \(Self.concurrency)); "
            + "problems \(problems.count)"
        print(summary)
        CrashCampaign.save(
            locking.name,
            summary: summary,
            rounds: results.enumerated().map { "round \($0.offset): \($0.element)" }
        )
    }

    static func round(
        _ random: inout SeededGenerator,
        _ problems: CrashCampaign.Problems,
        locking: Locking
    ) async throws -> Round {
        var outcome = Round()
        let mock = try MockModelServer()
        let example = try ExampleCopy("daydream", files: files(mock, locking: locking))
        defer { example.remove() }
        let root = example.root
        let environment = locking.environment.merging(["MOCK_API_KEY": MockModelServer.key]) { $1 }
        // At info, each server's log says what it did with every call: kept for a round that fails.
        func server() throws -> JobClient {
            JobClient(
                try ServerProcess(["serve", "--workspace", root, "--log-level", "info"], environment: environment)
            )
        }
        let owner = try server()
        // One worker on another host (its own PID and UTS namespaces) where they can be made: it
        // writes its own call log and cache, and shares leases, limits and the gens store.
        let workers = try (0..<4).map { index in
            index == 3 && SharedWorkspaceTests.namespacesAvailable
                ? JobClient(
                    try SharedWorkspaceTests.serverOnAnotherHost(root, environment: environment, logLevel: "info")
                )
                : try server()
        }
        do {
            let jobId = try #require(
                try await owner.result("runPipeline", #"{"pipeline":"\#(CrashPipeline.path)","input":{}}"#)["jobId"]?
                    .stringValue
            )

            // The document's rev on disk, read every few milliseconds while the round lasts.
            let sampling = Locked(true)
            let sampler = Task { () -> [Int] in
                var revs: [Int] = []
                while sampling.withLock({ $0 }) {
                    if let rev = JobWire.documentOnDisk(root, jobId)?["rev"]?.integerValue { revs.append(Int(rev)) }
                    try? await Task.sleep(for: .milliseconds(3))
                }
                return revs
            }

            // Each worker asks for six of the eight generations, in its own order, all at once.
            var asked: [[String]] = []
            for _ in workers { asked.append(Array(genIds.shuffled(using: &random).prefix(6))) }
            let requests = asked
            let generating = Task { () -> [JSONValue] in
                try await SharedWorkspaceTests.drafts(
                    zip(workers, requests).flatMap { worker, genIds in genIds.map { (worker, $0) } },
                    model: "mock:sleep-40"
                )
            }

            // While the owner lives, another server's resumeJob must be refused.
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...200, using: &random)))
            let early = try await workers[0].call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
            if early["result"] != nil { outcome.takeovers += 1 }
            problems.expect(early["result"] == nil, "a live owner's job was resumed by another server: \(early)")

            // Then the owner dies, at a random moment of its job.
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...400, using: &random)))
            let finishedBefore = pipeline.finished(root, jobId)
            try await CrashCampaign.kill(owner, problems)
            outcome.killedAt = "\(finishedBefore.count) of \(pipeline.taskNames.count) tasks finished"
            let state = try await workers[1].status(jobId)["state"]?.stringValue ?? ""
            if state != "done" {
                problems.expect(state == "interrupted", "after the owner's death the job is \(state)")
                outcome.resumeRace = true
                async let first = workers[1].call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
                async let second = workers[2].call("resumeJob", #"{"jobId":"\#(jobId)"}"#)
                let answers = try await [first, second]
                let winners = answers.filter { $0["result"] != nil }.count
                if winners > 1 { outcome.takeovers += winners - 1 }
                problems.expect(winners == 1, "\(winners) servers resumed the job at once: \(answers)")
                let winner = answers[0]["result"] != nil ? workers[1] : workers[2]
                let final = try await winner.waitForState(jobId, timeout: .seconds(120))
                problems.expect(final["state"] == "done", "the resumed job ended \(final)")
            }
            // No task that had finished before the kill ran again.
            let runs = CrashPipeline.runs(root)
            for name in finishedBefore {
                let count = runs.filter { $0 == name }.count
                problems.expect(count == 1, "\(name) had finished before the kill and ran \(count) times")
            }
            for name in pipeline.taskNames {
                problems.expect(runs.contains(name), "\(name) never ran")
            }

            let answers = try await generating.value
            sampling.withLock { $0 = false }
            let revs = await sampler.value
            outcome.revRegressions = zip(revs, revs.dropFirst()).filter { $0 > $1 }.count
            outcome.revSamples = revs.count
            problems.expect(outcome.revRegressions == 0, "rev went backwards on disk: \(revs)")
            for answer in answers {
                problems.expect(answer["result"]?["status"] == "success", "runStage answered \(answer)")
            }

            // Every generation paid for once, in one host's log or the other's, and answered fresh once.
            let logs = ["/.stagerunner/calls.sqlite", "/.stagerunner/hosts/other-host/calls.sqlite"].filter {
                FileManager.default.fileExists(atPath: root + $0)
            }
            var callsPerGeneration: [String: Int] = [:]
            for log in logs {
                let counted = try await DatabaseQueue(path: root + log).read { db in
                    try Row.fetchAll(db, sql: "SELECT genId, COUNT(*) AS calls FROM llm_calls GROUP BY genId").map {
                        (genId: $0["genId"] as String, calls: $0["calls"] as Int)
                    }
                }
                for (genId, calls) in counted { callsPerGeneration[genId, default: 0] += calls }
                if log.contains("other-host") { outcome.otherHostCalls = counted.map(\.calls).reduce(0, +) }
            }
            let rows = callsPerGeneration.sorted { $0.key < $1.key }.map { (genId: $0.key, calls: $0.value) }
            let askedFor = Set(asked.joined())
            outcome.generations = askedFor.count
            for (genId, calls) in rows {
                if calls > 1 { outcome.duplicateCalls += calls - 1 }
                problems.expect(calls == 1, "\(genId) was called \(calls) times")
            }
            problems.expect(
                rows.count == askedFor.count,
                "\(rows.count) generations logged, \(askedFor.count) asked for"
            )
            for genId in askedFor {
                let fresh = answers.filter {
                    $0["result"]?["genId"] == .string(genId) && $0["result"]?["reused"] == false
                }
                problems.expect(fresh.count == 1, "\(genId) was answered fresh \(fresh.count) times")
            }
            outcome.peakInFlight = Int(try mock.get("/in-flight")["peak"]?.integerValue ?? 0)
            problems.expect(
                outcome.peakInFlight <= concurrency,
                "\(outcome.peakInFlight) calls at once at the provider"
            )

            for name in ["calls.sqlite", "cache.sqlite"].flatMap({ [$0, "hosts/other-host/" + $0] })
            where FileManager.default.fileExists(atPath: root + "/.stagerunner/" + name) {
                let integrity = try await DatabaseQueue(path: root + "/.stagerunner/" + name).read { db in
                    try String.fetchOne(db, sql: "PRAGMA integrity_check")
                }
                problems.expect(integrity == "ok", "\(name): \(integrity ?? "nil")")
            }
            for worker in workers {
                worker.peer.closeInput()
                problems.expect(try await worker.peer.exitStatus() == 0, "a worker did not exit 0")
            }
            return outcome
        } catch {
            // What each server said, for a round that could not finish (a request never answered).
            let said = ([owner] + workers).enumerated().map { index, server in
                "server \(index) (pid \(server.peer.pid)): \(server.peer.standardError.suffix(3000))"
            }
            throw JobWire.Failure(description: "\(error)\n" + said.joined(separator: "\n"))
        }
    }
}
