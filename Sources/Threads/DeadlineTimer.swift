#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs actions at deadlines, all of them from one thread of its own: what a time limit on
/// work (a stage's timeout) needs, at the price of a lock and a dictionary entry.
///
/// A dispatch timer per limit costs two wake-ups of dispatch's manager thread (resume and
/// cancel); a sleeping task per limit keeps its timer until the deadline even once cancelled.
/// Most limits are set far ahead and cancelled long before (a stage of milliseconds under a
/// 300 s timeout), so setting one wakes nobody unless it is the new earliest deadline.
public final class DeadlineTimer: Sendable {
    /// A scheduled action, for ``cancel(_:)``.
    public struct Alarm: Sendable, Hashable {
        fileprivate let number: UInt64
    }

    private struct Entry {
        let deadline: UInt64
        let action: @Sendable () -> Void
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextNumber: UInt64 = 0
        /// When the thread will look next (`UInt64.max`: not before it is woken).
        var sleepingUntil = UInt64.max
    }

    /// One timer thread serves the whole process.
    public static let shared = DeadlineTimer()

    private let state = ConditionLock(State())

    private init() {
        startThread { [self] in run() }
    }

    /// Runs `action` on the timer's thread once `delay` has passed, unless cancelled first.
    /// The action must be brief: the next deadlines wait for it. Actions due together run in
    /// the order of their deadlines.
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> Alarm {
        let deadline = Self.now() &+ Self.nanoseconds(delay)
        return state.withLock(notifyingIf: { $0.sleepingUntil > deadline }) { state in
            state.nextNumber += 1
            state.entries[state.nextNumber] = Entry(deadline: deadline, action: action)
            return Alarm(number: state.nextNumber)
        }
    }

    /// Forgets `alarm`; its action will not run unless it already has. The thread is not woken:
    /// when it reaches a deadline that is gone, it finds nothing due and sleeps again.
    public func cancel(_ alarm: Alarm) {
        state.withLock { _ = $0.entries.removeValue(forKey: alarm.number) }
    }

    private func run() {
        while true {
            let due: [@Sendable () -> Void] = state.waitInSteps { state in
                let now = Self.now()
                var due: [(number: UInt64, entry: Entry)] = []
                var earliest = UInt64.max
                for (number, entry) in state.entries {
                    if entry.deadline <= now {
                        due.append((number, entry))
                    } else {
                        earliest = min(earliest, entry.deadline)
                    }
                }
                for (number, _) in due { state.entries.removeValue(forKey: number) }
                due.sort { ($0.entry.deadline, $0.number) < ($1.entry.deadline, $1.number) }
                // While the due actions run, a new deadline need not wake the thread.
                state.sleepingUntil = due.isEmpty ? earliest : 0
                return due.isEmpty ? .wait(untilMonotonic: earliest) : .finish(due.map(\.entry.action))
            }
            for action in due { action() }
        }
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? UInt64.max / 2 : whole &+ UInt64(attoseconds / 1_000_000_000)
    }
}
