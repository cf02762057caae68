import Foundation
import JSON
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the `kill -9` campaigns (``JobCrashTests``, ``StorageCrashTests``) share: their settings,
/// the problems they count, and what a kill leaves on disk.
enum CrashCampaign {
    /// A campaign's seed, number of rounds and optional time limit. `STAGERUNNER_CRASH_SEED`,
    /// `_ROUNDS` and `_SECONDS` replay or widen every campaign at once (`make crash-campaign`);
    /// without them each runs the short version that `make test` can afford. A campaign is sized
    /// by its rounds: it runs all of them however slow the machine, and stops early only at a
    /// time limit someone asked for.
    struct Settings {
        var seed: UInt64
        var rounds: Int
        var timeLimit: Duration?

        init(seed: UInt64, rounds: Int) {
            let environment = ProcessInfo.processInfo.environment
            self.seed = environment["STAGERUNNER_CRASH_SEED"].flatMap { UInt64($0) } ?? seed
            self.rounds = environment["STAGERUNNER_CRASH_ROUNDS"].flatMap { Int($0) } ?? rounds
            timeLimit = environment["STAGERUNNER_CRASH_SECONDS"].flatMap { Int($0) }.map { .seconds($0) }
        }

        /// Whether another round is due, `elapsed` into the campaign with `done` rounds run.
        func continues(after done: Int, elapsed: Duration) -> Bool {
            done < rounds && timeLimit.map { elapsed < $0 } != false
        }
    }

    /// Kills the server with SIGKILL and waits for it to be gone.
    static func kill(_ server: JobClient, _ problems: Problems) async throws {
        server.peer.signal(SIGKILL)
        let status = try await server.peer.exitStatus()
        problems.expect(status == 128 + SIGKILL, "the server exited with \(status) instead of dying of SIGKILL")
    }

    /// The job folders of a workspace.
    static func jobIds(_ root: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/jobs")) ?? []).filter { !$0.hasPrefix(".") }
            .sorted()
    }

