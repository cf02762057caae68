import JSON
import TestSupport

/// Hands each response to the request waiting for it, reading the server's output once: with
/// thousands of requests in flight over a long run, waiting with ``FrameReader/response(id:timeout:)``
/// would scan every message received for every waiter at every message.
final class ResponseRouter: Sendable {
    private struct State {
        var waiting: [Int64: CheckedContinuation<JSONValue, any Error>] = [:]
        var early: [Int64: JSONValue] = [:]
        var ended = false
    }

    private let state = Locked(State())

    init(_ output: FrameReader) {
        // It ends with the output (the server's exit), and is not cancelled: a cancelled wait
        // returns at once and would spin.
        Task { [state] in
            var seen = 0
            while true {
                let count = seen
                try? await output.wait(timeout: .seconds(86_400), "more output") { messages, ended in
                    messages.count > count || ended
                }
                let new = output.messages(from: seen)
                seen += new.count
                if new.isEmpty && output.ended { break }
                for message in new where message["method"] == nil {
                    guard let id = message["id"]?.integerValue else { continue }
                    let waiter = state.withLock { state in
                        guard let waiter = state.waiting.removeValue(forKey: id) else {
                            state.early[id] = message
                            return CheckedContinuation<JSONValue, any Error>?.none
                        }
                        return waiter
                    }
                    waiter?.resume(returning: message)
                }
            }
            let waiters = state.withLock { state in
                state.ended = true
                let all = state.waiting
                state.waiting = [:]
                return all
            }
            for (id, waiter) in waiters {
                waiter.resume(throwing: NoAnswer(description: "the server closed its output before answering \(id)"))
            }
        }
    }

    /// The response to request `id`; fails after `timeout`, or when the output ends without it.
    func response(id: Int, timeout: Duration) async throws -> JSONValue {
        let key = Int64(id)
        let deadline = Task { [state] in
            try? await Task.sleep(for: timeout)
            if Task.isCancelled { return }
            let waiter = state.withLock { $0.waiting.removeValue(forKey: key) }
            waiter?.resume(throwing: NoAnswer(description: "no answer to request \(id) within \(timeout)"))
        }
        defer { deadline.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<JSONValue, any Error>? in
                if let message = state.early.removeValue(forKey: key) { return .success(message) }
                if state.ended { return .failure(NoAnswer(description: "the server closed its output")) }
                state.waiting[key] = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// A request the server did not answer in time, or before its output ended.
struct NoAnswer: Error, CustomStringConvertible {
    let description: String
}
