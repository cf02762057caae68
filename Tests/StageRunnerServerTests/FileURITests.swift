import Testing

@testable import StageRunnerServer

@Suite("file: URIs")
struct FileURITests {
    @Test(
        "LSP workspace URIs become local paths",
        arguments: [
            ("file:///home/ada/prompts", "/home/ada/prompts"),
            ("file://localhost/srv/p", "/srv/p"),
            ("FILE://LocalHost/srv/p", "/srv/p"),
            ("file:/srv/p", "/srv/p"),
            ("file:///srv/my%20prompts%20%231", "/srv/my prompts #1"),
            ("file:///srv/caf%C3%A9/%E2%98%83", "/srv/café/☃"),
            ("file:///srv/caf%c3%a9", "/srv/café"),
            ("file:///srv/p?query=1", "/srv/p"),
            ("file:///srv/p#fragment", "/srv/p"),
            ("file:///", "/"),
        ]
    )
    func paths(uri: String, path: String) throws {
        #expect(try FileURI.path(of: uri) == path)
    }

    @Test(
        "URIs that name no local path say why",
        arguments: [
            (
                "untitled:Untitled-1",
                "must be a file: URI such as file:///path/to/workspace, not 'untitled:Untitled-1': the server reads the workspace from its own disk"
            ),
            (
                "/srv/p",
                "must be a file: URI such as file:///path/to/workspace, not '/srv/p': the server reads the workspace from its own disk"
            ),
            (
                "file://host/p",
                "names the host 'host' in 'file://host/p': only this machine's files (file:///…) can be a workspace"
            ),
            ("file:///a%2", "has a '%' not followed by two hex digits in 'file:///a%2'"),
            ("file:///a%zz", "has a '%' not followed by two hex digits in 'file:///a%zz'"),
            ("file:///a%FF", "decodes to a path that is not UTF-8 text in 'file:///a%FF'"),
            ("file:///a%00b", "decodes to a path that is not UTF-8 text in 'file:///a%00b'"),
            ("file:", "has no absolute path in 'file:': write file:///path/to/workspace"),
        ]
    )
    func failures(uri: String, problem: String) {
        #expect(throws: FileURI.Failure.self) { try FileURI.path(of: uri) }
        do {
            _ = try FileURI.path(of: uri)
        } catch {
            #expect(error.problem == problem)
        }
    }
}
