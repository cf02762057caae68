import Foundation

/// A fresh copy of one of the repository's `examples/` in a temporary directory, plus or minus
/// some files, so a test can let the server write into it.
public struct ExampleCopy: Sendable {
    public let root: String

    /// Copies `examples/<name>` (or starts empty when `name` is nil).
    public init(_ name: String?, files: [String: String] = [:], removing: [String] = []) throws {
        root = NSTemporaryDirectory() + "stagerunner-test-" + UUID().uuidString
        let manager = FileManager.default
        if let name {
            try manager.copyItem(atPath: repositoryRoot + "/examples/" + name, toPath: root)
        } else {
            try manager.createDirectory(atPath: root, withIntermediateDirectories: true)
        }
        for path in removing { try manager.removeItem(atPath: root + "/" + path) }
        for (path, text) in files {
            let full = root + "/" + path
            try manager.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        }
    }

    /// A file's text, or nil.
    public func read(_ relative: String) -> String? {
        FileManager.default.contents(atPath: root + "/" + relative).flatMap { String(data: $0, encoding: .utf8) }
    }

    public func remove() { try? FileManager.default.removeItem(atPath: root) }
}
