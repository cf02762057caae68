import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock(2)` on a file of the workspace: how processes sharing a workspace agree
/// on who does something (opens the databases first, generates a generation, runs a job). The
/// kernel releases it when its holder dies, however it dies, so a holder that is gone never
/// blocks anyone and a pid that is reused never passes for it. It is per open file: two holders
/// in one process exclude each other as two processes do. Descriptors are close-on-exec, so a
/// command a task starts never inherits a lock.
///
/// A lock file may be removed by its holder when done (``release(removing:)``): a waiter that
/// then gets the lock on the removed file sees that its path now names another file, or none,
/// and starts again.
public final class FileLock: Sendable {
    /// The lock file's absolute path.
    public let path: String
    private let descriptor: Int32
    private let held = Mutex(true)

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        release()
    }

    /// Why a lock could not be taken (other than being held).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let code: Int32
        public var description: String { "cannot lock \(path): \(String(cString: strerror(code)))" }
    }

    /// Takes the lock at once, or returns nil when another holder has it. Creates the file (and
    /// its folder) when missing.
    public static func tryAcquire(_ path: String) throws(Failure) -> FileLock? {
        try acquire(path, blocking: false)
    }

    /// Takes the lock, waiting for the holder (blocking the calling thread). For short critical
    /// sections only, such as opening the databases.
    public static func acquireBlocking(_ path: String) throws(Failure) -> FileLock {
        // Without LOCK_NB a nil means the file changed under us; take it again.
        while true {
            if let lock = try acquire(path, blocking: true) { return lock }
        }
    }

    /// Takes the lock, checking every `interval` while another holder has it; a cancelled task
    /// stops waiting with `CancellationError`.
    public static func acquire(
        _ path: String,
        checkingEvery interval: Duration = .milliseconds(20)
    ) async throws
        -> FileLock
    {
        while true {
            if let lock = try tryAcquire(path) { return lock }
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
                return FileLock(path: path, descriptor: descriptor)
            }
            close(descriptor)
        }
    }

    /// Writes `text` into the lock file (who holds it, for the messages of those who wait).
    public func record(_ text: String) {
        _ = ftruncate(descriptor, 0)
        _ = pwrite(descriptor, text, text.utf8.count, 0)
    }

    /// What the holder wrote with ``record(_:)``, read by anyone.
    public static func record(at path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return nil }
        return String(decoding: data, as: UTF8.self)
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
        close(descriptor)
    }
}
