import StageEngine
import TestSupport

/// An example copy opened as a workspace.
struct TemporaryWorkspace {
    let copy: ExampleCopy
    let workspace: Workspace

    init(copying example: String? = nil, files: [String: String] = [:], removing: [String] = []) throws {
        copy = try ExampleCopy(example, files: files, removing: removing)
        workspace = try Workspace(path: copy.root)
    }

    func read(_ relative: String) -> String? { copy.read(relative) }

    func remove() { copy.remove() }
}
