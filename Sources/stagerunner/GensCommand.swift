import ArgumentParser
import Foundation
import JSON
import Logging
import ModelProviders
import StageEngine
import StatusDisplay

/// `stagerunner gens`: the generations of the workspace, listed or one shown in full.
struct GensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gens",
        abstract: "List generations, or show one: prompt, answer, parsed output, metadata, calls, family.",
        subcommands: [ListGens.self, ShowGen.self],
        defaultSubcommand: ListGens.self
    )
}

/// `stagerunner gens list`.
struct ListGens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the membership's generations with their state, score, tokens and cost.",
        discussion: """
            A generation not generated yet is 'pending'; the others show their status (success, \
            parser_failure, json_parse_error, stub_fallback, truncated). Without --cohort, --gen-id, \
            --template or --model, generations committed outside the membership are listed too.

            Examples:
              stagerunner gens --cohort demo
              stagerunner gens --stage evaluation --sort score --json
              stagerunner gens --status pending --status parser_failure
            """
    )

    enum SortKey: String, ExpressibleByArgument, CaseIterable {
        case stage, genId = "gen-id", score, tokens, cost, created, state
    }

    @OptionGroup var select: SelectionOptions

    @Option(help: "Only generations in this state (repeat for more): pending, success, parser_failure, …")
    var status: [String] = []

    @Option(help: "Order: stage (pipeline order, the default), gen-id, score, tokens, cost, created or state.")
    var sort: SortKey = .stage

    @Flag(help: "Print a JSON array of the records.")
    var json = false

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        let engine = try CommandSupport.engine(workspaceOption)
        var records: [GenerationRecord]
        do {
            records = try await engine.generations(select.selection, states: Set(status))
        } catch {
            throw CommandSupport.usageFailure(error.message)
        }
        records = Self.sorted(records, by: sort)
        if json {
            CommandSupport.print(.array(records.map(\.json)))
            return
        }
        var table = TextTable(
            ["gen id", "stage", "cohort", "template", "model", "state", "score", "tokens", "cost"],
            rightAligned: [6, 7, 8]
        )
        for record in records {
            table.add([
                record.genId, record.stage.rawValue, record.cohortId ?? "-", record.templateId, record.model ?? "-",
                record.state, record.score.map { String(format: "%.2f", $0) } ?? "",
                record.tokens.map(Format.count) ?? "", (record.metadata?.costUsd).map(Format.cost) ?? "",
            ])
        }
        table.lines.forEach(Output.line)
        let states = Dictionary(grouping: records, by: \.state).map { "\($1.count) \($0)" }.sorted()
        Output.line(
            "\(records.count) generation\(records.count == 1 ? "" : "s")" + (states.isEmpty ? "" : ": ")
                + states.joined(separator: ", ")
        )
    }

    /// Stable: equal keys keep pipeline order; missing values last.
    static func sorted(_ records: [GenerationRecord], by key: SortKey) -> [GenerationRecord] {
        func number(_ record: GenerationRecord) -> Double? {
            switch key {
            case .score: return record.score
            case .tokens: return record.tokens.map(Double.init)
            case .cost: return record.metadata?.costUsd
            default: return nil
            }
        }
        let indexed = Array(records.enumerated())
        return indexed.sorted { left, right in
            let (a, b) = (left.element, right.element)
            switch key {
            case .stage: break
            case .genId: if a.genId != b.genId { return a.genId < b.genId }
            case .state: if a.state != b.state { return a.state < b.state }
            case .created:
                let (x, y) = (a.metadata?.createdAt ?? "~", b.metadata?.createdAt ?? "~")
                if x != y { return x < y }
            case .score, .tokens, .cost:
                // Highest first, as a leaderboard.
                switch (number(a), number(b)) {
                case (let x?, let y?) where x != y: return x > y
                case (.some, nil): return true
                case (nil, .some): return false
                default: break
                }
            }
            return left.offset < right.offset
        }.map(\.element)
    }
}

/// `stagerunner gens show <gen-id>`.
struct ShowGen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one generation: prompt, raw answer, parsed output, metadata, calls, parent and children.",
        discussion: """
            Examples:
              stagerunner gens show d-creative
              stagerunner gens show v-creative-llm-novelty --json
            """
    )

    @Argument(help: "The generation's gen id.")
    var genId: String

    @Flag(help: "Print the generation as one JSON object.")
    var json = false

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        let engine = try CommandSupport.engine(workspaceOption)
        let detail: GenerationDetail
        do {
            detail = try await engine.generation(genId)
        } catch {
            throw CommandSupport.usageFailure(error.message)
        }
        if json {
            CommandSupport.print(detail.json)
            return
        }
        let record = detail.record
        let metadata = record.metadata
        var facts: [(String, String)] = [
            ("gen id", record.genId),
            ("stage", record.stage.rawValue + (record.inMembership ? "" : " (not in the membership)")),
        ]
        if let cohort = record.cohortId {
            facts.append(("cohort", cohort + (record.comboId.map { ", combo \($0)" } ?? "")))
        }
        facts.append(("template", record.templateId))
        facts.append(("model", (record.model ?? "-") + (metadata?.provider.map { " via \($0)" } ?? "")))
        facts.append(("state", record.state + (record.score.map { String(format: ", score %.2f", $0) } ?? "")))
        if let metadata {
            if let usage = metadata.usage {
                facts.append(
                    (
                        "tokens",
                        "\(Format.count(usage.promptTokens)) prompt + \(Format.count(usage.completionTokens)) completion"
                    )
                )
            } else if let estimate = metadata.usageEstimate {
                facts.append(("tokens", "about \(Format.count(estimate)) (estimated: the provider reported none)"))
            }
            facts.append(("cost", metadata.costUsd.map(Format.cost) ?? (metadata.mode == .llm ? "unknown" : "none")))
            facts.append(
                (
                    "created",
                    "\(metadata.createdAt), \(Format.duration(metadata.durationMs / 1000)), run \(metadata.runId)"
                )
            )
            if let error = metadata.llmError { facts.append(("parse error", error)) }
        }
        facts.append(("parent", detail.parent.map { "\($0.genId) (\($0.stage.rawValue), \($0.state))" } ?? "-"))
        facts.append(
            (
                "children",
                detail.children.isEmpty
                    ? "-" : detail.children.map { "\($0.genId) (\($0.state))" }.joined(separator: ", ")
            )
        )
        facts.append(("folder", record.directory))
        for (label, value) in facts { Output.line(label.padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        for (title, text) in [("prompt", detail.prompt), ("raw", detail.raw), ("parsed", detail.parsed)] {
            guard let text else { continue }
            Output.line("\n── \(title) " + String(repeating: "─", count: 40))
            Output.line(text.hasSuffix("\n") ? String(text.dropLast()) : text)
        }
        Output.line("\n── calls (\(detail.calls.count)) " + String(repeating: "─", count: 36))
        var table = TextTable(
            ["created", "status", "model", "provider", "tokens", "cost", "latency", "retries", "error"],
            rightAligned: [4, 5, 6, 7]
        )
        for call in detail.calls {
            let tokens = (call.promptTokens ?? 0) + (call.completionTokens ?? 0)
            table.add([
                call.createdAt, call.status + (call.cached ? " (cached)" : ""), call.model, call.provider,
                call.promptTokens == nil && call.completionTokens == nil ? "" : Format.count(tokens),
                call.costUsd.map(Format.cost) ?? "", Format.duration(call.latencyMs / 1000), "\(call.retries)",
                call.error ?? "",
            ])
        }
        table.lines.forEach(Output.line)
    }
}
