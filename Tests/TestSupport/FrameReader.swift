import Foundation
import JSON
import JSONRPC
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A test timed out waiting for the peer.
public struct TimedOut: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// Reads what a server writes, on its own thread, and hands out each frame as JSON.
///
/// It also keeps every raw byte, so a test can check that nothing but frames reached the stream.
public final class FrameReader: Sendable {
    private struct State {
        var messages: [JSONValue] = []
        var raw: [UInt8] = []
        var ended = false
        var problems: [String] = []
        var waiters: [(id: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())
    private let nextIndex = Mutex(0)
    private let paused = Mutex(false)

    /// Starts reading `descriptor` until end of file; frames are split with `framing`.
    public init(descriptor: Int32, framing: FramingMode) {
        let thread = ThreadBody { [self] in readLoop(descriptor, framing) }
        thread.start()
    }

    private func readLoop(_ descriptor: Int32, _ framing: FramingMode) {
        var decoder = FrameDecoder(mode: framing, maximumMessageSize: 1 << 30)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            // A paused reader leaves the bytes in the pipe, as a client that stops reading would.
            while paused.withLock({ $0 }) { usleep(1000) }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            let chunk = Array(buffer[0..<count])
            var found: [JSONValue] = []
            var problems: [String] = []
            chunk.withUnsafeBufferPointer { pointer in
                decoder.feed(pointer) { event in
                    func parse(_ bytes: UnsafeBufferPointer<UInt8>) {
                        do {
                            found.append(try JSONParser.parse(bytes))
                        } catch {
                            problems.append("unparsable frame: \(error): \(String(decoding: bytes, as: UTF8.self))")
                        }
                    }
                    switch event {
                    case .frame(let bytes): parse(bytes)
                    case .assembled(let frame): frame.bytes.withUnsafeBufferPointer(parse)
                    case .error(let error): problems.append("bad framing from the server: \(error.message)")
                    case .detected: break
                    }
                }
            }
            update { state in
                state.raw.append(contentsOf: chunk)
                state.messages.append(contentsOf: found)
                state.problems.append(contentsOf: problems)
            }
        }
        decoder.finish { event in
            if case .error(let error) = event { update { $0.problems.append("bad framing: \(error.message)") } }
        }
        update { $0.ended = true }
        close(descriptor)
    }

    private func update(_ change: (inout State) -> Void) {
        let waiters = state.withLock { state in
            change(&state)
            let all = state.waiters
            state.waiters = []
            return all
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    /// Stops reading (after the read under way, if any) until `resume()`: the writer's pipe fills
    /// and it finds a client that reads nothing.
    public func pause() { paused.withLock { $0 = true } }

    /// Reads again after `pause()`.
    public func resume() { paused.withLock { $0 = false } }

    /// Every byte received so far.
    public var rawBytes: [UInt8] { state.withLock { $0.raw } }
    /// Every message received so far.
    public var messages: [JSONValue] { state.withLock { $0.messages } }
    /// The messages received from index `start` on: unlike `messages`, it copies only those, so a
    /// long test can follow the output without copying everything at every step.
    public func messages(from start: Int) -> [JSONValue] {
        state.withLock { Array($0.messages[min(start, $0.messages.count)...]) }
    }
    /// Framing or JSON problems seen in the server's output (should stay empty).
    public var problems: [String] { state.withLock { $0.problems } }
    /// Whether the server closed its output.
    public var ended: Bool { state.withLock { $0.ended } }

    /// Waits until `condition` holds over the received messages, or fails after `timeout`.
    public func wait(
        timeout: Duration = TestTimeouts.wait,
        _ what: String,
        until condition: @escaping @Sendable ([JSONValue], Bool) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let satisfied = state.withLock { condition($0.messages, $0.ended) }
            if satisfied { return }
            if ContinuousClock.now >= deadline {
                throw TimedOut(description: "timed out after \(timeout) waiting for \(what); got \(messages)")
            }
            // Wake on the next change, or re-check at the deadline.
            let id = nextIndex.withLock { value in
                value += 1
                return value
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await withCheckedContinuation { continuation in
                        let registered = self.state.withLock { state -> Bool in
                            if condition(state.messages, state.ended) { return false }
                            state.waiters.append((id, continuation))
                            return true
                        }
                        if !registered { continuation.resume() }
                    }
                }
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                        guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                        return state.waiters.remove(at: index).continuation
                    }
                    waiter?.resume()
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Waits for `count` messages in all and returns them.
    @discardableResult
    public func waitForMessages(_ count: Int, timeout: Duration = TestTimeouts.wait) async throws -> [JSONValue] {
        try await wait(timeout: timeout, "\(count) messages") { messages, _ in messages.count >= count }
        return messages
    }

    /// Waits for the response whose id is `id` (not a request of the server's with the same id:
    /// the two sides number their requests independently).
    public func response(id: JSONValue, timeout: Duration = TestTimeouts.wait) async throws -> JSONValue {
        @Sendable func isResponse(_ message: JSONValue) -> Bool { message["id"] == id && message["method"] == nil }
        try await wait(timeout: timeout, "the response to id \(id)") { messages, _ in
            messages.contains(where: isResponse)
        }
        return messages.first(where: isResponse)!
    }

    /// Waits until the server closes its output.
    public func waitForEnd(timeout: Duration = TestTimeouts.wait) async throws {
        try await wait(timeout: timeout, "the end of the output") { _, ended in ended }
    }
}

/// Waits until `condition` holds (polling every millisecond), or fails after `timeout`.
public func eventually(
    _ what: String,
    timeout: Duration = TestTimeouts.wait,
    _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline {
            throw TimedOut(description: "timed out after \(timeout) waiting for \(what)")
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// Runs blocking work (a child process waited for, a pipe read to its end) on a thread of its own,
/// so that it does not hold one of the few threads that every test's async work shares.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                continuation.resume(returning: try work())
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// How long tests wait for what should come: generous, because the whole suite runs in parallel
/// on two cores, and on a machine loaded by other builds the tests that compute (the JSON Schema
/// suite, the template corpus, the crash campaigns) can hold the two threads of the tests'
/// cooperative pool for tens of seconds; a wait that expires is a failure either way.
public enum TestTimeouts {
    public static let wait: Duration = .seconds(90)
}
