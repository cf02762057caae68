import Foundation
import JSON
import Jinja
import ModelProviders

/// How ``WorkspaceEngine/generate(_:options:events:)`` runs a selection of generations.
public struct CohortRunOptions: Sendable, Hashable {
    /// Generations under way at once.
    public var concurrency: Int
    /// Regenerate the selected generations even when they exist (their missing parents outside
    /// the selection are generated, existing ones reused).
    public var force: Bool
    /// Groups the run's calls in metadata and the call log; a fresh id by default.
    public var runId: String?

    public init(concurrency: Int = 8, force: Bool = false, runId: String? = nil) {
        self.concurrency = concurrency
        self.force = force
        self.runId = runId
    }
}

/// What happens to each generation of a cohort run, as it happens.
public enum CohortRunEvent: Sendable {
    case started(MembershipRow)
    /// Generated, or reused when it was committed before (``StageResult/reused``).
    case finished(MembershipRow, StageResult)
    case failed(MembershipRow, StageError)
    /// Not run: its parent failed in this run.
    case skipped(MembershipRow, reason: String)
}

/// The tally of a cohort run.
public struct CohortRunSummary: Sendable, Hashable {
    public var selected = 0
    /// Committed with status `success`, generated now or reused.
    public var succeeded = 0
    /// Of those finished, the ones reused as they were (no call).
    public var reused = 0
    /// Errors, and generations committed with another status (`parser_failure`, `truncated`, …).
    public var failed = 0
    public var skipped = 0
    /// Not finished because the run was cancelled.
    public var cancelled = 0
    /// Tokens of the calls made now (provider-reported, else estimated).
    public var tokens = 0
    public var cost = 0.0
    /// Calls made now whose cost is unknown.
    public var unpricedCalls = 0

    /// Whether every selected generation ended with status `success`.
    public var allSucceeded: Bool { succeeded == selected }
}

/// What a run of the selection would do, found without calling anything.
public struct CohortDryRun: Sendable {
    /// Output tokens assumed for an answer when nothing caps it (what the providers send as
    /// `max_tokens` when a request names none).
    public static let assumedAnswerTokens = 4096

    /// One generation's plan.
    public struct Item: Sendable, Hashable {
        public enum Action: String, Sendable, Hashable {
            /// A model call.
            case generate
            /// Committed already: reused, no call.
            case reuse
            /// A copy essay: the draft's parsed text, no call.
            case copy
        }

        public var row: MembershipRow
        public var action: Action
        public var provider: String?
        /// The rendered prompt's tokens (four bytes a token); with a parent not generated yet,
        /// counted with an empty parent text.
        public var promptTokens = 0
        /// Plus the parent's longest answer, when the parent is not generated yet.
        public var promptTokensHigh = 0
        /// The longest answer allowed.
        public var answerTokens = 0
        /// Cost with empty answers, and with answers of `answerTokens`; nil when the price is unknown.
        public var costLow: Double?
        public var costHigh: Double?
        /// What would make the generation fail: each names the file or setting to fix.
        public var problems: [String] = []
        public var warnings: [String] = []
    }

    public var items: [Item]

    public var calls: Int { items.filter { $0.action == .generate }.count }
    public var reused: Int { items.filter { $0.action == .reuse }.count }
    public var problems: Int { items.reduce(0) { $0 + $1.problems.count } }
    public var promptTokens: ClosedRange<Int> {
        let calls = items.filter { $0.action == .generate }
        return calls.reduce(0) { $0 + $1.promptTokens }...calls.reduce(0) { $0 + $1.promptTokensHigh }
    }
    public var answerTokens: Int { items.filter { $0.action == .generate }.reduce(0) { $0 + $1.answerTokens } }
    /// The cost range of the calls whose price is known.
    public var cost: ClosedRange<Double> {
        let calls = items.filter { $0.action == .generate }
        return calls.reduce(0) { $0 + ($1.costLow ?? 0) }...calls.reduce(0) { $0 + ($1.costHigh ?? 0) }
    }
    /// Calls whose price is unknown (not in ``cost``).
    public var unpricedCalls: Int { items.filter { $0.action == .generate && $0.costHigh == nil }.count }
}

