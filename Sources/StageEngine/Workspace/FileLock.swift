import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a file of the workspace: how processes sharing a workspace agree on who
/// does something (opens the databases first, generates a generation, runs a job). It is per
/// holder: two holders in one process exclude each other as two processes do.
///
/// With ``Locking/flock`` it is a `flock(2)` on the file, which the kernel releases when its
/// holder dies, however it dies, so a holder that is gone never blocks anyone and a pid that is
/// reused never passes for it. Descriptors are close-on-exec, so a command a task starts never
/// inherits a lock. With ``Locking/leases`` it is a lease file beside it (``LeaseFile``).
///
/// A lock file may be removed by its holder when done (``release(removing:)``): a waiter that
/// then gets the lock on the removed file sees that its path now names another file, or none,
/// and starts again.
public final class FileLock: Sendable {
    /// The lock file's absolute path.
    public let path: String
    private let hold: Hold
    private let held = Mutex(true)

    private enum Hold: Sendable {
        case descriptor(Int32)
        case lease(LeaseFile)
    }

    private init(path: String, hold: Hold) {
        self.path = path
        self.hold = hold
    }

    deinit {
        release()
    }

    /// Why a lock could not be taken (other than being held).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let code: Int32
        public var description: String {
            let reason = "cannot lock \(path): \(String(cString: strerror(code)))"
            // flock(2) answers these where the file system has no working locks.
            guard [ENOLCK, ENOSYS, EOPNOTSUPP].contains(code) else { return reason }
            return reason + "; on a file system without working locks, set `locking: {mode: leases}` in "
                + WorkspaceConfiguration.fileName
        }
    }

    /// Takes the lock at once, or returns nil when another holder has it. Creates the file (and
    /// its folder) when missing.
    public static func tryAcquire(_ path: String, in workspace: Workspace) throws(Failure) -> FileLock? {
        switch workspace.locking {
        case .flock:
            return try acquire(path, blocking: false)
        case .leases(let seconds):
            let lease = try LeaseFile.take(path + LeaseFile.suffix, workspace: workspace.root, seconds: seconds)
            return lease.map { FileLock(path: path, hold: .lease($0)) }
        }
    }

    /// Takes the lock, waiting for the holder (blocking the calling thread). For short critical
    /// sections only, such as opening the databases.
    public static func acquireBlocking(_ path: String, in workspace: Workspace) throws(Failure) -> FileLock {
        guard case .flock = workspace.locking else {
            var pause: useconds_t = 500
            while true {
                if let lock = try tryAcquire(path, in: workspace) { return lock }
                usleep(pause)
                pause = min(pause * 2, 20_000)
            }
        }
        // Without LOCK_NB a nil means the file changed under us; take it again.
        while true {
            if let lock = try acquire(path, blocking: true) { return lock }
        }
    }

    /// Takes the lock, checking every `interval` while another holder has it; a cancelled task
    /// stops waiting with `CancellationError`.
    public static func acquire(
        _ path: String,
        in workspace: Workspace,
        checkingEvery interval: Duration = .milliseconds(20)
    ) async throws -> FileLock {
        while true {
            if let lock = try tryAcquire(path, in: workspace) { return lock }
            try await Task.sleep(for: interval)
        }
    }

    private static func acquire(_ path: String, blocking: Bool) throws(Failure) -> FileLock? {
        while true {
            var descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, OwnerOnly.fileMode)
            if descriptor < 0 && errno == ENOENT {
                try? OwnerOnly.createDirectories((path as NSString).deletingLastPathComponent)
                descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, OwnerOnly.fileMode)
            }
            guard descriptor >= 0 else { throw Failure(path: path, code: errno) }
            var result: Int32
            repeat {
                result = flock(descriptor, blocking ? LOCK_EX : LOCK_EX | LOCK_NB)
            } while result != 0 && errno == EINTR
            if result != 0 {
                let code = errno
                close(descriptor)
                if code == EWOULDBLOCK { return nil }
                throw Failure(path: path, code: code)
            }
            // The holder before us may have removed the file: then ours is a lock on a file
            // nobody else can find, and the path must be opened again.
            var held = stat()
            var named = stat()
            if fstat(descriptor, &held) == 0 && stat(path, &named) == 0 && held.st_ino == named.st_ino
                && held.st_dev == named.st_dev
            {
                return FileLock(path: path, hold: .descriptor(descriptor))
            }
            close(descriptor)
        }
    }

    /// Writes `text` into the lock file (who holds it, for the messages of those who wait; or
    /// what the lock guards, for the next holder).
    public func record(_ text: String) {
        switch hold {
        case .descriptor(let descriptor):
            // Written over, then cut to length: the file is never seen empty between the two.
            _ = pwrite(descriptor, text, text.utf8.count, 0)
            _ = ftruncate(descriptor, off_t(text.utf8.count))
        case .lease:
            let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, OwnerOnly.fileMode)
            guard descriptor >= 0 else { return }
            _ = write(descriptor, text, text.utf8.count)
            close(descriptor)
        }
    }

    /// Writes `text` into the lock file at `offset`, leaving the rest: for a holder that adds
    /// to its record often, which ``record(_:)`` would rewrite whole each time.
    public func writeRecord(_ text: String, at offset: Int) {
        switch hold {
        case .descriptor(let descriptor):
            _ = pwrite(descriptor, text, text.utf8.count, off_t(offset))
        case .lease:
            let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, OwnerOnly.fileMode)
            guard descriptor >= 0 else { return }
            _ = pwrite(descriptor, text, text.utf8.count, off_t(offset))
            close(descriptor)
        }
    }

    /// What the holder wrote with ``record(_:)``, read by anyone.
    public static func record(at path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Whether `name`, in a folder of lock files, is one of the files leases keep beside them
    /// rather than a lock file.
    public static func isLeaseFile(_ name: String) -> Bool {
        name.hasSuffix(LeaseFile.suffix) || name.hasSuffix(LeaseFile.suffix + LeaseFile.breakerSuffix)
    }

    /// Releases the lock; with `removing`, removes the file first (while still holding it, so
    /// that nobody takes a lock on it that the next holder would not see).
    public func release(removing: Bool = false) {
        let wasHeld = held.withLock { held in
            defer { held = false }
            return held
        }
        guard wasHeld else { return }
        if removing { unlink(path) }
        switch hold {
        case .descriptor(let descriptor): close(descriptor)
        case .lease(let lease): lease.release()
        }
    }
}
