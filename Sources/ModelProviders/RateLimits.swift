import Foundation
import Synchronization

/// How hard a provider may be driven: the `limits` section of `stagerunner.yaml`, by provider name.
///
/// ```yaml
/// limits:
///   openai: {concurrency: 16, requestsPerMinute: 500, tokensPerMinute: 200000}
///   anthropic: {concurrency: 4}
/// ```
///
/// Every key is optional; an absent one is no limit. Tokens are counted before a call as the
/// prompt's estimate (four bytes a token) plus `maxTokens`, then corrected with the usage the
/// provider reports. The buckets start full: a minute's worth may go at once.
public struct ProviderLimits: Sendable, Hashable, Decodable {
    /// Calls in flight at once.
    public var concurrency: Int?
    public var requestsPerMinute: Double?
    public var tokensPerMinute: Double?

    public init(concurrency: Int? = nil, requestsPerMinute: Double? = nil, tokensPerMinute: Double? = nil) {
        self.concurrency = concurrency
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
    }
}

/// What a provider's rate-limit headers said about the quota left: OpenAI's
/// `x-ratelimit-remaining-requests`/`-tokens` with `x-ratelimit-reset-requests`/`-tokens`
/// (durations such as `1s`, `6m0s`, `20ms`), Anthropic's `anthropic-ratelimit-requests-remaining`,
/// `-tokens-remaining` (or `-input-tokens-remaining`) with their `-reset` times (RFC 3339).
public struct RateLimitHeaders: Sendable, Hashable {
    public var remainingRequests: Int?
    public var remainingTokens: Int?
    /// How long until the request quota is full again.
    public var resetRequests: Duration?
    public var resetTokens: Duration?

    public init(
        remainingRequests: Int? = nil,
        remainingTokens: Int? = nil,
        resetRequests: Duration? = nil,
        resetTokens: Duration? = nil
    ) {
        self.remainingRequests = remainingRequests
        self.remainingTokens = remainingTokens
        self.resetRequests = resetRequests
        self.resetTokens = resetTokens
    }

    /// The headers' quota, or nil when they carry none. Names are lowercase.
    public static func parse(_ headers: [String: String], now: Date = Date()) -> RateLimitHeaders? {
        func integer(_ name: String) -> Int? {
            headers[name].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        }
        var result = RateLimitHeaders()
        if let requests = integer("x-ratelimit-remaining-requests") ?? integer("anthropic-ratelimit-requests-remaining")
        {
            result.remainingRequests = requests
        }
        result.remainingTokens =
            integer("x-ratelimit-remaining-tokens") ?? integer("anthropic-ratelimit-tokens-remaining")
            ?? integer("anthropic-ratelimit-input-tokens-remaining")
        result.resetRequests =
            headers["x-ratelimit-reset-requests"].flatMap(duration)
            ?? headers["anthropic-ratelimit-requests-reset"].flatMap { until($0, now: now) }
        result.resetTokens =
            headers["x-ratelimit-reset-tokens"].flatMap(duration)
            ?? (headers["anthropic-ratelimit-tokens-reset"] ?? headers["anthropic-ratelimit-input-tokens-reset"])
            .flatMap { until($0, now: now) }
        return result == RateLimitHeaders() ? nil : result
    }

    /// OpenAI's durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
    static func duration(_ text: String) -> Duration? {
        var total = 0.0
        var number = ""
        var index = text.trimmingCharacters(in: .whitespaces)[...]
        guard !index.isEmpty else { return nil }
        while let character = index.first {
            if character.isNumber || character == "." {
                number.append(character)
                index = index.dropFirst()
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            if index.hasPrefix("ms") {
                total += value / 1000
                index = index.dropFirst(2)
            } else if character == "s" {
                total += value
                index = index.dropFirst()
            } else if character == "m" {
                total += value * 60
                index = index.dropFirst()
            } else if character == "h" {
                total += value * 3600
                index = index.dropFirst()
            } else {
                return nil
            }
        }
        if !number.isEmpty {
            guard let value = Double(number) else { return nil }
            total += value  // a bare number is seconds
        }
        return .milliseconds(Int((total * 1000).rounded(.up)))
    }

    /// The time left until an RFC 3339 instant.
    static func until(_ text: String, now: Date) -> Duration? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        var date = formatter.date(from: text)
        if date == nil {
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            date = formatter.date(from: text)
        }
        guard let date else { return nil }
        return .milliseconds(Int((max(0, date.timeIntervalSince(now)) * 1000).rounded(.up)))
    }
}

