import Foundation
import JSON
import StageEngine
import TestSupport
import Testing

/// The real binary against the mock model server, with a seeded mix of every fault a provider
/// produces, 32 requests in flight: nothing hangs, every request gets exactly one answer, each
/// failure names its cause, retries are recorded, and the server's memory stays flat.
///
/// `make test` runs 300 requests after a warm-up of 100; `STAGERUNNER_FAULT_REQUESTS` widens the
/// campaign and `STAGERUNNER_FAULT_SEED` replays another mix.
@Suite("Provider fault campaign", .serialized)
struct ProviderFaultCampaignTests {
    /// What a fault's request must end in.
    enum Outcome: Sendable {
        /// A generation with this status, after this many retries.
        case success(status: String, retries: Int)
        /// `-32012` whose message is `Model: <provider> could not answer: <kind>: …<detail>…`,
        /// after this many retries.
        case failure(kind: String, detail: String, retries: Int)
    }

    struct Fault: Sendable {
        let name: String
        let weight: Int
        /// The provider (one of the workspace's mock entries) and the model, which selects the fault.
        let provider: String
        let model: @Sendable (_ tag: String) -> String
        let outcome: Outcome
    }

    /// Three attempts on every provider (two retries), one second of `Retry-After` on the 429s,
    /// two attempts of one second on `mockt`, the provider whose calls time out.
    static let faults: [Fault] = [
        Fault(
            name: "ok",
            weight: 20,
            provider: "mock",
            model: { _ in "echo" },
            outcome: .success(status: "success", retries: 0)
        ),
        Fault(
            name: "ok-streamed",
            weight: 10,
            provider: "mocks",
            model: { _ in "echo" },
            outcome: .success(status: "success", retries: 0)
        ),
        Fault(
            name: "slow-ok",
            weight: 8,
            provider: "mock",
            model: { _ in "sleep-300" },
            outcome: .success(status: "success", retries: 0)
        ),
        Fault(
            name: "length",
            weight: 4,
            provider: "mock",
            model: { _ in "long" },
            outcome: .success(status: "truncated", retries: 0)
        ),
        Fault(
            name: "flaky-1",
            weight: 8,
            provider: "mock",
            model: { "flaky-1-\($0)" },
            outcome: .success(status: "success", retries: 1)
        ),
        Fault(
            name: "flaky-2",
            weight: 6,
            provider: "mock",
            model: { "flaky-2-\($0)" },
            outcome: .success(status: "success", retries: 2)
        ),
        Fault(
            name: "ratelimited-once",
            weight: 6,
            provider: "mockr",
            model: { "ratelimited-\($0)" },
            outcome: .success(status: "success", retries: 1)
        ),
        Fault(
            name: "429",
            weight: 5,
            provider: "mockr",
            model: { _ in "fault-429" },
            outcome: .failure(
                kind: "rate_limit",
                detail: "mockr is rate limiting requests (HTTP 429) (retry after 1 s): Rate limit reached",
                retries: 2
            )
        ),
        Fault(
            name: "500",
            weight: 6,
            provider: "mock",
            model: { _ in "fault-500" },
            outcome: .failure(
                kind: "server",
                detail: "mock failed (HTTP 500): internal server error; retry later",
                retries: 2
            )
        ),
        Fault(
            name: "529",
            weight: 5,
            provider: "mock",
            model: { _ in "fault-529" },
            outcome: .failure(kind: "overloaded", detail: "mock is overloaded (HTTP 529): Overloaded", retries: 2)
        ),
        Fault(
            name: "malformed",
            weight: 5,
            provider: "mock",
            model: { _ in "malformed" },
            outcome: .failure(kind: "malformed", detail: "mock sent a malformed answer", retries: 2)
        ),
        Fault(
            name: "reset",
            weight: 5,
            provider: "mocks",
            model: { _ in "reset-stream" },
            outcome: .failure(kind: "network", detail: "mocks", retries: 2)
        ),
        Fault(
            name: "truncated-stream",
            weight: 5,
            provider: "mocks",
            model: { _ in "truncated" },
            outcome: .failure(
                kind: "network",
                detail: "mocks's event stream ended before the answer was complete",
                retries: 2
            )
        ),
        Fault(
            name: "slow-body",
            weight: 3,
            provider: "mockt",
            model: { _ in "slow-body" },
            outcome: .failure(kind: "timeout", detail: "mockt did not answer in time", retries: 1)
        ),
        Fault(
            name: "never",
            weight: 2,
            provider: "mockt",
            model: { _ in "never" },
            outcome: .failure(kind: "timeout", detail: "mockt did not answer in time", retries: 1)
        ),
        Fault(
            name: "context",
            weight: 2,
            provider: "mock",
            model: { _ in "fault-context" },
            outcome: .failure(kind: "context_length", detail: "maximum context length is 8192 tokens", retries: 0)
        ),
        Fault(
            name: "401",
            weight: 2,
            provider: "mock",
            model: { _ in "fault-401" },
            outcome: .failure(kind: "authentication", detail: "mock refused the API key (HTTP 401)", retries: 0)
        ),
    ]

