import Testing
import Threads

#if canImport(Glibc)
import Glibc
#endif

@Suite("Deadline timer")
struct DeadlineTimerTests {
    /// Collects which actions ran, in order, and lets a test wait for a number of them.
    final class Fired: Sendable {
        let names = ConditionLock<[String]>([])
        func add(_ name: String) { names.withLock(notifying: true) { $0.append(name) } }
        /// The names once `count` have run, or those that ran within a minute: a broken timer
        /// fails the expectation rather than hanging the suite.
        func wait(for count: Int) async -> [String] {
            await withCheckedContinuation { continuation in
                startThread { [names] in
                    var time = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &time)
                    let deadline = UInt64(time.tv_sec + 60) * 1_000_000_000 + UInt64(time.tv_nsec)
                    let seen = names.waitInSteps { names -> ConditionLock<[String]>.Step<[String]> in
                        clock_gettime(CLOCK_MONOTONIC, &time)
                        let now = UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
                        return names.count >= count || now >= deadline
                            ? .finish(names) : .wait(untilMonotonic: deadline)
                    }
                    continuation.resume(returning: seen)
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
