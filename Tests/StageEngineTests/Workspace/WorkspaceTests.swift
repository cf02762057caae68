import StageEngine
import Testing

@Suite("Workspace")
struct WorkspaceTests {
    @Test func resolvesToAnAbsoluteSymlinkFreePath() throws {
        let workspace = try Workspace(path: "/tmp/../tmp/.")
        #expect(workspace.root == "/tmp")
    }

    @Test(
        "refuses what cannot be a workspace, saying why",
        arguments: [
            ("", "'' is empty; give a directory"),
            ("/no/such/place", "'/no/such/place' does not exist"),
            ("/etc/hostname", "'/etc/hostname' is not a directory"),
            ("a\u{0}b", "'a\u{0}b' contains a NUL byte"),
        ]
    )
    func refuses(path: String, message: String) {
        #expect(throws: Workspace.Problem.self) { try Workspace(path: path) }
        do {
            _ = try Workspace(path: path)
        } catch {
            #expect(error.description == message)
        }
    }
}
