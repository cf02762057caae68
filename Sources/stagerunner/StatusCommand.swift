import ArgumentParser
import Foundation
import JSON
import StageEngine
import StatusDisplay

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `stagerunner status`: a job's status document, read from its folder, once or as it changes.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a job's status (from jobs/<jobId>/tasks-status.json), or follow it with --watch.",
        discussion: """
            Reads the job's status document from the workspace, so it works while another process \
            (a 'stagerunner serve', a 'stagerunner run') runs the job. Without a job id, lists the \
            workspace's jobs, newest first.

            --watch follows the document until the job ends (polling the file every 100 ms): live \
            on a terminal, otherwise one line per change seen; it exits 0 when the job is done, 1 \
            when it failed, was cancelled or interrupted. With --json, prints the document (one \
            line per revision seen with --watch). A job id that is not in the workspace exits 2.

            Example:
              stagerunner status 20261122T014501Z-3fa9 --workspace examples/research-task --watch
            """
    )

    @Argument(help: "The job's id (none: list the jobs).")
    var jobId: String?

    @OptionGroup var workspaceOption: WorkspaceOption

    @Flag(help: "Follow the job until it ends.")
    var watch = false

    @Flag(help: "Print the status document as JSON.")
    var json = false

    @Flag(help: "One line per change even on a terminal (with --watch).")
    var plain = false

    func run() async throws {
        let root: Workspace
        do {
            root = try workspaceOption.open()
        } catch {
            throw CommandSupport.usageFailure("--workspace \(error)")
        }
        guard let jobId else {
            list(root)
            return
        }
        guard let folder = try? JobFolder(jobId, in: root) else {
            throw CommandSupport.usageFailure("'\(jobId)' is not a job id (job ids look like 20261122T014501Z-3fa9)")
        }
        let directory = folder.path
        guard var current = try? folder.readStatus() else {
            throw CommandSupport.usageFailure("no job '\(jobId)' in \(root.root)/jobs (no readable tasks-status.json)")
        }
        guard watch else {
            if json {
                Output.line(current.json.prettyDescription)
            } else {
                for line in Self.describe(current, directory: directory) { Output.line(line) }
            }
            return
        }

        let live = Output.isTerminal && !plain && !json ? LiveDisplay(started: nil) : nil
        if json {
            Output.line(current.json.description)
        } else if let live {
            await live.update(current, event: nil)
            await live.start()
        } else {
            var first = "job \(current.id) (\(current.name)) \(current.stateName) at rev \(current.rev)"
            if let task = current.current {
                first += ": \(task)" + (current.computeTaskStage(task).map { " at \($0)" } ?? "")
            }
            Output.line("\(Format.timeOfDay()) \(first)")
        }
        var stamp = folder.statusStamp
        while !current.isFinished {
            try await Task.sleep(for: .milliseconds(100))
            let now = folder.statusStamp
            guard now != stamp else { continue }
            stamp = now
            guard let next = try? folder.readStatus(), next.rev != current.rev else { continue }
            if json {
                Output.line(next.json.description)
            } else {
                let lines = TransitionLines.lines(from: current, to: next)
                if let live {
                    await live.update(next, event: lines.last)
                } else {
                    let time = Format.timeOfDay()
                    for line in lines { Output.line("\(time) \(line)") }
                }
            }
            current = next
        }
        if let live {
            await live.finish()
            Output.line("")
        }
        if !json {
            for line in TransitionLines.summary(
                current,
                wall: current.wallTime(now: Date().timeIntervalSince1970),
                directory: directory
            ) {
                Output.line(line)
            }
        }
        if current.state != .done { throw ExitCode(1) }
    }

    /// The document's summary: the job, its progress, a row per task, its folder.
    static func describe(_ view: JobStatusDocument, directory: String) -> [String] {
        var lines = ["job \(view.id) (\(view.name)): \(view.stateName), rev \(view.rev)"]
        var times = "  created \(view.json["createdAt"]?.stringValue ?? "?")"
        times += ", updated \(view.json["lastUpdated"]?.stringValue ?? "?")"
        if let wall = view.wallTime(now: Date().timeIntervalSince1970) {
            times += view.isFinished ? ", wall \(Format.duration(wall))" : ", running for \(Format.duration(wall))"
        }
        lines.append(times)
        lines.append(
            "  \(view.tasksDone)/\(view.tasksTotal) tasks done (\(view.percent)%), "
                + "\(Format.count(view.totalTokens)) tokens, cost \(Format.cost(view.cost))"
        )
        if let reason = view.reason { lines.append("  \(reason)") }
        let order = view.taskOrder
        let width = min(24, order.map(\.count).max() ?? 4)
        let now = Date().timeIntervalSince1970
        for task in order {
            let state = view.displayState(task)
            var row = "  " + task.padding(toLength: width, withPad: " ", startingAt: 0)
            row += "  " + state.padding(toLength: 10, withPad: " ", startingAt: 0)
            row += (view.computeTaskStage(task) ?? "-").padding(toLength: 18, withPad: " ", startingAt: 0)
            row += "cycle \(view.refinementAttempts(task))  "
            row += Format.count(view.taskTokens(task)).leftPadded(8) + " tokens  "
            row += Format.cost(view.taskCost(task))
            if let elapsed = view.elapsed(task, now: now) { row += "  " + Format.duration(elapsed).leftPadded(8) }
            lines.append(row)
        }
        lines.append("job directory: \(directory)")
        return lines
    }

    /// Every job of the workspace, newest first, one line each.
    func list(_ root: Workspace) {
        let folders = JobFolder.ids(in: root).compactMap { try? JobFolder($0, in: root) }
        let documents = JobStatusDocument.newestFirst(folders.compactMap { try? $0.readStatus() })
        if json {
            Output.line(JSONValue.array(documents.map(\.json)).prettyDescription)
            return
        }
        guard !documents.isEmpty else {
            Output.line("no jobs in \(root.root)/jobs")
            return
        }
        for view in documents {
            var line = "\(view.id)  " + view.name.padding(toLength: 16, withPad: " ", startingAt: 0)
            line += " " + view.stateName.padding(toLength: 11, withPad: " ", startingAt: 0)
            line += " \(view.tasksDone)/\(view.tasksTotal) tasks  " + (view.json["lastUpdated"]?.stringValue ?? "")
            Output.line(line)
        }
    }
}
