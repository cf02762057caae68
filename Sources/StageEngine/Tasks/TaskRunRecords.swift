import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The task runs under way that write into their run folders (`write` and `command` stages):
/// while a process has such runs in a workspace, one file in `.stagerunner/runs/` says which,
/// after the process's identity: a line `+<folder>` when a run starts, `-<folder>` when it ends.
/// The process holds a ``FileLock`` on it while any of them lasts, so the record of live runs is
/// recognised whatever host or PID namespace its process is in, and a dead one's whatever pid
/// has been reused since. A process killed during a run leaves its record unlocked; the next one
/// to open the workspace removes the temporaries in the folders of the runs it left and ends the
/// commands they left running, without walking every run ever made.
///
/// One file per process, appended to: a file per run would cost every run a file created and
/// removed, and a rewrite of the whole list costs each run the list. It is written anew, with
/// only the runs under way, once it grows past ``compactionLength``, and removed with the last run.
enum RunRecords {
    static let folder = ".stagerunner/runs"
    static let compactionLength = 64 * 1024

    /// A run recorded by ``record(_:in:)``, for ``remove(_:)``.
    struct Entry: Sendable {
        let root: String
        let workDir: String
    }

    /// This process's record in each workspace (by root) with runs under way, and their folders.
    private struct Held {
        let lock: FileLock
        var runs: [String: Int] = [:]
        /// The length of the record on disk.
        var length = 0
    }

    private static let held = Mutex<[String: Held]>([:])

    /// Records a run of this process that writes into `workDir` (relative to the workspace).
    /// A record that cannot be written only costs the clean-up after a crash, so the run goes on
    /// without one (nil).
    static func record(_ workDir: String, in workspace: Workspace) -> Entry? {
        held.withLock { held in
            if var record = held[workspace.root] {
                record.runs[workDir, default: 0] += 1
                append("+\(workDir)\n", to: &record)
                held[workspace.root] = record
            } else {
                let path = workspace.path("\(folder)/\(ProcessIdentity.pid)-\(UInt32.random(in: 0...UInt32.max))")
                guard let lock = try? FileLock.tryAcquire(path, in: workspace) else { return nil }
                let text = ProcessIdentity.currentRecord + "+\(workDir)\n"
                lock.record(text)
                held[workspace.root] = Held(lock: lock, runs: [workDir: 1], length: text.utf8.count)
            }
            return Entry(root: workspace.root, workDir: workDir)
        }
    }

    /// The run has ended: the record says so, and goes with the last run.
    static func remove(_ entry: Entry) {
        held.withLock { held in
            guard var record = held[entry.root] else { return }
            if let count = record.runs[entry.workDir], count > 1 {
                record.runs[entry.workDir] = count - 1
            } else {
                record.runs.removeValue(forKey: entry.workDir)
            }
            if record.runs.isEmpty {
                record.lock.release(removing: true)
                held.removeValue(forKey: entry.root)
                return
            }
            if record.length < compactionLength {
                append("-\(entry.workDir)\n", to: &record)
            } else {
                let text =
                    ProcessIdentity.currentRecord
                    + record.runs.map { String(repeating: "+\($0.key)\n", count: $0.value) }.joined()
                record.lock.record(text)
                record.length = text.utf8.count
            }
            held[entry.root] = record
        }
    }

    private static func append(_ line: String, to record: inout Held) {
        record.lock.writeRecord(line, at: record.length)
        record.length += line.utf8.count
    }

    /// The folders of the runs under way by `text`, a record's contents, in the order they started.
    /// A last line without its newline was cut short and says nothing. A line without `+` or
    /// `-` is a run's folder as records held them before they were appended to.
    static func runs(inRecord text: String) -> [String] {
        var counts: [String: Int] = [:]
        var order: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines.dropFirst().dropLast() where !line.isEmpty {
            if line.hasPrefix("-") {
                counts[String(line.dropFirst()), default: 0] -= 1
                continue
            }
            let workDir = String(line.hasPrefix("+") ? line.dropFirst() : line[...])
            if counts[workDir] == nil { order.append(workDir) }
            counts[workDir, default: 0] += 1
        }
        return order.filter { counts[$0, default: 0] > 0 }
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
            for workDir in runs(inRecord: text) {
                guard WriteStageHandler.isConfined(workDir) && workspace.contains(workDir) else { continue }
                let temporaries = Temporaries.removeAbandoned(in: workspace, under: workDir, recursive: true)
                let commands = RunningCommands.endLeftovers(under: workspace.path(workDir))
                if !temporaries.isEmpty || commands > 0 { cleaned.append((workDir, temporaries, commands)) }
            }
        }
        return cleaned
    }
}
