import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The task runs under way that write into their run folders (`write` and `command` stages),
/// one file each in `.stagerunner/runs/`, holding the run's folder. The process running it holds
/// a ``FileLock`` on the record for as long as the run lasts, so the record of a live run is
/// recognised whatever host or PID namespace its process is in, and a dead one's whatever pid
/// has been reused since. A process killed during a run leaves its record unlocked; the next one
/// to open the workspace removes the temporaries in that run's folder and ends the commands it
/// left running, without walking every run ever made.
enum RunRecords {
    static let folder = ".stagerunner/runs"

    /// Records a run of this process that writes into `workDir` (relative to the workspace);
    /// returns the held record, for ``remove(_:)`` when the run ends. A record that cannot be
    /// written only costs the clean-up after a crash, so the run goes on without one.
    static func record(_ workDir: String, in workspace: Workspace) -> FileLock? {
        let path = workspace.path("\(folder)/\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard let lock = try? FileLock.tryAcquire(path, in: workspace) else { return nil }
        lock.record(ProcessIdentity.currentRecord + workDir + "\n")
        return lock
    }

    static func remove(_ record: FileLock) {
        record.release(removing: true)
    }

    /// For every record whose run has ended without removing it (its process died): removes
    /// the temporaries under its run's folder, ends the commands the run left running, and
    /// removes the record. Returns the run folders cleaned, relative to the workspace.
    @discardableResult
    static func sweep(_ workspace: Workspace) -> [(folder: String, temporaries: [String], commands: Int)] {
        var cleaned: [(folder: String, temporaries: [String], commands: Int)] = []
        for name in workspace.listFiles(folder).sorted() where !FileLock.isLeaseFile(name) {
            // Held: the run is under way in a live process.
            guard let lock = try? FileLock.tryAcquire(workspace.path("\(folder)/\(name)"), in: workspace) else {
                continue
            }
            defer { lock.release(removing: true) }
            guard let text = FileLock.record(at: lock.path) else { continue }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard lines.count >= 2 else { continue }
            let workDir = lines[1]
            if WriteStageHandler.isConfined(workDir) && workspace.contains(workDir) {
                let temporaries = Temporaries.removeAbandoned(in: workspace, under: workDir, recursive: true)
                let commands = RunningCommands.endLeftovers(under: workspace.path(workDir))
                if !temporaries.isEmpty || commands > 0 { cleaned.append((workDir, temporaries, commands)) }
            }
        }
        return cleaned
    }
}
