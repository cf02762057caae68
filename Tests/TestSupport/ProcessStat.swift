import Foundation

/// The fields of `/proc/<pid>/stat` that follow the command name (which may hold spaces): the
/// state first, then the parent's pid, …, the start time at index 19. Nil when there is no such
/// process.
public func processStat(_ pid: pid_t) -> [Substring]? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}
