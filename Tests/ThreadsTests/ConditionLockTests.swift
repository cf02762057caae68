import Testing
import Threads

@Suite("Condition lock")
struct ConditionLockTests {
    /// A thread blocked in `wait(until:then:)` wakes when another changes the state and notifies,
    /// and sees the change.
    @Test func aWaitingThreadSeesTheChange() async {
        let lock = ConditionLock<(value: Int, seen: Int?)>((0, nil))
        let done = ConditionLock(false)
        startThread {
            let seen = lock.wait(until: { $0.value >= 3 }) { $0.value }
            lock.withLock { $0.seen = seen }
            done.withLock(notifying: true) { $0 = true }
        }
        for _ in 0..<3 { lock.withLock(notifying: true) { $0.value += 1 } }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            startThread {
                done.wait(until: { $0 }) { _ in }
                continuation.resume()
            }
        }
        #expect(lock.withLock { $0.seen } == 3)
    }

    /// `notifyingIf` wakes waiters only when the state it leaves asks for it; a waiter still
    /// wakes on the change it waits for.
    @Test func notifyingIfWakesForTheStateThatMatters() async {
        let lock = ConditionLock<[Int]>([])
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            startThread {
                lock.wait(until: { $0.count == 100 }) { _ in }
                continuation.resume()
            }
            for value in 0..<100 {
                lock.withLock(notifyingIf: { $0.count == 100 }) { $0.append(value) }
            }
        }
        #expect(lock.withLock { $0 } == Array(0..<100))
    }

    /// Many threads changing the state at once lose no update.
    @Test func updatesFromManyThreadsAreNotLost() async {
        let lock = ConditionLock(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        startThread {
                            for _ in 0..<10_000 { lock.withLock { $0 += 1 } }
                            continuation.resume()
                        }
                    }
                }
            }
        }
        #expect(lock.withLock { $0 } == 80_000)
    }
}
