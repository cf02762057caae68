import Foundation
import JSON

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A job's folder in a workspace, `jobs/<id>/`, read without a ``JobManager``: how a process
/// that does not run the job (`stagerunner status`, a second server, a script) sees it. The
/// folder holds the status document, the job's input and pipeline (`input.json`, `job.json`) and
/// a folder per task with its result, its execution log and its artifacts.
public struct JobFolder: Sendable, Hashable {
    public let workspace: Workspace
    public let id: String

    /// The status document's name in the folder.
    public static let statusFileName = "tasks-status.json"

    /// The folder of job `id`, which need not exist; an id that cannot name a job is refused.
    public init(_ id: String, in workspace: Workspace) throws(JobError) {
        guard Self.isJobId(id) else {
            throw JobError(.notFound, "no job '\(id)': job ids look like 20261122T014501Z-3fa9")
        }
        self.id = id
        self.workspace = workspace
    }

    /// Whether `id` can name a job's folder: an identifier of at most 100 characters.
    public static func isJobId(_ id: String) -> Bool {
        id.utf8.count <= 100 && Identifier.problem(id, kind: "job id") == nil
    }

    /// The ids of the job folders in `workspace`, in descending order of id (ids begin with their
    /// creation time to the second).
    public static func ids(in workspace: Workspace) -> [String] {
        workspace.listFiles("jobs").filter(isJobId).sorted(by: >)
    }

    /// `jobs/<id>`, relative to the workspace.
    public var relativePath: String { "jobs/\(id)" }

    /// The folder's absolute path.
    public var path: String { workspace.path(relativePath) }

    /// The status document's absolute path.
    public var statusFile: String { workspace.path("\(relativePath)/\(Self.statusFileName)") }

    /// The lock file its owner holds: the process that runs the job, or has it queued, holds an
    /// exclusive lock on it (``FileLock``) and has written who it is into it.
    public var ownerLock: String { workspace.path("\(relativePath)/owner.lock") }

    /// Who holds the job, as its owner wrote it into ``ownerLock``; nil when nobody has.
    public var ownerRecord: String? {
        FileLock.record(at: ownerLock)?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether the folder has a status document (readable or not).
    public var exists: Bool { workspace.isFile("\(relativePath)/\(Self.statusFileName)") }

    /// What changes when the status document is replaced: its inode (each write renames a new
    /// file over it), size and modification time; empty when there is none. Cheap to compare,
    /// where reading the document means parsing all of it.
    public var statusStamp: [Int] {
        var info = stat()
        guard stat(statusFile, &info) == 0 else { return [] }
        return [Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec)]
    }

    /// The status document as the folder holds it: the last revision written, which may trail
    /// the one a running job's subscribers have seen.
    public func readStatus() throws(JobError) -> JobStatusDocument {
        guard case .text(let text) = workspace.loadText("\(relativePath)/\(Self.statusFileName)") else {
            throw JobError(.notFound, "no job '\(id)' in \(workspace.root)/jobs")
        }
        guard let json = try? JSONParser.parse(Array(text.utf8)), case .object = json else {
            throw JobError(.storage, "the job jobs/\(id) cannot be read: its tasks-status.json or job.json is damaged")
        }
        return JobStatusDocument(json: json)
    }
}