extension WorkspaceEngine {
    /// Runs the rows stage by stage (drafts, essays, evaluations), up to `concurrency` at once,
    /// each through ``run(_:)`` as `runStage` runs it: committed generations are reused unless
    /// `force`, so a run that stopped resumes where it was. A generation whose parent failed in
    /// this run is skipped. Cancelling the calling task stops the run: generations under way are
    /// cancelled (nothing half-committed) and the rest are counted as cancelled.
    public func generate(
        _ rows: [MembershipRow],
        options: CohortRunOptions = CohortRunOptions(),
        events: @escaping @Sendable (CohortRunEvent) -> Void = { _ in }
    ) async -> CohortRunSummary {
        var summary = CohortRunSummary(selected: rows.count)
        let runId = options.runId ?? UUID().uuidString.lowercased()
        var failedIds: Set<String> = []
        for stage in GenerationStage.allCases {
            let wave = rows.filter { $0.stage == stage }
            var next = wave.startIndex
            await withTaskGroup(of: (MembershipRow, Result<StageResult, StageError>).self) { group in
                var running = 0
                while true {
                    while running < max(1, options.concurrency) && next < wave.endIndex && !Task.isCancelled {
                        let row = wave[next]
                        next += 1
                        if let parent = row.parentGenId, failedIds.contains(parent) {
                            summary.skipped += 1
                            failedIds.insert(row.genId)
                            events(.skipped(row, reason: "its parent \(parent) failed"))
                            continue
                        }
                        running += 1
                        events(.started(row))
                        group.addTask {
                            var spec = StageRunSpec(stage: row.stage, genId: row.genId)
                            spec.force = options.force
                            spec.runId = runId
                            do throws(StageError) {
                                return (row, .success(try await self.run(spec)))
                            } catch {
                                return (row, .failure(error))
                            }
                        }
                    }
                    guard let (row, outcome) = await group.next() else { break }
                    running -= 1
                    switch outcome {
                    case .success(let result):
                        if result.status == .success {
                            summary.succeeded += 1
                        } else {
                            summary.failed += 1
                            failedIds.insert(row.genId)
                        }
                        if result.reused {
                            summary.reused += 1
                        } else if result.metadata.mode == .llm {
                            summary.tokens += result.metadata.tokens ?? 0
                            if let cost = result.metadata.costUsd {
                                summary.cost += cost
                            } else {
                                summary.unpricedCalls += 1
                            }
                        }
                        events(.finished(row, result))
                    case .failure(let error) where error.kind == .cancelled:
                        summary.cancelled += 1
                        failedIds.insert(row.genId)
                    case .failure(let error):
                        summary.failed += 1
                        failedIds.insert(row.genId)
                        events(.failed(row, error))
                    }
                }
            }
            // Cancelled: what this stage did not start (every row of the stages after it) never ran.
            if Task.isCancelled { summary.cancelled += wave.endIndex - next }
        }
        return summary
    }

