import JSON
import StageEngine
import StatusDisplay
import Testing

/// A two-task job's document as the engine writes it, with `changes` applied to its tasks.
func document(
    state: String = "running",
    current: String? = "draft",
    tasks: [String: JSONValue] = [:],
    extra: [String: JSONValue] = [:]
) -> JobStatusDocument {
    var entries: [String: JSONValue] = [
        "draft": ["state": "pending", "refinementAttempts": 0, "tokenUsage": ["totalTokens": 0], "cost": 0],
        "review": ["state": "pending", "refinementAttempts": 0, "tokenUsage": ["totalTokens": 0], "cost": 0],
    ]
    for (name, task) in tasks { entries[name] = task }
    var json: [String: JSONValue] = [
        "id": "20261205T120000Z-ab12", "name": "essay", "state": .string(state),
        "current": current.map(JSONValue.string) ?? nil, "rev": 3, "taskOrder": ["draft", "review"],
        "progress": ["tasksDone": 0, "tasksTotal": 2, "percent": 0], "tokenUsage": ["totalTokens": 0], "cost": 0,
        "createdAt": "2026-12-05T12:00:00.000Z", "tasks": .object(entries),
    ]
    for (key, value) in extra { json[key] = value }
    return JobStatusDocument(json: .object(json))
}

@Suite("Transition lines")
struct TransitionLinesTests {
    @Test func aLinePerEventAndNoneForUsage() {
        let doc = document()
        #expect(
            TransitionLines.line(for: .job(.pending), in: doc) == "job 20261205T120000Z-ab12 (essay) pending: 2 tasks"
        )
        #expect(
            TransitionLines.line(for: .job(.pending, retryFrom: "review"), in: doc)
                == "job pending, retrying from review"
        )
        #expect(TransitionLines.line(for: .job(.running), in: doc) == "job running")
        #expect(
            TransitionLines.line(for: .taskRunning(task: "draft", attempt: 2), in: doc) == "draft running (attempt 2)"
        )
        #expect(
            TransitionLines.line(for: .taskRefining(task: "draft", cycle: 1, reason: "too short"), in: doc)
                == "draft refining (cycle 1): too short"
        )
        #expect(
            TransitionLines.line(
                for: .stageStarted(task: "draft", stage: .promptTemplating, refinementCycle: 0, preRefinement: false),
                in: doc
            ) == "draft promptTemplating started (cycle 0)"
        )
        #expect(
            TransitionLines.line(
                for: .stageFinished(
                    task: "draft",
                    stage: "validateStructure",
                    succeeded: false,
                    refinementCycle: 1,
                    milliseconds: 2.25
                ),
                in: doc
            ) == "draft validateStructure failed in 2.2 ms"
        )
        #expect(TransitionLines.line(for: .usage(task: "draft", stage: "inference"), in: doc) == nil)
        #expect(
            TransitionLines.line(for: .taskDone(task: "draft", recovered: true), in: doc)
                == "draft done (its saved output was found)"
        )
    }

    @Test func aFailedTaskNamesItsStageAndError() {
        let doc = document(
            state: "failed",
            tasks: [
                "draft": [
                    "state": "failed", "failedStage": "parsing",
                    "error": ["name": "ParseError", "message": "no JSON object\nsecond line"],
                ]
            ],
            extra: ["error": ["task": "draft", "stage": "parsing", "name": "ParseError", "message": "no JSON object"]]
        )
        #expect(
            TransitionLines.line(for: .taskFailed(task: "draft", failedStage: "parsing"), in: doc)
                == "draft failed at parsing: ParseError: no JSON object"
        )
        #expect(doc.reason == "draft failed at parsing: ParseError: no JSON object")
        let summary = TransitionLines.summary(doc, wall: 1.5, directory: "/w/jobs/x")
        #expect(
            summary == [
                "failed: 0/2 tasks done, 0 tokens, cost $0.0000, wall 1.50 s",
                "reason: draft failed at parsing: ParseError: no JSON object",
                "job directory: /w/jobs/x",
            ]
        )
    }

    @Test func aDoneTaskCountsCyclesCallsAndTokens() {
        let doc = document(tasks: [
            "draft": [
                "state": "done", "refinementAttempts": 2, "modelCalls": 3, "tokenUsage": ["totalTokens": 12_345],
                "cost": 0.5, "executionTime": 210,
            ]
        ])
        #expect(
            TransitionLines.taskOutcome("draft", state: .done, doc)
                == "draft done in 210 ms: 2 refinement cycles, 3 model calls, 12,345 tokens"
        )
    }

    @Test func documentsReadFromAFileBecomeLines() {
        let before = document(state: "pending", current: nil)
        let running = document(tasks: ["draft": ["state": "running", "attempts": 1, "currentStage": "inference"]])
        #expect(
            TransitionLines.lines(from: before, to: running) == [
                "job running", "draft running (attempt 1)", "draft inference started (cycle 0)",
            ]
        )
        let retrying = document(tasks: [
            "draft": [
                "state": "running", "attempts": 1, "retrying": true, "lastRetryError": ["stage": "parsing"],
                "currentStage": nil,
            ]
        ])
        #expect(TransitionLines.lines(from: running, to: retrying) == ["draft failed at parsing, retrying"])
        let cancelled = document(
            state: "cancelled",
            tasks: ["draft": ["state": "cancelled"]],
            extra: ["cancelled": ["task": "draft", "stage": "inference"]]
        )
        #expect(
            TransitionLines.lines(from: running, to: cancelled) == [
                "draft cancelled", "job cancelled: cancelled in draft at inference",
            ]
        )
    }
}

