import Glibc

/// A server to benchmark, or a placeholder row for one that could not be set up.
struct Target {
    let label: String
    let argv: [String]
    let framing: Framing
    /// Set when the caller already knows the peer cannot run (e.g. its venv failed to install).
    var unavailableReason: String?
}

/// Knobs shared by every target; defaults match the README.
struct BenchConfig {
    var phaseSeconds = 2.0
    var maxRoundTrips = 20_000
    var maxPipelined = 5_000_000
    var inFlight = 64
    var maxSpawns = 30
    var minSpawns = 5
    var spawnSeconds = 3.0
    /// How long a single spawn may take to answer initialize, and a phase may overrun, before it counts as hung.
    var timeoutSeconds = 20.0
}

/// Latency summary of the sequential phase.
struct LatencyStats {
    let count: Int
    let medianMicros: Double
    let p99Micros: Double
}

/// Throughput summary of the pipelined phase.
struct ThroughputStats {
    let messages: Int
    let seconds: Double
    var perSecond: Double { Double(messages) / seconds }
}

/// Everything measured for one server; nil fields were not measured (see `notes`).
struct PeerResult {
    let label: String
    var unavailable: String?
    var spawnMillis: [Double] = []
    var idleRSSKB: Int?
    var roundTrip: LatencyStats?
    var pipelined: ThroughputStats?
    var notes: [String] = []

    var spawnMedianMillis: Double? { spawnMillis.isEmpty ? nil : median(spawnMillis) }
}

/// Runs the four measurements against one target.
struct Runner {
    let config: BenchConfig
    let placement: Placement

    func measure(_ target: Target) -> PeerResult {
        var result = PeerResult(label: target.label)
        if let reason = target.unavailableReason {
            result.unavailable = reason
            return result
        }
        if let reason = missingExecutable(target.argv[0]) {
            result.unavailable = reason
            return result
        }

        // An untimed first spawn warms the page cache and tells us whether the peer starts at all.
        do {
            _ = try spawnToInitialize(target)
        } catch {
            result.unavailable = "\(error)"
            return result
        }
        let spawnStart = Clock.now()
        let spawnBudget = Clock.nanoseconds(config.spawnSeconds)
        while result.spawnMillis.count < config.maxSpawns {
            if result.spawnMillis.count >= config.minSpawns && Clock.now() &- spawnStart > spawnBudget { break }
            do {
                result.spawnMillis.append(Double(try spawnToInitialize(target)) / 1e6)
            } catch {
                result.notes.append("spawn→initialize: \(error)")
                break
            }
        }

        session(target, into: &result)
        return result
    }

    /// Spawns the peer and times until the full initialize response is parsed; then closes stdin and reaps it.
    private func spawnToInitialize(_ target: Target) throws -> UInt64 {
        let start = Clock.now()
        let peer = try placement.spawning { try PeerProcess.spawn(target.argv, framing: target.framing) }
        peer.deadline = start &+ Clock.nanoseconds(config.timeoutSeconds)
        Watchdog.arm(seconds: config.timeoutSeconds)
        do {
            defer { Watchdog.disarm() }
            try peer.appendInitialize()
            try peer.flush()
            while try peer.nextFrame() != 0 {}
        } catch {
            peer.closeInput()
            peer.waitForExit(seconds: 2)
            throw PeerError.io("no initialize response (\(error); \(peer.exitDescription))")
        }
        let elapsed = Clock.now() &- start
        peer.closeInput()
        if !peer.waitForExit(seconds: 5) {
            throw PeerError.io("did not exit within 5 s of stdin EOF")
        }
        return elapsed
    }

    /// One long-lived process: idle RSS, then sequential round trips, then pipelined throughput.
    private func session(_ target: Target, into result: inout PeerResult) {
        let peer: PeerProcess
        do {
            peer = try placement.spawning { try PeerProcess.spawn(target.argv, framing: target.framing) }
        } catch {
            result.notes.append("session: \(error)")
            return
        }
        defer {
            peer.closeInput()
            if !peer.waitForExit(seconds: 5) { result.notes.append("killed: no exit within 5 s of stdin EOF") }
        }
        var phase = "initialize and first pings"
        do {
            try withDeadline(peer, seconds: config.timeoutSeconds) {
                try peer.appendInitialize()
                try peer.flush()
                while try peer.nextFrame() != 0 {}
                for _ in 0..<8 { _ = try roundTrip(peer) }
            }
            result.idleRSSKB = readVmRSS(peer.pid)

            phase = "sequential"
            let phaseLimit = config.phaseSeconds + config.timeoutSeconds
            result.roundTrip = try withDeadline(peer, seconds: phaseLimit) { try sequential(peer) }

            phase = "pipelined"
            result.pipelined = try withDeadline(peer, seconds: phaseLimit) { try pipelined(peer) }
        } catch {
            result.notes.append("\(phase): \(error)")
        }
    }

