import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a process recorded on disk (a temporary's writer, a task run, a command) still runs.
/// A pid alone can be reused, so records that must outlive a crash also keep the start time.
enum ProcessIdentity {
    /// Whether process `pid` exists (an `EPERM` answer means it does, under another user).
    static func isRunning(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot; nil
    /// where there is no `/proc`.
    static func startTime(_ pid: pid_t) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, so start time (22) is at index 19.
        return fields.count > 19 ? String(fields[19]) : nil
    }
}
