/// A copy of `examples/daydream` whose providers are a fresh ``MockModelServer``, and the real
/// `stagerunner serve` on it, with the mock's key in `MOCK_API_KEY`.
public struct MockedWorkspace: Sendable {
    public let mock: MockModelServer
    public let example: ExampleCopy
    public let server: ServerProcess

    /// `configuration` writes `stagerunner.yaml` from the mock (``provider(_:of:_:)`` for its lines).
    public init(logLevel: String = "error", configuration: (MockModelServer) -> String) throws {
        mock = try MockModelServer()
        example = try ExampleCopy("daydream", files: ["stagerunner.yaml": configuration(mock)])
        server = try ServerProcess(
            ["serve", "--workspace", example.root, "--log-level", logLevel],
            environment: ["MOCK_API_KEY": MockModelServer.key]
        )
    }

    /// A `providers` entry for the mock's OpenAI API: `name: {kind: openai, baseURL, apiKeyEnv, …}`.
    public static func provider(_ name: String, of mock: MockModelServer, _ settings: String = "") -> String {
        let more = settings.isEmpty ? "" : ", " + settings
        return "  \(name): {kind: openai, baseURL: \"\(mock.url("/v1"))\", apiKeyEnv: MOCK_API_KEY\(more)}\n"
    }

    public func remove() { example.remove() }
}
