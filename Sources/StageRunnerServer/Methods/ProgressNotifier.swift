import Foundation
import JSON
import JSONRPC
import ModelProviders
import StageEngine
import Synchronization

/// Turns a stage run's progress into LSP-style `$/progress` notifications for the request's
/// `progressToken`: a `begin`, `report`s carrying the answer's text deltas, and an `end`.
///
/// Deltas are coalesced: a report goes out once 256 characters are pending, or 50 ms after the
/// first pending delta, whichever comes first, so a fast stream costs a few notifications rather
/// than one per token. A retried attempt is a report with `restart: true` (drop the text so far).
/// The `end` is sent before the response, and nothing after it.
final class ProgressNotifier: Sendable {
    static let interval: Duration = .milliseconds(50)
    static let maximumPending = 256

    let connection: Connection
    let token: JSONValue

    private struct State {
        var pending = ""
        var pendingCharacters = 0
        /// Identifies the armed timer; a timer that fires for another generation does nothing.
        var timer: Int?
        var timers = 0
        var ended = false
    }

    private let state = Mutex(State())

    init(connection: Connection, token: JSONValue) {
        self.connection = connection
        self.token = token
    }

    /// Announces the run.
    func begin() {
        state.withLock { _ in send(["kind": "begin", "title": "runStage"]) }
    }

    /// What the engine reports.
    func handle(_ event: ProgressSink.Event) {
        state.withLock { state in
            guard !state.ended else { return }
            switch event {
            case .restart:
                state.pending = ""
                state.pendingCharacters = 0
                state.timer = nil
                send(["kind": "report", "restart": true])
            case .text(let delta):
                state.pending += delta
                state.pendingCharacters += delta.count
                if state.pendingCharacters >= Self.maximumPending {
                    flush(&state)
                } else if state.timer == nil {
                    state.timers += 1
                    let generation = state.timers
                    state.timer = generation
                    Task { [self] in
                        try? await Task.sleep(for: Self.interval)
                        fire(generation)
                    }
                }
            }
        }
    }

    private func fire(_ generation: Int) {
        state.withLock { state in
            guard !state.ended, state.timer == generation else { return }
            flush(&state)
        }
    }

    /// Sends what is pending, then the end with `message` (the status, or the error's message).
    func end(_ message: String) {
        state.withLock { state in
            guard !state.ended else { return }
            flush(&state)
            state.ended = true
            send(["kind": "end", "message": .string(message)])
        }
    }

    /// Called with the lock held, so that notifications leave in order.
    private func flush(_ state: inout State) {
        state.timer = nil
        guard !state.pending.isEmpty else { return }
        send(["kind": "report", "text": .string(state.pending)])
        state.pending = ""
        state.pendingCharacters = 0
    }

    private func send(_ value: [String: JSONValue]) {
        connection.notify("$/progress", params: RawJSON(.object(["token": token, "value": .object(value)])))
    }
}
