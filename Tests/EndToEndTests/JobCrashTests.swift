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
    static let taskNames = ["t1", "t2", "t3", "t4", "t5"]

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
            "pipelines/crash.pipeline.yaml": "name: crash\ntasks:\n"
                + taskNames.map { "  - name: \($0)\n    task: ../tasks/\($0).task.yaml\n" }.joined(),
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

    /// The first element of an array.
    static func first(_ value: JSONValue) -> JSONValue? {
        guard case .array(let items) = value else { return nil }
        return items.first
    }

    /// What one round saw.
    struct Round: CustomStringConvertible {
        /// Task runs started (lines in runs.log) before the delay began.
        var after: Int
        var delay: Int
        var phase: String
        var finishedAtKill: Set<String>
        /// When the server that resumed the job was killed too: how long after, and the state then.
        var secondKill: String?
        var description: String {
            "\(after) runs + \(delay) ms: \(phase), finished \(finishedAtKill.sorted())"
                + (secondKill.map { "; killed again \($0)" } ?? "")
        }
    }

    static func lines(_ root: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: root + "/runs.log") else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The tasks whose output.json exists with ok: true.
    static func finished(_ root: String, _ jobId: String) -> Set<String> {
        Set(
            taskNames.filter { name in
                guard
                    let data = FileManager.default.contents(atPath: "\(root)/jobs/\(jobId)/tasks/\(name)/output.json"),
                    let payload = try? JSONParser.parse(Array(data))
                else { return false }
                return payload["ok"] == true
            }
        )
    }

    /// Checks that a document read after a crash is whole and consistent with the files beside it.
    static func checkConsistent(_ document: JSONValue, root: String, jobId: String, finished: Set<String>) {
        #expect(document["id"] == .string(jobId))
        #expect(JobWire.jobStates.contains(document["state"]?.stringValue ?? ""), "\(document)")
        #expect((document["rev"]?.integerValue ?? -1) >= 0)
        #expect(document["schemaVersion"] == 1)
        #expect(document["taskOrder"] == .array(taskNames.map(JSONValue.string)))
        var done = 0
        for name in taskNames {
            let task = document["tasks"]?[name]
            let state = task?["state"]?.stringValue ?? ""
            #expect(JobWire.taskStates.contains(state), "task \(name): \(task ?? nil)")
            if state == "done" {
                done += 1
                // The document says done only once the task's result is on disk.
                #expect(finished.contains(name), "\(name) is done in the document, without its output.json")
                checkDoneTask(task, name)
            }
            if state == "running" { #expect(document["state"] == "running") }
        }
        #expect(document["progress"]?["tasksDone"] == .integer(Int64(done)))
        if document["state"] == "done" { #expect(done == taskNames.count) }
    }

    /// A done task's entry lists its result, artifacts and end, also when it was found finished on
    /// resume (its output.json written, the document not yet saying so).
    static func checkDoneTask(_ task: JSONValue?, _ name: String) {
        let complete =
            task?["files"]?["output"] == .string("tasks/\(name)/output.json")
            && task?["endedAt"]?.stringValue != nil
            && task?["artifacts"].flatMap(first) == .string("tasks/\(name)/execution-logs.json")
        #expect(complete, "\(name) is done without its files, artifacts or end: \(task ?? nil)")
    }

    @Test("kill -9 at random moments: the document always parses, and resumeJob finishes without rerunning")
    func killNineCampaign() async throws {
        // Replay or widen a campaign with STAGERUNNER_CRASH_SEED, _ROUNDS and _SECONDS.
        let seed = UInt64(ProcessInfo.processInfo.environment["STAGERUNNER_CRASH_SEED"] ?? "") ?? 0x5EED_0003
        var generator = SeededGenerator(seed: seed)
        let clock = ContinuousClock()
        let campaignStart = clock.now
        let environment = ProcessInfo.processInfo.environment
        let budget: Duration = .seconds(Int(environment["STAGERUNNER_CRASH_SECONDS"] ?? "") ?? 60)
        let maxRounds = Int(environment["STAGERUNNER_CRASH_ROUNDS"] ?? "") ?? 25

        // Round 0: how long an undisturbed run takes here and now.
        let calibration = try ExampleCopy(nil, files: Self.workspaceFiles)
        defer { calibration.remove() }
        let calibrationClient = try JobClient(workspace: calibration.root)
        let calibrationStart = clock.now
        let run = try await calibrationClient.result("runPipeline", #"{"pipeline":"pipelines/crash.pipeline.yaml"}"#)
        let calibrationJob = try #require(run["jobId"]?.stringValue)
        let calibrated = try await calibrationClient.waitForState(calibrationJob, ["done", "failed"])
        #expect(calibrated["state"] == "done", "\(calibrated)")
        let runtime = clock.now - calibrationStart
        #expect(Self.lines(calibration.root) == Self.taskNames)
        // The kill comes a random time after a random number of task runs have started, so that
        // it lands anywhere in the run however fast the machine is at the moment.
        // (A task takes about 80 ms on an idle machine: the delay spans about one.)
        let window = 100
        calibrationClient.peer.closeInput()
        #expect(try await calibrationClient.peer.exitStatus() == 0)

        var rounds: [Round] = []
        var temporaryFiles = 0
        while rounds.count < maxRounds && clock.now - campaignStart < budget {
            let after = Int.random(in: 0...Self.taskNames.count, using: &generator)
            let delay = Int.random(in: 0...window, using: &generator)
            let workspace = try ExampleCopy(nil, files: Self.workspaceFiles)
            defer { workspace.remove() }
            let server = try JobClient(workspace: workspace.root)
            server.peer.send(
                #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":"pipelines/crash.pipeline.yaml"}}"#
            )
            if after > 0 {
                try await eventually("\(after) task runs", timeout: .seconds(30)) {
                    Self.lines(workspace.root).count >= after
                }
            }
            try await Task.sleep(for: .milliseconds(delay))
            server.peer.signal(SIGKILL)
            #expect(try await server.peer.exitStatus() == 128 + SIGKILL)

            // Right after the kill: which tasks had finished, and what the document says.
            let jobIds = ((try? FileManager.default.contentsOfDirectory(atPath: workspace.root + "/jobs")) ?? [])
                .filter { !$0.hasPrefix(".") }
            #expect(jobIds.count <= 1, "\(jobIds)")
            let answered = server.peer.output.messages.first { $0["id"] == 1 }?["result"]?["jobId"]?.stringValue
            let jobId = answered ?? jobIds.first
            if let answered { #expect(jobIds == [answered]) }
            var round = Round(after: after, delay: delay, phase: "", finishedAtKill: [])
            var document: JSONValue?
            if let jobId {
                round.finishedAtKill = Self.finished(workspace.root, jobId)
                let path = "\(workspace.root)/jobs/\(jobId)/tasks-status.json"
                if let data = FileManager.default.contents(atPath: path) {
                    do {
                        document = try JSONParser.parse(Array(data))
                    } catch {
                        Issue.record("round \(rounds.count + 1): tasks-status.json does not parse: \(error)")
                    }
                }
            }
            let linesAtKill = Self.lines(workspace.root)
            if let document, let jobId {
                Self.checkConsistent(document, root: workspace.root, jobId: jobId, finished: round.finishedAtKill)
                for name in round.finishedAtKill { #expect(linesAtKill.filter { $0 == name }.count == 1) }
                let state = document["state"]?.stringValue ?? "?"
                round.phase =
                    state == "running" ? "running, \(round.finishedAtKill.count) of 5 tasks finished" : state
                let doneInDocument = Self.taskNames.filter { document["tasks"]?[$0]?["state"] == "done" }.count
                if doneInDocument < round.finishedAtKill.count {
                    // Killed between a task's result and the document saying so.
                    round.phase += " (the document behind)"
                }
            } else {
                round.phase = jobId == nil ? "before the job's folder" : "before the job's document"
            }

            // A new server continues the job (or runs it, if it never got its document). In some
            // rounds that server is killed too, during the resumed run, and a third one continues.
            // Per task finished at a kill, how many times it had run then: it must not run again.
            var runsWhenFinished: [String: Int] = [:]
            for name in round.finishedAtKill { runsWhenFinished[name] = linesAtKill.filter { $0 == name }.count }
            var next = try JobClient(workspace: workspace.root)
            let finalId: String
            if let jobId, let document {
                finalId = jobId
                if document["state"] != "done" {
                    let listed = try await next.result("listJobs", #"{"state":"interrupted"}"#)
                    #expect(listed["jobs"] == .array([listed["jobs"].flatMap(Self.first) ?? nil]))
                    #expect(listed["jobs"].flatMap(Self.first)?["id"] == .string(jobId), "found interrupted: \(listed)")
                    #expect(
                        try await next.result("resumeJob", #"{"jobId":"\#(jobId)"}"#) == ["jobId": .string(jobId)]
                    )
                    if Int.random(in: 0..<4, using: &generator) == 0 {
                        let second = Int.random(in: 0...300, using: &generator)
                        try await Task.sleep(for: .milliseconds(second))
                        next.peer.signal(SIGKILL)
                        #expect(try await next.peer.exitStatus() == 128 + SIGKILL)
                        let finishedNow = Self.finished(workspace.root, jobId)
                        let again = try #require(
                            JobWire.documentOnDisk(workspace.root, jobId),
                            "the document parses after a second kill"
                        )
                        Self.checkConsistent(again, root: workspace.root, jobId: jobId, finished: finishedNow)
                        let linesNow = Self.lines(workspace.root)
                        for name in finishedNow where runsWhenFinished[name] == nil {
                            runsWhenFinished[name] = linesNow.filter { $0 == name }.count
                        }
                        round.secondKill = "\(second) ms into the resumed run (\(again["state"]?.stringValue ?? "?"))"
                        next = try JobClient(workspace: workspace.root)
                        if again["state"] != "done" {
                            #expect(
                                try await next.result("resumeJob", #"{"jobId":"\#(jobId)"}"#)
                                    == ["jobId": .string(jobId)]
                            )
                        }
                    }
                }
            } else {
                let started = try await next.result("runPipeline", #"{"pipeline":"pipelines/crash.pipeline.yaml"}"#)
                finalId = try #require(started["jobId"]?.stringValue)
            }
            let final = try await next.waitForState(finalId, ["done", "failed", "cancelled", "interrupted"])
            #expect(final["state"] == "done", "round \(round): \(final)")
            // Every task ran; none that had finished before the kill ran again.
            let runs = Self.lines(workspace.root)
            for name in Self.taskNames {
                let count = runs.filter { $0 == name }.count
                #expect(final["tasks"]?[name]?["state"] == "done")
                Self.checkDoneTask(final["tasks"]?[name], name)
                #expect(count >= 1, "\(name) never ran")
                if let then = runsWhenFinished[name] {
                    #expect(count == then, "round \(round): \(name) finished before a kill and ran again: \(runs)")
                }
                #expect(
                    (final["tasks"]?[name]?["attempts"]?.integerValue ?? 0) >= 1,
                    "round \(round): \(name) is done after \(final["tasks"]?[name]?["attempts"] ?? nil) attempts"
                )
            }
            #expect(Self.finished(workspace.root, finalId) == Set(Self.taskNames))
            next.peer.closeInput()
            #expect(try await next.peer.exitStatus() == 0)
            #expect(JobWire.documentOnDisk(workspace.root, finalId) == final)
            // What the kills left behind: temporary files of writes cut short.
            let leftovers = (FileManager.default.enumerator(atPath: workspace.root + "/jobs")?.allObjects ?? [])
                .compactMap { $0 as? String }
                .filter { ($0 as NSString).lastPathComponent.contains(".tmp-") }
            temporaryFiles += leftovers.count
            rounds.append(round)
        }

        var phases: [String: Int] = [:]
        for round in rounds { phases[round.phase, default: 0] += 1 }
        let secondKills = rounds.compactMap(\.secondKill).count
        let summary =
            "kill -9 campaign (seed \(seed)): \(rounds.count) rounds in \(clock.now - campaignStart), "
            + "undisturbed run \(runtime), kill 0...\(window) ms after 0...5 task runs; phases: "
            + phases.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            + "; the resuming server killed too in \(secondKills) rounds"
            + "; temporary files left in job folders: \(temporaryFiles)"
        print(summary)
        let directory = repositoryRoot + "/.build/campaigns"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? (summary + "\n" + rounds.map(\.description).joined(separator: "\n") + "\n")
            .write(toFile: directory + "/job-crash.txt", atomically: true, encoding: .utf8)
        #expect(rounds.count >= 5, "too few rounds in the time budget: \(summary)")
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
        #expect(Self.lines(workspace.root) == Self.taskNames + ["t4", "t5"], "t3 did not run again")
        #expect(final["tasks"]?["t3"]?["attempts"] == 1)
        #expect(final["tasks"]?["t3"]?["files"]?["output"] == "tasks/t3/output.json")
        #expect(final["tasks"]?["t3"]?["endedAt"]?.stringValue != nil)
        #expect(final["tasks"]?["t3"]?["currentStage"] == .null)
        #expect(final["tasks"]?["t3"]?["artifacts"].flatMap(Self.first) == "tasks/t3/execution-logs.json")
        next.peer.saveTranscript("job-recovered-task")
    }
    @Test("a stage's command left running by a kill -9 of the server is ended when the workspace is next opened")
    func commandsDieWithTheServer() async throws {
        let marker = "46.\(Int.random(in: 100...999))"
        let example = try ExampleCopy("research-task", files: ["tasks/slow.yaml": JobWire.sleepingTask(marker)])
        defer { example.remove() }
        let client = try JobClient(workspace: example.root)
        _ = try await client.result(
            "runPipeline",
            #"{"pipeline":{"name":"slow","tasks":[{"name":"slow","task":"tasks/slow.yaml"}]}}"#
        )
        try await eventually("the stage's command runs", timeout: .seconds(30)) {
            TaskMethodTests.running("sleep \(marker)")
        }
        client.peer.signal(SIGKILL)
        #expect(try await client.peer.exitStatus() == 128 + SIGKILL)
        // The command is reparented to init and runs on, until the next server opens the
        // workspace: before a resumed task could run again beside it, its process group is ended.
        #expect(TaskMethodTests.running("sleep \(marker)"))
        let next = try JobClient(workspace: example.root)
        _ = try await next.result("listJobs")
        try await eventually("the command is gone", timeout: .seconds(5)) {
            !TaskMethodTests.running("sleep \(marker)")
        }
        // Leave nothing behind.
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries where entry.allSatisfy(\.isNumber) {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.last == marker, let pid = Int32(entry) { kill(pid, SIGKILL) }
        }
    }
}