/// Call slots shared with the other processes that call the same providers (the servers on one
/// workspace), so that a provider's `concurrency` holds across them all.
public protocol SharedCallSlots: Sendable {
    /// Takes one of `count` slots of `provider`, or returns nil when the other processes hold
    /// them all. Never waits.
    func take(_ provider: String, of count: Int) -> (any SharedCallSlot)?
}

/// A slot taken from ``SharedCallSlots``, held while its call lasts.
public protocol SharedCallSlot: Sendable {
    func release()
}

/// Request and token buckets shared with the other processes that call the same providers, so
/// that `requestsPerMinute` and `tokensPerMinute` hold across them all. Each bucket holds up to
/// a minute's worth, starts full and refills continuously, as a process's own would.
public protocol SharedRateBuckets: Sendable {
    /// Takes one request and `tokens` from `provider`'s buckets when both hold that much, and
    /// returns zero; else takes nothing and returns how long until they will.
    func take(_ provider: String, tokens: Int, limits: ProviderLimits) -> Duration

    /// Takes `tokens` more from the token bucket (gives them back when negative): a call used
    /// more or less than was taken for it.
    func correct(_ provider: String, tokens: Int, limits: ProviderLimits)
}

/// The limits of one provider, shared by every call to it: a concurrency limit, request and
/// token buckets, and the quota the provider's own headers announced. Waiting never blocks a
/// thread and ends at once when the waiting task is cancelled.
public actor ProviderLimiter {
    public let provider: String
    private(set) var limits: ProviderLimits
    /// The other processes' calls, for the concurrency limit.
    private let sharedSlots: (any SharedCallSlots)?
    /// The other processes' buckets; when there are, this limiter keeps none of its own.
    private let sharedBuckets: (any SharedRateBuckets)?
    /// How often a call waiting for another process's slot looks again.
    static let sharedSlotPoll: Duration = .milliseconds(10)
    private var inFlight = 0
    private var requestBucket: TokenBucket?
    private var tokenBucket: TokenBucket?
    /// From the provider's headers: what is left, and until when that holds.
    private var remainingRequests: (count: Int, until: ContinuousClock.Instant)?
    private var remainingTokens: (count: Int, until: ContinuousClock.Instant)?
    /// After an overload with `Retry-After`: no call starts before this.
    private var pausedUntil: ContinuousClock.Instant?
    /// After a 429 with `Retry-After`: no call of that model starts before this. Providers (and
    /// proxies such as LiteLLM) limit each model apart, so one model's 429 leaves the others be.
    private var modelPausedUntil: [String: ContinuousClock.Instant] = [:]
    /// The longest pause a `Retry-After` imposes: one of an hour would otherwise hold every call
    /// silently for an hour. A call after it that gets another 429 pauses again.
    public static let maximumPause: Duration = .seconds(60)
    private var waiters: [(id: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private var nextWaiter = 0

    public init(
        provider: String,
        limits: ProviderLimits,
        sharedSlots: (any SharedCallSlots)? = nil,
        sharedBuckets: (any SharedRateBuckets)? = nil
    ) {
        self.provider = provider
        self.limits = limits
        self.sharedSlots = sharedSlots
        self.sharedBuckets = sharedBuckets
        if sharedBuckets == nil {
            requestBucket = limits.requestsPerMinute.map { TokenBucket(perMinute: $0) }
            tokenBucket = limits.tokensPerMinute.map { TokenBucket(perMinute: $0) }
        }
    }

    private var hasBuckets: Bool { limits.requestsPerMinute != nil || limits.tokensPerMinute != nil }

    /// Applies new limits (the configuration changed), keeping what is in flight.
    public func update(_ limits: ProviderLimits) {
        guard limits != self.limits else { return }
        self.limits = limits
        configure(limits)
        wake()
    }

    private func configure(_ limits: ProviderLimits) {
        guard sharedBuckets == nil else { return }
        requestBucket = limits.requestsPerMinute.map { TokenBucket(perMinute: $0) }
        tokenBucket = limits.tokensPerMinute.map { TokenBucket(perMinute: $0) }
    }

    /// A granted call: give it back with ``finish(_:actualTokens:headers:retryAfter:)``.
    public struct Permit: Sendable {
        let tokens: Int
        /// The slot shared with other processes, when the concurrency limit is shared.
        let slot: (any SharedCallSlot)?
    }

    /// Waits until a call of `model` estimated at `tokens` may start, and counts it.
    public func acquire(tokens: Int, model: String? = nil) async throws(ModelError) -> Permit {
        while true {
            if Task.isCancelled {
                throw ModelError(.cancelled, "the request was cancelled while waiting for \(provider)'s rate limits")
            }
            if let concurrency = limits.concurrency, inFlight >= max(1, concurrency) {
                await park()
                continue
            }
            let now = ContinuousClock.now
            var wait = delay(tokens: tokens, model: model, now: now)
            // The slot of the other processes is taken last, and only when nothing else waits.
            var slot: (any SharedCallSlot)?
            if wait <= .zero, let concurrency = limits.concurrency, let sharedSlots {
                slot = sharedSlots.take(provider, of: max(1, concurrency))
                if slot == nil { wait = Self.sharedSlotPoll }
            }
            // The shared buckets last: what they give is spent, so only a call that starts takes.
            if wait <= .zero, hasBuckets, let sharedBuckets {
                wait = sharedBuckets.take(provider, tokens: tokens, limits: limits)
                if wait > .zero {
                    slot?.release()
                    slot = nil
                }
            }
            if wait <= .zero {
                inFlight += 1
                requestBucket?.take(1, now: now)
                tokenBucket?.take(Double(tokens), now: now)
                if let known = remainingRequests { remainingRequests = (known.count - 1, known.until) }
                if let known = remainingTokens { remainingTokens = (known.count - tokens, known.until) }
                return Permit(tokens: tokens, slot: slot)
            }
            do {
                try await Task.sleep(for: wait)
            } catch {
                throw ModelError(.cancelled, "the request was cancelled while waiting for \(provider)'s rate limits")
            }
        }
    }

    /// How long a call of `tokens` must wait, apart from the concurrency limit.
    package func delay(tokens: Int, model: String? = nil, now: ContinuousClock.Instant) -> Duration {
        var wait = Duration.zero
        if let pausedUntil { wait = max(wait, pausedUntil - now) }
        if let model, let until = modelPausedUntil[model] {
            if now >= until { modelPausedUntil[model] = nil } else { wait = max(wait, until - now) }
        }
        if let bucket = requestBucket { wait = max(wait, bucket.wait(for: 1, now: now)) }
        if let bucket = tokenBucket { wait = max(wait, bucket.wait(for: Double(tokens), now: now)) }
        // The provider said its quota is used up until a reset: slow down instead of earning a 429.
        if let known = remainingRequests {
            if now >= known.until {
                remainingRequests = nil
            } else if known.count < 1 {
                wait = max(wait, known.until - now)
            }
        }
        if let known = remainingTokens {
            if now >= known.until {
                remainingTokens = nil
            } else if known.count < tokens {
                wait = max(wait, known.until - now)
            }
        }
        return wait
    }

    /// Ends a call: frees its slot, corrects the token bucket with what it used, and takes in
    /// what the provider's headers said, and a `Retry-After`: for `model` alone when given (a
    /// 429), else for the whole provider (an overload); at most ``maximumPause``.
    public func finish(
        _ permit: Permit,
        actualTokens: Int?,
        headers: RateLimitHeaders?,
        retryAfter: Duration? = nil,
        model: String? = nil
    ) {
        inFlight -= 1
        permit.slot?.release()
        let now = ContinuousClock.now
        if let actualTokens, actualTokens != permit.tokens {
            tokenBucket?.take(Double(actualTokens - permit.tokens), now: now)
            if limits.tokensPerMinute != nil {
                sharedBuckets?.correct(provider, tokens: actualTokens - permit.tokens, limits: limits)
            }
        }
        if let headers {
            if let count = headers.remainingRequests {
                remainingRequests = (count, now + (headers.resetRequests ?? .seconds(1)))
            }
            if let count = headers.remainingTokens {
                remainingTokens = (count, now + (headers.resetTokens ?? .seconds(1)))
            }
        }
        if let retryAfter {
            let until = now + min(retryAfter, Self.maximumPause)
            if let model {
                modelPausedUntil[model] = max(modelPausedUntil[model] ?? until, until)
            } else {
                pausedUntil = max(pausedUntil ?? until, until)
            }
        }
        wake()
    }

    /// Calls waiting for a slot (for tests and diagnostics).
    public var waiting: Int { waiters.count }

    private func park() async {
        let id = nextWaiter
        nextWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume()
    }

    /// Resumes as many waiters as there are free slots; each checks again.
    private func wake() {
        let free = limits.concurrency.map { max(1, $0) - inFlight } ?? waiters.count
        for _ in 0..<min(max(0, free), waiters.count) { waiters.removeFirst().continuation.resume() }
    }
}

/// A token bucket holding up to a minute's worth, refilled continuously.
struct TokenBucket {
    let capacity: Double
    let perSecond: Double
    private var level: Double
    private var updated: ContinuousClock.Instant

    init(perMinute: Double) {
        capacity = max(1, perMinute)
        perSecond = max(perMinute, 1e-9) / 60
        level = capacity
        updated = .now
    }

    private func level(at now: ContinuousClock.Instant) -> Double {
        let elapsed = now - updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(capacity, level + max(0, seconds) * perSecond)
    }

    private mutating func refill(_ now: ContinuousClock.Instant) {
        level = level(at: now)
        updated = now
    }

    /// How long until `amount` is there (a call larger than the bucket waits for a full one).
    func wait(for amount: Double, now: ContinuousClock.Instant) -> Duration {
        let needed = min(amount, capacity) - level(at: now)
        guard needed > 0 else { return .zero }
        return .milliseconds(Int((needed / perSecond * 1000).rounded(.up)))
    }

    /// Takes `amount` (or gives it back when negative); the level may go below zero.
    mutating func take(_ amount: Double, now: ContinuousClock.Instant) {
        refill(now)
        level = min(capacity, level - min(amount, capacity))
    }
}

/// The limiters of every provider, for the life of the engine: configuration reloads keep them.
public final class ProviderLimiters: Sendable {
    private let limiters = Mutex<[String: (limiter: ProviderLimiter, limits: ProviderLimits)]>([:])
    private let sharedSlots: (any SharedCallSlots)?
    private let sharedBuckets: (any SharedRateBuckets)?

    /// `sharedSlots` and `sharedBuckets` make every provider's `concurrency`, and its request and
    /// token rates, hold across the processes sharing them.
    public init(sharedSlots: (any SharedCallSlots)? = nil, sharedBuckets: (any SharedRateBuckets)? = nil) {
        self.sharedSlots = sharedSlots
        self.sharedBuckets = sharedBuckets
    }

    /// The limiter of `provider`, created or updated with `limits`.
    public func limiter(_ provider: String, _ limits: ProviderLimits) -> ProviderLimiter {
        let (limiter, changed) = limiters.withLock { table in
            if let existing = table[provider] {
                table[provider]?.limits = limits
                return (existing.limiter, existing.limits != limits)
            }
            let fresh = ProviderLimiter(
                provider: provider,
                limits: limits,
                sharedSlots: sharedSlots,
                sharedBuckets: sharedBuckets
            )
            table[provider] = (fresh, limits)
            return (fresh, false)
        }
        if changed { Task { await limiter.update(limits) } }
        return limiter
    }
}

/// A provider whose calls pass its ``ProviderLimiter`` first: each attempt (retries included)
/// waits for a slot and for its buckets, and reports the provider's rate-limit headers back.
public struct LimitedClient: ModelClient {
    public let base: any ModelClient
    public let limiter: ProviderLimiter

    public init(_ base: any ModelClient, limiter: ProviderLimiter) {
        self.base = base
        self.limiter = limiter
    }

    public var provider: String { base.provider }

    public func complete(_ request: CompletionRequest) async throws(ModelError) -> Completion {
        let permit = try await limiter.acquire(tokens: request.estimatedTokens, model: request.model)
        do {
            let completion = try await base.complete(request)
            await limiter.finish(
                permit,
                actualTokens: completion.countedTokens(for: request),
                headers: completion.rateLimit
            )
            return completion
        } catch {
            // A 429 limits its model; an overload (503, 529) the whole provider.
            let pause = error.kind == .rateLimit || error.kind == .overloaded ? error.retryAfter : nil
            await limiter.finish(
                permit,
                actualTokens: nil,
                headers: error.rateLimit,
                retryAfter: pause,
                model: error.kind == .rateLimit ? request.model : nil
            )
            throw error
        }
    }
}

extension CompletionRequest {
    /// The prompt's tokens estimated at four bytes a token, plus `maxTokens`: what a call may use.
    public var estimatedTokens: Int { estimatedPromptTokens + (maxTokens ?? 0) }

    /// The prompt's tokens, estimated at four bytes a token.
    public var estimatedPromptTokens: Int {
        (messages.reduce(0) { $0 + $1.content.utf8.count } + 3) / 4
    }
}