    /// The temporaries of atomic writes under `folder` of `root`, relative to `root`: a file
    /// `.<name>.tmp-<pid>-<n>` beside an artifact or a status document, a folder
    /// `.tmp-<genId>-<pid>-<n>` beside a generation. A kill between writing one and renaming it
    /// into place leaves it behind. Hidden folders and generations (`data/gens/<stage>/<genId>`,
    /// files only) are not searched, so that a look costs little in a store of thousands.
    static func temporaries(_ root: String, under folder: String = "") -> [String] {
        var found: [String] = []
        func search(_ relative: String) {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + relative)) ?? []
            for name in entries {
                let path = relative.isEmpty ? name : relative + "/" + name
                if name.contains(".tmp-") {
                    found.append(path)
                } else if !name.hasPrefix("."), !(path.hasPrefix("data/gens/") && path.split(separator: "/").count >= 4)
                {
                    var isDirectory: ObjCBool = false
                    if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory),
                        isDirectory.boolValue
                    {
                        search(path)
                    }
                }
            }
        }
        search(folder)
        return found.sorted()
    }

    /// The write a temporary belongs to: what the server was doing when a kill left it.
    static func writeKind(_ temporary: String) -> String {
        if temporary.hasPrefix("data/gens/") { return "generation commit" }
        if temporary.hasPrefix("jobs/") && temporary.contains("/tasks/") { return "artifact commit" }
        if temporary.contains("tasks-status.json") { return "status write" }
        return "job file write"
    }

    /// The writes under way in a workspace whose server is stopped or dead: those whose
    /// temporaries are there (``writeKind(_:)``), and `cache write` or `call log write` when the
    /// response cache's or the call log's write-ahead log ends with frames of a transaction that
    /// has not committed.
    static func writesUnderWay(_ root: String) -> Set<String> {
        var writes = Set(temporaries(root).map(writeKind))
        if uncommittedFrames(root + "/.stagerunner/cache.sqlite") > 0 { writes.insert("cache write") }
        if uncommittedFrames(root + "/.stagerunner/calls.sqlite") > 0 { writes.insert("call log write") }
        return writes
    }

    /// Whether a `write` (one of ``writesUnderWay(_:)``'s) is under way, looking only where it
    /// would show.
    static func isUnderWay(_ write: String, _ root: String) -> Bool {
        switch write {
        case "cache write": return uncommittedFrames(root + "/.stagerunner/cache.sqlite") > 0
        case "call log write": return uncommittedFrames(root + "/.stagerunner/calls.sqlite") > 0
        case "generation commit": return !temporaries(root, under: "data/gens").isEmpty
        default: return temporaries(root, under: "jobs").contains { writeKind($0) == write }
        }
    }

    /// Frames at the end of the write-ahead log of the SQLite database at `path` that follow its
    /// last commit frame: the pages of a transaction being committed (SQLite ignores them when it
    /// next opens the database, if the writer died).
    static func uncommittedFrames(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path + "-wal"), data.count >= 32 else { return 0 }
        return data.withUnsafeBytes { bytes in
            func word(_ offset: Int) -> UInt32 {
                UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
                    | UInt32(bytes[offset + 3])
            }
            let pageSize = word(8) == 1 ? 65536 : Int(word(8))
            guard pageSize >= 512 else { return 0 }
            // A frame belongs to the log's current generation when it carries the header's salts;
            // after a reset, the frames of the one before follow with other salts.
            let salts = (word(16), word(20))
            var offset = 32
            var pending = 0
            while offset + 24 + pageSize <= bytes.count, (word(offset + 8), word(offset + 12)) == salts {
                pending = word(offset + 4) == 0 ? pending + 1 : 0
                offset += 24 + pageSize
            }
            return pending
        }
    }

    /// Whether every thread of process `pid` is stopped (by SIGSTOP).
    static func isStopped(_ pid: pid_t) -> Bool {
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return !threads.isEmpty
            && threads.allSatisfy { thread in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return true }  // the thread has ended
                return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first == "T"
            }
    }

    /// Kills the server in the middle of a `target` write (one of ``writesUnderWay(_:)``'s), or at
    /// once when `target` is nil. The server is stopped at random moments (SIGSTOP freezes every
    /// thread where it is) and looked at; when the write is under way it is killed as it stands,
    /// else it goes on for a random few milliseconds. After `patience` it is killed wherever it
    /// is. Returns how many looks it took and whether the target was hit.
    static func kill(
        during target: String?,
        _ server: JobClient,
        root: String,
        patience: Duration,
        _ generator: inout SeededGenerator,
        _ problems: Problems
    ) async throws -> (looks: Int, hit: Bool) {
        guard let target else {
            try await kill(server, problems)
            return (0, false)
        }
        let deadline = ContinuousClock.now + patience
        var looks = 0
        while ContinuousClock.now < deadline && !server.peer.hasExited {
            server.peer.signal(SIGSTOP)
            try await eventually("the server to stop", timeout: .seconds(10)) {
                isStopped(server.peer.pid) || server.peer.hasExited
            }
            looks += 1
            if isUnderWay(target, root) {
                try await kill(server, problems)
                return (looks, true)
            }
            server.peer.signal(SIGCONT)
            try await Task.sleep(for: .microseconds(Int.random(in: 0...4000, using: &generator)))
        }
        try await kill(server, problems)
        return (looks, false)
    }

    /// Writes a campaign's summary and its rounds to `.build/campaigns/<name>.txt`, where a long
    /// run can be read afterwards.
    static func save(_ name: String, summary: String, rounds: [String]) {
        let directory = repositoryRoot + "/.build/campaigns"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? (summary + "\n" + rounds.joined(separator: "\n") + "\n")
            .write(toFile: directory + "/\(name).txt", atomically: true, encoding: .utf8)
    }

    /// `count` of each key, as `key: count; …` in key order.
    static func tally(_ counts: [String: Int]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
    }

    /// The problems a campaign found: each is a test failure, and they are counted for the summary.
    final class Problems: Sendable {
        private let found = Locked<[String]>([])

        var count: Int { found.withLock { $0.count } }

        func expect(
            _ condition: Bool,
            _ message: @autoclosure () -> String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            guard !condition else { return }
            let text = message()
            found.withLock { $0.append(text) }
            Issue.record(Comment(rawValue: text), sourceLocation: sourceLocation)
        }
    }
}

