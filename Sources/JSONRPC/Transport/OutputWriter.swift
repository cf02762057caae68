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
final class OutputWriter: @unchecked Sendable {
    private let descriptor: Int32
    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var pending: [UInt8] = []
    private var spare: [UInt8] = []
    private var writing = false
    private var closed = false
    private var broken = false
    /// The reader is blocked in `waitWhilePending`.
    private var readerWaiting = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// Called once, off the lock, when the peer stops reading (EPIPE or another write error).
    private let onBroken: @Sendable (Int32) -> Void

    init(descriptor: Int32, onBroken: @escaping @Sendable (Int32) -> Void) {
        self.descriptor = descriptor
        self.onBroken = onBroken
        pending.reserveCapacity(64 * 1024)
        spare.reserveCapacity(64 * 1024)
        startThread { [self] in run() }
    }

    /// Bytes queued and not yet written.
    var pendingBytes: Int { lock.withLock { pending.count } }

    /// Queues bytes for the writer thread. Never blocks.
    func enqueue(_ bytes: [UInt8]) {
        lock.withLock {
            guard !broken else { return }
            pending.append(contentsOf: bytes)
            if !writing { lock.broadcast() }
        }
    }

    /// Writes `bytes` on the calling thread when the writer is idle, else queues them.
    /// Only for threads that may block (the reader).
    func writeInline(_ bytes: inout [UInt8]) {
        lock.lock()
        if broken {
            lock.unlock()
            return
        }
        if writing || !pending.isEmpty {
            pending.append(contentsOf: bytes)
            lock.broadcast()
            lock.unlock()
            return
        }
        writing = true
        lock.unlock()
        let error = writeAll(bytes)
        lock.lock()
        writing = false
        finishWrite(error: error)
        lock.unlock()
    }

    /// Blocks the calling OS thread while more than `limit` bytes wait to be written.
    func waitWhilePending(moreThan limit: Int) {
        lock.withLock {
            while pending.count > limit && !broken {
                readerWaiting = true
                lock.wait()
            }
            readerWaiting = false
        }
    }

    /// Returns once everything queued so far is written (or can never be); at once when no more
    /// than `limit` bytes wait.
    func drain(above limit: Int = 0) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if (pending.count <= limit && (limit > 0 || !writing)) || broken {
                lock.unlock()
                continuation.resume()
            } else {
                drainWaiters.append(continuation)
                lock.unlock()
            }
        }
    }

    /// Stops the writer thread once the queue is empty.
    func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }

    private func run() {
        lock.lock()
        while true {
            // Sleep while the reader writes inline, or while there is nothing to do.
            while !broken && (writing || (pending.isEmpty && !closed)) { lock.wait() }
            if broken || pending.isEmpty { break }
            swap(&pending, &spare)
            writing = true
            lock.unlock()
            let error = writeAll(spare)
            spare.removeAll(keepingCapacity: spare.capacity <= 1 << 20)
            lock.lock()
            writing = false
            finishWrite(error: error)
        }
        lock.unlock()
    }

    /// Bookkeeping after a write; the lock must be held.
    private func finishWrite(error: Int32?) {
        if let error, !broken {
            broken = true
            pending = []
            let code = error
            // Off the lock: the callback may take other locks.
            Task { [onBroken] in onBroken(code) }
        }
        if (pending.isEmpty && !writing) || broken {
            let waiters = drainWaiters
            drainWaiters = []
            for waiter in waiters { waiter.resume() }
        }
        // Wake the writer thread only when there is work for it, or the reader when it waits:
        // a needless wake-up per message costs a context switch on every round trip.
        if !pending.isEmpty || readerWaiting || broken || closed { lock.broadcast() }
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
