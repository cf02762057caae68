import JSON
import StageEngine
import Testing

@Suite("Status events")
struct StatusEventTests {
    /// Each event as the protocol sends it (protocol/README.md, "Status notifications").
    @Test func eachEventHasItsWireShape() {
        let cases: [(StatusEvent, JSONValue)] = [
            (.job(.pending), ["type": "job", "state": "pending"]),
            (.job(.pending, retryFrom: "review"), ["type": "job", "state": "pending", "retryFrom": "review"]),
            (
                .job(.failed, task: "draft", failedStage: "parsing"),
                ["type": "job", "state": "failed", "task": "draft", "failedStage": "parsing"]
            ),
            (.job(.cancelled, task: "draft"), ["type": "job", "state": "cancelled", "task": "draft"]),
            (
                .taskRunning(task: "draft", attempt: 2),
                ["type": "task", "task": "draft", "state": "running", "attempt": 2]
            ),
            (.taskDone(task: "draft"), ["type": "task", "task": "draft", "state": "done"]),
            (
                .taskDone(task: "draft", recovered: true),
                ["type": "task", "task": "draft", "state": "done", "recovered": true]
            ),
            (
                .taskFailed(task: "draft", failedStage: "parsing"),
                ["type": "task", "task": "draft", "state": "failed", "failedStage": "parsing"]
            ),
            (
                .taskRetrying(task: "draft", failedStage: "inference"),
                ["type": "task", "task": "draft", "state": "retrying", "failedStage": "inference"]
            ),
            (
                .taskRefining(task: "draft", cycle: 1, reason: "validation failed"),
                [
                    "type": "task", "task": "draft", "state": "refining", "refinementCycle": 1,
                    "reason": "validation failed",
                ]
            ),
            (
                .stageStarted(task: "draft", stage: .inference, refinementCycle: 0, preRefinement: true),
                [
                    "type": "stage", "task": "draft", "stage": "inference", "state": "started", "refinementCycle": 0,
                    "preRefinement": true,
                ]
            ),
            (
                .stageFinished(
                    task: "draft",
                    stage: "inference",
                    succeeded: true,
                    refinementCycle: 0,
                    milliseconds: 1.5
                ),
                [
                    "type": "stage", "task": "draft", "stage": "inference", "state": "completed", "refinementCycle": 0,
                    "ms": 1.5,
                ]
            ),
            (
                .stageFinished(
                    task: "draft",
                    stage: "parsing",
                    succeeded: false,
                    refinementCycle: 1,
                    milliseconds: nil
                ),
                ["type": "stage", "task": "draft", "stage": "parsing", "state": "failed", "refinementCycle": 1]
            ),
            (.usage(task: "draft", stage: "inference"), ["type": "usage", "task": "draft", "stage": "inference"]),
        ]
        for (event, json) in cases {
            #expect(event.json == json, "\(event)")
        }
    }

    @Test func onlyJobAndTaskEventsAreTransitions() {
        #expect(StatusEvent.job(.done).isTransition)
        #expect(StatusEvent.taskRefining(task: "a", cycle: 1, reason: "").isTransition)
        #expect(!StatusEvent.usage(task: "a", stage: "inference").isTransition)
        #expect(
            !StatusEvent.stageStarted(task: "a", stage: .inference, refinementCycle: 0, preRefinement: false)
                .isTransition
        )
    }

    @Test func terminalStatesAreOneSet() {
        #expect(JobState.terminal == [.done, .failed, .cancelled, .interrupted])
        #expect(JobState.allCases.filter(\.isTerminal).count == 4)
        #expect(JobState.allCases.filter(\.isResumable) == [.pending, .cancelled, .interrupted])
    }
}
