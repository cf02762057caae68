import Foundation
import JSON
import StageEngine

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A job's status document (`tasks-status.json`) as the CLI shows it.
struct JobView: Sendable {
    var json: JSONValue

    /// States in which a job no longer changes by itself.
    static let finishedStates: Set<String> = ["done", "failed", "cancelled", "interrupted"]

    var id: String { json["id"]?.stringValue ?? "" }
    var name: String { json["name"]?.stringValue ?? "" }
    var state: String { json["state"]?.stringValue ?? "" }
    var rev: Int { Int(json["rev"]?.integerValue ?? 0) }
    var isFinished: Bool { Self.finishedStates.contains(state) }

    var taskOrder: [String] {
        guard case .array(let names)? = json["taskOrder"] else {
            guard case .object(let tasks)? = json["tasks"] else { return [] }
            return tasks.keys.sorted()
        }
        return names.compactMap(\.stringValue)
    }

    var tasksDone: Int {
        Int(json["progress"]?["tasksDone"]?.integerValue ?? Int64(taskOrder.filter { taskState($0) == "done" }.count))
    }
    var tasksTotal: Int { Int(json["progress"]?["tasksTotal"]?.integerValue ?? Int64(taskOrder.count)) }
    var percent: Int { Int(json["progress"]?["percent"]?.integerValue ?? 0) }
    var totalTokens: Int64 { json["tokenUsage"]?["totalTokens"]?.integerValue ?? 0 }
    var cost: Double { json["cost"]?.numberValue ?? 0 }

    func task(_ name: String) -> JSONValue? { json["tasks"]?[name] }
    func taskState(_ name: String) -> String { task(name)?["state"]?.stringValue ?? "pending" }
    func tokens(_ name: String) -> Int64 { task(name)?["tokenUsage"]?["totalTokens"]?.integerValue ?? 0 }
    func cost(_ name: String) -> Double { task(name)?["cost"]?.numberValue ?? 0 }
    func cycle(_ name: String) -> Int { Int(task(name)?["refinementAttempts"]?.integerValue ?? 0) }
    func retrying(_ name: String) -> Bool { task(name)?["retrying"] == true }

    /// The stage to show for a task, in seed 003's `computeTaskStage` preference order: the
    /// task's own `currentStage`, the job's when the task is the current one, the task's
    /// `failedStage`, then the stage of its last error.
    func stage(_ name: String) -> String? {
        guard let task = task(name) else { return nil }
        if let stage = task["currentStage"]?.stringValue { return stage }
        if json["current"]?.stringValue == name, let stage = json["currentStage"]?.stringValue { return stage }
        if let stage = task["failedStage"]?.stringValue { return stage }
        return task["error"]?["stage"]?.stringValue
    }

    /// Seconds the task ran: its `executionTime` once it ended, else since `startedAt`.
    func elapsed(_ name: String, now: Double) -> Double? {
        guard let task = task(name) else { return nil }
        let state = taskState(name)
        if state != "running", let milliseconds = task["executionTime"]?.numberValue { return milliseconds / 1000 }
        guard let started = task["startedAt"]?.stringValue.flatMap(Format.epochSeconds) else { return nil }
        if state == "running" { return max(0, now - started) }
        if let ended = task["endedAt"]?.stringValue.flatMap(Format.epochSeconds) { return max(0, ended - started) }
        return nil
    }

    /// Seconds from the job's start (or creation) to its end, or to `now` while it runs.
    func wallTime(now: Double) -> Double? {
        guard let started = (json["startedAt"] ?? json["createdAt"])?.stringValue.flatMap(Format.epochSeconds) else {
            return nil
        }
        if isFinished, let ended = json["endedAt"]?.stringValue.flatMap(Format.epochSeconds) {
            return max(0, ended - started)
        }
        return isFinished ? nil : max(0, now - started)
    }

