import Testing
import Threads

@Suite("Deadline timer")
struct DeadlineTimerTests {
    /// Collects which actions ran, in order, and lets a test wait for a number of them.
    final class Fired: Sendable {
        let names = ConditionLock<[String]>([])
        func add(_ name: String) { names.withLock(notifying: true) { $0.append(name) } }
        func wait(for count: Int) async -> [String] {
            await withCheckedContinuation { continuation in
                startThread { [names] in
                    continuation.resume(returning: names.wait(until: { $0.count >= count }) { $0 })
                }
            }
        }
    }

    /// A deadline set after a later one fires first: setting the earliest deadline wakes the
    /// timer's thread, which was sleeping until the later one. Actions due together run in the
    /// order of their deadlines.
    @Test func anEarlierDeadlineSetLaterFiresFirst() async {
        let fired = Fired()
        let late = DeadlineTimer.shared.schedule(after: .seconds(600)) { fired.add("late") }
        defer { DeadlineTimer.shared.cancel(late) }
        _ = DeadlineTimer.shared.schedule(after: .milliseconds(300)) { fired.add("second") }
        _ = DeadlineTimer.shared.schedule(after: .milliseconds(1)) { fired.add("first") }
        #expect(await fired.wait(for: 2) == ["first", "second"])
    }

    /// A cancelled alarm never runs; one set beside it still does.
    @Test func aCancelledAlarmDoesNotRun() async {
        let fired = Fired()
        // Cancelled seconds ahead of its deadline, however slow the machine.
        let cancelled = DeadlineTimer.shared.schedule(after: .seconds(2)) { fired.add("cancelled") }
        DeadlineTimer.shared.cancel(cancelled)
        _ = DeadlineTimer.shared.schedule(after: .milliseconds(2_500)) { fired.add("kept") }
        #expect(await fired.wait(for: 1) == ["kept"])
        #expect(fired.names.withLock { $0 } == ["kept"])
    }
}
