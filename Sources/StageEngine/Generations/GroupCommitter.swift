import CFileSystem
import Foundation
import Threads

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Commits generations in batches on a thread of its own, so that the blocking file-system
/// work never runs on Swift's cooperative pool, and one durability barrier serves every
/// generation that arrived while the previous batch was being written (group commit, as
/// databases do it): an fsync costs about 0.3 ms here, six per generation would cap a store at
/// a few hundred generations a second.
///
/// A batch is written into hidden temporaries, made durable with one `syncfs`, renamed (or
/// swapped) into place, and the renames made durable by fsyncing the stage directory, or by a
/// second `syncfs` when the batch renamed into several (task artifacts, single files, each in
/// its run's folder).
final class GroupCommitter: Sendable {
    struct Job {
        let temporary: String
        let final: String
        let stageDirectory: String
        let files: [(String, FileBytes)]
        /// `temporary` and `final` are one file (its contents the only entry of `files`), not a
        /// directory of them.
        var isFile = false
        let continuation: CheckedContinuation<Void, any Error>
    }

    /// One committer (one thread) serves every store in the process.
    static let shared = GroupCommitter()

    /// Jobs handed over and not yet taken by the committer thread.
    private let pending = ConditionLock<[Job]>([])

    private init() {
        startThread { [self] in run() }
    }

    /// Commits one generation's files atomically and durably.
    func commit(files: [(String, FileBytes)], temporary: String, final: String, stageDirectory: String) async throws {
        try await enqueue { continuation in
            Job(
                temporary: temporary,
                final: final,
                stageDirectory: stageDirectory,
                files: files,
                continuation: continuation
            )
        }
    }

    /// Writes one file atomically and durably: `data` goes to `temporary` beside `final` in
    /// `directory`, then replaces `final` in one rename.
    func commitFile(_ data: FileBytes, temporary: String, final: String, directory: String) async throws {
        try await enqueue { continuation in
            Job(
                temporary: temporary,
                final: final,
                stageDirectory: directory,
                files: [("", data)],
                isFile: true,
                continuation: continuation
            )
        }
    }

    /// Hands a job to the committer thread and waits for its outcome.
    private func enqueue(_ job: (CheckedContinuation<Void, any Error>) -> Job) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            pending.withLock(notifying: true) { $0.append(job(continuation)) }
        }
    }

    private func run() {
        while true {
            let batch = pending.wait(until: { !$0.isEmpty }) { pending in
                defer { pending = [] }
                return pending
            }
            commit(batch)
        }
    }

    private func commit(_ batch: [Job]) {
        var written: [Job] = []
        for job in batch {
            do {
                try write(job)
                written.append(job)
            } catch {
                remove(job.temporary)
                job.continuation.resume(throwing: error)
            }
        }
        guard !written.isEmpty else { return }
        // One barrier per file system makes every file of the batch durable before any of them
        // becomes visible (a batch may hold workspaces on different file systems).
        var byDevice: [UInt64: [Job]] = [:]
        var devices: [String: UInt64] = [:]
        for job in written {
            var status = stat()
            let device = stat(job.stageDirectory, &status) == 0 ? UInt64(status.st_dev) : 0
            devices[job.stageDirectory] = device
            byDevice[device, default: []].append(job)
        }
        written = []
        for jobs in byDevice.values {
            if let error = barrier(jobs[0].stageDirectory) {
                fail(jobs, error)
            } else {
                written += jobs
            }
        }
        var placed: [Job] = []
        for job in written {
            if rename(job.temporary, job.final) == 0 {
                placed.append(job)
            } else if (errno == ENOTEMPTY || errno == EEXIST) && sr_rename_exchange(job.temporary, job.final) == 0 {
                // Replaced in one step; the old files are now in the temporary.
                remove(job.temporary)
                placed.append(job)
            } else {
                let error = failure(job.final, "cannot move into place")
                remove(job.temporary)
                job.continuation.resume(throwing: error)
            }
        }
        // The renames made durable: one directory by its fsync; several (task runs write each
        // into a folder of its own) by one more barrier, rather than a device flush apiece, one
        // after the other. The barrier also makes durable the folders made for them.
        var placedByDevice: [UInt64: [Job]] = [:]
        for job in placed { placedByDevice[devices[job.stageDirectory] ?? 0, default: []].append(job) }
        placed = []
        for jobs in placedByDevice.values {
            let directory = jobs[0].stageDirectory
            let several = jobs.contains { $0.stageDirectory != directory }
            if let error = several ? barrier(directory) : syncDirectory(directory) {
                fail(jobs, error)
            } else {
                placed += jobs
            }
        }
        for job in placed { job.continuation.resume() }
    }

    private func fail(_ jobs: [Job], _ error: GensStore.Failure) {
        for job in jobs {
            remove(job.temporary)
            job.continuation.resume(throwing: error)
        }
    }

    /// Writes the job's temporary: owner-only, like everything else StageRunner creates
    /// (``OwnerOnly``), so the rename gives the final file or folder the same modes.
    private func write(_ job: Job) throws(GensStore.Failure) {
        do {
            try writeTemporary(job)
        } catch {
            // Named as the file it was to become: the temporary's name means nothing to a reader.
            let path =
                error.path.hasPrefix(job.temporary) ? job.final + error.path.dropFirst(job.temporary.count) : error.path
            throw GensStore.Failure(path: path, reason: error.reason)
        }
    }

    private func writeTemporary(_ job: Job) throws(OwnerOnly.Failure) {
        try OwnerOnly.createDirectories(job.stageDirectory)
        if !job.isFile {
            guard mkdir(job.temporary, OwnerOnly.directoryMode) == 0 else {
                throw OwnerOnly.Failure(job.temporary, "cannot create")
            }
        }
        for (name, data) in job.files {
            try OwnerOnly.createFile(job.isFile ? job.temporary : job.temporary + "/" + name, data)
        }
    }

    private func barrier(_ directory: String) -> GensStore.Failure? {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return failure(directory, "cannot open directory") }
        defer { close(descriptor) }
        return sr_syncfs(descriptor) == 0 ? nil : failure(directory, "cannot flush to disk")
    }

    private func syncDirectory(_ path: String) -> GensStore.Failure? {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return failure(path, "cannot open directory") }
        defer { close(descriptor) }
        return fsync(descriptor) == 0 ? nil : failure(path, "cannot flush directory")
    }

    private func failure(_ path: String, _ action: String) -> GensStore.Failure {
        GensStore.Failure(path: path, reason: "\(action): \(String(cString: strerror(errno)))")
    }

    private func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A file's contents as the caller holds them: text is written from the string's own storage,
/// so a large prompt or answer is not copied into a buffer first.
enum FileBytes: Sendable, ContiguousBytes {
    case data(Data)
    case bytes([UInt8])
    case text(String)

    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        switch self {
        case .data(let data): return try data.withUnsafeBytes(body)
        case .bytes(let bytes): return try bytes.withUnsafeBytes(body)
        case .text(var text): return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        }
    }
}
