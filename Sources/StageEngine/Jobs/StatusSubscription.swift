import JSON
import Synchronization

/// One change of a job's status document, as subscribers receive it.
public struct StatusChange: Sendable {
    public var jobId: String
    /// The document's revision after the change.
    public var rev: Int
    /// What changed last.
    public var event: StatusEvent
    /// Every change this one stands for, in order (one unless a slow subscriber's changes were
    /// merged; then stage and usage events may be left out past a limit, job and task events never).
    public var events: [StatusEvent]
    /// The operations that turn the document at `baseRev` into the one at `rev`; nil when the
    /// subscriber must take `snapshot` instead (first sight of a job, or too far behind).
    public var operations: [JSONPatchOperation]?
    /// The revision `operations` apply to.
    public var baseRev: Int
    /// The whole document at `rev`.
    public var snapshot: JSONValue
    /// How many changes this one stands for (more than one when a slow subscriber's were merged).
    public var coalesced: Int
}

/// A subscriber's mailbox of status changes. Publishing never waits: while the subscriber is
/// busy, the changes of each job are merged into one (operations concatenated up to a limit, then
/// dropped in favour of the snapshot), so a slow subscriber costs memory bounded by the documents,
/// never blocks a job, and always receives the latest state.
public final class StatusSubscription: Sendable {
    /// The job followed, or nil for every job.
    public let jobId: String?
    /// Merged operations kept per job before a subscriber is sent the snapshot instead.
    static let operationLimit = 2_000

    struct Pending {
        var change: StatusChange
    }

    struct State {
        /// Per job, the last revision delivered (or given as the baseline).
        var delivered: [String: Int] = [:]
        var pending: [String: Pending] = [:]
        /// Jobs in the order their first pending change arrived.
        var order: [String] = []
        var waiter: CheckedContinuation<StatusChange?, Never>?
        var closed = false
        /// Sends a change at once, on the publisher's thread; false when it cannot now.
        var sink: (@Sendable (StatusChange) -> Bool)?
    }

    private let state = Mutex(State())
    private let onClose: @Sendable () -> Void

    init(jobId: String?, onClose: @escaping @Sendable () -> Void) {
        self.jobId = jobId
        self.onClose = onClose
    }

    /// Records that the subscriber holds `job` at `rev` (the answer to subscribing).
    func setBaseline(job: String, rev: Int) {
        state.withLock { state in
            state.delivered[job] = max(state.delivered[job] ?? -1, rev)
            if let pending = state.pending[job], pending.change.rev <= rev {
                state.pending.removeValue(forKey: job)
                state.order.removeAll { $0 == job }
            }
        }
    }

    func publish(_ change: StatusChange) {
        let delivery: (CheckedContinuation<StatusChange?, Never>, StatusChange)? = state.withLock { state in
            guard !state.closed else { return nil }
            let delivered = state.delivered[change.jobId]
            if let delivered, change.rev <= delivered { return nil }
            var merged = change
            if var pending = state.pending[change.jobId] {
                merged.baseRev = pending.change.baseRev
                merged.coalesced = pending.change.coalesced + 1
                merged.events = pending.change.events
                if merged.events.count < Self.operationLimit || change.event.isTransition {
                    merged.events.append(change.event)
                }
                if let earlier = pending.change.operations, let later = change.operations,
                    earlier.count + later.count <= Self.operationLimit
                {
                    merged.operations = earlier + later
                } else {
                    merged.operations = nil
                }
                pending.change = merged
                state.pending[change.jobId] = pending
                return nil
            }
            if delivered == nil || delivered != change.baseRev {
                // Never seen, or a gap: the snapshot is the only safe start.
                merged.operations = nil
                merged.baseRev = delivered ?? 0
            }
            // Nothing waits to go out and the subscriber is idle: sent at once, without waking it,
            // so a change reaches the client without waiting for a thread of the shared pool.
            if state.waiter != nil, state.order.isEmpty, let sink = state.sink, sink(merged) {
                state.delivered[change.jobId] = merged.rev
                return nil
            }
            if let waiter = state.waiter {
                state.waiter = nil
                state.delivered[change.jobId] = merged.rev
                return (waiter, merged)
            }
            state.pending[change.jobId] = Pending(change: merged)
            state.order.append(change.jobId)
            return nil
        }
        if let (waiter, change) = delivery { waiter.resume(returning: change) }
    }

    /// Sends later changes with `sink` when nothing is queued and the subscriber waits in
    /// `next()`; `sink` returns false when it cannot send now (the change then queues as usual).
    /// It runs under the subscription's lock: it must only hand the change on, never wait.
    public func setImmediateSink(_ sink: @escaping @Sendable (StatusChange) -> Bool) {
        state.withLock { $0.sink = sink }
    }

    /// The next change, waiting for one; nil once the subscription is closed.
    public func next() async -> StatusChange? {
        await withCheckedContinuation { continuation in
            let ready: StatusChange?? = state.withLock { state in
                if state.closed { return .some(nil) }
                if let job = state.order.first, let pending = state.pending.removeValue(forKey: job) {
                    state.order.removeFirst()
                    state.delivered[job] = pending.change.rev
                    return .some(pending.change)
                }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Returns once every change published so far has been taken and the subscriber is waiting
    /// for the next one (it has finished with the last), or after `timeout`.
    public func waitUntilDelivered(timeout: Duration = .seconds(5)) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let idle = state.withLock { $0.closed || ($0.pending.isEmpty && $0.waiter != nil) }
            if idle { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Stops the subscription; a waiting `next()` returns nil.
    public func close() {
        let waiter: CheckedContinuation<StatusChange?, Never>? = state.withLock { state in
            guard !state.closed else { return nil }
            state.closed = true
            state.pending = [:]
            state.order = []
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
        onClose()
    }
}

/// Hands every status change to the subscriptions that follow its job.
final class StatusHub: Sendable {
    private struct Registry {
        var next = 0
        var subscriptions: [Int: StatusSubscription] = [:]
    }

    private let registry = Mutex(Registry())

    func subscribe(jobId: String?) -> StatusSubscription {
        let id = registry.withLock { registry in
            registry.next += 1
            return registry.next
        }
        let subscription = StatusSubscription(jobId: jobId) { [weak self] in
            _ = self?.registry.withLock { $0.subscriptions.removeValue(forKey: id) }
        }
        registry.withLock { $0.subscriptions[id] = subscription }
        return subscription
    }

    func publish(_ change: StatusChange) {
        let targets = registry.withLock { Array($0.subscriptions.values) }
        for subscription in targets where subscription.jobId == nil || subscription.jobId == change.jobId {
            subscription.publish(change)
        }
    }
}
