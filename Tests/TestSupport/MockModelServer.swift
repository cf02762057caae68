import Foundation

/// `Tests/MockModelServer/mock_model_server.py` running on loopback for the length of a test.
public final class MockModelServer: @unchecked Sendable {
    public let port: Int
    private let process: Process
    /// The server's standard input: it exits when this closes, so a server held by a suite (in a
    /// `static`) ends with the test process instead of outliving it.
    private let input = Pipe()

    /// The API key the server accepts.
    public static let key = "test-key"

    public init() throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", repositoryRoot + "/Tests/MockModelServer/mock_model_server.py", "--exit-with-stdin",
        ]
        process.standardInput = input
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line is "PORT <n>"; availableData returns as soon as it is there.
        var text = ""
        while !text.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first, line.hasPrefix("PORT "), let port = Int(line.dropFirst(5))
        else {
            process.terminate()
            throw TimedOut(description: "the mock model server did not start: \(text)")
        }
        self.port = port
    }

    /// `http://127.0.0.1:<port>` plus `path`.
    public func url(_ path: String = "") -> String { "http://127.0.0.1:\(port)\(path)" }

    deinit {
        // Not Process.waitUntilExit: off the main thread it runs a run loop that can miss the exit.
        let pid = process.processIdentifier
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
