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

    /// A deadline set after a later one fires: setting the earliest deadline wakes the timer's
    /// thread, which was sleeping until the later one.
    @Test func anEarlierDeadlineSetLaterFires() async {
        let fired = Fired()
        let late = DeadlineTimer.shared.schedule(after: .seconds(600)) { fired.add("late") }
        defer { DeadlineTimer.shared.cancel(late) }
        _ = DeadlineTimer.shared.schedule(after: .milliseconds(1)) { fired.add("early") }
        #expect(await fired.wait(for: 1) == ["early"])
    }

    /// Actions that are due together run in the order of their deadlines: eight alarms fall due
    /// while a first one holds the timer's thread, then run in order once it lets go (a
    /// dictionary's order would put eight in order one time in 40,320).
    @Test func actionsDueTogetherRunInDeadlineOrder() async throws {
        let fired = Fired()
        let gate = ConditionLock(false)
        _ = DeadlineTimer.shared.schedule(after: .milliseconds(1)) {
            gate.wait(until: { $0 }) { _ in }
        }
        // Each set later and for longer than the one before: their deadlines are in this order.
        for number in 0..<8 {
            _ = DeadlineTimer.shared.schedule(after: .milliseconds(2 + number)) { fired.add("\(number)") }
        }
        try await Task.sleep(for: .milliseconds(50))
        gate.withLock(notifying: true) { $0 = true }
        #expect(await fired.wait(for: 8) == (0..<8).map { "\($0)" })
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
