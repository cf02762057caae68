import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporaries of atomic writes. Each is written beside its target under a hidden name that
/// carries its writer, `.<target>.tmp-<space>-<pid>-<random>`, made durable, then renamed over the
/// target. `space` names the host and PID namespace the pid belongs to
/// (``ProcessIdentity/space``). A process killed between the two leaves it behind; the next
/// process to open the workspace removes it once its writer is gone: by its pid when the writer
/// was in this process's space, else (another host sharing the workspace, another container)
/// once it is older than ``foreignLease``, since a pid from elsewhere says nothing here. So a
/// temporary of a write under way is never touched.
enum Temporaries {
    /// How old a temporary written from another host or PID namespace must be to be abandoned:
    /// a write takes seconds, and a clock skew between hosts minutes.
    static let foreignLease: TimeInterval = 3600

    /// A fresh temporary name for the file or folder `target`.
    static func name(for target: String) -> String {
        ".\(target).tmp-\(ProcessIdentity.space)-\(ProcessIdentity.pid)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Who made the temporary `name` (the space is nil for names from before it was recorded),
    /// or nil when `name` is not a temporary's. Earlier versions named generation temporaries
    /// `.tmp-<genId>-<pid>-<random>`; those are recognised too.
    static func writer(of name: String) -> (space: String?, pid: pid_t)? {
        guard name.hasPrefix(".") else { return nil }
        let fields = name.split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count >= 3, let random = fields.last, !random.isEmpty, random.allSatisfy(\.isASCIIDigit),
            let pid = pid_t(fields[fields.count - 2]), pid > 0
        else { return nil }
        if fields.count >= 4, ProcessIdentity.isSpace(fields[fields.count - 3]),
            fields.dropLast(3).joined(separator: "-").hasSuffix(".tmp")
        {
            return (String(fields[fields.count - 3]), pid)
        }
        let stem = fields.dropLast(2).joined(separator: "-")
        guard stem.hasSuffix(".tmp") || stem.hasPrefix(".tmp-") else { return nil }
        return (nil, pid)
    }

    /// Whether the temporary at `path` (absolute) was abandoned by its writer.
    static func isAbandoned(_ path: String, writer: (space: String?, pid: pid_t)) -> Bool {
        if writer.space == nil || writer.space == ProcessIdentity.space {
            return !ProcessIdentity.isRunning(writer.pid)
        }
        var status = stat()
        guard lstat(path, &status) == 0 else { return false }
        let age = Date().timeIntervalSince1970 - Double(status.st_mtim.tv_sec)
        return age > foreignLease
    }

    /// Removes the temporaries whose writers no longer run in `folder` (relative to the
    /// workspace) and, when `recursive`, in the folders below it (never following a symbolic
    /// link). Returns the removed paths, relative to the workspace.
    static func removeAbandoned(in workspace: Workspace, under folder: String, recursive: Bool) -> [String] {
        var removed: [String] = []
        for name in workspace.listFiles(folder).sorted() {
            let path = "\(folder)/\(name)"
            if let writer = writer(of: name) {
                if isAbandoned(workspace.path(path), writer: writer),
                    (try? FileManager.default.removeItem(atPath: workspace.path(path))) != nil
                {
                    removed.append(path)
                }
                continue
            }
            var status = stat()
            if recursive, lstat(workspace.path(path), &status) == 0, status.st_mode & S_IFMT == S_IFDIR {
                removed += removeAbandoned(in: workspace, under: path, recursive: true)
            }
        }
        return removed
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
