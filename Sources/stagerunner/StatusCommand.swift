import ArgumentParser
import Foundation
import JSON
import StageEngine

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
            throw RunCommand.usageFailure("--workspace \(error)")
        }
        guard let jobId else {
            list(root)
            return
        }
        guard JobManager.isJobId(jobId) else {
            throw RunCommand.usageFailure("'\(jobId)' is not a job id (job ids look like 20261122T014501Z-3fa9)")
        }
        let file = root.path("jobs/\(jobId)/tasks-status.json")
        let directory = root.path("jobs/\(jobId)")
        guard var current = Self.read(file) else {
            throw RunCommand.usageFailure("no job '\(jobId)' in \(root.root)/jobs (no readable tasks-status.json)")
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
            var first = "job \(current.id) (\(current.name)) \(current.state) at rev \(current.rev)"
            if let task = current.json["current"]?.stringValue {
                first += ": \(task)" + (current.stage(task).map { " at \($0)" } ?? "")
            }
            Output.line("\(Format.timeOfDay()) \(first)")
        }
        var stamp = Self.stamp(file)
        while !current.isFinished {
            try await Task.sleep(for: .milliseconds(100))
            let now = Self.stamp(file)
            guard now != stamp else { continue }
            stamp = now
            guard let next = Self.read(file), next.rev != current.rev else { continue }
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
        if current.state != "done" { throw ExitCode(1) }
    }

    /// The document's summary: the job, its progress, a row per task, its folder.
    static func describe(_ view: JobView, directory: String) -> [String] {
        var lines = ["job \(view.id) (\(view.name)): \(view.state), rev \(view.rev)"]
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
            let state = view.retrying(task) ? "retrying" : view.taskState(task)
            var row = "  " + task.padding(toLength: width, withPad: " ", startingAt: 0)
            row += "  " + state.padding(toLength: 10, withPad: " ", startingAt: 0)
            row += (view.stage(task) ?? "-").padding(toLength: 18, withPad: " ", startingAt: 0)
            row += "cycle \(view.cycle(task))  " + Format.count(view.tokens(task)).leftPadded(8) + " tokens  "
            row += Format.cost(view.cost(task))
            if let elapsed = view.elapsed(task, now: now) { row += "  " + Format.duration(elapsed).leftPadded(8) }
            lines.append(row)
        }
        lines.append("job directory: \(directory)")
        return lines
    }

    /// Every job of the workspace, newest first, one line each.
    func list(_ root: Workspace) {
        let names = root.listFiles("jobs").filter(JobManager.isJobId).sorted(by: >)
        if json {
            let documents = names.compactMap { Self.read(root.path("jobs/\($0)/tasks-status.json"))?.json }
            Output.line(JSONValue.array(documents).prettyDescription)
            return
        }
        guard !names.isEmpty else {
            Output.line("no jobs in \(root.root)/jobs")
            return
        }
        for name in names {
            guard let view = Self.read(root.path("jobs/\(name)/tasks-status.json")) else { continue }
            var line = "\(view.id)  " + view.name.padding(toLength: 16, withPad: " ", startingAt: 0)
            line += " " + view.state.padding(toLength: 11, withPad: " ", startingAt: 0)
            line += " \(view.tasksDone)/\(view.tasksTotal) tasks  " + (view.json["lastUpdated"]?.stringValue ?? "")
            Output.line(line)
        }
    }

    /// The document at `file`, or nil when it is missing or not JSON.
    static func read(_ file: String) -> JobView? {
        guard let data = FileManager.default.contents(atPath: file),
            let json = try? JSONParser.parse(Array(data)), case .object = json
        else { return nil }
        return JobView(json: json)
    }

    /// What changes when the document is replaced: its inode (each write renames a new file over
    /// it), size and modification time.
    static func stamp(_ file: String) -> [Int] {
        var info = stat()
        guard stat(file, &info) == 0 else { return [] }
        return [
            Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec),
        ]
    }
}
