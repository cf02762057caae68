import ArgumentParser
import Foundation
import JSON
import Jinja
import Logging
import ModelProviders
import StageEngine
import StatusDisplay

/// `stagerunner render`: the prompt a generation would send, without calling anything.
struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the prompt a generation would send (as 'renderPrompt'), calling nothing.",
        discussion: """
            Give a gen id of the membership, or a stage and a template id (with --values for the \
            template's variables). An essay or evaluation needs its parent generated first.

            Exit status: 0 when the prompt rendered, 1 when the template fails (an undefined \
            variable, a syntax error: 'file:line: error: message'), 2 for a wrong option.

            Examples:
              stagerunner render d-creative --workspace examples/daydream
              stagerunner render --stage draft --template creative-synthesis --values '{"concepts": []}'
            """
    )

    @Argument(help: "A gen id of the membership.")
    var genId: String?

    @Option(help: "The stage, with --template: draft, essay or evaluation.")
    var stage: GenerationStage?

    @Option(help: "The template id, with --stage.")
    var template: String?

    @Option(help: "Template variables as a JSON object (they win over the workspace's and the combo's).")
    var values: String?

    @Flag(help: "Print {prompt, variables, templateId, templateFile} as JSON.")
    var json = false

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        var spec: StageRunSpec
        if let genId {
            guard stage == nil && template == nil else {
                throw CommandSupport.usageFailure("give a gen id, or --stage and --template, not both")
            }
            spec = StageRunSpec(stage: .draft, genId: genId)
        } else {
            guard let stage, let template else {
                throw CommandSupport.usageFailure("give a gen id, or --stage and --template")
            }
            spec = StageRunSpec(stage: stage, templateId: template)
        }
        if let values {
            guard case .object(let object)? = try? TemplateValue(json: values) else {
                throw CommandSupport.usageFailure("--values must be a JSON object, like '{\"topic\": \"kelp\"}'")
            }
            spec.values = Dictionary(object.entries, uniquingKeysWith: { _, last in last })
        }
        let engine = try CommandSupport.engine(workspaceOption)
        if let genId {
            // The stage comes from the membership.
            guard let row = await engine.membershipRow(genId) else {
                throw CommandSupport.usageFailure("no generation '\(genId)' in the membership")
            }
            spec.stage = row.stage
        }
        do {
            let rendered = try await engine.renderPrompt(spec)
            if json {
                CommandSupport.print(WorkspaceEngine.renderedPromptJSON(rendered))
            } else {
                Output.write(rendered.prompt.hasSuffix("\n") ? rendered.prompt : rendered.prompt + "\n")
            }
        } catch {
            if let file = error.file {
                Output.error("\(file)\(error.line.map { ":\($0)" } ?? ""): error: \(error.message)")
                throw ExitCode(1)
            }
            throw error.kind == .invalidSpec ? CommandSupport.usageFailure(error.message) : failure(error.message)
        }
    }

    func failure(_ message: String) -> ExitCode {
        Output.error("error: \(message)")
        return ExitCode(1)
    }
}

/// `stagerunner validate`: every problem of the workspace, as compilers print them.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the workspace (as 'validateWorkspace'): one line per problem, exit 1 on errors.",
        discussion: """
            Each problem is one line on stdout, 'file:line:column: severity: code: message', the \
            form editors and CI annotate; a summary follows on stderr. Checked: the template \
            catalogs and texts (syntax, unknown filters and tests), the membership files, and \
            stagerunner.yaml.

            Exit status: 0 when there is no error (warnings allowed), 1 when there is one.

            Examples:
              stagerunner validate --workspace examples/daydream
              stagerunner validate --json | jq '.diagnostics[] | select(.severity == "error")'
            """
    )

    @Flag(help: "Print the report as 'validateWorkspace' answers it (every diagnostic listed).")
    var json = false

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        let engine = try CommandSupport.engine(workspaceOption)
        let report = await engine.validationReport()
        if json {
            CommandSupport.print(report.json(listing: .max))
        } else {
            report.diagnostics.map(\.compilerLine).forEach(Output.line)
            Output.error(
                "\(report.templates) templates, \(report.generations) generations: "
                    + "\(report.errors) error\(report.errors == 1 ? "" : "s"), "
                    + "\(report.warnings) warning\(report.warnings == 1 ? "" : "s")"
            )
        }
        if report.errors > 0 { throw ExitCode(1) }
    }
}

/// `stagerunner templates`: the template catalogs.
struct TemplatesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "templates",
        abstract: "List the templates of the catalogs (as 'listTemplates').",
        discussion: """
            Examples:
              stagerunner templates --workspace examples/daydream
              stagerunner templates --stage evaluation --json
            """
    )

    @Option(help: "Only this stage: draft, essay or evaluation.")
    var stage: GenerationStage?

    @Flag(help: "Leave out inactive templates.")
    var activeOnly = false

    @Flag(help: "Print a JSON array of the templates.")
    var json = false

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        let engine = try CommandSupport.engine(workspaceOption)
        let templates = await engine.templates(stage: stage, activeOnly: activeOnly)
        if json {
            CommandSupport.print(.array(templates.map(\.json)))
            return
        }
        var table = TextTable(["stage", "id", "generator", "parser", "active", "file"])
        for entry in templates {
            table.add([
                entry.stage.rawValue, entry.id, entry.generator.rawValue, entry.parser ?? "-",
                entry.active ? "yes" : "no", entry.file,
            ])
        }
        table.lines.forEach(Output.line)
    }
}

