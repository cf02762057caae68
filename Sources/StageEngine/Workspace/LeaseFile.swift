import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A lock that does not rely on `flock(2)` (``Locking/leases``): the lease is a file created
/// exclusively (`O_EXCL`, atomic on NFSv3 and later) beside the lock file, holding one line that
/// names its holder. While a server holds leases it keeps a heartbeat file beating in
/// `.stagerunner/processes/` (``Heartbeats``).
///
/// A waiter that finds a lease takes it over only when its holder is gone: a holder in this
/// host's PID namespace when its process has ended (pid and start time); a holder elsewhere when
/// its heartbeat file has not changed for the lease's seconds, timed by the waiter's own
/// monotonic clock (``LeaseObservations``), so hosts whose clocks disagree still agree on who is
/// gone. Taking over goes through a breaker file created exclusively, so of many waiters one
/// removes the abandoned lease and then all race to create it afresh.
///
/// A holder stopped for longer than the lease (a suspended machine) can lose its leases; its
/// heartbeat says so in the log when it beats again.
final class LeaseFile: Sendable {
    /// Beside lock file `x`, its lease is `x.lease`.
    static let suffix = ".lease"
    /// Beside lease `x.lease`, whoever is taking it over holds `x.lease.break`.
    static let breakerSuffix = ".break"

    /// The lease's absolute path.
    let file: String
    /// What the lease file holds while this holder has it.
    let line: String
    /// The workspace whose heartbeat keeps the lease alive.
    let root: String

    private init(file: String, line: String, root: String) {
        self.file = file
        self.line = line
        self.root = root
    }

    /// Takes the lease at `file` for this process, taking it over from a holder that is gone;
    /// nil when a live holder has it.
    static func take(_ file: String, workspace root: String, seconds: Double) throws(FileLock.Failure) -> LeaseFile? {
        let heartbeat = try Heartbeats.shared.join(root, seconds: seconds)
        let line = Holder.line(heartbeat: heartbeat)
        // Twice: after taking an abandoned lease over, the race to create it is run again.
        for _ in 0..<2 {
            switch create(file, holding: line) {
            case .created:
                let lease = LeaseFile(file: file, line: line, root: root)
                Heartbeats.shared.hold(lease)
                return lease
            case .failed(let code):
                throw FileLock.Failure(path: file, code: code)
            case .exists:
                // Gone between the two looks: the holder released it.
                guard let text = read(file) else { continue }
                guard isAbandoned(text, at: file, root: root, seconds: seconds),
                    takeOver(file, from: text, as: line, root: root, seconds: seconds)
                else { return nil }
            }
        }
        return nil
    }

    /// Removes the lease, if it is still this holder's.
    func release() {
        if Self.read(file) == line { unlink(file) }
        Heartbeats.shared.drop(self)
    }

    enum Creation {
        case created
        case exists
        case failed(Int32)
    }

    /// Creates `file` exclusively with `line` in it (and its folder when missing).
    static func create(_ file: String, holding line: String) -> Creation {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC
        var descriptor = open(file, flags, OwnerOnly.fileMode)
        if descriptor < 0 && errno == ENOENT {
            try? OwnerOnly.createDirectories((file as NSString).deletingLastPathComponent)
            descriptor = open(file, flags, OwnerOnly.fileMode)
        }
        guard descriptor >= 0 else { return errno == EEXIST ? .exists : .failed(errno) }
        _ = write(descriptor, line, line.utf8.count)
        close(descriptor)
        return .created
    }