    /// What ``generate(_:options:events:)`` would do with `rows`, found without calling
    /// anything: every template compiled and rendered, every parser and model checked, tokens
    /// and cost estimated.
    public func dryRun(_ rows: [MembershipRow], force: Bool = false) async -> CohortDryRun {
        let snapshot = await state.current()
        let selected = Set(rows.map(\.genId))
        var answerTokens: [String: Int] = [:]
        var items: [CohortDryRun.Item] = []
        for row in rows {
            var item = CohortDryRun.Item(row: row, action: .generate)
            let plan: Plan
            do {
                plan = try self.plan(StageRunSpec(stage: row.stage, genId: row.genId), snapshot)
            } catch {
                item.problems.append(error.message)
                items.append(item)
                continue
            }
            if !plan.template.active {
                item.warnings.append(
                    "\(row.stage.rawValue) template '\(plan.template.id)' is not active in "
                        + TemplateCatalog.catalogFile(row.stage)
                )
            }
            if !force && store.exists(row.stage, row.genId) {
                item.action = .reuse
                items.append(item)
                continue
            }
            // The parent's parsed text when it is committed; else the prompt is counted with an
            // empty one and the parent's longest answer is added to the high estimate.
            var parentText: String?
            var parentPending = 0
            if let parent = plan.parentGenId, let parentStage = row.stage.parentStage {
                if let generation = try? readGeneration(parentStage, parent) {
                    parentText = generation.parsed ?? ""
                    if generation.parsed == nil {
                        item.problems.append(
                            "parent \(parentStage.rawValue) '\(parent)' has no parsed output "
                                + "(status \(generation.metadata.status.rawValue))"
                        )
                    }
                } else {
                    if !selected.contains(parent) && !plan.parentInMembership {
                        item.problems.append(
                            "parent \(parentStage.rawValue) '\(parent)' has not been generated and the membership does not list it"
                        )
                    } else if !selected.contains(parent) {
                        item.warnings.append("its parent \(parent) is not selected: it is generated first")
                    }
                    parentText = ""
                    parentPending = answerTokens[parent] ?? CohortDryRun.assumedAnswerTokens
                }
            }
            if plan.mode == .copy {
                item.action = .copy
                items.append(item)
                continue
            }
            var values = plan.values
            if let parentText, let name = row.stage.parentVariable, values[name] == nil {
                values[name] = .string(parentText)
            }
            do throws(StageError) {
                let compiled = try await state.template(plan.template.file)
                for unknown in compiled.template.unknownNames {
                    item.problems.append("\(plan.template.file):\(unknown.line): \(unknown.message)")
                }
                var rendered = plan
                rendered.values = values
                let prompt = try render(compiled.template, rendered)
                item.promptTokens = (prompt.utf8.count + 3) / 4
            } catch {
                let place = error.file.map { " (\($0)\(error.line.map { ":\($0)" } ?? ""))" } ?? ""
                item.problems.append(error.message + place)
            }
            item.promptTokensHigh = item.promptTokens + parentPending
            item.answerTokens = CohortDryRun.assumedAnswerTokens
            answerTokens[row.genId] = item.answerTokens
            do {
                let (provider, name) = try snapshot.router.check(plan.model ?? "")
                item.provider = provider
                if let price = snapshot.router.prices.price(provider: provider, model: name) {
                    item.costLow = price.cost(TokenUsage(promptTokens: item.promptTokens, completionTokens: 0))
                    item.costHigh = price.cost(
                        TokenUsage(promptTokens: item.promptTokensHigh, completionTokens: item.answerTokens)
                    )
                } else {
                    item.warnings.append("no price for \(provider):\(name); its cost is not in the estimate")
                }
            } catch {
                item.problems.append(error.message)
            }
            items.append(item)
        }
        return CohortDryRun(items: items)
    }
}

extension CohortRunSummary {
    /// The tally as `stagerunner generate --json` ends with it.
    public var json: JSONValue {
        [
            "selected": .integer(Int64(selected)),
            "succeeded": .integer(Int64(succeeded)),
            "reused": .integer(Int64(reused)),
            "failed": .integer(Int64(failed)),
            "skipped": .integer(Int64(skipped)),
            "cancelled": .integer(Int64(cancelled)),
            "tokens": .integer(Int64(tokens)),
            "costUsd": .double(cost),
            "unpricedCalls": .integer(Int64(unpricedCalls)),
        ]
    }
}

extension CohortDryRun {
    /// The plan as `stagerunner generate --dry-run --json` prints it.
    public var json: JSONValue {
        func price(_ value: Double?) -> JSONValue { value.map(JSONValue.double) ?? .null }
        return [
            "generations": .array(
                items.map { item in
                    [
                        "genId": .string(item.row.genId),
                        "stage": .string(item.row.stage.rawValue),
                        "templateId": .string(item.row.templateId),
                        "model": item.row.llmModelId.map(JSONValue.string) ?? .null,
                        "action": .string(item.action.rawValue),
                        "provider": item.provider.map(JSONValue.string) ?? .null,
                        "promptTokens": .array([
                            .integer(Int64(item.promptTokens)), .integer(Int64(item.promptTokensHigh)),
                        ]),
                        "answerTokens": .integer(Int64(item.answerTokens)),
                        "costUsd": .array([price(item.costLow), price(item.costHigh)]),
                        "problems": .array(item.problems.map(JSONValue.string)),
                        "warnings": .array(item.warnings.map(JSONValue.string)),
                    ]
                }
            ),
            "calls": .integer(Int64(calls)),
            "reused": .integer(Int64(reused)),
            "problems": .integer(Int64(problems)),
            "promptTokens": .array([
                .integer(Int64(promptTokens.lowerBound)), .integer(Int64(promptTokens.upperBound)),
            ]),
            "answerTokens": .integer(Int64(answerTokens)),
            "costUsd": .array([.double(cost.lowerBound), .double(cost.upperBound)]),
            "unpricedCalls": .integer(Int64(unpricedCalls)),
        ]
    }
}
