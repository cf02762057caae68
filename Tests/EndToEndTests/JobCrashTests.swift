import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `kill -9` at random moments of a job, many times: the status document on disk always parses
/// and tells the truth up to its `rev`, and `resumeJob` on a new server completes the job without
/// running a finished task again.
@Suite("Job crashes")
struct JobCrashTests {
    static let pipeline = CrashPipeline(taskNames: ["t1", "t2", "t3", "t4", "t5"])
    static var taskNames: [String] { pipeline.taskNames }

    /// A workspace with a pipeline of five short tasks on the embedded provider. Each task's first
    /// stage appends its name to `runs.log`, so the runs can be counted.
    static var workspaceFiles: [String: String] {
        var files: [String: String] = [
            "stagerunner.yaml": """
            embedded:
              rules:
                - promptContains: "Crash step"
                  response: |
                    {"step": "answered", "ok": true}

            """,
            CrashPipeline.path: pipeline.file,
        ]
        for name in taskNames {
            files["tasks/\(name).task.yaml"] = """
                name: \(name)
                model: embedded:crash
                stages:
                  ingestion:
                    command:
                      - sh
                      - -c
                      - |
                        echo \(name) >> ../runs.log
                        sleep 0.03
                        echo '{"output": {"task": "\(name)"}, "flags": {}}'
                  promptTemplating:
                    template: { text: "Crash step of \(name)." }
                  inference:
                    llm: { maxTokens: 50 }
                  parsing:
                    parse: json
                  integration:
                    write: result.json

                """
        }
        return files
    }

    /// What one round saw.
    struct Round: CustomStringConvertible {
        /// Task runs started (lines in runs.log) before the delay began.
        var after: Int
        var delay: Int
        var phase: String
        var finishedAtKill: Set<String>
        /// The writes the kill cut short (their temporaries were left).
        var writes: Set<String> = []
        /// When the server that resumed the job was killed too: how long after, and the state then.
        var secondKill: String?
        var description: String {
            "\(after) runs + \(delay) ms: \(phase), finished \(finishedAtKill.sorted())"
                + (writes.isEmpty ? "" : ", during \(writes.sorted().joined(separator: " and "))")
                + (secondKill.map { "; killed again \($0)" } ?? "")
        }
    }