    /// Where the job ended when it did not finish: `review failed at promptTemplating: …`.
    var reason: String? {
        switch state {
        case "failed":
            let error = json["error"]
            let task = error?["task"]?.stringValue ?? json["current"]?.stringValue ?? "?"
            let stage = error?["stage"]?.stringValue ?? json["currentStage"]?.stringValue ?? "?"
            return "\(task) failed at \(stage)" + (error.map { ": " + Format.error($0) } ?? "")
        case "cancelled":
            guard let task = json["cancelled"]?["task"]?.stringValue else { return "cancelled before it started" }
            let stage = json["cancelled"]?["stage"]?.stringValue
            return "cancelled in \(task)" + (stage.map { " at \($0)" } ?? "")
        case "interrupted":
            return "interrupted by an exit of the process running it; 'resumeJob' continues it"
        default:
            return nil
        }
    }
}

/// How the CLI writes numbers, times and errors.
enum Format {
    /// The local time of day with milliseconds: `12:00:01.123`.
    static func timeOfDay(_ seconds: Double = Date().timeIntervalSince1970) -> String {
        var whole = time_t(seconds.rounded(.down))
        let milliseconds = min(999, Int((seconds - Double(whole)) * 1000))
        var parts = tm()
        localtime_r(&whole, &parts)
        return String(format: "%02d:%02d:%02d.%03d", parts.tm_hour, parts.tm_min, parts.tm_sec, milliseconds)
    }

    /// Seconds since the epoch of a document timestamp (`2026-11-22T01:52:03.101Z`).
    static func epochSeconds(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T") else { return nil }
        func number(_ start: Int, _ count: Int) -> Int32? {
            var value: Int32 = 0
            for byte in bytes[start..<start + count] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int32(byte - 48)
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2)
        else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        var fraction = 0.0
        if bytes[19] == UInt8(ascii: ".") {
            var scale = 0.1
            for byte in bytes[20...] {
                guard (48...57).contains(byte) else { break }
                fraction += Double(byte - 48) * scale
                scale /= 10
            }
        }
        return Double(timegm(&parts)) + fraction
    }

    /// `1,234,567`.
    static func count<Number: BinaryInteger>(_ value: Number) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    /// `$0.0123`.
    static func cost(_ value: Double) -> String { String(format: "$%.4f", value) }

    /// `3.2 ms`, `420 ms`, `4.20 s`, `12.3 s`, `2:03.4`.
    static func duration(_ seconds: Double) -> String {
        if seconds < 0.01 { return String(format: "%.1f ms", seconds * 1000) }
        if seconds < 1 { return String(format: "%.0f ms", seconds * 1000) }
        if seconds < 10 { return String(format: "%.2f s", seconds) }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let minutes = Int(seconds / 60)
        return String(format: "%d:%04.1f", minutes, seconds - Double(minutes * 60))
    }

    /// A task error from the document, on one line: `TemplateError: 'subtitle' is undefined`.
    static func error(_ error: JSONValue) -> String {
        let message = (error["message"]?.stringValue ?? error.description).split(separator: "\n").first ?? ""
        guard let name = error["name"]?.stringValue else { return String(message) }
        return "\(name): \(message)"
    }
}

