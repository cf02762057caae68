#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The directory a server or a run works in: templates, data and generations live below it,
/// and no path the engine touches may leave it.
public struct Workspace: Sendable, Hashable {
    /// The absolute, symlink-free path of the root directory.
    public let root: String

    /// Why a directory cannot be a workspace.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "'\(path)' \(reason)" }
    }

    /// Opens the workspace at `path`, relative to the current directory unless absolute.
    public init(path: String) throws(Problem) {
        guard !path.isEmpty else { throw Problem(path: path, reason: "is empty; give a directory") }
        guard !path.utf8.contains(0) else { throw Problem(path: path, reason: "contains a NUL byte") }
        var status = stat()
        guard stat(path, &status) == 0 else {
            let reason = errno == ENOENT ? "does not exist" : "cannot be read (\(String(cString: strerror(errno))))"
            throw Problem(path: path, reason: reason)
        }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw Problem(path: path, reason: "is not a directory") }
        guard let resolved = realpath(path, nil) else {
            throw Problem(path: path, reason: "cannot be resolved (\(String(cString: strerror(errno))))")
        }
        defer { free(resolved) }
        root = String(cString: resolved)
    }

    /// The workspace at the process's current directory.
    public static func currentDirectory() throws(Problem) -> Workspace {
        try Workspace(path: ".")
    }
}
