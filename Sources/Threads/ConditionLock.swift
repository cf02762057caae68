#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A lock that owns the state it guards, with a condition to wait on: for the few OS threads
/// that must block until the state changes (the JSON-RPC reader when the peer floods it, the
/// writer and the group committer when there is nothing to do). The state is reachable only
/// inside ``withLock(notifying:_:)`` and ``wait(until:then:)``, so no field can be read or
/// changed without the lock. Swift tasks never wait on it: they only take it briefly, as they
/// would a `Mutex`, which is what everything that does not block a thread uses instead.
public final class ConditionLock<State> {
    // Inlinable, so that each user's calls are specialized for its State: an unspecialized
    // generic call on every message costs the connection a third more instructions per request.
    @usableFromInline let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    @usableFromInline let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    @usableFromInline var state: State

    public init(_ initial: State) {
        state = initial
        pthread_mutex_init(mutex, nil)
        #if canImport(Glibc)
        // Timed waits count on the monotonic clock: a change of the wall clock moves no deadline.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        #else
        pthread_cond_init(condition, nil)
        #endif
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` on the state, holding the lock; with `notifying`, wakes every thread waiting
    /// in ``wait(until:then:)`` afterwards, to look at the state again.
    @inlinable
    public func withLock<Result>(notifying: Bool = false, _ body: (inout State) throws -> Result) rethrows -> Result {
        try withLock(notifyingIf: { _ in notifying }, body)
    }

    /// Runs `body` on the state, holding the lock, then wakes the waiting threads if `notify`
    /// holds for the state it left: a wake-up nobody needs costs a context switch.
    @inlinable
    public func withLock<Result>(
        notifyingIf notify: (State) -> Bool,
        _ body: (inout State) throws -> Result
    ) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer {
            if notify(state) { pthread_cond_broadcast(condition) }
            pthread_mutex_unlock(mutex)
        }
        return try body(&state)
    }

    /// Blocks the calling OS thread until `ready` holds for the state, then runs `body` on it,
    /// still holding the lock. Only for threads that may block, never from a Swift task.
    @inlinable
    public func wait<Result>(until ready: (State) -> Bool, then body: (inout State) throws -> Result) rethrows -> Result
    {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ready(state) { pthread_cond_wait(condition, mutex) }
        return try body(&state)
    }

    /// What a step of ``waitInSteps(_:)`` decided: finish with a result, or wait for a
    /// notification or the monotonic clock reaching a time (nanoseconds), then step again.
    public enum Step<Result> {
        case finish(Result)
        case wait(untilMonotonic: UInt64)
    }

    /// Runs `step` on the state under the lock until it finishes, waiting between steps as it
    /// says, with the lock released while waiting. Only for threads that may block.
    public func waitInSteps<Result>(_ step: (inout State) -> Step<Result>) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            switch step(&state) {
            case .finish(let result):
                return result
            case .wait(let deadline) where deadline == UInt64.max:
                pthread_cond_wait(condition, mutex)
            case .wait(let deadline):
                #if canImport(Glibc)
                var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                _ = pthread_cond_timedwait(condition, mutex, &time)
                #else
                let now = clock_gettime_nsec_np(CLOCK_MONOTONIC)
                let left = deadline > now ? deadline - now : 0
                var time = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
                _ = pthread_cond_timedwait_relative_np(condition, mutex, &time)
                #endif
            }
        }
    }
}

// The state is reached only under the lock.
extension ConditionLock: @unchecked Sendable where State: Sendable {}

/// Starts a detached OS thread (not a Swift task: it may block in read(2), write(2), a condition
/// or a poll).
public func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let result = pthread_create(
        &thread,
        &attributes,
        { raw in
            #if canImport(Glibc)
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            #else
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            #endif
            box.body()
            return nil
        },
        context
    )
    pthread_attr_destroy(&attributes)
    precondition(result == 0, "pthread_create failed: \(result)")
}
