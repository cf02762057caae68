import Foundation
import JSON

/// Writes the chained output as an artifact in the run's folder: text as it is, other values as
/// JSON. The file appears whole or not at all (written aside, then renamed). The output passes
/// through unchanged, so that it is still the task's result; the flag `lastArtifact` holds the
/// file's path relative to the workspace.
struct WriteStageHandler: TaskStageHandler {
    let path: String

    var summary: String { "write \(path)" }

    /// A durable write, once handed to the group committer, finishes.
    var isInterruptible: Bool { false }

    static func isConfined(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.split(separator: "/").contains("..") && !path.utf8.contains(0)
    }

    /// Whether an artifact may be written at `path`: confined to the run's folder, and not among
    /// the records of its running commands, which say what process group to end after a crash
    /// (an inline task's `write` stage could otherwise forge one).
    static func isArtifactPath(_ path: String) -> Bool {
        isConfined(path) && !path.split(separator: "/").contains(Substring(RunningCommands.folder))
    }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        let workspace = invocation.environment.workspace
        let relative = "\(invocation.context.workDir)/\(path)"
        // A folder on the way may be a symbolic link a command of the task made.
        if let problem = workspace.problem(reaching: relative) {
            throw TaskError(.write, "cannot write the artifact \(relative): it \(problem)")
        }
        let bytes: [UInt8]
        switch invocation.context.output {
        case .string(let text): bytes = Array(text.utf8)
        case let value: bytes = Array(value.prettyDescription.utf8) + [UInt8(ascii: "\n")]
        }
        do {
            try await ArtifactFile.write(bytes, to: workspace.path(relative))
        } catch {
            throw TaskError(.write, "cannot write the artifact \(relative): \(error)")
        }
        return StageOutput(output: invocation.context.output, flags: ["lastArtifact": .string(relative)])
    }
}

/// Whole-file writes: a temporary beside the target, renamed over it once durable. The work runs
/// on the group committer's thread, never on the cooperative pool, and concurrent writes share
/// one durability barrier.
enum ArtifactFile {
    static func write(_ bytes: [UInt8], to path: String) async throws {
        // An absolute path built by the workspace: split at its last slash (NSString's path
        // methods cost more than the rest of a small write).
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        let directory = String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        let temporary = "\(directory)/" + Temporaries.name(for: name)
        try await GroupCommitter.shared.commitFile(
            .bytes(bytes),
            temporary: temporary,
            final: path,
            directory: directory
        )
    }
}