/// A pipeline of tasks that each append their name to the workspace's `runs.log` when they
/// start, so that a campaign can count the runs of every task and see that none that had
/// finished before a kill ran again.
struct CrashPipeline: Sendable {
    static let path = "pipelines/crash.pipeline.yaml"

    let taskNames: [String]

    /// `pipelines/crash.pipeline.yaml`, running `tasks/<name>.task.yaml` in order.
    var file: String {
        "name: crash\ntasks:\n" + taskNames.map { "  - name: \($0)\n    task: ../tasks/\($0).task.yaml\n" }.joined()
    }

    /// The first element of an array.
    static func first(_ value: JSONValue) -> JSONValue? {
        guard case .array(let items) = value else { return nil }
        return items.first
    }

    /// The task runs started so far, in order.
    static func runs(_ root: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: root + "/runs.log") else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The tasks whose output.json exists with ok: true.
    func finished(_ root: String, _ jobId: String) -> Set<String> {
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
    func checkConsistent(
        _ document: JSONValue,
        jobId: String,
        finished: Set<String>,
        _ problems: CrashCampaign.Problems
    ) {
        problems.expect(document["id"] == .string(jobId), "the document of \(jobId) names \(document["id"] ?? nil)")
        problems.expect(
            JobWire.jobStates.contains(document["state"]?.stringValue ?? ""),
            "the job's state is none of JobWire.jobStates: \(document)"
        )
        problems.expect((document["rev"]?.integerValue ?? -1) >= 0, "the document has no rev")
        problems.expect(document["schemaVersion"] == 1, "the document has no schemaVersion 1")
        problems.expect(
            document["taskOrder"] == .array(taskNames.map(JSONValue.string)),
            "taskOrder is \(document["taskOrder"] ?? nil)"
        )
        var done = 0
        for name in taskNames {
            let task = document["tasks"]?[name]
            let state = task?["state"]?.stringValue ?? ""
            problems.expect(JobWire.taskStates.contains(state), "task \(name): \(task ?? nil)")
            if state == "done" {
                done += 1
                // The document says done only once the task's result is on disk.
                problems.expect(finished.contains(name), "\(name) is done in the document, without its output.json")
                Self.checkDoneTask(task, name, problems)
            }
            if state == "running" {
                problems.expect(document["state"] == "running", "\(name) is running in a job that is not")
            }
        }
        problems.expect(
            document["progress"]?["tasksDone"] == .integer(Int64(done)),
            "progress says \(document["progress"]?["tasksDone"] ?? nil) tasks done, the tasks \(done)"
        )
        if document["state"] == "done" {
            problems.expect(done == taskNames.count, "the job is done with \(done) tasks done")
        }
    }

    /// A done task's entry lists its result, artifacts and end, also when it was found finished on
    /// resume (its output.json written, the document not yet saying so).
    static func checkDoneTask(_ task: JSONValue?, _ name: String, _ problems: CrashCampaign.Problems) {
        let complete =
            task?["files"]?["output"] == .string("tasks/\(name)/output.json")
            && task?["endedAt"]?.stringValue != nil
            && task?["artifacts"].flatMap(first) == .string("tasks/\(name)/execution-logs.json")
        problems.expect(complete, "\(name) is done without its files, artifacts or end: \(task ?? nil)")
    }

    /// What a kill left of the job.
    struct Remains {
        var jobId: String?
        /// The status document, when there was one (it must parse).
        var document: JSONValue?
        /// The tasks whose result was on disk.
        var finished: Set<String> = []
        /// For each of those, how many times it had run: it must not run again.
        var runsWhenFinished: [String: Int] = [:]
        /// Where the job was: its state and finished tasks, or how far it had come.
        var phase = ""
    }

    /// Reads what a kill left of the job that the request `runPipeline` started (its answer, if the
    /// server sent it, names the job): the job's folder and document, which must parse and agree
    /// with the results on disk, and the runs of the tasks that had finished, once each.
    func remains(_ root: String, answered: String?, _ problems: CrashCampaign.Problems) -> Remains {
        let jobIds = CrashCampaign.jobIds(root)
        problems.expect(jobIds.count <= 1, "more than one job folder: \(jobIds)")
        if let answered { problems.expect(jobIds == [answered], "the job \(answered) has no folder: \(jobIds)") }
        var remains = Remains(jobId: answered ?? jobIds.first)
        guard let jobId = remains.jobId else {
            remains.phase = "before the job's folder"
            return remains
        }
        remains.finished = finished(root, jobId)
        let runs = Self.runs(root)
        for name in remains.finished {
            remains.runsWhenFinished[name] = runs.filter { $0 == name }.count
            problems.expect(
                remains.runsWhenFinished[name] == 1,
                "\(name) finished after running more than once: \(runs)"
            )
        }
        if let data = FileManager.default.contents(atPath: "\(root)/jobs/\(jobId)/tasks-status.json") {
            do {
                remains.document = try JSONParser.parse(Array(data))
            } catch {
                problems.expect(false, "tasks-status.json does not parse: \(error)")
            }
        }
        guard let document = remains.document else {
            remains.phase = "before the job's document"
            return remains
        }
        checkConsistent(document, jobId: jobId, finished: remains.finished, problems)
        let state = document["state"]?.stringValue ?? "?"
        remains.phase =
            state == "running" ? "running, \(remains.finished.count) of \(taskNames.count) tasks finished" : state
        let doneInDocument = taskNames.filter { document["tasks"]?[$0]?["state"] == "done" }.count
        if doneInDocument < remains.finished.count {
            // Killed between a task's result and the document saying so.
            remains.phase += " (the document behind)"
        }
        return remains
    }

    /// Continues the job on a new server: a job with a document that is not done must be listed as
    /// interrupted and is resumed; a job killed before its document is run again. Returns the id
    /// of the job to wait for, and whether it was resumed.
    func proceed(
        _ remains: Remains,
        on next: JobClient,
        _ problems: CrashCampaign.Problems
    ) async throws -> (jobId: String, resumed: Bool) {
        guard let jobId = remains.jobId, let document = remains.document else {
            let started = try await next.result("runPipeline", #"{"pipeline":"\#(Self.path)"}"#)
            return (try #require(started["jobId"]?.stringValue), false)
        }
        guard document["state"] != "done" else { return (jobId, false) }
        let listed = try await next.result("listJobs", #"{"state":"interrupted"}"#)
        problems.expect(
            listed["jobs"] == .array([listed["jobs"].flatMap(Self.first) ?? nil])
                && listed["jobs"].flatMap(Self.first)?["id"] == .string(jobId),
            "\(jobId) is not the one interrupted job: \(listed)"
        )
        let resumed = try await next.result("resumeJob", #"{"jobId":"\#(jobId)"}"#)
        problems.expect(resumed == ["jobId": .string(jobId)], "resumeJob answered \(resumed)")
        return (jobId, true)
    }

    /// Checks a job that finished after its kills: it is done, every task is done with its files
    /// and ran, and none that had finished before a kill ran again.
    func checkCompleted(
        _ final: JSONValue,
        root: String,
        jobId: String,
        runsWhenFinished: [String: Int],
        round: String,
        _ problems: CrashCampaign.Problems
    ) {
        problems.expect(final["state"] == "done", "round \(round): the job ended \(final)")
        let runs = Self.runs(root)
        for name in taskNames {
            let count = runs.filter { $0 == name }.count
            problems.expect(final["tasks"]?[name]?["state"] == "done", "round \(round): \(name) is not done")
            Self.checkDoneTask(final["tasks"]?[name], name, problems)
            problems.expect(count >= 1, "round \(round): \(name) never ran")
            if let then = runsWhenFinished[name] {
                problems.expect(count == then, "round \(round): \(name) finished before a kill and ran again: \(runs)")
            }
            problems.expect(
                (final["tasks"]?[name]?["attempts"]?.integerValue ?? 0) >= 1,
                "round \(round): \(name) is done after \(final["tasks"]?[name]?["attempts"] ?? nil) attempts"
            )
        }
        problems.expect(finished(root, jobId) == Set(taskNames), "round \(round): not every task has its output.json")
    }
}
