import Crypto
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

/// `kill -9` of a server that is busy writing, many times: a job whose tasks commit sizeable
/// artifacts, beside a stream of `runStage` calls to a real HTTP provider (the mock server) that
/// commit generation folders, insert answers into the response cache and rows into the call log.
/// After each kill every file at its final name is whole, both SQLite databases pass
/// `PRAGMA integrity_check`, what the server had acknowledged is there, every committed generation's
/// call is in the call log, and a new server opens the workspace, answers from the cache and resumes
/// the job without running a finished task again.
///
/// `make test` runs a short campaign; `STAGERUNNER_CRASH_SEED`, `_ROUNDS` and `_SECONDS` replay or
/// widen it (`make crash-campaign`).
@Suite("Storage crashes", .serialized)
struct StorageCrashTests {
    static let pipeline = CrashPipeline(taskNames: ["s1", "s2", "s3", "s4"])
    /// `runStage` calls in flight beside the job.
    static let inFlight = 6

    /// A task whose command makes a payload of `bytes` random bytes (in base64) that carries its
    /// own length and SHA-256, so that a file holding it can be checked whole: it is written as
    /// JSON (`part-1.json`), then as text behind a header line (`part-2.txt`, `part-3.txt`), and
    /// the job adds `output.json` (which holds the text again) and `execution-logs.json`.
    static func taskFile(_ name: String, bytes: Int) -> String {
        """
        name: \(name)
        stages:
          ingestion:
            command:
              - sh
              - -c
              - |
                echo \(name) >> ../runs.log
                p=$(head -c \(bytes) /dev/urandom | base64 -w0)
                s=$(printf %s "$p" | sha256sum | cut -c1-64)
                printf '{"output": {"task": "\(name)", "size": %d, "sha256": "%s", "payload": "%s"}, "flags": {}}' ${#p} "$s" "$p"
          preProcessing:
            write: part-1.json
          promptTemplating:
            template: { text: "{{ input.sha256 }} {{ input.size }}\\n{{ input.payload }}" }
          inference:
            write: part-2.txt
          integration:
            write: part-3.txt

        """
    }

    /// The daydream example (for its draft templates) with the mock provider, the cache on for
    /// every request, and the pipeline of tasks whose payloads have the given sizes.
    static func workspaceFiles(_ mock: MockModelServer, sizes: [Int]) -> [String: String] {
        var files = [
            "stagerunner.yaml": """
            providers:
              mock: {kind: openai, baseURL: "\(mock.url("/v1"))", apiKeyEnv: MOCK_API_KEY, timeout: 30}
            cache: {default: use}

            """,
            CrashPipeline.path: pipeline.file,
        ]
        for (name, size) in zip(pipeline.taskNames, sizes) {
            files["tasks/\(name).task.yaml"] = taskFile(name, bytes: size)
        }
        return files
    }

    // MARK: - The runStage stream

    /// One `runStage` call of the stream.
    struct StageRequest: Sendable {
        let id: Int
        let genId: String
        let model: String
        let prompt: String
        /// A run over a generation that may be committed already (`force`, `cache: refresh`): the
        /// answer is written to the cache again and the generation replaced in one swap.
        let force: Bool

        var params: String {
            #"{"stage":"draft","genId":"\#(genId)","templateId":"systematic-analytical","model":"\#(model)","promptText":"\#(prompt)","cache":"\#(force ? "refresh" : "use")","force":\#(force),"maxTextLength":16}"#
        }
    }

    struct Answer: Sendable {
        let request: StageRequest
        let response: JSONValue
    }

    /// A prompt that states its own length: `P<index>-<length>:` and as many characters.
    static func prompt(_ index: Int, length: Int) -> String {
        let unit = "the quick brown fox \(index) jumps over the lazy dog "
        let body = String(String(repeating: unit, count: length / unit.count + 1).prefix(length))
        return "P\(index)-\(length):" + body
    }

