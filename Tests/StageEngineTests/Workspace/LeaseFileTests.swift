import Foundation
import StageEngine
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Locks as lease files (`locking: {mode: leases}`), for file systems where `flock` does not
/// work across hosts.
@Suite("Lease files")
struct LeaseFileTests {
    /// A workspace locked by leases of `seconds`.
    static func leased(_ seconds: Double = 0.3) throws -> (TemporaryWorkspace, Workspace) {
        let temporary = try TemporaryWorkspace()
        var workspace = temporary.workspace
        workspace.locking = .leases(seconds: seconds)
        return (temporary, workspace)
    }

    /// The pid of a process that has ended.
    static func deadPid() throws -> pid_t {
        try spawnAndWait(["/bin/true"]).pid
    }

    /// A holder on another host: its lease line and heartbeat file name.
    static let otherSpace = "0badcafe"
    static func otherHolder(pid: Int = 4242) -> (line: String, heartbeat: String) {
        ("stagerunner-lease \(otherSpace) \(pid) 777 12345 elsewhere\n", "\(otherSpace)-\(pid)-777")
    }

    @Test("two holders exclude each other; releasing removes the lease and keeps the record")
    func holdersExcludeEachOther() throws {
        let (temporary, workspace) = try Self.leased()
        defer { temporary.remove() }
        let path = workspace.path(".stagerunner/t/x.lock")
        let first = try #require(try FileLock.tryAcquire(path, in: workspace))
        first.record("owner one\n")
        #expect(try FileLock.tryAcquire(path, in: workspace) == nil)
        #expect(FileManager.default.fileExists(atPath: path + ".lease"))
        #expect(FileLock.record(at: path) == "owner one\n")
        first.release()
        #expect(!FileManager.default.fileExists(atPath: path + ".lease"))
        #expect(FileLock.record(at: path) == "owner one\n")
        let second = try #require(try FileLock.tryAcquire(path, in: workspace))
        second.release(removing: true)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".lease"))
    }

    @Test("a lease whose holder in this PID namespace has ended is taken over at once")
    func deadHolderHereIsTakenOver() throws {
        let (temporary, workspace) = try Self.leased(3600)
        defer { temporary.remove() }
        let path = workspace.path(".stagerunner/t/x.lock")
        let dead = try Self.deadPid()
        try FileManager.default.createDirectory(
            atPath: workspace.path(".stagerunner/t"),
            withIntermediateDirectories: true
        )
        let line = "stagerunner-lease \(try spaceOfThisProcess(workspace)) \(dead) 1 99 here\n"
        try line.write(toFile: path + ".lease", atomically: false, encoding: .utf8)
        let lock = try #require(try FileLock.tryAcquire(path, in: workspace))
        #expect(try String(contentsOfFile: path + ".lease", encoding: .utf8) != line)
        lock.release()
    }

    @Test("another host's lease: kept while its heartbeat changes, taken over once it has stood still for a lease")
    func otherHostsLeaseExpiresByHeartbeat() async throws {
        let seconds = 0.4
        let (temporary, workspace) = try Self.leased(seconds)
        defer { temporary.remove() }
        let path = workspace.path(".stagerunner/t/x.lock")
        let holder = Self.otherHolder()
        let heartbeat = workspace.path(".stagerunner/processes/\(holder.heartbeat)")
        try FileManager.default.createDirectory(
            atPath: workspace.path(".stagerunner/processes"),
            withIntermediateDirectories: true
        )
        try FileManager.default.createDirectory(
            atPath: workspace.path(".stagerunner/t"),
            withIntermediateDirectories: true
        )
        try holder.line.write(toFile: path + ".lease", atomically: false, encoding: .utf8)

        // Beating for three leases: never taken.
        let clock = ContinuousClock()
        let beating = clock.now
        var count = 0
        var lastSeen = clock.now
        while clock.now - beating < .seconds(seconds * 3) {
            count += 1
            try "\(count) elsewhere\n".write(toFile: heartbeat, atomically: false, encoding: .utf8)
            lastSeen = clock.now
            #expect(try FileLock.tryAcquire(path, in: workspace) == nil)
            try await Task.sleep(for: .milliseconds(50))
        }
        // Stopped: taken over, no sooner than a lease after the last change was seen.
        let stopped = lastSeen
        var lock: FileLock?
        while lock == nil && clock.now - stopped < .seconds(60) {
            lock = try FileLock.tryAcquire(path, in: workspace)
            if lock == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let taken = try #require(lock)
        #expect(clock.now - stopped >= .seconds(seconds))
        #expect(try String(contentsOfFile: path + ".lease", encoding: .utf8).contains(" \(getpid()) "))
        taken.release()
    }

    @Test("a missing heartbeat stands still too: the lease goes after a lease's time, not at once")
    func missingHeartbeat() async throws {
        let seconds = 0.3
        let (temporary, workspace) = try Self.leased(seconds)
        defer { temporary.remove() }
        let path = workspace.path(".stagerunner/t/y.lock")
        try FileManager.default.createDirectory(
            atPath: workspace.path(".stagerunner/t"),
            withIntermediateDirectories: true
        )
        try Self.otherHolder(pid: 4343).line.write(toFile: path + ".lease", atomically: false, encoding: .utf8)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try FileLock.tryAcquire(path, in: workspace) == nil)
        var lock: FileLock?
        while lock == nil && clock.now - start < .seconds(60) {
            try await Task.sleep(for: .milliseconds(20))
            lock = try FileLock.tryAcquire(path, in: workspace)
        }
        #expect(lock != nil)
        #expect(clock.now - start >= .seconds(seconds))
        lock?.release()
    }

    @Test("of eight threads taking over one abandoned lease at once, one wins, in each of 40 rounds")
    func oneWinnerOfManyWaiters() async throws {
        let (temporary, workspace) = try Self.leased(3600)
        defer { temporary.remove() }
        let dead = try Self.deadPid()
        let space = try spaceOfThisProcess(workspace)
        try FileManager.default.createDirectory(
            atPath: workspace.path(".stagerunner/t"),
            withIntermediateDirectories: true
        )
        // On threads of their own, not the tests' cooperative pool.
        let rounds = try await onOwnThread { () -> [(winners: Int, breakerLeft: Bool)] in
            try (0..<40).map { round in
                let path = workspace.path(".stagerunner/t/r\(round).lock")
                try "stagerunner-lease \(space) \(dead) 1 5 here\n".write(
                    toFile: path + ".lease",
                    atomically: false,
                    encoding: .utf8
                )
                let winners = Mutex<[FileLock]>([])
                DispatchQueue.concurrentPerform(iterations: 8) { _ in
                    if let lock = try? FileLock.tryAcquire(path, in: workspace) { winners.withLock { $0.append(lock) } }
                }
                let held = winners.withLock { $0 }
                held.forEach { $0.release() }
                return (held.count, FileManager.default.fileExists(atPath: path + ".lease.break"))
            }
        }
        for (round, outcome) in rounds.enumerated() {
            #expect(outcome.winners == 1, "round \(round)")
            #expect(!outcome.breakerLeft, "round \(round)")
        }
    }

    @Test("a holder whose lease was taken over does not remove the new holder's lease")
    func releaseLeavesAnothersLease() throws {
        let (temporary, workspace) = try Self.leased()
        defer { temporary.remove() }
        let path = workspace.path(".stagerunner/t/z.lock")
        let lock = try #require(try FileLock.tryAcquire(path, in: workspace))
        let other = Self.otherHolder().line
        try other.write(toFile: path + ".lease", atomically: false, encoding: .utf8)
        lock.release()
        #expect(try String(contentsOfFile: path + ".lease", encoding: .utf8) == other)
    }

    @Test("the heartbeat file beats while a lease is held and goes once none is")
    func heartbeatLivesWithLeases() async throws {
        let (temporary, workspace) = try Self.leased(0.2)
        defer { temporary.remove() }
        let lock = try #require(try FileLock.tryAcquire(workspace.path(".stagerunner/t/h.lock"), in: workspace))
        let folder = ".stagerunner/processes"
        let name = try #require(workspace.listFiles(folder).first)
        #expect(name.hasPrefix(try spaceOfThisProcess(workspace) + "-\(getpid())-"))
        let first = try #require(temporary.read("\(folder)/\(name)"))
        let clock = ContinuousClock()
        let start = clock.now
        while temporary.read("\(folder)/\(name)") == first && clock.now - start < .seconds(60) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(temporary.read("\(folder)/\(name)") != first)
        lock.release()
        let released = clock.now
        while !workspace.listFiles(folder).isEmpty && clock.now - released < .seconds(60) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(workspace.listFiles(folder).isEmpty)
    }

    @Test("stagerunner.yaml's locking is checked: mode and leaseSeconds")
    func configuration() throws {
        for (yaml, message) in [
            ("locking: {mode: nfs}\n", "locking.mode: is 'nfs'; use flock (the default) or leases"),
            (
                "locking: {mode: leases, leaseSeconds: 0}\n",
                "locking.leaseSeconds: is 0.0; give between 0.1 and 3600 seconds"
            ),
            ("locking: {mode: flock, leaseSeconds: 5}\n", "locking.leaseSeconds: applies to mode leases only"),
        ] {
            let temporary = try TemporaryWorkspace(files: ["stagerunner.yaml": yaml])
            defer { temporary.remove() }
            let (_, diagnostics) = WorkspaceConfiguration.load(temporary.workspace)
            #expect(diagnostics.map(\.message) == [message], "\(yaml)")
        }
        let temporary = try TemporaryWorkspace(files: ["stagerunner.yaml": "locking: {mode: leases, leaseSeconds: 2}\n"]
        )
        defer { temporary.remove() }
        let engine = try WorkspaceEngine(workspace: temporary.workspace, environment: [:])
        #expect(engine.workspace.locking == .leases(seconds: 2))
        let defaults = try TemporaryWorkspace()
        defer { defaults.remove() }
        #expect(try WorkspaceEngine(workspace: defaults.workspace, environment: [:]).workspace.locking == .flock)
    }

    /// This process's space, as its own lease says it.
    func spaceOfThisProcess(_ workspace: Workspace) throws -> String {
        let path = workspace.path(".stagerunner/t/space.lock")
        let lock = try #require(try FileLock.tryAcquire(path, in: workspace))
        defer { lock.release() }
        let line = try String(contentsOfFile: path + ".lease", encoding: .utf8)
        return String(line.split(separator: " ")[1])
    }
}
