import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
        guard let started = ProcessIdentity.startTime(pid) else { return nil }
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
        guard ProcessIdentity.isRunning(pid) else { return false }
        return ProcessIdentity.startTime(pid).map { $0 == started } ?? true
    }
}