/// The lines of the plain (non-terminal) display: one per transition.
enum TransitionLines {
    /// The line for one event of the engine (`{type: job|task|stage|usage, …}`); nil for usage
    /// events. `view` is the document at or after the event.
    static func line(for event: JSONValue, in view: JobView) -> String? {
        let state = event["state"]?.stringValue ?? "?"
        switch event["type"]?.stringValue {
        case "job":
            if state == "pending" && event["retryFrom"] == nil {
                return
                    "job \(view.id) (\(view.name)) pending: \(view.tasksTotal) task\(view.tasksTotal == 1 ? "" : "s")"
            }
            if state == "cancelled", let reason = view.reason { return "job cancelled: \(reason)" }
            if let from = event["retryFrom"]?.stringValue { return "job \(state), retrying from \(from)" }
            return "job \(state)"
        case "task":
            guard let task = event["task"]?.stringValue else { return nil }
            switch state {
            case "running":
                let attempt = event["attempt"]?.integerValue ?? 1
                return "\(task) running (attempt \(attempt))"
            case "refining":
                let cycle = event["refinementCycle"]?.integerValue ?? 0
                let reason = event["reason"]?.stringValue.map { ": \($0)" } ?? ""
                return "\(task) refining (cycle \(cycle))\(reason)"
            case "retrying":
                let stage = event["failedStage"]?.stringValue ?? "?"
                let next = view.task(task)?["nextRetryAt"]?.stringValue.flatMap(Format.epochSeconds)
                return "\(task) failed at \(stage), retrying" + (next.map { " at \(Format.timeOfDay($0))" } ?? "")
            default:
                return taskOutcome(task, state: state, view, recovered: event["recovered"] == true)
            }
        case "stage":
            guard let task = event["task"]?.stringValue, let stage = event["stage"]?.stringValue else { return nil }
            let cycle = event["refinementCycle"]?.integerValue ?? 0
            if state == "started" { return "\(task) \(stage) started (cycle \(cycle))" }
            let time = event["ms"]?.numberValue.map { String(format: " in %.1f ms", $0) } ?? ""
            return "\(task) \(stage) \(state)\(time)"
        default:
            return nil
        }
    }

    /// `summary done in 0.21 s: 1 refinement cycle, 4 model calls, 1,203 tokens`, or why it
    /// failed.
    static func taskOutcome(_ task: String, state: String, _ view: JobView, recovered: Bool = false) -> String {
        switch state {
        case "done":
            if recovered { return "\(task) done (its saved output was found)" }
            var details: [String] = []
            let cycles = view.cycle(task)
            if cycles > 0 { details.append("\(cycles) refinement cycle\(cycles == 1 ? "" : "s")") }
            let calls = view.task(task)?["modelCalls"]?.integerValue ?? 0
            if calls > 0 {
                details.append("\(calls) model call\(calls == 1 ? "" : "s")")
                details.append("\(Format.count(view.tokens(task))) tokens")
            }
            let time = view.elapsed(task, now: Date().timeIntervalSince1970).map { " in \(Format.duration($0))" } ?? ""
            return "\(task) done\(time)" + (details.isEmpty ? "" : ": " + details.joined(separator: ", "))
        case "failed":
            let stage = view.task(task)?["failedStage"]?.stringValue ?? view.stage(task) ?? "?"
            let error = view.task(task)?["error"].map { ": " + Format.error($0) } ?? ""
            return "\(task) failed at \(stage)\(error)"
        default:
            return "\(task) \(state)"
        }
    }

    /// The lines telling how the document `old` became `new`, for a reader of the file (which
    /// may skip revisions): job and task states, stages entered, refinement cycles begun.
    static func lines(from old: JobView, to new: JobView) -> [String] {
        var lines: [String] = []
        if old.state != new.state && !new.isFinished { lines.append("job \(new.state)") }
        for task in new.taskOrder {
            let before = old.taskState(task)
            let after = new.taskState(task)
            let stage = new.task(task)?["currentStage"]?.stringValue
            if before != after {
                if after == "running" {
                    let attempt = new.task(task)?["attempts"]?.integerValue ?? 1
                    lines.append("\(task) running (attempt \(attempt))")
                } else if after != "failed" && after != "cancelled" {
                    lines.append(taskOutcome(task, state: after, new))
                    continue
                }
            }
            if new.retrying(task) && !old.retrying(task) {
                lines.append(
                    "\(task) failed at \(new.task(task)?["lastRetryError"]?["stage"]?.stringValue ?? "a stage"), retrying"
                )
            }
            if new.cycle(task) > old.cycle(task) && after == "running" {
                lines.append("\(task) refining (cycle \(new.cycle(task)))")
            }
            if after == "running", let stage, stage != old.task(task)?["currentStage"]?.stringValue {
                lines.append("\(task) \(stage) started (cycle \(new.cycle(task)))")
            }
            if before != after && (after == "failed" || after == "cancelled") {
                lines.append(taskOutcome(task, state: after, new))
            }
        }
        if old.state != new.state && new.isFinished {
            lines.append(new.state == "cancelled" ? "job cancelled: \(new.reason ?? "")" : "job \(new.state)")
        }
        return lines
    }