    /// Whether `prompt` is whole: its body as long as its header says.
    static func isWholePrompt(_ prompt: String) -> Bool {
        guard let colon = prompt.firstIndex(of: ":"), let dash = prompt[..<colon].lastIndex(of: "-"),
            let length = Int(prompt[prompt.index(after: dash)..<colon])
        else { return false }
        return prompt.utf8.count - prompt.utf8.distance(from: prompt.startIndex, to: colon) - 1 == length
    }

    /// `count` calls: mostly new prompts of 256 B to 128 KB (each a cache insert), some asking
    /// again with a prompt already sent (a hit once its answer is stored), some forcing a
    /// generation already asked for to be made again.
    static func plan(_ count: Int, _ generator: inout SeededGenerator) -> [StageRequest] {
        var requests: [StageRequest] = []
        var originals: [StageRequest] = []
        for index in 0..<count {
            let roll = Int.random(in: 0..<100, using: &generator)
            let id = 1_000_000 + index
            if roll < 15, let earlier = originals.randomElement(using: &generator) {
                requests.append(
                    StageRequest(id: id, genId: "g\(index)", model: earlier.model, prompt: earlier.prompt, force: false)
                )
            } else if roll < 30, let earlier = originals.randomElement(using: &generator) {
                requests.append(
                    StageRequest(
                        id: id,
                        genId: earlier.genId,
                        model: earlier.model,
                        prompt: earlier.prompt,
                        force: true
                    )
                )
            } else {
                let length = Int(pow(2, Double.random(in: 8...17, using: &generator)))
                let model =
                    Bool.random(using: &generator)
                    ? "mock:echo" : "mock:sleep-\(Int.random(in: 1...40, using: &generator))"
                let request = StageRequest(
                    id: id,
                    genId: "g\(index)",
                    model: model,
                    prompt: prompt(index, length: length),
                    force: false
                )
                originals.append(request)
                requests.append(request)
            }
        }
        return requests
    }

    /// Sends `requests`, `inFlight` at a time, until `stop` is set, they run out or the server is
    /// gone (a request without an answer is a problem unless `dying` is set); returns the answers
    /// received.
    static func drive(
        _ server: JobClient,
        _ requests: [StageRequest],
        stop: Locked<Bool>,
        dying: Locked<Bool>,
        _ problems: CrashCampaign.Problems
    ) async -> [Answer] {
        let router = ResponseRouter(server.peer.output)
        let next = Locked(0)
        // One writer at a time: a message longer than the pipe's atomic write size would be cut
        // into another's.
        let writing = Locked(())
        return await withTaskGroup(of: [Answer].self) { group in
            for _ in 0..<inFlight {
                group.addTask {
                    var answers: [Answer] = []
                    while !stop.withLock({ $0 }) {
                        let index = next.withLock { value in
                            defer { value += 1 }
                            return value
                        }
                        guard index < requests.count else { break }
                        let request = requests[index]
                        let body =
                            #"{"jsonrpc":"2.0","id":\#(request.id),"method":"runStage","params":\#(request.params)}"#
                        // A large prompt fills the pipe: the write may block until the server reads.
                        _ = try? await onOwnThread { writing.withLock { _ in server.peer.send(body) } }
                        do {
                            let response = try await router.response(id: request.id, timeout: .seconds(120))
                            answers.append(Answer(request: request, response: response))
                        } catch {
                            problems.expect(dying.withLock { $0 }, "runStage \(request.genId) had no answer: \(error)")
                            break
                        }
                    }
                    return answers
                }
            }
            var all: [Answer] = []
            for await answers in group { all += answers }
            return all
        }
    }

    // MARK: - What is on disk

    static func sha256<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `bytes` is a whole payload text: `<sha256> <size>\n<payload>`.
    static func isWholeText(_ bytes: [UInt8]) -> Bool {
        guard let newline = bytes.firstIndex(of: 10) else { return false }
        let header = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ")
        guard header.count == 2, let size = Int(header[1]) else { return false }
        let payload = bytes[(newline + 1)...]
        return payload.count == size && sha256(payload) == header[0]
    }

    /// Whether `value` is a whole payload object: `{task, size, sha256, payload}`.
    static func isWholePayload(_ value: JSONValue?) -> Bool {
        guard let payload = value?["payload"]?.stringValue, let size = value?["size"]?.integerValue else {
            return false
        }
        return payload.utf8.count == size && sha256(payload.utf8) == value?["sha256"]?.stringValue
    }

