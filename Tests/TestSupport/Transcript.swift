import JSON
import JSONRPC
import Synchronization

/// Remembers which method each request id was sent with, so that the responses a test
/// received can be checked against the method's result schema (`protocol/tests`).
public final class Transcript: Sendable {
    private let methodsByID = Mutex<[JSONValue: String]>([:])

    public init() {}

    /// Notes the requests in an outgoing message body (a batch included).
    public func noteSent(_ body: String) {
        guard let value = try? JSONParser.parse(Array(body.utf8)) else { return }
        let messages: [JSONValue]
        if case .array(let items) = value { messages = items } else { messages = [value] }
        methodsByID.withLock { table in
            for message in messages {
                if let id = message["id"], let method = message["method"]?.stringValue { table[id] = method }
            }
        }
    }

    /// Writes every received message as a line `{"method": …, "message": …}` to
    /// `.build/transcripts/<name>.jsonl` in the repository.
    public func save(_ received: [JSONValue], name: String) {
        let table = methodsByID.withLock { $0 }
        var lines = ""
        for message in received {
            let parts: [JSONValue]
            if case .array(let items) = message { parts = items } else { parts = [message] }
            for part in parts {
                let method: JSONValue
                if let name = part["method"]?.stringValue {
                    method = .string(name)
                } else if let id = part["id"], id != .null, let name = table[id] {
                    method = .string(name)
                } else {
                    method = .null
                }
                lines += JSONValue.object(["method": method, "message": part]).description + "\n"
            }
        }
        let directory = repositoryRoot + "/.build/transcripts"
        let safeName = String(name.map { $0.isLetter || $0.isNumber ? $0 : "-" })
        FileOutput.write(lines, to: directory, file: safeName + ".jsonl")
    }
}

/// The repository this test support was compiled from.
public let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()
