import Foundation

/// Records of the commands a task is running, so that a command left behind by a server that was
/// killed (`kill -9`) can be ended before its task runs again.
///
/// Each command runs as the leader of its own process group; while it runs, its run folder holds
/// `.commands/<pid>` with the process's start time (from `/proc`), which tells it apart from a
/// later process that reused the number.
enum RunningCommands {
    static let folder = ".commands"

    static func record(_ pid: pid_t, in directory: String) {
        guard let started = startTime(pid) else { return }
        try? OwnerOnly.createDirectories(directory)
        try? OwnerOnly.createFile("\(directory)/\(pid)", Array(started.utf8))
    }

    static func removeRecords(in directory: String) {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Ends the process groups recorded under `folder` whose leaders still run (the same process:
    /// same start time), and removes the records. Returns how many were ended.
    @discardableResult
    static func endLeftovers(under folder: String) -> Int {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return 0 }
        var ended = 0
        var directories: Set<String> = []
        while let path = enumerator.nextObject() as? String {
            let parts = path.split(separator: "/")
            guard parts.count >= 2, parts[parts.count - 2] == Substring(Self.folder), let pid = pid_t(parts.last!)
            else {
                continue
            }
            let full = "\(folder)/\(path)"
            directories.insert((full as NSString).deletingLastPathComponent)
            guard let recorded = try? String(contentsOfFile: full, encoding: .utf8), startTime(pid) == recorded else {
                continue
            }
            if kill(-pid, SIGKILL) == 0 { ended += 1 }
        }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        return ended
    }

    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
    static func startTime(_ pid: pid_t) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, so start time (22) is at index 19.
        return fields.count > 19 ? String(fields[19]) : nil
    }
}
