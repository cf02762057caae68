import Foundation
import JSON

/// `Tests/MockModelServer/mock_model_server.py` running on loopback for the length of a test.
public final class MockModelServer: @unchecked Sendable {
    public let port: Int
    /// Spawned as the server is (posix_spawn): Foundation's `Process.run` was seen to crash the
    /// test process. The server exits when its standard input closes (when this is released), so
    /// a server held by a suite (in a `static`) ends with the test process instead of outliving it.
    private let process: ServerProcess

    /// The API key the server accepts.
    public static let key = "test-key"

    public init() throws {
        // `sh -c` so that ServerProcess's extra argument (the binary's path) becomes $0.
        process = try ServerProcess(
            [],
            launcher: [
                "/bin/sh", "-c",
                "exec python3 '\(repositoryRoot)/Tests/MockModelServer/mock_model_server.py' --exit-with-stdin",
            ]
        )
        // The first line is "PORT <n>".
        var text = ""
        for _ in 0..<60_000 {
            text = String(decoding: process.output.rawBytes, as: UTF8.self)
            if text.contains("\n") || process.hasExited { break }
            usleep(1_000)
        }
        guard let line = text.split(separator: "\n").first, line.hasPrefix("PORT "), let port = Int(line.dropFirst(5))
        else {
            process.signal(SIGKILL)
            throw TimedOut(description: "the mock model server did not start: \(text)\(process.standardError)")
        }
        self.port = port
    }

    /// `http://127.0.0.1:<port>` plus `path`.
    public func url(_ path: String = "") -> String { "http://127.0.0.1:\(port)\(path)" }

    /// What `GET path` answers (the server's own state, such as `/hold/<tag>`), over a plain
    /// socket: HTTP/1.0, so the server closes the connection after the body.
    public func get(_ path: String) throws -> JSONValue {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TimedOut(description: "socket() failed: errno \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TimedOut(description: "cannot connect to the mock: errno \(errno)") }
        writeAll(socket, Array("GET \(path) HTTP/1.0\r\n\r\n".utf8))
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(socket, &buffer, buffer.count)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let body = text.range(of: "\r\n\r\n").map({ String(text[$0.upperBound...]) }) else {
            throw TimedOut(description: "the mock answered GET \(path) with no body: \(text)")
        }
        return try JSONParser.parse(Array(body.utf8))
    }

}
