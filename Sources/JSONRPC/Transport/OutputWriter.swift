import Threads

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The single writer of the protocol stream.
///
/// Frames queued while a write is in progress are coalesced into the next `write(2)`, so a burst
/// of responses costs a few system calls. The reader thread may write inline when the writer is
/// idle (one wake-up per round trip, as with `cat`); Swift tasks only queue and never block.
final class OutputWriter: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var writing = false
        var closed = false
        var broken = false
        /// The reader is blocked in `waitWhilePending`.
        var readerWaiting = false
        var drainWaiters: [CheckedContinuation<Void, Never>] = []

        /// Whether a blocked thread has something to look at: the writer when there is work for
        /// it, the reader when it waits.
        var wakesWaiters: Bool { !pending.isEmpty || readerWaiting || broken || closed }
    }

    private let descriptor: Int32
    private let state: ConditionLock<State>
    /// Called once, off the lock, when the peer stops reading (EPIPE or another write error).
    private let onBroken: @Sendable (Int32) -> Void

    init(descriptor: Int32, onBroken: @escaping @Sendable (Int32) -> Void) {
        self.descriptor = descriptor
        self.onBroken = onBroken
        var initial = State()
        initial.pending.reserveCapacity(64 * 1024)
        state = ConditionLock(initial)
        startThread { [self] in run() }
    }

    /// Bytes queued and not yet written.
    var pendingBytes: Int { state.withLock { $0.pending.count } }

    /// Queues bytes for the writer thread. Never blocks.
    func enqueue(_ bytes: [UInt8]) {
        state.withLock(notifyingIf: { !$0.writing && !$0.broken }) { state in
            guard !state.broken else { return }
            state.pending.append(contentsOf: bytes)
        }
    }

    /// Writes `bytes` on the calling thread when the writer is idle, else queues them.
    /// Only for threads that may block (the reader).
    func writeInline(_ bytes: inout [UInt8]) {
        let inline: Bool = state.withLock(notifyingIf: { !$0.pending.isEmpty && !$0.broken }) { state in
            if state.broken { return false }
            if state.writing || !state.pending.isEmpty {
                state.pending.append(contentsOf: bytes)
                return false
            }
            state.writing = true
            return true
        }
        guard inline else { return }
        let error = writeAll(bytes)
        finishWrite(error: error)
    }

    /// Blocks the calling OS thread while more than `limit` bytes wait to be written.
    func waitWhilePending(moreThan limit: Int) {
        let mustWait: Bool = state.withLock { state in
            guard state.pending.count > limit && !state.broken else { return false }
            state.readerWaiting = true
            return true
        }
        guard mustWait else { return }
        state.wait(until: { $0.pending.count <= limit || $0.broken }) { $0.readerWaiting = false }
    }

    /// Returns once everything queued so far is written (or can never be); at once when no more
    /// than `limit` bytes wait.
    func drain(above limit: Int = 0) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done: Bool = state.withLock { state in
                if (state.pending.count <= limit && (limit > 0 || !state.writing)) || state.broken { return true }
                state.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Stops the writer thread once the queue is empty.
    func close() {
        state.withLock(notifying: true) { $0.closed = true }
    }

    private func run() {
        var batch: [UInt8] = []
        batch.reserveCapacity(64 * 1024)
        while true {
            // Sleep while the reader writes inline, or while there is nothing to do.
            let more: Bool = state.wait(
                until: { $0.broken || (!$0.writing && (!$0.pending.isEmpty || $0.closed)) }
            ) { state in
                if state.broken || state.pending.isEmpty { return false }
                swap(&state.pending, &batch)
                state.writing = true
                return true
            }
            guard more else { return }
            let error = writeAll(batch)
            batch.removeAll(keepingCapacity: batch.capacity <= 1 << 20)
            finishWrite(error: error)
        }
    }

    /// Bookkeeping after a write: a failed one breaks the stream, drain waiters resume once
    /// everything is out.
    private func finishWrite(error: Int32?) {
        let (waiters, broke): ([CheckedContinuation<Void, Never>], Bool) = state.withLock(
            notifyingIf: \.wakesWaiters
        ) { state in
            state.writing = false
            var broke = false
            if error != nil, !state.broken {
                state.broken = true
                state.pending = []
                broke = true
            }
            guard (state.pending.isEmpty && !state.writing) || state.broken else { return ([], broke) }
            let waiters = state.drainWaiters
            state.drainWaiters = []
            return (waiters, broke)
        }
        for waiter in waiters { waiter.resume() }
        if broke, let code = error {
            // Off the lock: the callback may take other locks.
            Task { [onBroken] in onBroken(code) }
        }
    }

    /// Writes everything, retrying short writes and EINTR; returns errno on failure.
    private func writeAll(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
    }
}