    @Test("kill -9 at random moments: the document always parses, and resumeJob finishes without rerunning")
    func killNineCampaign() async throws {
        let settings = CrashCampaign.Settings(seed: 0x5EED_0003, rounds: 25)
        let problems = CrashCampaign.Problems()
        var generator = SeededGenerator(seed: settings.seed)
        let clock = ContinuousClock()
        let campaignStart = clock.now

        // Round 0: how long an undisturbed run takes here and now.
        let calibration = try ExampleCopy(nil, files: Self.workspaceFiles)
        defer { calibration.remove() }
        let calibrationClient = try JobClient(workspace: calibration.root)
        let calibrationStart = clock.now
        let run = try await calibrationClient.result("runPipeline", #"{"pipeline":"\#(CrashPipeline.path)"}"#)
        let calibrationJob = try #require(run["jobId"]?.stringValue)
        let calibrated = try await calibrationClient.waitForState(calibrationJob, ["done", "failed"])
        #expect(calibrated["state"] == "done", "\(calibrated)")
        let runtime = clock.now - calibrationStart
        #expect(CrashPipeline.runs(calibration.root) == Self.taskNames)
        // The kill comes a random time after a random number of task runs have started, so that
        // it lands anywhere in the run however fast the machine is at the moment.
        // (A task takes about 80 ms on an idle machine: the delay spans about one.)
        let window = 100
        calibrationClient.peer.closeInput()
        #expect(try await calibrationClient.peer.exitStatus() == 0)

        var rounds: [Round] = []
        var temporaryFiles = 0
        while settings.continues(after: rounds.count, elapsed: clock.now - campaignStart) {
            let after = Int.random(in: 0...Self.taskNames.count, using: &generator)
            let delay = Int.random(in: 0...window, using: &generator)
            let workspace = try ExampleCopy(nil, files: Self.workspaceFiles)
            defer { workspace.remove() }
            let server = try JobClient(workspace: workspace.root)
            server.peer.send(
                #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":"\#(CrashPipeline.path)"}}"#
            )
            if after > 0 {
                try await eventually("\(after) task runs", timeout: .seconds(30)) {
                    CrashPipeline.runs(workspace.root).count >= after
                }
            }
            try await Task.sleep(for: .milliseconds(delay))
            try await CrashCampaign.kill(server, problems)

            // Right after the kill: which tasks had finished, and what the document says.
            let answered = server.peer.output.messages.first { $0["id"] == 1 }?["result"]?["jobId"]?.stringValue
            let remains = Self.pipeline.remains(workspace.root, answered: answered, problems)
            var round = Round(after: after, delay: delay, phase: remains.phase, finishedAtKill: remains.finished)
            round.writes = Set(CrashCampaign.temporaries(workspace.root).map(CrashCampaign.writeKind))

            // A new server continues the job (or runs it, if it never got its document). In some
            // rounds that server is killed too, during the resumed run, and a third one continues.
            var runsWhenFinished = remains.runsWhenFinished
            var next = try JobClient(workspace: workspace.root)
            let (finalId, resumed) = try await Self.pipeline.proceed(remains, on: next, problems)
            if resumed && Int.random(in: 0..<4, using: &generator) == 0 {
                let second = Int.random(in: 0...300, using: &generator)
                try await Task.sleep(for: .milliseconds(second))
                try await CrashCampaign.kill(next, problems)
                let finishedNow = Self.pipeline.finished(workspace.root, finalId)
                let again = try #require(
                    JobWire.documentOnDisk(workspace.root, finalId),
                    "the document parses after a second kill"
                )
                Self.pipeline.checkConsistent(again, jobId: finalId, finished: finishedNow, problems)
                let runsNow = CrashPipeline.runs(workspace.root)
                for name in finishedNow where runsWhenFinished[name] == nil {
                    runsWhenFinished[name] = runsNow.filter { $0 == name }.count
                }
                round.secondKill = "\(second) ms into the resumed run (\(again["state"]?.stringValue ?? "?"))"
                next = try JobClient(workspace: workspace.root)
                if again["state"] != "done" {
                    let resumedAgain = try await next.result("resumeJob", #"{"jobId":"\#(finalId)"}"#)
                    problems.expect(resumedAgain == ["jobId": .string(finalId)], "resumeJob answered \(resumedAgain)")
                }
            }
            let final = try await next.waitForState(finalId, ["done", "failed", "cancelled", "interrupted"])
            // Every task ran; none that had finished before the kill ran again.
            Self.pipeline.checkCompleted(
                final,
                root: workspace.root,
                jobId: finalId,
                runsWhenFinished: runsWhenFinished,
                round: "\(round)",
                problems
            )
            next.peer.closeInput()
            #expect(try await next.peer.exitStatus() == 0)
            problems.expect(
                JobWire.documentOnDisk(workspace.root, finalId) == final,
                "round \(round): the document on disk is not the final one"
            )
            // What the kills left behind: temporary files of writes cut short.
            temporaryFiles += CrashCampaign.temporaries(workspace.root, under: "jobs").count
            rounds.append(round)
        }

        var phases: [String: Int] = [:]
        var writes: [String: Int] = [:]
        for round in rounds {
            phases[round.phase, default: 0] += 1
            for write in round.writes { writes[write, default: 0] += 1 }
        }
        let secondKills = rounds.compactMap(\.secondKill).count
        let summary =
            "kill -9 campaign (seed \(settings.seed)): \(rounds.count) rounds in \(clock.now - campaignStart), "
            + "undisturbed run \(runtime), kill 0...\(window) ms after 0...5 task runs; phases: "
            + CrashCampaign.tally(phases)
            + "; kills during a write: " + (writes.isEmpty ? "none" : CrashCampaign.tally(writes))
            + "; the resuming server killed too in \(secondKills) rounds"
            + "; temporary files left in job folders: \(temporaryFiles); problems found: \(problems.count)"
        print(summary)
        CrashCampaign.save("job-crash", summary: summary, rounds: rounds.map(\.description))
        if settings.timeLimit == nil { #expect(rounds.count == settings.rounds, "\(summary)") }
    }
    @Test("a task whose result was saved before the crash, the document not yet saying so, is done with its files")
    func recoveredTaskIsComplete() async throws {
        let workspace = try ExampleCopy(nil, files: Self.workspaceFiles)
        defer { workspace.remove() }
        let first = try JobClient(workspace: workspace.root)
        let run = try await first.result(
            "runPipeline",
            #"{"pipeline":"pipelines/crash.pipeline.yaml","options":{"wait":true}}"#
        )
        let jobId = try #require(run["jobId"]?.stringValue)
        var done = try #require(run["status"])
        first.peer.closeInput()
        #expect(try await first.peer.exitStatus() == 0)
        // As a kill between t3's output.json and the document's next write leaves it: t3 running
        // in its last stage, t4 and t5 pending and their results not written.
        done.set("running", at: ["state"])
        done.set("t3", at: ["current"])
        done.set("integration", at: ["currentStage"])
        done.set(nil, at: ["endedAt"])
        done.set(2, at: ["progress", "tasksDone"])
        done.set("running", at: ["tasks", "t3", "state"])
        done.set("integration", at: ["tasks", "t3", "currentStage"])
        done.set([:], at: ["tasks", "t3", "files"])
        done.set([], at: ["tasks", "t3", "artifacts"])
        _ = done.remove(at: ["tasks", "t3", "endedAt"])
        _ = done.remove(at: ["tasks", "t3", "executionTime"])
        for name in ["t4", "t5"] {
            done.set("pending", at: ["tasks", name, "state"])
            done.set(0, at: ["tasks", name, "attempts"])
            done.set([:], at: ["tasks", name, "files"])
            done.set([], at: ["tasks", name, "artifacts"])
            _ = done.remove(at: ["tasks", name, "endedAt"])
            try FileManager.default.removeItem(atPath: "\(workspace.root)/jobs/\(jobId)/tasks/\(name)")
        }
        try done.prettyDescription.write(
            toFile: "\(workspace.root)/jobs/\(jobId)/tasks-status.json",
            atomically: true,
            encoding: .utf8
        )
        let next = try JobClient(workspace: workspace.root)
        #expect(try await next.result("resumeJob", #"{"jobId":"\#(jobId)"}"#) == ["jobId": .string(jobId)])
        let final = try await next.waitForState(jobId)
        #expect(final["state"] == "done")
        #expect(CrashPipeline.runs(workspace.root) == Self.taskNames + ["t4", "t5"], "t3 did not run again")
        #expect(final["tasks"]?["t3"]?["attempts"] == 1)
        #expect(final["tasks"]?["t3"]?["files"]?["output"] == "tasks/t3/output.json")
        #expect(final["tasks"]?["t3"]?["endedAt"]?.stringValue != nil)
        #expect(final["tasks"]?["t3"]?["currentStage"] == .null)
        #expect(final["tasks"]?["t3"]?["artifacts"].flatMap(CrashPipeline.first) == "tasks/t3/execution-logs.json")
        next.peer.saveTranscript("job-recovered-task")
    }

    /// A server records a command's pid only once the spawn has returned, after the command
    /// shows in /proc. Each round but the last watches the server's children from its task's
    /// start: one seen before its exec has the server waiting for the exec, so the server is
    /// stopped there and, if the child becomes the command, killed, before it can record the
    /// pid; a command seen only after its exec has the server killed at once, which often lands
    /// before too. The last round kills it once the pid is recorded. The record left behind
    /// tells which side of the pid each kill fell on.
    @Test("a stage's command left running by a kill -9 of the server is ended when the workspace is next opened")
    func commandsDieWithTheServer() async throws {
        var rounds: [String] = []
        for _ in 0..<5 {
            let early = try await Self.killAsCommandStarts(waitingForThePid: false)
            rounds.append(early ? "before the pid was recorded" : "after")
        }
        #expect(try await Self.killAsCommandStarts(waitingForThePid: true) == false)
        print("kill -9 as a command starts: " + rounds.joined(separator: "; "))
    }

    /// Runs a job whose command sleeps, kills the server as the command starts (or once its pid is
    /// recorded), and checks that the command runs on until the next server opens the workspace,
    /// and then no more. Returns whether the kill came before the server recorded the pid.
    static func killAsCommandStarts(waitingForThePid: Bool) async throws -> Bool {
        let seconds = "47.\(Int.random(in: 100_000...999_999))"
        let command = "sleep \(seconds)"
        let example = try ExampleCopy("research-task", files: ["tasks/slow.yaml": JobWire.sleepingTask(seconds)])
        defer { example.remove() }
        // A failed round leaves nothing running.
        defer { for pid in TaskMethodTests.processes(running: command) { kill(pid, SIGKILL) } }
        let client = try JobClient(workspace: example.root)
        let runPipeline =
            #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"}]}}}"#
        if waitingForThePid {
            client.peer.send(runPipeline)
            try await eventually("the command's pid is recorded") {
                records(example.root).contains { FileManager.default.contents(atPath: $0)?.isEmpty == false }
            }
            client.peer.signal(SIGKILL)
        } else {
            let server = client.peer.pid
            // Only processes that start from now on are looked at, so that each look is quick.
            let known = Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [])
            let killed = try await onOwnThread {
                // Sent from the watching thread, which a busy machine might otherwise start late.
                client.peer.send(runPipeline)
                return killWhenItRuns(command, server: server, except: known) {
                    !((try? FileManager.default.contentsOfDirectory(atPath: "\(example.root)/.stagerunner/runs")) ?? [])
                        .isEmpty
                }
            }
            try #require(killed, "the command did not start")
        }
        #expect(try await client.peer.exitStatus() == 128 + SIGKILL)
        let beforeThePid = records(example.root).contains { FileManager.default.contents(atPath: $0)?.isEmpty == true }
        // The command is reparented to init and runs on, until the next server opens the
        // workspace: before a resumed task could run again beside it, its process group is ended.
        #expect(TaskMethodTests.running(command))
        let next = try JobClient(workspace: example.root)
        _ = try await next.result("listJobs")
        try await eventually("the command is gone") { !TaskMethodTests.running(command) }
        next.peer.closeInput()
        #expect(try await next.peer.exitStatus() == 0)
        return beforeThePid
    }

    /// Watches the new children of `server` (those not in `known`) and kills the server as soon as
    /// one runs `command`. The server is stopped while a child has yet to exec or to fail to (a
    /// spawn tries each folder of `PATH` in turn); from its task's start (`started`), its threads
    /// (and so the children they spawn) run at the lowest priority, so that on a busy machine a
    /// child is seen before its exec rather than after. Returns whether it killed the server.
    static func killWhenItRuns(
        _ command: String,
        server: pid_t,
        except known: Set<String>,
        started: () -> Bool
    ) -> Bool {
        let deadline = ContinuousClock.now + TestTimeouts.wait
        var seen = known
        var lowered = false
        while ContinuousClock.now < deadline {
            if !lowered {
                guard started() else {
                    usleep(200)
                    continue
                }
                let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(server)/task")) ?? []
                for thread in threads.compactMap({ id_t($0) }) {
                    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), thread, 19)
                }
                lowered = true
            }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for entry in entries where !seen.contains(entry) {
                seen.insert(entry)
                guard let child = pid_t(entry), let stat = processStat(child), stat.count > 1, stat[1] == "\(server)"
                else { continue }
                kill(server, SIGSTOP)
                while ContinuousClock.now < deadline, let state = processStat(child)?.first, state != "Z" {
                    if TaskMethodTests.commandLine(of: child) == command { return kill(server, SIGKILL) == 0 }
                }
                kill(server, SIGCONT)
            }
        }
        return false
    }

    /// The paths of the command records in the workspace's job folders.
    static func records(_ root: String) -> [String] {
        let paths = (try? FileManager.default.subpathsOfDirectory(atPath: "\(root)/jobs")) ?? []
        return paths.filter { $0.contains("/.commands/") }.map { "\(root)/jobs/\($0)" }
    }
}
