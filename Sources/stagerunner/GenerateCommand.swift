import ArgumentParser
import Foundation
import JSON
import Logging
import ModelProviders
import StageEngine
import StatusDisplay
import Synchronization

/// `stagerunner generate`: runs a cohort, a stage of it or given generations through the same
/// engine call as `runStage`, with a live progress display.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate the membership's generations: a cohort, a stage of it, or given gen ids.",
        discussion: """
            Each generation runs as 'runStage' runs it: its template rendered strictly, the model \
            called, the answer parsed and committed to data/gens/<stage>/<gen_id>/. Drafts run \
            first, then essays, then evaluations. Generations committed before are reused (no \
            call), so a run that stopped continues where it was; --force generates the selected \
            ones again.

            On a terminal a progress line shows done, failed and reused generations, tokens, cost, \
            rate and time left. Otherwise each generation is one line: \
            '12:00:01.123 draft d-1 success 1,234 tokens $0.0012 2.10 s'; with --json one JSON \
            object per generation and a last {"summary": …}.

            --dry-run calls nothing: it renders every prompt, checks every template, parser and \
            model (its provider configured and its key set), and prints what would be generated or \
            reused with a token and cost range (answers of up to 4,096 tokens unless capped).

            Exit status: 0 when every selected generation succeeded (for --dry-run: no problems), \
            1 when one failed, was skipped or has a problem, 2 for a wrong option, gen id or \
            cohort, 130 when interrupted (Ctrl-C stops the run; what was committed stays).

            Examples:
              stagerunner generate --cohort demo --workspace examples/daydream
              stagerunner generate --cohort demo --stage evaluation --dry-run
              stagerunner generate --gen-id d-creative --force --json
            """
    )

    @OptionGroup var select: SelectionOptions

    @Option(help: "Generations under way at once.")
    var concurrency = 8

    @Flag(help: "Generate the selected generations again even when they exist.")
    var force = false

    @Flag(help: "Render and check everything, estimate tokens and cost, call nothing.")
    var dryRun = false

    @Flag(help: "JSON output: one object per generation, then the summary.")
    var json = false

    @Flag(help: "One line per generation even on a terminal.")
    var plain = false

    @OptionGroup var workspaceOption: WorkspaceOption

    @OptionGroup var logging: LogLevelOption

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
    }

    func run() async throws {
        CommandSupport.startProcess(logLevel: logging.logLevel ?? .error)
        let engine = try CommandSupport.engine(workspaceOption)
        let rows = try await select.rows(engine)
        if dryRun {
            let plan = await engine.dryRun(rows, force: force)
            json ? CommandSupport.print(plan.json) : Self.show(plan)
            if plan.problems > 0 { throw ExitCode(1) }
            return
        }
        let started = ContinuousClock.now
        let progress = CohortProgress(
            total: rows.count,
            mode: json ? .json : (Output.isTerminal && !plain ? .live : .lines),
            started: started
        )
        let options = CohortRunOptions(concurrency: concurrency, force: force)
        let work = Task { await engine.generate(rows, options: options) { progress.record($0) } }
        let interrupts = InterruptHandler {
            progress.note("stopping: generations under way are cancelled (Ctrl-C again to quit at once)")
            work.cancel()
        }
        let summary = await work.value
        progress.finish()
        let wall = Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6
        if json {
            CommandSupport.print(["summary": summary.json], compact: true)
        } else {
            Output.line(Self.summaryLine(summary, wall: wall))
        }
        withExtendedLifetime(interrupts) {}
        if interrupts.count > 0 { throw ExitCode(130) }
        if !summary.allSucceeded { throw ExitCode(1) }
    }

    /// `done: 10 generations, 8 succeeded (2 reused), 1 failed, 1 skipped; 1,234 tokens, $0.0012, 4.20 s`.
    static func summaryLine(_ summary: CohortRunSummary, wall: Double) -> String {
        var parts = ["\(summary.succeeded) succeeded (\(summary.reused) reused)"]
        if summary.failed > 0 { parts.append("\(summary.failed) failed") }
        if summary.skipped > 0 { parts.append("\(summary.skipped) skipped") }
        if summary.cancelled > 0 { parts.append("\(summary.cancelled) cancelled") }
        var cost = Format.cost(summary.cost)
        if summary.unpricedCalls > 0 { cost += " (+\(summary.unpricedCalls) calls unpriced)" }
        let noun = summary.selected == 1 ? "generation" : "generations"
        return "\(summary.allSucceeded ? "done" : "incomplete"): \(summary.selected) \(noun), "
            + parts.joined(separator: ", ")
            + "; \(Format.count(summary.tokens)) tokens, \(cost), \(Format.duration(wall))"
    }

    /// The dry run as a table, each problem and warning on its own line, then the totals.
    static func show(_ plan: CohortDryRun) {
        var table = TextTable(
            ["gen id", "stage", "template", "model", "action", "prompt tokens", "cost"],
            rightAligned: [5, 6]
        )
        for item in plan.items {
            let tokens =
                item.action != .generate
                ? ""
                : item.promptTokens == item.promptTokensHigh
                    ? Format.count(item.promptTokens)
                    : "\(Format.count(item.promptTokens))–\(Format.count(item.promptTokensHigh))"
            var cost = ""
            if item.action == .generate {
                cost =
                    item.costLow.map { low in "\(Format.cost(low))–\(Format.cost(item.costHigh ?? low))" } ?? "unpriced"
            }
            table.add([
                item.row.genId, item.row.stage.rawValue, item.row.templateId,
                (item.row.llmModelId ?? "-") + (item.provider.map { " (\($0))" } ?? ""),
                item.problems.isEmpty ? item.action.rawValue : "error", tokens, cost,
            ])
        }
        table.lines.forEach(Output.line)
        for item in plan.items {
            for problem in item.problems { Output.line("error: \(item.row.genId): \(problem)") }
            for warning in item.warnings { Output.line("warning: \(item.row.genId): \(warning)") }
        }
        var cost = "\(Format.cost(plan.cost.lowerBound))–\(Format.cost(plan.cost.upperBound))"
        if plan.unpricedCalls > 0 { cost += " (+\(plan.unpricedCalls) calls unpriced)" }
        let tokens =
            plan.promptTokens.lowerBound == plan.promptTokens.upperBound
            ? Format.count(plan.promptTokens.lowerBound)
            : "\(Format.count(plan.promptTokens.lowerBound))–\(Format.count(plan.promptTokens.upperBound))"
        Output.line(
            "dry run: \(plan.items.count) generations, \(plan.calls) model calls, \(plan.reused) reused; "
                + "prompts \(tokens) tokens, answers up to \(Format.count(plan.answerTokens)) tokens; "
                + "cost \(cost); \(plan.problems) problem\(plan.problems == 1 ? "" : "s")"
        )
    }
}