/// `stagerunner costs`: what the call log says was spent.
struct CostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "costs",
        abstract: "Spend and calls from the call log, by model, stage, cohort, provider or day.",
        discussion: """
            Every call counts, failed and retried ones included: calls, failures (no answer), \
            retried attempts, answers from the response cache, tokens and dollars, with a total. \
            A call whose price is unknown (a model missing from the price table, or no usage \
            reported) is counted under 'unpriced' and not in the cost. Calls of every host \
            sharing the workspace are read.

            Examples:
              stagerunner costs --workspace examples/daydream
              stagerunner costs --by cohort,model --cohort demo
              stagerunner costs --by day --json
            """
    )

    @Option(
        help: ArgumentHelp(
            "Group by these, comma-separated: model, stage, cohort, provider, day.",
            valueName: "dimensions"
        )
    )
    var by = "model"

    @Option(help: "Only the calls of this cohort's generations.")
    var cohort: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        var dimensions: [CostReport.Dimension] = []
        for name in by.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let dimension = CostReport.Dimension(rawValue: name) else {
                let known = CostReport.Dimension.allCases.map(\.rawValue).joined(separator: ", ")
                throw CommandSupport.usageFailure("--by: '\(name)' is not one of \(known)")
            }
            dimensions.append(dimension)
        }
        let engine = try CommandSupport.engine(workspaceOption)
        let report: CostReport
        do {
            report = try await engine.costs(by: dimensions, cohort: cohort)
        } catch {
            throw error.kind == .invalidSpec ? CommandSupport.usageFailure(error.message) : ExitCode(1)
        }
        if json {
            CommandSupport.print(report.json)
            return
        }
        let figures = [
            "calls", "failed", "retries", "cached", "prompt tokens", "completion tokens", "cost", "unpriced",
        ]
        var table = TextTable(
            dimensions.map(\.rawValue) + figures,
            rightAligned: Set(dimensions.count..<(dimensions.count + figures.count))
        )
        func cells(_ line: CostReport.Line) -> [String] {
            [
                Format.count(line.calls), Format.count(line.failures), Format.count(line.retries),
                Format.count(line.cached), Format.count(line.promptTokens), Format.count(line.completionTokens),
                Format.cost(line.cost), Format.count(line.unpricedCalls),
            ]
        }
        for line in report.lines { table.add(line.key + cells(line)) }
        table.add(["total"] + Array(repeating: "", count: max(0, dimensions.count - 1)) + cells(report.total))
        table.lines.forEach(Output.line)
    }
}

/// `stagerunner export`: generations as CSV or JSON lines.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export generations with their metadata and scores as CSV or JSON lines.",
        discussion: """
            --by generation (the default): one row per generation: gen_id, stage, cohort_id, \
            combo_id, template_id, model, provider, parent_gen_id, state, score, prompt_tokens, \
            completion_tokens, cost_usd, finish_reason, truncated, created_at, duration_ms, run_id, \
            directory. --by essay: one row per essay with its draft, and a score column per \
            evaluation template (template@model when a template is evaluated by several models), \
            the number of evaluations and their mean score.

            Examples:
              stagerunner export --cohort demo > demo.csv
              stagerunner export --cohort demo --by essay --format jsonl --output scores.jsonl
            """
    )

    enum Layout: String, ExpressibleByArgument, CaseIterable {
        case generation, essay
    }

    enum Form: String, ExpressibleByArgument, CaseIterable {
        case csv, jsonl
    }

    @OptionGroup var select: SelectionOptions

    @Option(help: "One row per generation or per essay (evaluations pivoted).")
    var by: Layout = .generation

    @Option(help: "csv or jsonl.")
    var format: Form = .csv

    @Option(help: "Write to this file instead of stdout.")
    var output: String?

    @OptionGroup var workspaceOption: WorkspaceOption

    func run() async throws {
        CommandSupport.startProcess(logLevel: .error)
        let engine = try CommandSupport.engine(workspaceOption)
        var selection = select.selection
        // The essay table needs the essays' drafts and evaluations, whatever stage is asked for.
        if by == .essay { selection.stage = nil }
        let records: [GenerationRecord]
        do {
            records = try await engine.generations(selection)
        } catch {
            throw CommandSupport.usageFailure(error.message)
        }
        let table = ExportTable(records, layout: by == .essay ? .essays : .generations)
        let text = format == .csv ? table.csv : table.jsonLines
        guard let output else {
            Output.write(text)
            return
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            Output.error("error: cannot write \(output): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        Output.error("\(table.rows.count) rows written to \(output)")
    }
}