    /// What the file checks found.
    struct Inventory {
        var artifacts = 0
        var generations = 0
        var genIds: [String] = []
        /// The generations answered by the model (not from the cache): their prompts and models.
        var answeredByModel: [(genId: String, model: String, prompt: String)] = []
    }

    /// Checks every file at its final name in the job folders and the gens store: each JSON file
    /// parses, each artifact holds a whole payload, each generation is complete and consistent.
    /// Temporaries (hidden) are what an interrupted write leaves and are not read.
    static func checkFiles(_ root: String, round: String, _ problems: CrashCampaign.Problems) -> Inventory {
        var inventory = Inventory()
        let paths = (FileManager.default.enumerator(atPath: root + "/jobs")?.allObjects ?? [])
            .compactMap { $0 as? String }
            .filter { !$0.split(separator: "/").contains { $0.hasPrefix(".") } }
        for path in paths.sorted() {
            let full = root + "/jobs/" + path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            guard let data = FileManager.default.contents(atPath: full) else {
                problems.expect(false, "round \(round): jobs/\(path) cannot be read")
                continue
            }
            let bytes = [UInt8](data)
            let name = (path as NSString).lastPathComponent
            var value: JSONValue?
            if name.hasSuffix(".json") {
                value = try? JSONParser.parse(bytes)
                problems.expect(value != nil, "round \(round): jobs/\(path) does not parse (\(bytes.count) bytes)")
            }
            guard path.contains("/tasks/") else { continue }
            inventory.artifacts += 1
            switch name {
            case "part-1.json":
                problems.expect(isWholePayload(value), "round \(round): jobs/\(path) is not a whole payload")
            case "part-2.txt", "part-3.txt":
                problems.expect(isWholeText(bytes), "round \(round): jobs/\(path) is not a whole payload")
            case "output.json":
                let output = value?["context"]?["output"]?.stringValue.map { Array($0.utf8) } ?? []
                problems.expect(
                    value?["ok"] == true && isWholeText(output),
                    "round \(round): jobs/\(path) does not hold a whole payload as the task's output"
                )
            default:
                break
            }
        }
        let gens = root + "/data/gens/draft"
        let genIds = ((try? FileManager.default.contentsOfDirectory(atPath: gens)) ?? []).filter { !$0.hasPrefix(".") }
        for genId in genIds.sorted() {
            inventory.generations += 1
            inventory.genIds.append(genId)
            let directory = gens + "/" + genId
            func text(_ file: String) -> String? {
                FileManager.default.contents(atPath: directory + "/" + file).map { String(decoding: $0, as: UTF8.self) }
            }
            guard let metadata = text("metadata.json").flatMap({ try? JSONParser.parse(Array($0.utf8)) }) else {
                problems.expect(false, "round \(round): \(genId)'s metadata.json is missing or does not parse")
                continue
            }
            var listed: [String] = []
            if case .array(let files)? = metadata["files"] { listed = files.compactMap(\.stringValue) }
            let present = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
            problems.expect(
                metadata["gen_id"] == .string(genId) && present == listed.sorted(),
                "round \(round): \(genId) holds \(present), its metadata lists \(listed) for \(metadata["gen_id"] ?? nil)"
            )
            let prompt = text("prompt.txt") ?? ""
            let raw = text("raw.txt")
            problems.expect(isWholePrompt(prompt), "round \(round): \(genId)'s prompt.txt is not whole")
            problems.expect(
                raw == "echo: " + prompt && text("parsed.txt") == raw
                    && metadata["raw_length"] == .integer(Int64(raw?.utf8.count ?? -1)),
                "round \(round): \(genId)'s answer is not whole or not its prompt's"
            )
            if metadata["cached"] != true, let model = metadata["model"]?.stringValue {
                inventory.answeredByModel.append((genId, model, prompt))
            }
        }
        return inventory
    }

    // MARK: - The databases