    /// One request of the campaign and what became of it.
    struct Request: Sendable {
        let id: Int
        let fault: Fault
        let genId: String
        let model: String
    }

    struct Answer: Sendable {
        let request: Request
        let response: JSONValue
        let latency: Duration
    }

    static func workspaceFile(_ mock: MockModelServer) -> String {
        let url = mock.url("/v1")
        let retries = "retries: {attempts: 3, baseDelay: 0.05, maxDelay: 0.2, maxRetryAfter: 5}"
        return """
            providers:
              mock: {kind: openai, baseURL: "\(url)", apiKeyEnv: MOCK_API_KEY, timeout: 10, \(retries)}
              mocks: {kind: openai, baseURL: "\(url)", apiKeyEnv: MOCK_API_KEY, streaming: true, timeout: 10, \(retries)}
              mockr: {kind: openai, baseURL: "\(url)", apiKeyEnv: MOCK_API_KEY, timeout: 10, \(retries)}
              mockt: {kind: openai, baseURL: "\(url)", apiKeyEnv: MOCK_API_KEY, timeout: 1, retries: {attempts: 2, baseDelay: 0.05, maxDelay: 0.1}}
            cache: {default: off}
            """
    }

    /// `count` requests drawn from the weighted mix.
    static func plan(_ count: Int, phase: String, firstId: Int, _ generator: inout SeededGenerator) -> [Request] {
        let total = faults.reduce(0) { $0 + $1.weight }
        return (0..<count).map { index in
            var pick = Int.random(in: 0..<total, using: &generator)
            var fault = faults[0]
            for candidate in faults {
                if pick < candidate.weight {
                    fault = candidate
                    break
                }
                pick -= candidate.weight
            }
            let tag = "\(phase)\(index)"
            return Request(
                id: firstId + index,
                fault: fault,
                genId: "\(phase)-\(index)-\(fault.name)",
                model: fault.provider + ":" + fault.model(tag)
            )
        }
    }