    private func withDeadline<T>(_ peer: PeerProcess, seconds: Double, _ body: () throws -> T) throws -> T {
        peer.deadline = Clock.now() &+ Clock.nanoseconds(seconds)
        Watchdog.arm(seconds: seconds)
        defer { Watchdog.disarm() }
        return try body()
    }

    /// Sends one ping and waits for the frame carrying its id (skipping notifications); returns nanoseconds.
    @inline(__always)
    private func roundTrip(_ peer: PeerProcess) throws -> UInt64 {
        let start = Clock.now()
        let id = try peer.appendPing()
        try peer.flush()
        while true {
            let got = try peer.nextFrame()
            if got == id { break }
            // A response to an id we never sent means the framing or the peer is broken.
            if got > id { throw PeerError.badFrame("expected id \(id), got \(got)") }
        }
        return Clock.now() &- start
    }

    private func sequential(_ peer: PeerProcess) throws -> LatencyStats {
        // Warm-up: let JITs, allocators and caches settle before timing.
        let warmEnd = Clock.now() &+ Clock.nanoseconds(0.2)
        var warmed = 0
        while warmed < 1_000 && Clock.now() < warmEnd {
            _ = try roundTrip(peer)
            warmed += 1
        }

        let samples = UnsafeMutablePointer<UInt64>.allocate(capacity: config.maxRoundTrips)
        defer { samples.deallocate() }
        let budget = Clock.nanoseconds(config.phaseSeconds)
        let start = Clock.now()
        var count = 0
        while count < config.maxRoundTrips {
            samples[count] = try roundTrip(peer)
            count += 1
            if Clock.now() &- start > budget { break }
        }
        let sorted = UnsafeBufferPointer(start: samples, count: count).map { Double($0) / 1e3 }.sorted()
        return LatencyStats(count: count, medianMicros: medianOfSorted(sorted), p99Micros: percentile(sorted, 0.99))
    }

    /// Keeps `inFlight` pings outstanding: top up with one write, block on one read, repeat.
    private func pipelined(_ peer: PeerProcess) throws -> ThroughputStats {
        let budget = Clock.nanoseconds(config.phaseSeconds)
        let cap = config.inFlight
        let limit = config.maxPipelined
        var sent = 0
        var received = 0
        var sending = true
        let start = Clock.now()
        while true {
            if sending {
                // At most `cap` small requests are ever unread by the peer, far below the pipe buffer,
                // so this write cannot block against a peer that is itself blocked writing to us.
                while sent - received < cap && sent < limit {
                    try peer.appendPing()
                    sent += 1
                }
                try peer.flush()
            }
            if sent == received { break }
            received += try peer.readResponses()
            if sending && (sent >= limit || Clock.now() &- start > budget) { sending = false }
        }
        let elapsed = Double(Clock.now() &- start) / 1e9
        return ThroughputStats(messages: received, seconds: elapsed)
    }

    /// A reason if `command` names a file that is missing or not executable (bare names are left to PATH).
    private func missingExecutable(_ command: String) -> String? {
        guard command.contains("/") else { return nil }
        if access(command, F_OK) != 0 { return "not found: \(command)" }
        if access(command, X_OK) != 0 { return "not executable: \(command)" }
        return nil
    }
}

/// VmRSS of `pid` in kB from /proc/<pid>/status, or nil if unreadable.
func readVmRSS(_ pid: pid_t) -> Int? {
    guard let status = readSmallFile("/proc/\(pid)/status") else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.dropFirst(6).filter { $0.isNumber })
    }
    return nil
}

/// Reads a small text file (procfs, sysfs) with plain read(2).
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if got < 0 && errno == EINTR { continue }
        if got <= 0 { break }
        bytes.append(contentsOf: chunk[0..<got])
    }
    return String(decoding: bytes, as: UTF8.self)
}

func median(_ values: [Double]) -> Double {
    medianOfSorted(values.sorted())
}

func medianOfSorted(_ sorted: [Double]) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/// Nearest-rank percentile of an ascending array.
func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((Double(sorted.count) * fraction).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}