    /// A state database (`.stagerunner/*.sqlite`) as a kill left it.
    struct DatabaseReport {
        /// What `PRAGMA integrity_check` said.
        var integrity: [String]
        /// Whether the database has its table: a kill while the server was creating the database
        /// leaves it without (the next server completes it).
        var hasTable: Bool
        /// The values of the report's query.
        var values: [String]
    }

    /// `PRAGMA integrity_check` and `query` (when `table` exists) on the database at `path`; with
    /// `copy`, on a copy of the database and its log, so that the next server still finds them as
    /// the kill left them and is the one that recovers them. Nil when there is no database yet.
    static func inspect(_ path: String, table: String, query: String, copy: Bool) async throws -> DatabaseReport? {
        try await onOwnThread {
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            var target = path
            var scratch: String?
            if copy {
                let directory = NSTemporaryDirectory() + "stagerunner-db-" + UUID().uuidString
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                scratch = directory
                target = directory + "/" + (path as NSString).lastPathComponent
                try FileManager.default.copyItem(atPath: path, toPath: target)
                if FileManager.default.fileExists(atPath: path + "-wal") {
                    try FileManager.default.copyItem(atPath: path + "-wal", toPath: target + "-wal")
                }
            }
            defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
            let database = try DatabaseQueue(path: target)
            defer { try? database.close() }
            return try database.read { db in
                DatabaseReport(
                    integrity: try String.fetchAll(db, sql: "PRAGMA integrity_check"),
                    hasTable: try db.tableExists(table),
                    values: try db.tableExists(table) ? try String.fetchAll(db, sql: query) : []
                )
            }
        }
    }

    // MARK: - The campaign

    /// What one round saw.
    struct Round: CustomStringConvertible {
        var delay: Int
        /// The write the kill was aimed at (nil: none, the first moment), how many looks at the
        /// stopped server it took, and whether it was under way at the kill.
        var target: String?
        var looks = 0
        var hit = false
        /// Where the job was.
        var phase = ""
        /// The writes under way at the kill: their temporaries were left, or their transaction's
        /// frames were in the log uncommitted.
        var writes: Set<String> = []
        var answered = 0
        var generations = 0
        var artifacts = 0
        var cacheRows = 0
        var calls = 0
        /// Committed generations whose call is not in the log: a problem each, since the call is
        /// logged before its generation is committed.
        var unlogged = 0
        /// Logged calls whose generation is not there: a kill between the log and the commit.
        var uncommitted = 0
        var hits = 0
        /// Temporaries the kill left, and those still there after the next server had run.
        var temporaries = 0
        var remaining = 0
        var description: String {
            "kill at \(delay) ms"
                + (target.map { " aimed at a \($0) (\(hit ? "hit" : "missed") after \(looks) looks)" } ?? "")
                + ": job \(phase); "
                + (writes.isEmpty ? "between writes" : "during \(writes.sorted().joined(separator: " and "))")
                + "; \(answered) runStage answered, \(generations) generations, \(artifacts) artifacts, "
                + "\(cacheRows) cache rows, \(calls) calls logged (\(unlogged) generations not, "
                + "\(uncommitted) without their generation); "
                + "\(hits) cache hits after; "
                + "temporaries \(temporaries) left, \(remaining) after the next server"
        }
    }

    /// The writes a round's kill can be aimed at; nil kills at the moment the delay ends.
    static let targets: [String?] = [
        nil, "artifact commit", "generation commit", "status write", "cache write", "call log write",
    ]

