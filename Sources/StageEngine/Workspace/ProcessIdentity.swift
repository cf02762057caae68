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

    /// This process's pid, asked once: glibc no longer caches it, and every temporary's name
    /// holds it.
    static let pid = getpid()

    /// This machine's name (`uname -n`): which host a record of a process belongs to.
    static let host: String = {
        var names = utsname()
        guard uname(&names) == 0 else { return "unknown" }
        return withUnsafeBytes(of: &names.nodename) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }()

    /// The host and PID namespace this process's pids belong to, as eight hex digits: a pid
    /// recorded by a process of another space (another host sharing the workspace, another
    /// container) cannot be looked up here. From the host name, the boot id and the PID
    /// namespace.
    static let space: String = {
        func read(_ path: String) -> String {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        }
        let namespace = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")) ?? ""
        let identity = "\(host)|\(read("/proc/sys/kernel/random/boot_id"))|\(namespace)"
        // FNV-1a: stable across runs and builds, unlike Hasher.
        var hash: UInt32 = 2_166_136_261
        for byte in identity.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }()

    /// Whether `text` has the shape of a ``space``.
    static func isSpace(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 8 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// This process as a record says it: `{"host": …, "pid": …, "startTime": …}`, for the lock
    /// files of what it holds, so that whoever waits can say who holds it.
    /// Read once: a run records it, and `/proc` need not be read again for every run.
    static let currentRecord: String = {
        let pid = getpid()
        let start = startTime(pid).map { ", \"startTime\": \($0)" } ?? ""
        return "{\"host\": \"\(host)\", \"space\": \"\(space)\", \"pid\": \(pid)\(start)}\n"
    }()

    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot; nil
    /// where there is no `/proc`.
    static func startTime(_ pid: pid_t) -> String? {
        guard let bytes = readProcessFile("/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, so start time (22) is at index 19.
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// The bytes of a file under `/proc`, or nil. Read with plain system calls and no more than a
    /// megabyte: its process may end while it is read, and then the read fails.
    static func readProcessFile(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 1 << 20 {
            let count = read(descriptor, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
        return nil
    }
}