    /// The closing lines: state, tasks done, tokens, cost, wall time; why it ended when it did
    /// not finish; the job's folder.
    static func summary(_ view: JobView, wall: Double?, directory: String) -> [String] {
        var lines: [String] = []
        var first =
            "\(view.state): \(view.tasksDone)/\(view.tasksTotal) tasks done, \(Format.count(view.totalTokens)) tokens, "
            + "cost \(Format.cost(view.cost))"
        if let wall { first += ", wall \(Format.duration(wall))" }
        lines.append(first)
        if let reason = view.reason { lines.append("reason: \(reason)") }
        lines.append("job directory: \(directory)")
        return lines
    }
}

/// Standard output, written at once (no buffering: a reader sees each line as it happens).
enum Output {
    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                Glibc.write(1, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    static func line(_ text: String) { write(text + "\n") }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Whether standard output is a terminal that can be redrawn.
    static var isTerminal: Bool { isatty(1) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb" }

    /// The terminal's size (columns, rows), or a default.
    static var terminalSize: (columns: Int, rows: Int) {
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 {
            return (Int(size.ws_col), Int(size.ws_row))
        }
        return (100, 30)
    }
}

/// The live display on a terminal: a line for the job, a bar per task (name, state, current
/// stage, refinement cycle, tokens, cost, elapsed) and the last event, redrawn in place at most
/// 20 times a second.
actor LiveDisplay {
    private var view: JobView?
    private var lastEvent: String?
    private var drawnLines = 0
    private var lastFrame: [String] = []
    private let color: Bool
    /// When the run began, by the local clock (nil: use the document's times).
    private let started: ContinuousClock.Instant?
    private var ticker: Task<Void, Never>?

    init(started: ContinuousClock.Instant?) {
        self.started = started
        color = ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    /// Starts redrawing every 50 ms (only when the frame changed).
    func start() {
        ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                await self?.draw()
            }
        }
    }

    func update(_ view: JobView, event: String?) {
        self.view = view
        if let event { lastEvent = event }
    }

    /// Shows `text` as the last event until the next one.
    func note(_ text: String) {
        lastEvent = text
        draw()
    }

    /// Draws the last frame and leaves it on the screen.
    func finish() {
        ticker?.cancel()
        ticker = nil
        draw()
    }

    private var wall: Double? {
        if let started { return Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6 }
        return view?.wallTime(now: Date().timeIntervalSince1970)
    }

    func draw() {
        guard let view else { return }
        let (columns, rows) = Output.terminalSize
        let frame = Self.frame(view, lastEvent: lastEvent, wall: wall, color: color, columns: columns, rows: rows)
        guard frame != lastFrame else { return }
        var text = drawnLines > 0 ? "\r\u{1B}[\(drawnLines)A" : ""
        for line in frame { text += "\u{1B}[2K" + line + "\n" }
        text += "\u{1B}[J"
        Output.write(text)
        drawnLines = frame.count
        lastFrame = frame
    }

    /// A piece of a line, with its ANSI style.
    struct Piece {
        var text: String
        var style: String?
        init(_ text: String, _ style: String? = nil) {
            self.text = text
            self.style = style
        }
    }

    static func render(_ pieces: [Piece], color: Bool, columns: Int) -> String {
        var room = max(10, columns - 1)
        var line = ""
        for piece in pieces where room > 0 {
            var text = piece.text
            if text.count > room { text = String(text.prefix(room)) }
            room -= text.count
            if color, let style = piece.style { line += "\u{1B}[\(style)m\(text)\u{1B}[0m" } else { line += text }
        }
        return line
    }

    static func style(ofState state: String) -> String {
        switch state {
        case "done": return "32"
        case "failed", "cancelled", "interrupted": return "31"
        case "running": return "33"
        default: return "2"
        }
    }

    static func bar(_ fraction: Double, width: Int) -> String {
        let filled = max(0, min(width, Int((fraction * Double(width)).rounded(.down))))
        return String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
    }

    static let stageCount = TaskStage.allCases.count

    /// How far a task is through its eleven stages.
    static func stageFraction(_ view: JobView, _ task: String) -> Double {
        let state = view.taskState(task)
        if state == "done" { return 1 }
        if state == "pending" { return 0 }
        guard let stage = view.stage(task), let index = TaskStage.allCases.firstIndex(where: { $0.rawValue == stage })
        else { return 0 }
        return Double(state == "running" ? index + 1 : index) / Double(stageCount)
    }

    static func frame(
        _ view: JobView,
        lastEvent: String?,
        wall: Double?,
        color: Bool,
        columns: Int,
        rows: Int
    ) -> [String] {
        var lines: [String] = []
        let now = Date().timeIntervalSince1970
        lines.append(
            render(
                [
                    Piece("\(view.name) ", "1"), Piece("\(view.id)  ", "2"),
                    Piece(view.state.padding(toLength: 11, withPad: " ", startingAt: 0), style(ofState: view.state)),
                    Piece(bar(Double(view.percent) / 100, width: 20) + " ", "36"),
                    Piece(String(format: "%3d%%  ", view.percent)),
                    Piece("\(view.tasksDone)/\(view.tasksTotal) tasks  \(Format.count(view.totalTokens)) tokens  "),
                    Piece("\(Format.cost(view.cost))  \(wall.map(Format.duration) ?? "")"),
                ],
                color: color,
                columns: columns
            )
        )
        let order = view.taskOrder
        // As many task rows as the terminal holds, around the task under way.
        let room = max(3, rows - 4)
        var window = 0..<order.count
        if order.count > room {
            let current = view.json["current"]?.stringValue.flatMap { order.firstIndex(of: $0) } ?? view.tasksDone
            let start = max(0, min(order.count - (room - 2), current - (room - 2) / 2))
            window = start..<min(order.count, start + room - 2)
        }
        let nameWidth = min(24, order[window].map(\.count).max() ?? 4)
        if window.lowerBound > 0 {
            lines.append(
                render(
                    [Piece("  … \(Format.count(window.lowerBound)) tasks above", "2")],
                    color: color,
                    columns: columns
                )
            )
        }
        for task in order[window] {
            let state = view.retrying(task) ? "retrying" : view.taskState(task)
            let glyph: String
            switch state {
            case "done": glyph = "✔"
            case "running": glyph = "▸"
            case "failed": glyph = "✖"
            case "cancelled", "interrupted": glyph = "■"
            case "retrying": glyph = "↻"
            default: glyph = "·"
            }
            let stage = view.stage(task) ?? "-"
            let elapsed = view.elapsed(task, now: now).map(Format.duration) ?? ""
            lines.append(
                render(
                    [
                        Piece("  \(glyph) ", style(ofState: state)),
                        Piece(task.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + " "),
                        Piece(bar(stageFraction(view, task), width: 11) + " ", style(ofState: state)),
                        Piece(state.padding(toLength: 10, withPad: " ", startingAt: 0), style(ofState: state)),
                        Piece(stage.padding(toLength: 18, withPad: " ", startingAt: 0)),
                        Piece("cycle \(view.cycle(task))  "),
                        Piece(Format.count(view.tokens(task)).leftPadded(8) + " tok  "),
                        Piece(Format.cost(view.cost(task)) + "  "),
                        Piece(elapsed.leftPadded(8)),
                    ],
                    color: color,
                    columns: columns
                )
            )
        }
        if window.upperBound < order.count {
            lines.append(
                render(
                    [Piece("  … \(Format.count(order.count - window.upperBound)) tasks below", "2")],
                    color: color,
                    columns: columns
                )
            )
        }
        if let lastEvent {
            lines.append(render([Piece("  " + lastEvent, "2")], color: color, columns: columns))
        }
        return lines
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
