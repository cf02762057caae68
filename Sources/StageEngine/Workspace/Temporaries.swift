import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporaries of atomic writes. Each is written beside its target under a hidden name that
/// carries its writer's pid, `.<target>.tmp-<pid>-<random>`, made durable, then renamed over the
/// target. A process killed between the two leaves it behind; the next process to open the
/// workspace removes it once its writer is gone, so a temporary of a write under way (in this
/// process or another server on the same workspace) is never touched.
enum Temporaries {
    /// A fresh temporary name for the file or folder `target`.
    static func name(for target: String) -> String {
        ".\(target).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// The pid of the process that made the temporary `name`, or nil when `name` is not a
    /// temporary's. Earlier versions named generation temporaries `.tmp-<genId>-<pid>-<random>`;
    /// those are recognised too.
    static func writer(of name: String) -> pid_t? {
        guard name.hasPrefix(".") else { return nil }
        let fields = name.split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count >= 3, let random = fields.last, !random.isEmpty, random.allSatisfy(\.isASCIIDigit),
            let pid = pid_t(fields[fields.count - 2]), pid > 0
        else { return nil }
        let stem = fields.dropLast(2).joined(separator: "-")
        guard stem.hasSuffix(".tmp") || stem.hasPrefix(".tmp-") else { return nil }
        return pid
    }

    /// Removes the temporaries whose writers no longer run in `folder` (relative to the
    /// workspace) and, when `recursive`, in the folders below it (never following a symbolic
    /// link). Returns the removed paths, relative to the workspace.
    static func removeAbandoned(in workspace: Workspace, under folder: String, recursive: Bool) -> [String] {
        var removed: [String] = []
        for name in workspace.listFiles(folder).sorted() {
            let path = "\(folder)/\(name)"
            if let pid = writer(of: name) {
                if !ProcessIdentity.isRunning(pid),
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
