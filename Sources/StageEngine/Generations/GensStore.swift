import CFileSystem
import Foundation
import ModelProviders

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The generations of a workspace: `data/gens/<stage>/<gen_id>/{prompt.txt, raw.txt, parsed.txt,
/// metadata.json}` (protocol/README.md section 8.1).
///
/// A generation is committed atomically: its files are written into a hidden temporary
/// directory beside the final one, made durable, and the directory is then renamed into place
/// (or swapped with the old one when replacing it), so a reader or a crash sees all of it or
/// none of it. Readers ignore the hidden temporaries. See ``GroupCommitter`` for how.
public struct GensStore: Sendable {
    public let workspace: Workspace
    let committer: GroupCommitter

    public init(workspace: Workspace) {
        self.workspace = workspace
        committer = .shared
    }

    /// A generation's files as committed.
    public struct Generation: Sendable, Hashable {
        public var prompt: String?
        public var raw: String?
        public var parsed: String?
        public var metadata: GenerationMetadata

        public init(prompt: String?, raw: String?, parsed: String?, metadata: GenerationMetadata) {
            self.prompt = prompt
            self.raw = raw
            self.parsed = parsed
            self.metadata = metadata
        }
    }

    /// Why a generation could not be stored or read.
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The directory of a generation, relative to the workspace. `stage` and `genId` are
    /// validated identifiers, so the path cannot leave `data/gens`.
    public static func directory(_ stage: GenerationStage, _ genId: String) -> String {
        "data/gens/\(stage.rawValue)/\(genId)"
    }

    /// Whether a committed generation exists.
    public func exists(_ stage: GenerationStage, _ genId: String) -> Bool {
        workspace.isFile(Self.directory(stage, genId) + "/metadata.json")
    }

    /// Reads a committed generation, or nil when there is none.
    public func read(_ stage: GenerationStage, _ genId: String) throws(Failure) -> Generation? {
        let directory = Self.directory(stage, genId)
        guard let data = FileManager.default.contents(atPath: workspace.path(directory + "/metadata.json")) else {
            return nil
        }
        let metadata: GenerationMetadata
        do {
            metadata = try GenerationMetadata.decode(data)
        } catch {
            throw Failure(path: directory + "/metadata.json", reason: "is not valid generation metadata: \(error)")
        }
        return Generation(
            prompt: workspace.readText(directory + "/prompt.txt"),
            raw: workspace.readText(directory + "/raw.txt"),
            parsed: workspace.readText(directory + "/parsed.txt"),
            metadata: metadata
        )
    }

    /// Removes the temporaries of commits whose process died before finishing them (a crash
    /// between writing and renaming); those of a live process (this one or another server on
    /// the same workspace) are kept. Returns the removed paths, relative to the workspace.
    @discardableResult
    public func removeAbandonedTemporaries() -> [String] {
        GenerationStage.allCases.flatMap { stage in
            Temporaries.removeAbandoned(in: workspace, under: "data/gens/\(stage.rawValue)", recursive: false)
        }
    }

    /// Commits a generation atomically and durably, replacing an existing one. The file-system
    /// work runs on the store's committer thread, batched with concurrent commits.
    public func commit(_ generation: Generation) async throws(Failure) {
        let metadata = generation.metadata
        let relativeDirectory = Self.directory(metadata.stage, metadata.genId)
        if let problem = workspace.problem(reaching: relativeDirectory) {
            throw Failure(path: relativeDirectory, reason: problem)
        }
        let stageDirectory = workspace.path("data/gens/\(metadata.stage.rawValue)")
        var files: [(String, FileBytes)] = []
        if let prompt = generation.prompt { files.append(("prompt.txt", .text(prompt))) }
        if let raw = generation.raw { files.append(("raw.txt", .text(raw))) }
        if let parsed = generation.parsed { files.append(("parsed.txt", .text(parsed))) }
        do {
            files.append(("metadata.json", .data(try metadata.encoded())))
        } catch {
            throw Failure(
                path: Self.directory(metadata.stage, metadata.genId),
                reason: "cannot encode metadata: \(error)"
            )
        }
        let temporary = stageDirectory + "/" + Temporaries.name(for: metadata.genId)
        do {
            try await committer.commit(
                files: files,
                temporary: temporary,
                final: stageDirectory + "/" + metadata.genId,
                stageDirectory: stageDirectory
            )
        } catch let failure as Failure {
            throw Failure(path: relative(failure.path), reason: failure.reason)
        } catch {
            throw Failure(path: Self.directory(metadata.stage, metadata.genId), reason: "\(error)")
        }
    }

    private func relative(_ path: String) -> String {
        path.hasPrefix(workspace.root + "/") ? String(path.dropFirst(workspace.root.count + 1)) : path
    }
}