    /// Sends `requests` with `inFlight` at a time; each must be answered within `bound`.
    static func drive(
        _ server: ServerProcess,
        _ requests: [Request],
        inFlight: Int,
        bound: Duration
    ) async throws -> [Answer] {
        let next = Locked(0)
        let router = ResponseRouter(server.output)
        return try await withThrowingTaskGroup(of: [Answer].self) { group in
            for _ in 0..<inFlight {
                group.addTask {
                    var answers: [Answer] = []
                    while true {
                        let index = next.withLock { value in
                            defer { value += 1 }
                            return value
                        }
                        guard index < requests.count else { return answers }
                        let request = requests[index]
                        let params =
                            #"{"stage":"draft","genId":"\#(request.genId)","templateId":"systematic-analytical","model":"\#(request.model)","promptText":"campaign request \#(request.id)","cache":"off"}"#
                        let start = ContinuousClock.now
                        server.send(#"{"jsonrpc":"2.0","id":\#(request.id),"method":"runStage","params":\#(params)}"#)
                        let response = try await router.response(id: request.id, timeout: bound)
                        answers.append(
                            Answer(request: request, response: response, latency: ContinuousClock.now - start)
                        )
                    }
                }
            }
            var all: [Answer] = []
            for try await answers in group { all += answers }
            return all.sorted { $0.request.id < $1.request.id }
        }
    }

    /// Checks one answer against its fault's outcome; returns "success" or "failure" for the tally.
    static func check(_ answer: Answer, workspace: String, calls: [String: CallRecord]) -> String {
        let request = answer.request
        let response = answer.response
        let call = calls[request.genId]
        let context = "request \(request.id) (\(request.fault.name), \(request.model))"
        #expect(call != nil, "\(context): no call log record")
        switch request.fault.outcome {
        case .success(let status, let retries):
            let result = response["result"]
            #expect(result?["status"] == .string(status), "\(context): \(response)")
            #expect(result?["metadata"]?["provider"] == .string(request.fault.provider), "\(context)")
            #expect((result?["metadata"]?["retries"]?.integerValue ?? 0) == Int64(retries), "\(context): retries")
            #expect(call?.retries == retries, "\(context): call log retries")
            #expect(call?.status == status, "\(context): call log status")
            var files: [JSONValue] = []
            if case .array(let elements)? = result?["files"] { files = elements }
            #expect(files.count == 4, "\(context): files \(files)")
            for file in files {
                let path = workspace + "/" + (file.stringValue ?? "")
                #expect(FileManager.default.fileExists(atPath: path), "\(context): \(path) is missing")
            }
            return result == nil ? "failure" : "success"
        case .failure(let kind, let detail, let retries):
            let error = response["error"]
            let message = error?["message"]?.stringValue ?? ""
            #expect(error?["code"] == -32012, "\(context): \(response)")
            #expect(error?["data"]?["kind"] == .string(kind), "\(context)")
            #expect(error?["data"]?["provider"] == .string(request.fault.provider), "\(context)")
            #expect(error?["data"]?["retries"] == .integer(Int64(retries)), "\(context)")
            #expect(call?.errorKind == kind, "\(context): call log errorKind")
            let prefix = "Model: \(request.fault.provider) could not answer: \(kind): "
            #expect(message.hasPrefix(prefix), "\(context): \(message)")
            #expect(message.contains(detail), "\(context): \(message)")
            let suffix = retries == 0 ? "" : " (after \(retries) \(retries == 1 ? "retry" : "retries"))"
            if retries == 0 {
                #expect(!message.contains("(after "), "\(context): not retried: \(message)")
            } else {
                #expect(message.hasSuffix(suffix), "\(context): \(message)")
            }
            #expect(call?.status == "error", "\(context): call log status")
            #expect(call?.retries == retries, "\(context): call log retries")
            #expect(call?.error?.contains(detail) == true, "\(context): call log error \(call?.error ?? "nil")")
            let directory = workspace + "/data/gens/draft/" + request.genId
            #expect(!FileManager.default.fileExists(atPath: directory), "\(context): a failed call left \(directory)")
            return error == nil ? "success" : "failure"
        }
    }

    @Test("a seeded mix of provider faults, 32 in flight: no hang, no lost result, causes named, memory flat")
    func campaign() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = UInt64(environment["STAGERUNNER_FAULT_SEED"] ?? "") ?? 0x5EED_0004
        let count = Int(environment["STAGERUNNER_FAULT_REQUESTS"] ?? "") ?? 300
        let warmUpCount = max(100, count / 3)
        let inFlight = 32
        // The slowest outcome takes three attempts behind 429 pauses of a second each: 30 s means hung.
        let bound: Duration = .seconds(30)
        var generator = SeededGenerator(seed: seed)

        let mock = try MockModelServer()
        let example = try ExampleCopy("daydream", files: ["stagerunner.yaml": Self.workspaceFile(mock)])
        defer { example.remove() }
        let server = try ServerProcess(
            ["serve", "--workspace", example.root, "--log-level", "error", "--enable-test-methods"],
            // Every allocation in glibc's main arena, where test/heap counts it.
            environment: ["MOCK_API_KEY": MockModelServer.key, "MALLOC_ARENA_MAX": "1"]
        )
        func heapInUse(_ id: Int) async throws -> Int {
            let bytes = Int(try #require(try await server.call(id, "test/heap")["result"]?["inUse"]?.integerValue))
            try #require(bytes > 0, "test/heap counts nothing on this system")
            return bytes
        }
        let clock = ContinuousClock()
        let start = clock.now

        // The warm-up: the same mix, so that every path has allocated what it keeps.
        let warmUp = Self.plan(warmUpCount, phase: "w", firstId: 1, &generator)
        let warmUpAnswers = try await Self.drive(server, warmUp, inFlight: inFlight, bound: bound)
        let afterWarmUp = try #require(ProcessFigures(pid: server.pid))
        let heapAfterWarmUp = try await heapInUse(1_000_001)

        let requests = Self.plan(count, phase: "c", firstId: 100_000, &generator)
        let campaignStart = clock.now
        let answers = try await Self.drive(server, requests, inFlight: inFlight, bound: bound)
        let campaignTime = clock.now - campaignStart
        let afterCampaign = try #require(ProcessFigures(pid: server.pid))
        let heapAfterCampaign = try await heapInUse(1_000_002)

        #expect(try await server.call(1_000_000, "ping")["result"] == [:], "the server still answers")
        server.closeInput()
        #expect(try await server.exitStatus(timeout: .seconds(30)) == 0)
        try await server.output.waitForEnd()

        // Exactly one answer per request, and none to a request nobody sent.
        let sent = Set((warmUp + requests).map { Int64($0.id) } + [1_000_000, 1_000_001, 1_000_002])
        var answered: [Int64: Int] = [:]
        for message in server.output.messages {
            guard let id = message["id"]?.integerValue else { continue }
            answered[id, default: 0] += 1
        }
        #expect(Set(answered.keys) == sent, "answers to unknown ids or requests without one")
        #expect(answered.values.allSatisfy { $0 == 1 }, "a request answered twice")
        #expect(server.output.problems.isEmpty, "\(server.output.problems)")

        // The cause of every outcome, in the answer, on disk and in the call log.
        let log = try CallLog(path: example.root + "/.stagerunner/calls.sqlite")
        let records = try await log.recent(limit: 1_000_000)
        #expect(records.count == warmUp.count + requests.count, "one call log record per request")
        let calls = Dictionary(records.map { ($0.genId, $0) }) { first, _ in first }
        var tally: [String: [String: Int]] = [:]
        for answer in warmUpAnswers + answers {
            let outcome = Self.check(answer, workspace: example.root, calls: calls)
            if answer.request.id >= 100_000 { tally[answer.request.fault.name, default: [:]][outcome, default: 0] += 1 }
        }

        // Memory: the campaign after the warm-up. The mix's paths have allocated what they keep
        // during the warm-up, so what is left is per-request state that outlives its request.
        // 20 MB is 68 KB for each of 300 requests: a leaked response, connection or task per
        // request shows above it, allocator noise (arenas of 32 threads) stays below.
        let growth = afterCampaign.rssKB - afterWarmUp.rssKB
        #expect(growth < 20 * 1024, "RSS grew by \(growth) KB over the campaign")

        let latencies = answers.map(\.latency).sorted()
        let retried = records.filter { $0.retries > 0 }.count
        var lines = [
            "Provider fault campaign: seed 0x\(String(seed, radix: 16)), \(count) requests (+\(warmUpCount) warm-up), \(inFlight) in flight"
        ]
        for fault in Self.faults {
            let counts = tally[fault.name] ?? [:]
            let expected: String
            switch fault.outcome {
            case .success(let status, let retries): expected = "\(status), \(retries) retries"
            case .failure(let kind, _, let retries): expected = "\(kind), \(retries) retries"
            }
            lines.append(
                "  \(fault.name): \(counts["success"] ?? 0) succeeded, \(counts["failure"] ?? 0) failed (expected \(expected))"
            )
        }
        lines.append("  call log: \(records.count) records, \(retried) with retries")
        lines.append(
            "  campaign \(campaignTime), latency median \(latencies[latencies.count / 2]), max \(latencies.last!), total \(clock.now - start)"
        )
        lines.append(
            "  server: RSS \(afterWarmUp.rssKB) KB after warm-up -> \(afterCampaign.rssKB) KB after campaign, heap in use \(heapAfterWarmUp / 1024) -> \(heapAfterCampaign / 1024) KB, fds \(afterWarmUp.fds) -> \(afterCampaign.fds), threads \(afterWarmUp.threads) -> \(afterCampaign.threads)"
        )
        print(lines.joined(separator: "\n"))
    }
}

/// A process's resident set (now and at its peak), open file descriptors and threads, from `/proc`.
struct ProcessFigures: Sendable, CustomStringConvertible {
    var rssKB: Int
    var peakKB: Int
    var fds: Int
    var threads: Int

    /// Nil when the process is gone.
    init?(pid: pid_t) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        else { return nil }
        func field(_ name: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else {
                return nil
            }
            return Int(line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        guard let rss = field("VmRSS"), let peak = field("VmHWM"), let threads = field("Threads") else { return nil }
        rssKB = rss
        peakKB = peak
        fds = descriptors.count
        self.threads = threads
    }

    var description: String { "RSS \(rssKB) KB, \(fds) fds, \(threads) threads" }
}
