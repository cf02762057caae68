import Foundation

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
    /// How processes on the workspace exclude each other: `stagerunner.yaml`'s `locking`, which
    /// ``WorkspaceEngine`` reads when it opens the workspace.
    public var locking: Locking = .flock

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

    /// One directory is one workspace, however it is locked.
    public static func == (lhs: Workspace, rhs: Workspace) -> Bool { lhs.root == rhs.root }

    public func hash(into hasher: inout Hasher) { hasher.combine(root) }
}

extension Workspace {
    /// The absolute path of `relative`, which must already be confined (built from validated ids).
    public func path(_ relative: String) -> String { root + "/" + relative }

    /// Whether `relative`, once every symlink in it is resolved, is still inside the workspace.
    /// Paths built from validated ids cannot climb out by name; this catches a symlink that does.
    /// A path that does not exist yet is judged by its nearest existing ancestor.
    public func contains(_ relative: String) -> Bool { problem(reaching: relative) == nil }

    /// Why `relative` cannot be used inside the workspace, or nil when it can: a symbolic link on
    /// the way leads outside, a folder on the way is a file, or a folder cannot be searched. Said
    /// of the path: "leads outside the workspace through a symbolic link".
    public func problem(reaching relative: String) -> String? {
        // The root is resolved already: only what lies below it can lead elsewhere. One lstat per
        // part on the way (a stage's artifact path costs four), rather than realpath's readlink
        // of every part from / for each existing ancestor tried; a symbolic link or a `..` is
        // resolved in full.
        var prefix = root
        let parts = relative.split(separator: "/")
        for (index, part) in parts.enumerated() where part != "." {
            if part == ".." { return resolvedProblem(reaching: relative) }
            prefix += "/" + part
            var status = stat()
            guard lstat(prefix, &status) == 0 else {
                let code = errno
                // Nothing at or below a missing part exists: what does is inside.
                if code == ENOENT { return nil }
                if code == ENOTDIR { return notAFolder(on: relative) }
                return "cannot be reached (\(String(cString: strerror(code))))"
            }
            switch status.st_mode & S_IFMT {
            case S_IFDIR: continue
            case S_IFLNK: return resolvedProblem(reaching: relative)
            default: if index < parts.count - 1 { return notAFolder(on: relative) }
            }
        }
        return nil
    }

    /// ``problem(reaching:)`` for a path with a symbolic link or a `..` in it: resolved by
    /// realpath, a path that does not exist yet judged by its nearest existing ancestor.
    private func resolvedProblem(reaching relative: String) -> String? {
        var candidate = path(relative)
        while true {
            if let resolved = realpath(candidate, nil) {
                defer { free(resolved) }
                let real = String(cString: resolved)
                return real == root || real.hasPrefix(root + "/")
                    ? nil : "leads outside the workspace through a symbolic link"
            }
            let code = errno
            if code == ENOTDIR { return notAFolder(on: relative) }
            guard code == ENOENT, let slash = candidate.lastIndex(of: "/"), slash > candidate.startIndex else {
                return "cannot be reached (\(String(cString: strerror(code))))"
            }
            candidate = String(candidate[..<slash])
        }
    }

    /// The first folder on the way to `relative` that is something else.
    private func notAFolder(on relative: String) -> String {
        var prefix = ""
        for component in relative.split(separator: "/").dropLast() {
            prefix += prefix.isEmpty ? String(component) : "/\(component)"
            var status = stat()
            if stat(path(prefix), &status) == 0 && (status.st_mode & S_IFMT) != S_IFDIR {
                return "goes through \(prefix), which is a file, not a folder"
            }
        }
        return "goes through a file where a folder should be"
    }

    /// A workspace file's contents as text, or why there are none.
    public enum FileText: Sendable, Hashable {
        case text(String)
        case missing
        case notUTF8
    }

    /// Reads a workspace file, telling a missing file from one that is not UTF-8 text.
    public func loadText(_ relative: String) -> FileText {
        guard let data = FileManager.default.contents(atPath: path(relative)) else { return .missing }
        guard let text = String(data: data, encoding: .utf8) else { return .notUTF8 }
        return .text(text)
    }

    /// The diagnostic for a file that is not UTF-8 text.
    static func notUTF8(_ relative: String) -> Diagnostic {
        Diagnostic(file: relative, code: "file.not-utf8", message: "is not UTF-8 text; save it as UTF-8")
    }

    /// The text of a workspace file, or nil when it does not exist or is not UTF-8.
    public func readText(_ relative: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path(relative)) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// Whether `relative` is a regular file.
    public func isFile(_ relative: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path(relative), isDirectory: &isDirectory)
            && !isDirectory.boolValue
    }

    /// The names in a workspace directory (empty when it does not exist).
    public func listFiles(_ relative: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: path(relative))) ?? []
    }
}

extension Workspace {
    /// The folders StageRunner writes into: generations, task runs, jobs and its own state. What
    /// lands there may come from a protocol client (a job's input, what a `write` stage wrote) or
    /// from a model (an answer), so task and pipeline files, which can run programs, are never
    /// read from them.
    public static let outputFolders = ["data/gens", "data/tasks", "jobs", ".stagerunner"]

    /// The output folder that holds `relative`, as written or once its symbolic links are
    /// resolved, or nil when it lies in none.
    public func outputFolder(containing relative: String) -> String? {
        func folder(_ path: String) -> String? {
            let parts = path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
            return Self.outputFolders.first { parts == $0 || parts.hasPrefix($0 + "/") }
        }
        if let found = folder(relative) { return found }
        guard let resolved = realpath(path(relative), nil) else { return nil }
        defer { free(resolved) }
        let real = String(cString: resolved)
        guard real.hasPrefix(root + "/") else { return nil }
        return folder(String(real.dropFirst(root.count + 1)))
    }
}

/// What identifies a version of a file without reading it: its modification time and size.
struct FileStamp: Hashable, Sendable {
    var seconds: Int
    var nanoseconds: Int
    var size: Int64

    /// The stamp of a file that does not exist.
    static let missing = FileStamp(seconds: 0, nanoseconds: 0, size: -1)
}

extension Workspace {
    /// The current stamp of a workspace file.
    func stamp(_ relative: String) -> FileStamp {
        var status = stat()
        guard stat(path(relative), &status) == 0 else { return .missing }
        return FileStamp(
            seconds: Int(status.st_mtim.tv_sec),
            nanoseconds: Int(status.st_mtim.tv_nsec),
            size: Int64(status.st_size)
        )
    }
}
