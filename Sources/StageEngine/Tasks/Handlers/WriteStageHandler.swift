import Foundation
import JSON

/// Writes the chained output as an artifact in the run's folder: text as it is, other values as
/// JSON. The file appears whole or not at all (written aside, then renamed). Its output is
/// `{path, bytes}` with the path relative to the workspace.
struct WriteStageHandler: TaskStageHandler {
    let path: String

    var summary: String { "write \(path)" }

    static func isConfined(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.split(separator: "/").contains("..") && !path.utf8.contains(0)
    }

    func run(_ invocation: StageInvocation) async throws -> StageOutput {
        let workspace = invocation.environment.workspace
        let relative = "\(invocation.context.workDir)/\(path)"
        let bytes: [UInt8]
        switch invocation.context.output {
        case .string(let text): bytes = Array(text.utf8)
        case let value: bytes = Array(value.prettyDescription.utf8) + [UInt8(ascii: "\n")]
        }
        do {
            try ArtifactFile.write(bytes, to: workspace.path(relative))
        } catch {
            throw TaskError(.write, "cannot write the artifact \(relative): \(error)")
        }
        return StageOutput(output: ["path": .string(relative), "bytes": .integer(Int64(bytes.count))])
    }
}

/// Whole-file writes: a temporary beside the target, fsynced, renamed over it.
enum ArtifactFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failure(description: String(cString: strerror(errno))) }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(temporary)
                throw Failure(description: reason)
            }
            written += count
        }
        guard fsync(descriptor) == 0, close(descriptor) == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure(description: reason)
        }
    }
}
