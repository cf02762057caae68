import Foundation
import JSON
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `stagerunner run` and `stagerunner status`, as a shell user sees them: the lines printed when
/// stdout is not a terminal, the exit statuses, Ctrl-C, and following a job another process runs.
@Suite("The run and status commands")
struct RunCommandTests {
    /// What the process printed on stdout so far.
    static func text(_ process: ServerProcess) -> String { String(decoding: process.output.rawBytes, as: UTF8.self) }

    static func lines(_ process: ServerProcess) -> [String] {
        text(process).split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }

    /// Runs the command to its end; returns its exit status and its stdout lines.
    static func run(_ arguments: [String], timeout: Duration = .seconds(90)) async throws -> (Int32, [String], String) {
        let process = try ServerProcess(arguments)
        process.closeInput()
        let status = try await process.exitStatus(timeout: timeout)
        try await process.output.waitForEnd()
        return (status, lines(process), process.standardError)
    }

    /// The research example plus a pipeline whose first task waits (a command stage) until the
    /// test creates the file `release` in the workspace, or 30 s, so that other processes can
    /// watch the job run.
    static func pacedExample() throws -> ExampleCopy {
        try ExampleCopy(
            "research-task",
            files: [
                "tasks/pace.yaml": "stages:\n  ingestion: { command: [python3, pace.py] }\n",
                "tasks/pace.py": """
                import json, os, sys, time
                request = json.load(sys.stdin)
                deadline = time.time() + 300
                while time.time() < deadline and not os.path.exists("../release"):
                    time.sleep(0.02)
                json.dump({"output": request["context"]["output"], "flags": {}}, sys.stdout)

                """,
                "pipelines/paced.yaml": """
                tasks:
                  - name: pace
                    task: ../tasks/pace.yaml
                  - name: summary
                    task: ../tasks/summary.task.yaml

                """,
            ]
        )
    }

    /// Lets the paced job's first task finish.
    static func release(_ example: ExampleCopy) throws {
        try Data().write(to: URL(fileURLWithPath: example.root + "/release"))
    }

    @Test("run prints one line per transition, then the summary and the job's folder; exit 0")
    func plainLines() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        let (status, lines, standardError) = try await Self.run([
            "run", "pipelines/research.pipeline.yaml", "--workspace", example.root,
            "--input-json", #"{"topic": "Tide pools"}"#,
        ])
        #expect(status == 0, "\(standardError)")
        let first = try #require(lines.first)
        let opening = try #require(
            try Regex(#"^\d\d:\d\d:\d\d\.\d{3} job (\S+) \(research\) pending: 2 tasks$"#).wholeMatch(in: first),
            "first line: \(first)"
        )
        let id = try #require(opening.output[1].substring.map(String.init))
        let timed = lines.dropLast(2)
        let stamp = try Regex(#"^\d\d:\d\d:\d\d\.\d{3} "#)
        #expect(timed.allSatisfy { $0.prefixMatch(of: stamp) != nil }, "\(lines)")
        let events = timed.map { String($0.dropFirst(13)) }
        #expect(events[1] == "job running")
        #expect(events.last == "job done")
        for expected in [
            "summary running (attempt 1)", "summary ingestion started (cycle 0)",
            "summary validateStructure started (cycle 0)", "summary critique started (cycle 1)",
            "review running (attempt 1)", "review inference started (cycle 0)",
        ] {
            #expect(events.contains(expected), "missing '\(expected)' in \(events)")
        }
        #expect(events.contains { $0.hasPrefix("summary ingestion completed in ") && $0.hasSuffix(" ms") })
        #expect(events.contains { $0.hasPrefix("summary refining (cycle 1)") })
        #expect(
            events.contains {
                $0.hasPrefix("summary done in ") && $0.contains(": 1 refinement cycle, 4 model calls, ")
            },
            "\(events)"
        )
        // Usage events are not shown: every line names a job, task or stage transition.
        #expect(!events.contains { $0.contains("usage") })
        let order = ["job running", "summary running (attempt 1)", "review running (attempt 1)", "job done"]
        let positions = order.map { events.firstIndex(of: $0) ?? -1 }
        #expect(positions == positions.sorted() && !positions.contains(-1))