    /// Runs one round: the job and the stream on a fresh workspace, a kill `delay` ms after they
    /// start, during a `target` write if one comes within a few seconds (no kill when `delay` is
    /// nil: the job runs to its end and the stream stops with it), the checks of what is on disk,
    /// and a new server that serves from the cache and finishes the job.
    static func round(
        _ label: String,
        mock: MockModelServer,
        delay: Int?,
        target: String?,
        _ generator: inout SeededGenerator,
        _ problems: CrashCampaign.Problems
    ) async throws -> (Round, runtime: Duration) {
        let sizes = pipeline.taskNames.map { _ in Int.random(in: (64 << 10)...(768 << 10), using: &generator) }
        let requests = plan(1000, &generator)
        let hitPicks = (0..<3).map { _ in UInt64.random(in: 0...UInt64.max, using: &generator) }
        let environment = ["MOCK_API_KEY": MockModelServer.key]
        let workspace = try ExampleCopy("daydream", files: workspaceFiles(mock, sizes: sizes))
        defer { workspace.remove() }
        let root = workspace.root
        var round = Round(delay: delay ?? -1, target: target)

        let server = try JobClient(workspace: root, environment: environment)
        let started = ContinuousClock.now
        server.peer.send(
            #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":"\#(CrashPipeline.path)"}}"#
        )
        let stop = Locked(false)
        let dying = Locked(false)
        let stream = Task { await drive(server, requests, stop: stop, dying: dying, problems) }
        var runtime = Duration.zero
        if let delay {
            try await Task.sleep(for: .milliseconds(delay))
            dying.withLock { $0 = true }
            (round.looks, round.hit) = try await CrashCampaign.kill(
                during: target,
                server,
                root: root,
                patience: .seconds(2),
                &generator,
                problems
            )
        } else {
            let reply = try await server.peer.output.response(id: 1)
            let jobId = try #require(reply["result"]?["jobId"]?.stringValue, "runPipeline answered \(reply)")
            // Read from disk: a request sent now could land inside one of the stream's.
            try await eventually("the end of the job", timeout: .seconds(120)) {
                ["done", "failed"].contains(JobWire.documentOnDisk(root, jobId)?["state"]?.stringValue)
            }
            let final = JobWire.documentOnDisk(root, jobId)
            problems.expect(final?["state"] == "done", "round \(label): the undisturbed job ended \(final ?? nil)")
            runtime = ContinuousClock.now - started
            stop.withLock { $0 = true }
        }
        let answers = await stream.value
        if delay == nil {
            server.peer.closeInput()
            let status = try await server.peer.exitStatus()
            problems.expect(status == 0, "round \(label): the server exited with \(status)")
        }

        // What the kill left: the writes it cut short, files, acknowledged work, databases.
        round.temporaries = CrashCampaign.temporaries(root).count
        round.writes = CrashCampaign.writesUnderWay(root)
        let cachePath = root + "/.stagerunner/cache.sqlite"
        let callsPath = root + "/.stagerunner/calls.sqlite"
        let answered = server.peer.output.messages.first { $0["id"] == 1 }?["result"]?["jobId"]?.stringValue
        let remains = pipeline.remains(root, answered: answered, problems)
        round.phase = remains.phase
        let inventory = checkFiles(root, round: label, problems)
        round.generations = inventory.generations
        round.artifacts = inventory.artifacts
        let cache = try await inspect(
            cachePath,
            table: "responses",
            query: "SELECT COUNT(*) FROM responses",
            copy: true
        )
        let calls = try await inspect(callsPath, table: "llm_calls", query: "SELECT genId FROM llm_calls", copy: true)
        if cache?.hasTable == false || calls?.hasTable == false { round.writes.insert("database creation") }
        problems.expect(
            (cache?.integrity ?? ["ok"]) == ["ok"],
            "round \(label): cache.sqlite: \(cache?.integrity ?? [])"
        )
        problems.expect(
            (calls?.integrity ?? ["ok"]) == ["ok"],
            "round \(label): calls.sqlite: \(calls?.integrity ?? [])"
        )
        round.cacheRows = cache.flatMap { Int($0.values.first ?? "") } ?? 0
        round.calls = calls?.values.count ?? 0
        // Every committed generation's call is in the log; what the server answered before it died
        // is on disk too.
        let logged = Set(calls?.values ?? [])
        let unlogged = inventory.genIds.filter { !logged.contains($0) }
        round.unlogged = unlogged.count
        round.uncommitted = logged.subtracting(inventory.genIds).count
        problems.expect(
            unlogged.isEmpty,
            "round \(label): generations committed without their call log row: \(unlogged)"
        )
        for answer in answers {
            let genId = answer.request.genId
            guard answer.response["result"]?["status"] == "success" else {
                problems.expect(false, "round \(label): runStage \(genId) answered \(answer.response)")
                continue
            }
            round.answered += 1
            let prompt = FileManager.default.contents(atPath: "\(root)/data/gens/draft/\(genId)/prompt.txt")
            problems.expect(
                prompt.map { String(decoding: $0, as: UTF8.self) } == answer.request.prompt,
                "round \(label): \(genId) was answered before the kill and is not on disk whole"
            )
            problems.expect(logged.contains(genId), "round \(label): \(genId) was answered before the kill, not logged")
        }

        // A new server opens the workspace, answers from the cache what the model had answered,
        // and finishes the job.
        let next = try JobClient(workspace: root, environment: environment)
        let listed = try await next.call("listJobs")
        problems.expect(listed["result"] != nil, "round \(label): the next server answered listJobs with \(listed)")
        problems.expect(
            CrashCampaign.temporaries(root, under: "data/gens").isEmpty,
            "round \(label): the next server left the temporaries of interrupted commits in the gens store"
        )
        var candidates = inventory.answeredByModel
        for (index, pick) in hitPicks.enumerated() where !candidates.isEmpty {
            let source = candidates.remove(at: Int(pick % UInt64(candidates.count)))
            let hit = StageRequest(
                id: 0,
                genId: "hit-\(index)",
                model: source.model,
                prompt: source.prompt,
                force: false
            )
            let response = try await next.call("runStage", hit.params, timeout: .seconds(60))
            problems.expect(
                response["result"]?["metadata"]?["cached"] == true,
                "round \(label): \(source.genId)'s answer is not served from the cache: \(response)"
            )
            round.hits += 1
        }
        let (jobId, _) = try await pipeline.proceed(remains, on: next, problems)
        let final = try await next.waitForState(
            jobId,
            ["done", "failed", "cancelled", "interrupted"],
            timeout: .seconds(120)
        )
        pipeline.checkCompleted(
            final,
            root: root,
            jobId: jobId,
            runsWhenFinished: remains.runsWhenFinished,
            round: label,
            problems
        )
        next.peer.closeInput()
        let status = try await next.peer.exitStatus()
        problems.expect(status == 0, "round \(label): the next server exited with \(status)")
        problems.expect(JobWire.documentOnDisk(root, jobId) == final, "round \(label): the document on disk is behind")

        // After a clean stop everything is whole, and only the temporaries of job folders remain.
        _ = checkFiles(root, round: label + " (after)", problems)
        // Both databases are complete and keep a write-ahead log: a commit is whole in it or ignored.
        for (path, table) in [(cachePath, "responses"), (callsPath, "llm_calls")] {
            let report = try await inspect(path, table: table, query: "PRAGMA journal_mode", copy: false)
            problems.expect(
                report?.integrity == ["ok"] && report?.hasTable == true && report?.values == ["wal"],
                "round \(label) (after): \(path): \(report?.integrity ?? []), \(table) "
                    + "\(report?.hasTable == true ? "there" : "missing"), journal mode \(report?.values ?? [])"
            )
        }
        round.remaining = CrashCampaign.temporaries(root).count
        return (round, runtime)
    }

