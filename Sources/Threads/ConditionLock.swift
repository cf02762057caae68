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
        pthread_cond_init(condition, nil)
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
