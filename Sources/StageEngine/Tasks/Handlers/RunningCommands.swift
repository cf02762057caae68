import Foundation

/// Records of the commands a task is running, so that a command left behind by a server that was
/// killed (`kill -9`) can be ended before its task runs again.
///
/// Each command runs as the leader of its own process group. Its record, `.commands/<token>` in
/// its run folder, is written before the spawn, with the same random token in the command's
/// environment (``tokenVariable``): the pid is only known once the spawn has returned, and a
/// server killed in between would otherwise leave a command that no record names. The token finds
/// it, and whatever it started, in `/proc/<pid>/environ`. After the spawn the record also holds
/// the pid and the process's start time (from `/proc`), which tells the command apart from a later
/// process that reused the number, and reaches its whole group even where the token cannot be
/// read (a program that cleared its environment, or a setuid one).
enum RunningCommands {
    static let folder = ".commands"
    static let tokenVariable = "STAGERUNNER_COMMAND_TOKEN"

    /// The record of one command.
    struct Record: Sendable {
        let token: String
        let path: String

        /// Writes the record of a command about to be spawned in `directory`. One that cannot be
        /// written only costs the clean-up after a crash, so the command runs without one.
        init(in directory: String) {
            token = UUID().uuidString
            path = "\(directory)/\(token)"
            try? OwnerOnly.createDirectories(directory)
            try? OwnerOnly.createFile(path, [UInt8]())
        }

        /// Adds the spawned command's pid and start time.
        func started(_ pid: pid_t) {
            guard let started = ProcessIdentity.startTime(pid) else { return }
            let descriptor = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            guard descriptor >= 0 else { return }
            defer { close(descriptor) }
            _ = OwnerOnly.writeAll(descriptor, Array("\(pid) \(started)\n".utf8))
        }

        /// Removes the record, and its folder once no other command's is in it.
        func remove() {
            unlink(path)
            rmdir((path as NSString).deletingLastPathComponent)
        }
    }

    /// Ends the commands recorded under `folder`: the process group of each recorded leader that
    /// still runs (the same process: same start time), and every process that carries one of the
    /// records' tokens. Removes the records. Returns how many commands were found running.
    @discardableResult
    static func endLeftovers(under folder: String) -> Int {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return 0 }
        var tokens: Set<String> = []
        var ended: Set<String> = []
        var directories: Set<String> = []
        while let path = enumerator.nextObject() as? String {
            let parts = path.split(separator: "/")
            guard parts.count >= 2, parts[parts.count - 2] == Substring(Self.folder) else { continue }
            let full = "\(folder)/\(path)"
            let token = String(parts.last!)
            directories.insert((full as NSString).deletingLastPathComponent)
            tokens.insert(token)
            if let leader = leader(recordedIn: full), kill(-leader, SIGKILL) == 0 { ended.insert(token) }
        }
        if !tokens.isEmpty { ended.formUnion(endCarriers(of: tokens)) }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        return ended.count
    }

    /// The pid a record holds, if that process still runs.
    private static func leader(recordedIn record: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: record, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let pid = pid_t(fields[0]), pid > 0,
            ProcessIdentity.startTime(pid) == String(fields[1])
        else {
            return nil
        }
        return pid
    }

    /// Kills the processes whose environment holds one of `tokens`. One that leads its process
    /// group goes with its group, which also reaches members whose environment cannot be read; any
    /// other goes alone, since its group may not be the command's. Scans again while it finds
    /// some, for the children they started meanwhile. Returns the tokens found.
    private static func endCarriers(of tokens: Set<String>) -> Set<String> {
        var found: Set<String> = []
        #if os(Linux)
        let prefix = Array("\(tokenVariable)=".utf8)
        for _ in 0..<5 {
            var killed = false
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for entry in entries {
                guard let pid = pid_t(entry),
                    let environment = ProcessIdentity.readProcessFile("/proc/\(entry)/environ"),
                    let variable = environment.split(separator: 0).first(where: { $0.starts(with: prefix) })
                else { continue }
                let token = String(decoding: variable.dropFirst(prefix.count), as: UTF8.self)
                guard tokens.contains(token) else { continue }
                kill(getpgid(pid) == pid ? -pid : pid, SIGKILL)
                found.insert(token)
                killed = true
            }
            if !killed { break }
        }
        #endif
        return found
    }
}
