import Foundation
import StageEngine

/// The live display on a terminal: a line for the job, a bar per task (name, state, current
/// stage, refinement cycle, tokens, cost, elapsed) and the last event, redrawn in place at most
/// 20 times a second.
public actor LiveDisplay {
    private var view: JobStatusDocument?
    private var lastEvent: String?
    private var drawnLines = 0
    private var lastFrame: [String] = []
    private let color: Bool
    /// When the run began, by the local clock (nil: use the document's times).
    private let started: ContinuousClock.Instant?
    private var ticker: Task<Void, Never>?

    /// `started`: when the run began, by the local clock; nil to take the document's times.
    public init(started: ContinuousClock.Instant?) {
        self.started = started
        color = ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    /// Starts redrawing every 50 ms (only when the frame changed).
    public func start() {
        ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                await self?.draw()
            }
        }
    }

    public func update(_ view: JobStatusDocument, event: String?) {
        self.view = view
        if let event { lastEvent = event }
    }

    /// Shows `text` as the last event until the next one.
    public func note(_ text: String) {
        lastEvent = text
        draw()
    }

    /// Draws the last frame and leaves it on the screen.
    public func finish() {
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
    static func stageFraction(_ view: JobStatusDocument, _ task: String) -> Double {
        let state = view.taskState(task) ?? .pending
        if state == .done { return 1 }
        if state == .pending { return 0 }
        guard let stage = view.computeTaskStage(task),
            let index = TaskStage.allCases.firstIndex(where: { $0.rawValue == stage })
        else { return 0 }
        return Double(state == .running ? index + 1 : index) / Double(stageCount)
    }

    /// The lines of one frame for a terminal of `columns` × `rows`.
    public static func frame(
        _ view: JobStatusDocument,
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
                    Piece(
                        view.stateName.padding(toLength: 11, withPad: " ", startingAt: 0),
                        style(ofState: view.stateName)
                    ),
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
            let current = view.current.flatMap { order.firstIndex(of: $0) } ?? view.tasksDone
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
            let state = view.displayState(task)
            let glyph: String
            switch state {
            case "done": glyph = "✔"
            case "running": glyph = "▸"
            case "failed": glyph = "✖"
            case "cancelled", "interrupted": glyph = "■"
            case "retrying": glyph = "↻"
            default: glyph = "·"
            }
            let stage = view.computeTaskStage(task) ?? "-"
            let elapsed = view.elapsed(task, now: now).map(Format.duration) ?? ""
            lines.append(
                render(
                    [
                        Piece("  \(glyph) ", style(ofState: state)),
                        Piece(task.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + " "),
                        Piece(bar(stageFraction(view, task), width: 11) + " ", style(ofState: state)),
                        Piece(state.padding(toLength: 10, withPad: " ", startingAt: 0), style(ofState: state)),
                        Piece(stage.padding(toLength: 18, withPad: " ", startingAt: 0)),
                        Piece("cycle \(view.refinementAttempts(task))  "),
                        Piece(Format.count(view.taskTokens(task)).leftPadded(8) + " tok  "),
                        Piece(Format.cost(view.taskCost(task)) + "  "),
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
    /// The string right-aligned in `width` columns.
    public func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