/// What `generate` shows while it runs: a progress line redrawn in place on a terminal, a line
/// per generation otherwise, or JSON objects.
final class CohortProgress: Sendable {
    enum Mode { case live, lines, json }

    struct State {
        var finished = 0
        var succeeded = 0
        var reused = 0
        var failed = 0
        var tokens = 0
        var cost = 0.0
        var lastDraw: ContinuousClock.Instant?
        var drawn = false
    }

    let total: Int
    let mode: Mode
    let started: ContinuousClock.Instant
    let state = Mutex(State())

    init(total: Int, mode: Mode, started: ContinuousClock.Instant) {
        self.total = total
        self.mode = mode
        self.started = started
    }

    func record(_ event: CohortRunEvent) {
        state.withLock { state in
            var line: String?
            switch event {
            case .started: return
            case .finished(let row, let result):
                state.finished += 1
                let tokens =
                    result.reused ? 0 : result.metadata.tokens ?? 0
                let cost = result.reused ? 0 : result.metadata.costUsd ?? 0
                state.tokens += tokens
                state.cost += cost
                if result.reused { state.reused += 1 }
                if result.status == .success { state.succeeded += 1 } else { state.failed += 1 }
                switch mode {
                case .json: line = Self.json(row, result).description
                case .lines:
                    var text = "\(row.stage.rawValue) \(row.genId) \(result.status.rawValue)"
                    if result.reused {
                        text += " reused"
                    } else if result.metadata.mode == .llm {
                        let price = result.metadata.costUsd.map(Format.cost) ?? "unpriced"
                        text +=
                            " \(Format.count(tokens)) tokens \(price) \(Format.duration(result.metadata.durationMs / 1000))"
                    } else {
                        text += " copied"
                    }
                    line = "\(Format.timeOfDay()) \(text)" + result.warnings.map { " (warning: \($0))" }.joined()
                case .live:
                    if result.status != .success {
                        line =
                            "\(row.stage.rawValue) \(row.genId): \(result.status.rawValue)"
                            + (result.llmError.map { " (\($0))" } ?? "")
                    } else if !result.warnings.isEmpty {
                        line = "\(row.stage.rawValue) \(row.genId): warning: " + result.warnings.joined(separator: "; ")
                    }
                }
            case .failed(let row, let error):
                state.finished += 1
                state.failed += 1
                line =
                    mode == .json
                    ? JSONValue.object([
                        "genId": .string(row.genId), "stage": .string(row.stage.rawValue), "state": "error",
                        "error": .object(["kind": .string(error.kind.rawValue), "message": .string(error.message)]),
                    ]).description
                    : "\(mode == .lines ? Format.timeOfDay() + " " : "")\(row.stage.rawValue) \(row.genId) failed: \(error.message)"
            case .skipped(let row, let reason):
                state.finished += 1
                state.failed += 1
                line =
                    mode == .json
                    ? JSONValue.object([
                        "genId": .string(row.genId), "stage": .string(row.stage.rawValue), "state": "skipped",
                        "reason": .string(reason),
                    ]).description
                    : "\(mode == .lines ? Format.timeOfDay() + " " : "")\(row.stage.rawValue) \(row.genId) skipped: \(reason)"
            }
            guard mode == .live else {
                if let line { Output.line(line) }
                return
            }
            // Lines go above the progress line, which is drawn again under them.
            let now = ContinuousClock.now
            let due = state.lastDraw.map { now - $0 > .milliseconds(100) } ?? true
            guard line != nil || due || state.finished == total else { return }
            state.lastDraw = now
            Output.write("\r\u{1B}[2K" + (line.map { $0 + "\n" } ?? "") + bar(state, now: now))
            state.drawn = true
        }
    }