@Suite("Live display frames")
struct LiveDisplayFrameTests {
    @Test func aHeaderAndARowPerTask() {
        let doc = document(tasks: [
            "draft": ["state": "done", "tokenUsage": ["totalTokens": 1_000], "cost": 0.01, "executionTime": 1_500],
            "review": ["state": "running", "currentStage": "inference", "refinementAttempts": 1],
        ])
        let frame = LiveDisplay.frame(
            doc,
            lastEvent: "review inference started",
            wall: 2,
            color: false,
            columns: 120,
            rows: 20
        )
        #expect(frame.count == 4)
        #expect(frame[0].hasPrefix("essay 20261205T120000Z-ab12  running"))
        #expect(frame[0].contains("0/2 tasks  0 tokens  $0.0000  2.00 s"))
        #expect(frame[1].hasPrefix("  ✔ draft  ███████████ done"))
        #expect(frame[1].contains("1,000 tok  $0.0100    1.50 s"))
        #expect(frame[2].hasPrefix("  ▸ review ████"))
        #expect(frame[2].contains("running   inference         cycle 1"))
        #expect(frame[3] == "  review inference started")
        #expect(!frame.joined().contains("\u{1B}["))
    }

    @Test func manyTasksShowAWindowAroundTheCurrentOne() {
        var tasks: [String: JSONValue] = [:]
        var order: [JSONValue] = []
        for index in 0..<50 {
            let name = "t\(index)"
            order.append(.string(name))
            tasks[name] = ["state": index < 30 ? "done" : index == 30 ? "running" : "pending"]
        }
        let doc = JobStatusDocument(json: [
            "id": "20261205T120000Z-ab12", "name": "big", "state": "running", "current": "t30",
            "taskOrder": .array(order), "tasks": .object(tasks),
            "progress": ["tasksDone": 30, "tasksTotal": 50, "percent": 60],
        ])
        let frame = LiveDisplay.frame(doc, lastEvent: nil, wall: nil, color: false, columns: 80, rows: 12)
        #expect(frame.count == 1 + 1 + 6 + 1)
        #expect(frame[1].contains("tasks above"))
        #expect(frame.contains { $0.contains("▸ t30") })
        #expect(frame.last?.contains("tasks below") == true)
        #expect(frame.allSatisfy { $0.count <= 79 })
    }

    @Test func colourOnlyWhenAsked() {
        let doc = document()
        let frame = LiveDisplay.frame(doc, lastEvent: nil, wall: nil, color: true, columns: 100, rows: 20)
        #expect(frame[0].contains("\u{1B}[1messay \u{1B}[0m"))
    }
}

@Suite("Formats")
struct FormatTests {
    @Test func numbersTimesAndDurations() {
        #expect(Format.count(1_234_567) == "1,234,567")
        #expect(Format.count(-1_000) == "-1,000")
        #expect(Format.cost(0.01234) == "$0.0123")
        #expect(Format.duration(0.0032) == "3.2 ms")
        #expect(Format.duration(4.2) == "4.20 s")
        #expect(Format.duration(123.4) == "2:03.4")
        #expect(Format.epochSeconds("2026-12-05T12:00:01.250Z") == 1_796_472_001.25)
        #expect(Format.epochSeconds("yesterday") == nil)
    }
}