    /// The whole text of `file`, or nil when there is none.
    static func read(_ file: String) -> String? {
        FileManager.default.contents(atPath: file).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether the holder named by `text` (the lease at `file`) is gone.
    static func isAbandoned(_ text: String, at file: String, root: String, seconds: Double) -> Bool {
        // Being written (or not written by this code): it must stand still for a whole lease.
        guard let holder = Holder(text) else {
            return LeaseObservations.shared.unchanged(file, text) >= seconds
        }
        if holder.space == ProcessIdentity.space {
            if holder.pid == getpid() { return holder.start != Holder.ownStart }
            guard ProcessIdentity.isRunning(holder.pid) else { return true }
            guard let start = holder.start, let running = ProcessIdentity.startTime(holder.pid) else { return false }
            return start != running
        }
        let heartbeat = Heartbeats.path(of: holder.heartbeat, in: root)
        // A heartbeat file that is missing stands still too.
        let beat = read(heartbeat) ?? ""
        return LeaseObservations.shared.unchanged(heartbeat, beat) >= seconds
    }

    /// Removes the abandoned lease at `file` (which held `text`) under the breaker, so that no
    /// two waiters remove it and the fresh lease a third has just created. True when removed.
    private static func takeOver(
        _ file: String,
        from text: String,
        as line: String,
        root: String,
        seconds: Double
    )
        -> Bool
    {
        let breaker = file + breakerSuffix
        switch create(breaker, holding: line) {
        case .created:
            defer { unlink(breaker) }
            guard read(file) == text else { return false }
            unlink(file)
            logger.notice(
                "took over a lease whose holder is gone",
                metadata: ["lease": "\(file)", "holder": "\(text.trimmingCharacters(in: .whitespacesAndNewlines))"]
            )
            return true
        case .exists:
            // A breaker outlives a waiter that died while taking over: it goes like a lease.
            if let breakerText = read(breaker), isAbandoned(breakerText, at: breaker, root: root, seconds: seconds),
                read(breaker) == breakerText
            {
                unlink(breaker)
            }
            return false
        case .failed:
            return false
        }
    }

    static let logger = Logger(label: "stagerunner.leases")

    /// Who holds a lease: `stagerunner-lease <space> <pid> <start> <token> <host>`.
    struct Holder {
        var space: String
        var pid: pid_t
        /// The process's start time (`-` where unknown).
        var start: String?
        /// The holder's heartbeat file name in `.stagerunner/processes/`.
        var heartbeat: String { Heartbeats.name(space: space, pid: pid, start: start) }

        init?(_ text: String) {
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 5, fields[0] == "stagerunner-lease", ProcessIdentity.isSpace(fields[1]),
                let pid = pid_t(fields[2])
            else { return nil }
            space = String(fields[1])
            self.pid = pid
            start = fields[3] == "-" ? nil : String(fields[3])
        }

        static let ownStart = ProcessIdentity.startTime(getpid())

        /// This process's line, with a token of its own so that two holders in it differ.
        static func line(heartbeat: String) -> String {
            "stagerunner-lease \(ProcessIdentity.space) \(getpid()) \(ownStart ?? "-") "
                + "\(UInt64.random(in: 0...UInt64.max)) \(ProcessIdentity.host)\n"
        }
    }
}

/// The heartbeat files of this process's servers: one per workspace where it holds leases,
/// `.stagerunner/processes/<space>-<pid>-<start>`, rewritten with a counter four times a lease.
/// One thread beats them all; it also notices when the process was stopped for longer than a
/// lease and which leases were taken over meanwhile. A workspace's file goes once its leases
/// have been released for a while.
final class Heartbeats: Sendable {
    static let shared = Heartbeats()

    static let folder = ".stagerunner/processes"

    private struct Beat {
        let file: String
        let seconds: Double
        var interval: Double { seconds / 4 }
        var count: UInt64 = 0
        var last: ContinuousClock.Instant
        var lastUsed: ContinuousClock.Instant
        /// Leases held, by identity: their file and line.
        var held: [ObjectIdentifier: (file: String, line: String)] = [:]
    }

    private let beats = Mutex<[String: Beat]>([:])
    private let running = Mutex(false)

    static func name(space: String, pid: pid_t, start: String?) -> String {
        "\(space)-\(pid)-\(start ?? "-")"
    }

    static func path(of name: String, in root: String) -> String {
        "\(root)/\(folder)/\(name)"
    }

    /// Makes sure this process beats in `root`; returns its heartbeat file's name.
    func join(_ root: String, seconds: Double) throws(FileLock.Failure) -> String {
        let name = Self.name(space: ProcessIdentity.space, pid: getpid(), start: LeaseFile.Holder.ownStart)
        let file = Self.path(of: name, in: root)
        let outcome = beats.withLock { beats -> Int32? in
            let now = ContinuousClock.now
            if beats[root] != nil {
                beats[root]?.lastUsed = now
                return nil
            }
            if let code = Self.writeBeat(file, count: 0) { return code }
            Self.removeDeadHeartbeats(in: root, keeping: name)
            beats[root] = Beat(file: file, seconds: seconds, last: now, lastUsed: now)
            return nil
        }
        if let outcome { throw FileLock.Failure(path: file, code: outcome) }
        startBeating()
        return name
    }

