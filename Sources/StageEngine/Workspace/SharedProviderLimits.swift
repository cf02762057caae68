import Foundation
import ModelProviders

/// A provider's `concurrency` held across every process on the workspace: slot `i` of provider
/// `p` is a lock on `.stagerunner/limits/<p>/<i>.lock`, held for the length of a call. A process
/// that dies releases its slots with its locks.
struct WorkspaceCallSlots: SharedCallSlots {
    let workspace: Workspace

    static let folder = ".stagerunner/limits"

    func take(_ provider: String, of count: Int) -> (any SharedCallSlot)? {
        let folder = "\(Self.folder)/\(Self.fileName(provider))"
        // From a random slot, so that processes do not all try the same ones first.
        let start = Int.random(in: 0..<count)
        for offset in 0..<count {
            let path = workspace.path("\(folder)/\((start + offset) % count).lock")
            do {
                if let lock = try FileLock.tryAcquire(path, in: workspace) { return Slot(lock: lock) }
            } catch {
                // No lock can be taken here (a read-only workspace): the limit holds per process.
                return Unshared()
            }
        }
        return nil
    }

    /// A provider's name as a file name: itself when it is plain, else its bytes in hex.
    static func fileName(_ provider: String) -> String {
        let plain = provider.utf8.allSatisfy { byte in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45
                || byte == 95
        }
        if plain && !provider.isEmpty { return provider }
        return "x" + provider.utf8.map { String($0, radix: 16) }.joined()
    }

    private struct Slot: SharedCallSlot {
        let lock: FileLock
        func release() { lock.release() }
    }

    private struct Unshared: SharedCallSlot {
        func release() {}
    }
}

/// A provider's `requestsPerMinute` and `tokensPerMinute` held across every process on the
/// workspace: the two buckets' levels live in `.stagerunner/limits/<provider>.buckets`, read and
/// written under a lock on it (a few microseconds). They refill by the wall clock, which the
/// processes share.
struct WorkspaceRateBuckets: SharedRateBuckets {
    let workspace: Workspace

    /// A bucket's level and when it was last refilled (seconds since 1970).
    struct Level: Equatable {
        var level: Double
        var at: Double

        /// The level at `now` of a bucket of `perMinute` (full at a minute's worth).
        func refilled(perMinute: Double, now: Double) -> Level {
            let capacity = max(1, perMinute)
            return Level(level: min(capacity, level + max(0, now - at) * perMinute / 60), at: now)
        }
    }

    func take(_ provider: String, tokens: Int, limits: ProviderLimits) -> Duration {
        update(provider) { requests, tokenLevel, now in
            var wait = 0.0
            for (level, perMinute, amount) in [
                (requests, limits.requestsPerMinute, 1.0), (tokenLevel, limits.tokensPerMinute, Double(tokens)),
            ] {
                guard let perMinute else { continue }
                let needed = min(amount, max(1, perMinute)) - level.refilled(perMinute: perMinute, now: now).level
                if needed > 0 { wait = max(wait, needed / (max(perMinute, 1e-9) / 60)) }
            }
            guard wait == 0 else { return .milliseconds(Int((wait * 1000).rounded(.up))) }
            if let perMinute = limits.requestsPerMinute {
                requests = requests.refilled(perMinute: perMinute, now: now)
                requests.level -= 1
            }
            if let perMinute = limits.tokensPerMinute {
                tokenLevel = tokenLevel.refilled(perMinute: perMinute, now: now)
                tokenLevel.level -= min(Double(tokens), max(1, perMinute))
            }
            return .zero
        } ?? .zero
    }

    func correct(_ provider: String, tokens: Int, limits: ProviderLimits) {
        guard let perMinute = limits.tokensPerMinute else { return }
        _ = update(provider) { _, tokenLevel, now in
            tokenLevel = tokenLevel.refilled(perMinute: perMinute, now: now)
            tokenLevel.level = min(max(1, perMinute), tokenLevel.level - min(Double(tokens), max(1, perMinute)))
        }
    }

    /// Runs `change` on the provider's two levels under the file's lock and saves them; nil when
    /// the file cannot be locked (a read-only workspace), where the buckets hold per process.
    private func update<Result>(
        _ provider: String,
        _ change: (inout Level, inout Level, Double) -> Result
    ) -> Result? {
        let path = workspace.path("\(WorkspaceCallSlots.folder)/\(WorkspaceCallSlots.fileName(provider)).buckets")
        guard let lock = try? FileLock.acquireBlocking(path, in: workspace) else { return nil }
        defer { lock.release() }
        let now = Date().timeIntervalSince1970
        // A new file: both buckets full.
        var requests = Level(level: .infinity, at: now)
        var tokens = Level(level: .infinity, at: now)
        if let text = FileLock.record(at: path) {
            let numbers = text.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
            if numbers.count == 4 {
                requests = Level(level: numbers[0], at: numbers[1])
                tokens = Level(level: numbers[2], at: numbers[3])
            }
        }
        let result = change(&requests, &tokens, now)
        func text(_ level: Level) -> String {
            "\(level.level.isFinite ? level.level : 1e300) \(level.at)"
        }
        lock.record("\(text(requests)) \(text(tokens))\n")
        return result
    }
}