    @Test("kill -9 during artifact commits, generation commits and SQLite writes: all whole, nothing done twice")
    func killNineWhileWriting() async throws {
        let settings = CrashCampaign.Settings(seed: 0x5EED_0008, rounds: 4)
        let problems = CrashCampaign.Problems()
        var generator = SeededGenerator(seed: settings.seed)
        let clock = ContinuousClock()
        let campaignStart = clock.now
        let mock = try MockModelServer()

        // Round 0, undisturbed: the checks hold without a kill, and the job's run time under the
        // stream's load spans the window the kills are spread over (with a fifth more, so that some
        // land after the job, among the stream's writes alone).
        let (calibration, runtime) = try await Self.round(
            "0",
            mock: mock,
            delay: nil,
            target: nil,
            &generator,
            problems
        )
        #expect(calibration.temporaries == 0, "an undisturbed run left temporaries")
        let window = max(200, Int(runtime / .milliseconds(1)) * 6 / 5)

        var rounds: [Round] = []
        while settings.continues(after: rounds.count, elapsed: clock.now - campaignStart) {
            let target = Self.targets.randomElement(using: &generator)!
            // The job's writes come in its first part; the stream's go on throughout.
            let jobWrite = target == "artifact commit" || target == "status write"
            let delay = Int.random(in: 0...(jobWrite ? window / 2 : window), using: &generator)
            let (round, _) = try await Self.round(
                "\(rounds.count + 1)",
                mock: mock,
                delay: delay,
                target: target,
                &generator,
                problems
            )
            rounds.append(round)
        }

        var writes: [String: Int] = [:]
        var phases: [String: Int] = [:]
        var aims: [String: Int] = [:]
        for round in rounds {
            if let target = round.target { aims[target + (round.hit ? " hit" : " missed"), default: 0] += 1 }
            for write in round.writes { writes[write, default: 0] += 1 }
            if round.writes.isEmpty { writes["between writes", default: 0] += 1 }
            phases[round.phase, default: 0] += 1
        }
        let summary =
            "storage kill -9 campaign (seed \(settings.seed)): \(rounds.count) rounds in \(clock.now - campaignStart), "
            + "undisturbed run \(runtime), kills from 0...\(window) ms into it; "
            + "aimed: \(CrashCampaign.tally(aims)); kills during: \(CrashCampaign.tally(writes)); "
            + "job phases: \(CrashCampaign.tally(phases)); "
            + "runStage answered before the kills: \(rounds.map(\.answered).reduce(0, +)), "
            + "generations committed without their call log row: \(rounds.map(\.unlogged).reduce(0, +)), "
            + "calls logged without their generation: \(rounds.map(\.uncommitted).reduce(0, +)), "
            + "cache hits checked after: \(rounds.map(\.hits).reduce(0, +)); "
            + "temporaries left by the kills: \(rounds.map(\.temporaries).reduce(0, +)), "
            + "still there after the next server: \(rounds.map(\.remaining).reduce(0, +)); "
            + "problems found: \(problems.count)"
        print(summary)
        CrashCampaign.save(
            "storage-crash",
            summary: summary,
            rounds: [calibration.description] + rounds.map(\.description)
        )
        if settings.timeLimit == nil { #expect(rounds.count == settings.rounds, "\(summary)") }
    }

    @Test(
        "databases a kill left half set up (an empty file, a log without tables) are completed by the next server",
        arguments: ["empty file", "no tables"]
    )
    func halfCreatedDatabases(state: String) async throws {
        let mock = try MockModelServer()
        let workspace = try ExampleCopy("daydream", files: Self.workspaceFiles(mock, sizes: [1, 1, 1, 1]))
        defer { workspace.remove() }
        let folder = workspace.root + "/.stagerunner"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["cache.sqlite", "calls.sqlite"] {
            let path = folder + "/" + name
            if state == "empty file" {
                #expect(FileManager.default.createFile(atPath: path, contents: Data()))
            } else {
                // As a kill between setting the journal mode and the first migration leaves it.
                try await onOwnThread {
                    let database = try DatabaseQueue(path: path)
                    try database.writeWithoutTransaction { db in
                        _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                    }
                    try database.close()
                }
            }
        }
        let server = try JobClient(workspace: workspace.root, environment: ["MOCK_API_KEY": MockModelServer.key])
        let first = StageRequest(
            id: 0,
            genId: "a",
            model: "mock:echo",
            prompt: Self.prompt(1, length: 300),
            force: false
        )
        let second = StageRequest(id: 0, genId: "b", model: "mock:echo", prompt: first.prompt, force: false)
        let answer = try await server.call("runStage", first.params)
        #expect(answer["result"]?["status"] == "success", "\(answer)")
        let again = try await server.call("runStage", second.params)
        #expect(again["result"]?["metadata"]?["cached"] == true, "\(again)")
        server.peer.closeInput()
        #expect(try await server.peer.exitStatus() == 0)
        let calls = try await Self.inspect(
            folder + "/calls.sqlite",
            table: "llm_calls",
            query: "SELECT genId FROM llm_calls",
            copy: false
        )
        #expect(calls?.integrity == ["ok"])
        #expect(calls?.values.sorted() == ["a", "b"])
    }
}