    func hold(_ lease: LeaseFile) {
        beats.withLock { beats in
            beats[lease.root]?.held[ObjectIdentifier(lease)] = (lease.file, lease.line)
            beats[lease.root]?.lastUsed = .now
        }
    }

    func drop(_ lease: LeaseFile) {
        beats.withLock { beats in
            beats[lease.root]?.held[ObjectIdentifier(lease)] = nil
            beats[lease.root]?.lastUsed = .now
        }
    }

    private func startBeating() {
        let start = running.withLock { running in
            defer { running = true }
            return !running
        }
        guard start else { return }
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: beatOnce())
            }
        }
        thread.name = "stagerunner heartbeats"
        thread.start()
    }

    /// Beats every workspace that is due; returns how long to sleep until the next is.
    private func beatOnce() -> Double {
        beats.withLock { beats in
            let now = ContinuousClock.now
            var next = 1.0
            for root in Array(beats.keys) {
                guard var beat = beats[root] else { continue }
                if beat.held.isEmpty && Self.seconds(now - beat.lastUsed) > 2 * beat.interval {
                    unlink(beat.file)
                    beats[root] = nil
                    continue
                }
                let since = Self.seconds(now - beat.last)
                if since >= beat.interval {
                    if since > beat.seconds {
                        LeaseFile.logger.warning(
                            "this server did not beat for longer than a lease (it was stopped or starved): servers on other hosts may have taken its leases over",
                            metadata: ["seconds": "\(Int(since))", "lease": "\(beat.seconds)", "workspace": "\(root)"]
                        )
                    }
                    beat.count &+= 1
                    if let code = Self.writeBeat(beat.file, count: beat.count) {
                        LeaseFile.logger.error(
                            "cannot beat: servers on other hosts will take this server's leases over",
                            metadata: ["file": "\(beat.file)", "error": "\(String(cString: strerror(code)))"]
                        )
                    }
                    beat.last = now
                    for (identity, lease) in beat.held where LeaseFile.read(lease.file) != lease.line {
                        LeaseFile.logger.error(
                            "a lease this server held was taken over by another server: both may do its work",
                            metadata: ["lease": "\(lease.file)"]
                        )
                        beat.held[identity] = nil
                    }
                    beats[root] = beat
                }
                next = min(next, max(0.01, beat.interval - Self.seconds(ContinuousClock.now - beat.last)))
            }
            return next
        }
    }

    /// Writes the counter into the heartbeat file; the error number when it cannot.
    private static func writeBeat(_ file: String, count: UInt64) -> Int32? {
        let text = "\(count) \(ProcessIdentity.host)\n"
        var descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, OwnerOnly.fileMode)
        if descriptor < 0 && errno == ENOENT {
            try? OwnerOnly.createDirectories((file as NSString).deletingLastPathComponent)
            descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, OwnerOnly.fileMode)
        }
        guard descriptor >= 0 else { return errno }
        defer { close(descriptor) }
        return write(descriptor, text, text.utf8.count) == text.utf8.count ? nil : errno
    }

    /// Heartbeat files of this PID namespace's processes that have ended.
    private static func removeDeadHeartbeats(in root: String, keeping own: String) {
        let folder = "\(root)/\(Self.folder)"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name != own {
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[0] == ProcessIdentity.space, let pid = pid_t(parts[1]) else { continue }
            let start = parts[2] == "-" ? nil : String(parts[2])
            let alive =
                ProcessIdentity.isRunning(pid)
                && (start == nil || ProcessIdentity.startTime(pid).map { $0 == start } ?? true)
            if !alive { unlink("\(folder)/\(name)") }
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

/// What waiters have seen of other hosts' heartbeats: each file's text and since when (on this
/// process's monotonic clock) it has been so.
final class LeaseObservations: Sendable {
    static let shared = LeaseObservations()

    private let seen = Mutex<[String: (text: String, since: ContinuousClock.Instant)]>([:])

    /// For how many seconds `key` has read `text`; a text not seen before starts the count.
    func unchanged(_ key: String, _ text: String) -> Double {
        seen.withLock { seen in
            let now = ContinuousClock.now
            if let entry = seen[key], entry.text == text { return Heartbeats.seconds(now - entry.since) }
            // Files of holders long gone are not kept for ever.
            if seen.count >= 10_000 { seen.removeAll() }
            seen[key] = (text, now)
            return 0
        }
    }
}
