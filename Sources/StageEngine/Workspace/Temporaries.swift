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

    /// Whether process `pid` exists (an `EPERM` answer means it does, under another user).
    static func isRunning(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Removes the temporaries whose writers no longer run in `folder` (relative to the
    /// workspace) and, when `recursive`, in the folders below it (never following a symbolic
    /// link). Returns the removed paths, relative to the workspace.
    static func removeAbandoned(in workspace: Workspace, under folder: String, recursive: Bool) -> [String] {
        var removed: [String] = []
        for name in workspace.listFiles(folder).sorted() {
            let path = "\(folder)/\(name)"
            if let pid = writer(of: name) {
                if !isRunning(pid), (try? FileManager.default.removeItem(atPath: workspace.path(path))) != nil {
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

/// The task runs under way that write into their run folders (`write` and `command` stages),
/// one file each in `.stagerunner/runs/`: the run's folder and its process (pid and start time,
/// so that a later process that reuses the pid does not pass for it). A process killed during a
/// run leaves its record; the next one to open the workspace removes the temporaries in that
/// run's folder and ends the commands it left running, without walking every run ever made.
enum RunRecords {
    static let folder = ".stagerunner/runs"

    /// Records a run of this process that writes into `workDir` (relative to the workspace);
    /// returns the record's path, for ``remove(_:)`` when the run ends. A record that cannot be
    /// written only costs the clean-up after a crash, so the run goes on without one.
    static func record(_ workDir: String, in workspace: Workspace) -> String? {
        let pid = getpid()
        guard let started = RunningCommands.startTime(pid) else { return nil }
        let path = workspace.path("\(folder)/\(pid)-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try OwnerOnly.createDirectories(workspace.path(folder))
            try OwnerOnly.createFile(path, Array("\(started)\n\(workDir)\n".utf8))
        } catch {
            return nil
        }
        return path
    }

    static func remove(_ record: String) {
        unlink(record)
    }

    /// For every record whose process no longer runs: removes the temporaries under its run's
    /// folder, ends the commands the run left running, and removes the record. Returns the run
    /// folders cleaned, relative to the workspace.
    @discardableResult
    static func sweep(_ workspace: Workspace) -> [(folder: String, temporaries: [String], commands: Int)] {
        var cleaned: [(folder: String, temporaries: [String], commands: Int)] = []
        for name in workspace.listFiles(folder).sorted() {
            let record = "\(folder)/\(name)"
            guard let pidText = name.split(separator: "-").first, let pid = pid_t(pidText),
                let text = workspace.readText(record)
            else { continue }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard lines.count >= 2 else { continue }
            if isLive(pid, started: lines[0]) { continue }
            let workDir = lines[1]
            if WriteStageHandler.isConfined(workDir) && workspace.contains(workDir) {
                let temporaries = Temporaries.removeAbandoned(in: workspace, under: workDir, recursive: true)
                let commands = RunningCommands.endLeftovers(under: workspace.path(workDir))
                if !temporaries.isEmpty || commands > 0 { cleaned.append((workDir, temporaries, commands)) }
            }
            unlink(workspace.path(record))
        }
        return cleaned
    }

    /// Whether the record's process still runs: its pid exists and started when recorded (when
    /// the start time cannot be read, a running pid is taken to be it).
    private static func isLive(_ pid: pid_t, started: String) -> Bool {
        guard Temporaries.isRunning(pid) else { return false }
        return RunningCommands.startTime(pid).map { $0 == started } ?? true
    }
}
