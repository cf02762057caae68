import Foundation

/// When and how long to wait before trying a failed model call again.
///
/// Jittered exponential backoff (a random wait up to `baseDelay · 2^retry`, capped at
/// `maxDelay`), but never sooner than the provider's `Retry-After`. A `Retry-After` longer than
/// `maxRetryAfter` ends the retries: waiting minutes inside one request helps nobody.
public struct RetryPolicy: Sendable, Hashable, Decodable {
    /// Attempts in all, the first included (1 means no retry).
    public var attempts = 4
    /// Seconds.
    public var baseDelay = 0.5
    /// Seconds.
    public var maxDelay = 20.0
    /// Seconds.
    public var maxRetryAfter = 60.0

    public init(attempts: Int = 4, baseDelay: Double = 0.5, maxDelay: Double = 20, maxRetryAfter: Double = 60) {
        self.attempts = attempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
    }

    enum CodingKeys: String, CodingKey {
        case attempts, baseDelay, maxDelay, maxRetryAfter
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = RetryPolicy()
        attempts = max(1, try container.decodeIfPresent(Int.self, forKey: .attempts) ?? defaults.attempts)
        baseDelay = try container.decodeIfPresent(Double.self, forKey: .baseDelay) ?? defaults.baseDelay
        maxDelay = try container.decodeIfPresent(Double.self, forKey: .maxDelay) ?? defaults.maxDelay
        maxRetryAfter = try container.decodeIfPresent(Double.self, forKey: .maxRetryAfter) ?? defaults.maxRetryAfter
    }

    /// The wait before retry number `retry` (0-based) after `error`, or nil to stop retrying.
    func delay(after error: ModelError, retry: Int) -> Duration? {
        guard error.isRetryable, retry + 1 < attempts else { return nil }
        let backoff = Double.random(in: 0...min(maxDelay, baseDelay * pow(2, Double(retry))))
        guard let asked = error.retryAfter else { return .milliseconds(Int(backoff * 1000)) }
        let askedSeconds = Double(asked.components.seconds) + Double(asked.components.attoseconds) / 1e18
        guard askedSeconds <= maxRetryAfter else { return nil }
        return .milliseconds(Int(max(backoff, askedSeconds) * 1000))
    }

    /// The wait a response asks for: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date.
    public static func parse(_ headers: [String: String], now: Date = Date()) -> Duration? {
        if let text = headers["retry-after-ms"], let milliseconds = Double(text), milliseconds >= 0 {
            return .milliseconds(Int(milliseconds))
        }
        guard let text = headers["retry-after"]?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Double(text), seconds >= 0 { return .milliseconds(Int(seconds * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .milliseconds(Int(max(0, date.timeIntervalSince(now)) * 1000))
    }
}

/// A provider whose failed calls are retried by a ``RetryPolicy``; each retry and its reason is
/// reported in the completion (and so in the metadata and the call log).
public struct RetryingClient: ModelClient {
    public let base: any ModelClient
    public let policy: RetryPolicy

    public init(_ base: any ModelClient, policy: RetryPolicy) {
        self.base = base
        self.policy = policy
    }

    public var provider: String { base.provider }

    public func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        var failures: [String] = []
        while true {
            do {
                var completion = try await base.complete(request)
                completion.retries = failures
                return completion
            } catch let failure {
                let error = failure
                guard let wait = policy.delay(after: error, retry: failures.count) else {
                    var final = error
                    final.retries = failures.count
                    final.retryErrors = failures
                    if !failures.isEmpty {
                        final.message += " (after \(failures.count) \(failures.count == 1 ? "retry" : "retries"))"
                    }
                    throw final
                }
                failures.append("\(error.kind.rawValue): \(error.message)")
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    var cancelled = ModelError(.cancelled, "the request was cancelled while waiting to retry")
                    cancelled.provider = failure.provider
                    cancelled.url = failure.url
                    cancelled.retries = failures.count
                    cancelled.retryErrors = failures
                    throw cancelled
                }
            }
        }
    }
}
