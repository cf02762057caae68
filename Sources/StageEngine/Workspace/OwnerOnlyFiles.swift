import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How StageRunner creates files and folders in a workspace: readable by their owner only.
///
/// Everything it writes may hold prompts, answers, a client's input or a command's output (the
/// generations, task runs, jobs, the call log and the response cache), and any of those can be
/// private. So every folder it creates is 0700 and every file 0600, whatever the umask (which
/// can only narrow them further). Folders that already exist keep their modes: a user who wants
/// to share `data/gens` with a group sets the folder up that way and StageRunner leaves it so.
enum OwnerOnly {
    static let directoryMode: mode_t = 0o700
    static let fileMode: mode_t = 0o600

    /// Why a file or folder cannot be created.
    struct Failure: Error, Sendable, CustomStringConvertible {
        let path: String
        let reason: String
        /// The `errno` of the call that failed.
        let code: Int32
        var description: String { "\(path): \(reason)" }

        init(_ path: String, _ action: String) {
            self.path = path
            code = errno
            reason = "\(action): \(String(cString: strerror(code)))"
        }
    }

    /// Creates the folder at `path` (absolute) and each missing ancestor, owner-only; an
    /// existing folder is fine.
    static func createDirectories(_ path: String) throws(Failure) {
        if mkdir(path, directoryMode) == 0 { return }
        // mkdir's errno, before the look at the path replaces it.
        let code = errno
        if isDirectory(path) { return }
        guard code == ENOENT else {
            errno = code
            throw Failure(path, "cannot create directory")
        }
        let parent = (path as NSString).deletingLastPathComponent
        guard !parent.isEmpty, parent != path else { throw Failure(path, "cannot create directory") }
        try createDirectories(parent)
        if mkdir(path, directoryMode) == 0 { return }
        let again = errno
        if isDirectory(path) { return }
        errno = again
        throw Failure(path, "cannot create directory")
    }

    /// Creates the file at `path` with `bytes`, owner-only; fails when it exists.
    static func createFile(_ path: String, _ bytes: some ContiguousBytes) throws(Failure) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        guard descriptor >= 0 else { throw Failure(path, "cannot create") }
        defer { close(descriptor) }
        guard writeAll(descriptor, bytes) else { throw Failure(path, "cannot write") }
    }

    /// Writes all of `bytes` to `descriptor`, retrying short and interrupted writes.
    static func writeAll(_ descriptor: Int32, _ bytes: some ContiguousBytes) -> Bool {
        bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let count = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += count
            }
            return true
        }
    }

    /// Whether `path` is a folder or a symbolic link to one (a workspace's `data` may live on
    /// another disk).
    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }
}