    /// A note for the user (on a terminal, above the progress line).
    func note(_ text: String) {
        state.withLock { state in
            guard mode == .live else {
                Output.error(text)
                return
            }
            Output.write("\r\u{1B}[2K\(text)\n" + bar(state, now: .now))
        }
    }

    /// Ends the progress line.
    func finish() {
        state.withLock { state in
            guard mode == .live else { return }
            Output.write("\r\u{1B}[2K" + bar(state, now: .now) + "\n")
        }
    }

    /// `[█████░░░░░] 5/10  ✔ 4  ↺ 1  ✘ 0  1,234 tokens  $0.0012  2.5/s  ETA 2.00 s`.
    func bar(_ state: State, now: ContinuousClock.Instant) -> String {
        let width = 20
        let filled = total == 0 ? width : width * state.finished / total
        let elapsed = Double((now - started) / .microseconds(1)) / 1e6
        let rate = elapsed > 0 ? Double(state.finished) / elapsed : 0
        var text = "[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "] "
        text += "\(state.finished)/\(total)  done \(state.succeeded)  reused \(state.reused)  failed \(state.failed)  "
        text += "\(Format.count(state.tokens)) tokens  \(Format.cost(state.cost))  " + String(format: "%.1f/s", rate)
        if rate > 0 && state.finished < total {
            text += "  ETA " + Format.duration(Double(total - state.finished) / rate)
        }
        return text
    }

    static func json(_ row: MembershipRow, _ result: StageResult) -> JSONValue {
        var members: [String: JSONValue] = [
            "genId": .string(row.genId),
            "stage": .string(row.stage.rawValue),
            "state": .string(result.status.rawValue),
            "reused": .bool(result.reused),
        ]
        if let score = result.score { members["score"] = .double(score) }
        if !result.warnings.isEmpty { members["warnings"] = .array(result.warnings.map(JSONValue.string)) }
        if !result.reused {
            if let tokens = result.metadata.tokens {
                members["tokens"] = .integer(Int64(tokens))
            }
            if let cost = result.metadata.costUsd { members["costUsd"] = .double(cost) }
        }
        return .object(members)
    }
}
