import JSON
import JSONRPC
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Something a test talks JSON-RPC to: a connection in this process, or the real binary.
/// One test body can run against both.
public protocol RPCPeer: Sendable {
    /// The framing the test sends with.
    var framing: Framing { get }
    /// What the server wrote.
    var output: FrameReader { get }
    /// Sends raw bytes to the server.
    func send(bytes: [UInt8])
    /// Closes the server's input (end of file).
    func closeInput()
    /// The ids and methods of the requests sent.
    var transcript: Transcript { get }
}

extension RPCPeer {
    /// Sends one message body, framed.
    public func send(_ body: String) {
        transcript.noteSent(body)
        send(bytes: framed(body, framing))
    }

    /// Saves what the server sent, for the protocol's schema checks.
    public func saveTranscript(_ name: String) {
        transcript.save(output.messages, name: name)
    }

    /// Sends a request and waits for its response.
    public func call(_ id: Int, _ method: String, _ params: String? = nil) async throws -> JSONValue {
        let paramsText = params.map { #","params":\#($0)"# } ?? ""
        send(#"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)"\#(paramsText)}"#)
        return try await output.response(id: .integer(Int64(id)))
    }
}

/// A ``Connection`` in this process, wired to the test through two real pipes.
public final class InProcessPeer: RPCPeer {
    public let framing: Framing
    public let transcript = Transcript()
    public let output: FrameReader
    public let connection: Connection
    private let input: PipePair
    private let inputClosed = Mutex(false)

    public convenience init(
        methods: MethodTable,
        framing: Framing = .ndjson,
        configure: (inout Connection.Configuration) -> Void = { _ in }
    ) {
        var configuration = Connection.Configuration()
        configure(&configuration)
        var logger = Logger(label: "test-connection")
        logger.logLevel = .critical  // the tests assert on what the client sees, not on the log
        self.init(framing: framing) { input, output in
            Connection(input: input, output: output, methods: methods, configuration: configuration, logger: logger)
        }
    }

    /// Serves whatever connection `connect` makes over the pipes (a whole server, say).
    public init(framing: Framing = .ndjson, connect: (_ input: Int32, _ output: Int32) -> Connection) {
        self.framing = framing
        input = PipePair()
        let outputPipe = PipePair()
        connection = connect(input.readEnd, outputPipe.writeEnd)
        output = FrameReader(descriptor: outputPipe.readEnd, framing: .auto)
        connection.start()
        // The writer's descriptor closes when the connection has closed, so the reader sees EOF.
        let connection = connection
        let writeEnd = outputPipe.writeEnd
        let readEnd = input.readEnd
        Task {
            _ = try? await connection.waitUntilClosed()
            close(writeEnd)
            _ = readEnd
        }
    }

    public func send(bytes: [UInt8]) {
        writeAll(input.writeEnd, bytes)
    }

    public func closeInput() {
        let first = inputClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first { close(input.writeEnd) }
    }

    deinit {
        closeInput()
    }
}

/// The real `stagerunner` binary, spawned with its stdin, stdout and stderr on pipes.
public final class ServerProcess: RPCPeer {
    public let framing: Framing
    public let transcript = Transcript()
    public let output: FrameReader
    public let pid: pid_t
    private let stdinWriteEnd: Int32
    private let stdoutReadEnd: Int32
    private let stderrText = Locked<[UInt8]>([])
    private let status = Locked<(Int32?, [CheckedContinuation<Int32, Never>])>((nil, []))
    private let inputClosed = Mutex(false)

    /// The built binary: next to the test bundle, or `STAGERUNNER_BIN`.
    public static var binaryPath: String {
        if let path = getenv("STAGERUNNER_BIN") { return String(cString: path) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        precondition(count > 0, "cannot find the test binary")
        let bytes = buffer[0..<count].map { UInt8(bitPattern: $0) }
        let executable = String(decoding: bytes, as: UTF8.self)
        var directory = executable
        while let slash = directory.lastIndex(of: "/") {
            directory = String(directory[..<slash])
            if access(directory + "/stagerunner", X_OK) == 0 { return directory + "/stagerunner" }
            if directory.hasSuffix(".build") { break }
        }
        fatalError("no stagerunner binary near \(executable); run `swift build` or set STAGERUNNER_BIN")
    }

    /// Spawns `stagerunner` with `arguments` (for example `["serve"]`); with a `launcher` (an
    /// absolute path and its arguments, such as `unshare`), spawns that with the binary after it.
    public init(
        _ arguments: [String],
        launcher: [String] = [],
        framing: Framing = .ndjson,
        readFraming: FramingMode = .auto,
        environment extra: [String: String] = [:],
        outputPipeSize: Int32? = nil
    ) throws {
        self.framing = framing
        let stdinPipe = PipePair()
        let stdoutPipe = PipePair()
        let stderrPipe = PipePair()
        #if os(Linux)
        if let outputPipeSize {
            // F_SETPIPE_SZ: a small stdout pipe fills after a few messages.
            _ = fcntl(stdoutPipe.writeEnd, 1031, outputPipeSize)
        }
        #endif
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe.readEnd, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe.writeEnd, 2)
        let argv = (launcher + [Self.binaryPath] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        var environment: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if !extra.keys.contains(where: { text.hasPrefix($0 + "=") }) { environment.append(text) }
            index += 1
        }
        environment += extra.map { "\($0.key)=\($0.value)" }
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        let result = posix_spawn(&child, launcher.first ?? Self.binaryPath, &actions, nil, argv, envp)
        guard result == 0 else { throw TimedOut(description: "posix_spawn failed: \(result)") }
        pid = child
        close(stdinPipe.readEnd)
        close(stdoutPipe.writeEnd)
        close(stderrPipe.writeEnd)
        stdinWriteEnd = stdinPipe.writeEnd
        stdoutReadEnd = stdoutPipe.readEnd
        output = FrameReader(descriptor: stdoutPipe.readEnd, framing: readFraming)
        let stderrRead = stderrPipe.readEnd
        let stderrEnded = Locked(false)
        ThreadBody { [stderrText] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(stderrRead, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                stderrText.withLock { $0.append(contentsOf: buffer[0..<count]) }
            }
            close(stderrRead)
            stderrEnded.withLock { $0 = true }
        }.start()
        ThreadBody { [status] in
            var raw: Int32 = 0
            while waitpid(child, &raw, 0) < 0 && errno == EINTR {}
            // What the process wrote to stderr is read before its exit is reported, so a test can
            // read the message of a process that has just exited; at most 2 s, since a program it
            // started may still hold the pipe.
            for _ in 0..<2_000 where !stderrEnded.withLock({ $0 }) { usleep(1_000) }
            // Exit status, or 128 + signal like a shell.
            let code = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            let waiters = status.withLock { state in
                state.0 = code
                let all = state.1
                state.1 = []
                return all
            }
            for waiter in waiters { waiter.resume(returning: code) }
        }.start()
    }

    public func send(bytes: [UInt8]) {
        writeAll(stdinWriteEnd, bytes)
    }

    public func closeInput() {
        let first = inputClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first { close(stdinWriteEnd) }
    }

    /// Stops reading what the server writes, as a client that closes its end of the pipe: the
    /// descriptor is pointed at `/dev/null` (never closed, so no later file can take its number),
    /// and the pipe goes once the read under way returns. The server's writes after that one fail
    /// with EPIPE.
    public func stopReading() {
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        dup2(null, stdoutReadEnd)
        close(null)
    }

    /// What the server wrote to stderr so far.
    public var standardError: String { String(decoding: stderrText.withLock { $0 }, as: UTF8.self) }

    /// Whether the process has exited.
    public var hasExited: Bool { status.withLock { $0.0 != nil } }

    /// Sends a signal to the server.
    public func signal(_ number: Int32) {
        kill(pid, number)
    }

    /// Waits for the process to exit and returns its status; kills it after `timeout`.
    public func exitStatus(timeout: Duration = TestTimeouts.wait) async throws -> Int32 {
        // Set when the deadline killed it (a test may SIGKILL the server itself).
        let timedOut = Locked(false)
        let deadline = Task { [pid] in
            try await Task.sleep(for: timeout)
            timedOut.withLock { $0 = true }
            kill(pid, SIGKILL)
        }
        defer { deadline.cancel() }
        let code = await withCheckedContinuation { continuation in
            let known = status.withLock { state -> Int32? in
                if let code = state.0 { return code }
                state.1.append(continuation)
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
        if code == 128 + SIGKILL && timedOut.withLock({ $0 }) {
            throw TimedOut(description: "the server did not exit within \(timeout); stderr: \(standardError)")
        }
        return code
    }

    deinit {
        closeInput()
        if status.withLock({ $0.0 == nil }) { kill(pid, SIGKILL) }
    }
}

/// A value behind a mutex that closures on other threads can share.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: sending Value) {
        mutex = Mutex(value)
    }

    public func withLock<T>(_ body: (inout sending Value) throws -> sending T) rethrows -> sending T {
        try mutex.withLock(body)
    }
}