        let summary = lines[lines.count - 2]
        #expect(
            try Regex(#"^done: 2/2 tasks done, [\d,]+ tokens, cost \$\d+\.\d{4}, wall \d+(\.\d+)? m?s$"#).wholeMatch(
                in: summary
            ) != nil,
            "summary line: \(summary)"
        )
        let directory = try #require(lines.last)
        #expect(directory.hasPrefix("job directory: /") && directory.hasSuffix("/jobs/\(id)"))
        let document = try #require(example.read("jobs/\(id)/tasks-status.json"))
        let json = try JSONParser.parse(Array(document.utf8))
        #expect(json["state"] == "done")
        #expect(example.read("jobs/\(id)/tasks/review/review.md")?.contains("0.72") == true)
    }

    @Test("on a terminal, run shows a live display redrawn in place, then the summary")
    func liveDisplay() async throws {
        let example = try ExampleCopy("research-task")
        defer { example.remove() }
        // util-linux's script(1) gives the command a pseudo-terminal and copies what it draws.
        let script = "/usr/bin/script"
        try #require(FileManager.default.isExecutableFile(atPath: script), "script(1) from util-linux is needed")
        let command = [
            ServerProcess.binaryPath, "run", "pipelines/research.pipeline.yaml", "--workspace", example.root,
            "--input-json", #"{"topic": "kelp"}"#,
        ].map(TerminalCommandTests.shellQuoted).joined(separator: " ")
        let (status, screen, _) = try await TerminalCommandTests.shell(
            "TERM=xterm COLUMNS=120 \(script) -qec \(TerminalCommandTests.shellQuoted(command)) /dev/null",
            in: example.root
        )
        #expect(status == 0, "\(screen)")
        #expect(screen.contains("\u{1B}[2K"), "each line is cleared before it is drawn")
        #expect(screen.contains("✔ \u{1B}[0msummary") || screen.contains("✔ summary"), "\(screen)")
        #expect(screen.contains("done: 2/2 tasks done, "))
        #expect(screen.contains("job directory: "))
        // No plain transition lines: the terminal gets the display instead.
        #expect(!screen.contains("summary running (attempt 1)\r\n"))
    }

    @Test("run exits 1 when the job fails, naming the task and stage")
    func failingPipeline() async throws {
        // The review's template needs a field the summary does not have.
        let example = try ExampleCopy(
            "research-task",
            files: [
                "tasks/review.task.yaml":
                    "stages:\n  promptTemplating: { template: { text: '{{ input.subtitle }}' } }\n"
            ]
        )
        defer { example.remove() }
        let (status, lines, _) = try await Self.run([
            "run", "pipelines/research.pipeline.yaml", "--workspace", example.root, "--input", #"{"topic": "kelp"}"#,
        ])
        #expect(status == 1)
        #expect(lines.contains { $0.contains(" review failed at promptTemplating: TemplateError: ") }, "\(lines)")
        #expect(lines.contains { $0.hasSuffix(" job failed") })
        #expect(lines[lines.count - 3].hasPrefix("failed: 1/2 tasks done, "))
        #expect(lines[lines.count - 2].hasPrefix("reason: review failed at promptTemplating: TemplateError"))
        #expect(lines.last?.hasPrefix("job directory: ") == true)
    }

    @Test("run exits 2 for a missing pipeline, a broken task file or input that is not JSON")
    func badFiles() async throws {
        let example = try ExampleCopy(
            "research-task",
            files: [
                "pipelines/broken.yaml": "tasks:\n  - task: ../tasks/missing.task.yaml\n",
                "pipelines/unknown.yaml": "name: x\nsteps: []\n",
                "input.json": "{\"topic\": ",
            ]
        )
        defer { example.remove() }
        let cases: [([String], String)] = [
            (["run", "pipelines/none.yaml"], "no such pipeline file"),
            (["run", "pipelines/unknown.yaml"], "steps"),
            (["run", "pipelines/broken.yaml"], "missing.task.yaml"),
            (["run", "pipelines/research.pipeline.yaml", "--input-json", "{topic"], "--input-json is not JSON"),
            (["run", "pipelines/research.pipeline.yaml", "--input", example.root + "/input.json"], "is not JSON"),
            (["run", "pipelines/research.pipeline.yaml", "--input", example.root + "/none.json"], "cannot read"),
        ]
        for (arguments, message) in cases {
            let (status, lines, standardError) = try await Self.run(arguments + ["--workspace", example.root])
            #expect(status == 2, "\(arguments): \(standardError)")
            #expect(standardError.hasPrefix("error: ") && standardError.contains(message), "\(standardError)")
            #expect(lines.isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: example.root + "/jobs"), "no job was started")
    }

    @Test("Ctrl-C cancels the job: the document says cancelled, and run exits 130")
    func interrupt() async throws {
        let example = try Self.pacedExample()
        defer { example.remove() }
        let run = try ServerProcess(["run", "pipelines/paced.yaml", "--workspace", example.root])
        try await eventually("the pace stage to start") {
            Self.text(run).contains("pace ingestion started")
        }
        let started = ContinuousClock.now
        run.signal(SIGINT)
        #expect(try await run.exitStatus() == 130)
        // Generous for a loaded machine; the stage would hold for 300 s.
        #expect(ContinuousClock.now - started < .seconds(120), "the command stage must be stopped, not waited for")
        try await run.output.waitForEnd()
        let lines = Self.lines(run)
        #expect(lines.contains { $0.hasSuffix(" job cancelled: cancelled in pace at ingestion") }, "\(lines)")
        #expect(lines[lines.count - 3].hasPrefix("cancelled: 0/2 tasks done, "))
        #expect(lines[lines.count - 2] == "reason: cancelled in pace at ingestion")
        let id = try #require(lines.last?.split(separator: "/").last.map(String.init))
        let document = try JSONParser.parse(Array(try #require(example.read("jobs/\(id)/tasks-status.json")).utf8))
        #expect(document["state"] == "cancelled")
        #expect(document["tasks"]?["pace"]?["state"] == "cancelled")
        #expect(document["cancelled"]?["stage"] == "ingestion")
    }

    @Test("status shows a job that a server runs; status --watch follows it to its end")
    func statusOfAServersJob() async throws {
        let example = try Self.pacedExample()
        defer { example.remove() }
        let server = try ServerProcess(["serve", "--workspace", example.root, "--log-level", "error"])
        let response = try await server.call(
            1,
            "runPipeline",
            #"{"pipeline":"pipelines/paced.yaml","input":{"topic":"kelp"}}"#
        )
        let id = try #require(response["result"]?["jobId"]?.stringValue, "\(response)")
        let watch = try ServerProcess(["status", id, "--workspace", example.root, "--watch"])

        let (onceStatus, once, _) = try await Self.run(["status", id, "--workspace", example.root])
        #expect(onceStatus == 0)
        #expect(
            try Regex(#"^job \S+ \(paced\): (pending|running), rev \d+$"#).wholeMatch(in: once.first ?? "") != nil,
            "\(once)"
        )
        #expect(once.contains { $0.hasPrefix("  pace ") })
        #expect(once.contains { $0.hasPrefix("  summary ") })
        #expect(once.last?.hasSuffix("/jobs/\(id)") == true)
        try await eventually("status --watch to start") { !Self.lines(watch).isEmpty }
        try Self.release(example)

        #expect(try await watch.exitStatus() == 0, "\(watch.standardError)")
        try await watch.output.waitForEnd()
        let lines = Self.lines(watch)
        #expect(
            try Regex(#"^\d\d:\d\d:\d\d\.\d{3} job \S+ \(paced\) (pending|running) at rev \d+.*$"#).wholeMatch(
                in: lines.first ?? ""
            ) != nil,
            "\(lines)"
        )
        #expect(lines.contains { $0.contains(" pace done in ") }, "\(lines)")
        #expect(lines.contains { $0.contains(" summary running (attempt 1)") }, "\(lines)")
        #expect(lines[lines.count - 3].hasSuffix(" job done"))
        #expect(lines[lines.count - 2].hasPrefix("done: 2/2 tasks done, "))
        #expect(lines.last?.hasSuffix("/jobs/\(id)") == true)

        let (jsonStatus, json, _) = try await Self.run(["status", id, "--workspace", example.root, "--json"])
        #expect(jsonStatus == 0)
        let document = try JSONParser.parse(Array(json.joined(separator: "\n").utf8))
        let onDisk = try JSONParser.parse(Array(try #require(example.read("jobs/\(id)/tasks-status.json")).utf8))
        #expect(document == onDisk)
        #expect(document["state"] == "done")

        let (listStatus, list, _) = try await Self.run(["status", "--workspace", example.root])
        #expect(listStatus == 0)
        #expect(list.contains { $0.hasPrefix("\(id)  paced") && $0.contains("done") }, "\(list)")

        let (missingStatus, _, missing) = try await Self.run([
            "status", "20261122T014501Z-0000", "--workspace", example.root,
        ])
        #expect(missingStatus == 2)
        #expect(missing.contains("no job '20261122T014501Z-0000'"))

        server.closeInput()
        #expect(try await server.exitStatus() == 0)
    }

    @Test("status --watch exits 1 when the job it follows fails")
    func watchFailure() async throws {
        let example = try Self.pacedExample()
        defer { example.remove() }
        try "stages:\n  promptTemplating: { template: { text: '{{ input.subtitle }}' } }\n"
            .write(toFile: example.root + "/tasks/summary.task.yaml", atomically: true, encoding: .utf8)
        let server = try ServerProcess(["serve", "--workspace", example.root, "--log-level", "error"])
        let response = try await server.call(
            1,
            "runPipeline",
            #"{"pipeline":"pipelines/paced.yaml","input":{"topic":"kelp"}}"#
        )
        let id = try #require(response["result"]?["jobId"]?.stringValue, "\(response)")
        let watch = try ServerProcess(["status", id, "--workspace", example.root, "--watch"])
        try await eventually("status --watch to start") { !Self.lines(watch).isEmpty }
        try Self.release(example)
        let status = try await watch.exitStatus(timeout: .seconds(60))
        try await watch.output.waitForEnd()
        let lines = Self.lines(watch)
        #expect(status == 1)
        #expect(lines.contains { $0.contains(" summary failed at promptTemplating: TemplateError") }, "\(lines)")
        #expect(lines[lines.count - 3].hasPrefix("failed: 1/2 tasks done, "))
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
    }
}
