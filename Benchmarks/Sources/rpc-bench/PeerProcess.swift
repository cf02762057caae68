import Glibc

/// How messages are delimited on the pipes.
enum Framing: Sendable {
    /// `Content-Length: N\r\n\r\n<body>`; other headers (e.g. Content-Type) are skipped.
    case lsp
    /// One JSON body per line.
    case ndjson
}

/// Why talking to a peer failed; the description ends up in the report.
enum PeerError: Error, CustomStringConvertible {
    case spawnFailed(String)
    case closed
    case timeout
    case io(String)
    case badFrame(String)

    var description: String {
        switch self {
        case .spawnFailed(let why): return "spawn failed: \(why)"
        case .closed: return "peer closed its pipe"
        case .timeout: return "timed out"
        case .io(let why): return "I/O error: \(why)"
        case .badFrame(let why): return "bad frame: \(why)"
        }
    }
}

/// A spawned JSON-RPC server with pipes on stdin/stdout and an allocation-free framer for the hot loop.
///
/// Requests are encoded into a reused output buffer and flushed with write(2); responses are read with read(2) into
/// a large reused input buffer and split into frames in place. Only the top-level `"id"` number is looked at.
final class PeerProcess {
    /// Returned by `parseFrame` while the buffer holds no complete frame.
    static let incomplete = Int.min

    let pid: pid_t
    let framing: Framing
    /// Blocking calls that are interrupted (see `Watchdog`) after this monotonic time throw `.timeout`.
    var deadline: UInt64 = .max
    /// Next request id; 0 is the initialize request.
    var nextID = 1
    private(set) var exitStatus: Int32?

    private var stdinFD: Int32
    private let stdoutFD: Int32
    private let inCap = 1 << 20
    private let inBuf: UnsafeMutablePointer<UInt8>
    private var head = 0
    private var tail = 0
    private let outCap = 1 << 16
    private let outBuf: UnsafeMutablePointer<UInt8>
    private var outLen = 0

    private init(pid: pid_t, stdinFD: Int32, stdoutFD: Int32, framing: Framing) {
        self.pid = pid
        self.stdinFD = stdinFD
        self.stdoutFD = stdoutFD
        self.framing = framing
        inBuf = .allocate(capacity: inCap)
        outBuf = .allocate(capacity: outCap)
    }

    deinit {
        if stdinFD >= 0 { close(stdinFD) }
        close(stdoutFD)
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        inBuf.deallocate()
        outBuf.deallocate()
    }

    // MARK: Process lifecycle

    /// Spawns `argv` (PATH lookup via posix_spawnp) with stdin/stdout on pipes and stderr on /dev/null.
    static func spawn(_ argv: [String], framing: Framing) throws -> PeerProcess {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0 else { throw PeerError.spawnFailed(errnoText()) }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            throw PeerError.spawnFailed(errnoText())
        }
        // Close-on-exec: the child keeps only the dup2'ed ends, so EOF on stdin reaches it when we close ours.
        // (pipe2 is a GNU extension that the Glibc module does not export; we are single-threaded, so no race.)
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)

        // We ignore SIGPIPE ourselves; the peer should see the default, as under a real editor.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGALRM)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF))

        let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, cArgs[0]!, &actions, &attr, cArgs, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw PeerError.spawnFailed("\(argv[0]): \(String(cString: strerror(rc)))")
        }
        return PeerProcess(pid: pid, stdinFD: toChild[1], stdoutFD: fromChild[0], framing: framing)
    }

    /// Closes the peer's stdin, which every peer here treats as "exit now".
    func closeInput() {
        if stdinFD >= 0 {
            close(stdinFD)
            stdinFD = -1
        }
    }

    /// Waits for exit after `closeInput`; kills the peer if it is still running after `seconds`.
    /// Returns false if it had to be killed.
    @discardableResult
    func waitForExit(seconds: Double) -> Bool {
        if exitStatus != nil { return true }
        let limit = Clock.now() &+ Clock.nanoseconds(seconds)
        Watchdog.arm(seconds: seconds)
        defer { Watchdog.disarm() }
        var status: Int32 = 0
        var killed = false
        while true {
            if waitpid(pid, &status, 0) == pid { break }
            guard errno == EINTR else { break }
            if !killed && Clock.now() >= limit {
                kill(pid, SIGKILL)
                killed = true
            }
        }
        exitStatus = status
        return !killed
    }

    /// "exit status N" / "killed by signal N", for failure reasons.
    var exitDescription: String {
        guard let status = exitStatus else { return "still running" }
        let signal = status & 0x7f
        return signal == 0 ? "exit status \((status >> 8) & 0xff)" : "killed by signal \(signal)"
    }

    // MARK: Writing

    /// Queues `{"jsonrpc":"2.0","id":<id>` + `rest`, framed; flushes first if the buffer is nearly full.
    @inline(__always)
    func appendRequest(id: Int, rest: StaticString) throws {
        let prefix: StaticString = #"{"jsonrpc":"2.0","id":"#
        let idLen = digitCount(id)
        let bodyLen = prefix.utf8CodeUnitCount + idLen + rest.utf8CodeUnitCount
        if outLen + bodyLen + 32 > outCap { try flush() }
        switch framing {
        case .lsp:
            append(Self.headerName)
            putDecimal(bodyLen, count: digitCount(bodyLen))
            append(Self.headerEnd)
        case .ndjson:
            break
        }
        append(prefix)
        putDecimal(id, count: idLen)
        append(rest)
        if framing == .ndjson {
            outBuf[outLen] = 0x0a
            outLen += 1
        }
    }

    /// Queues a `ping` request with the next id and returns that id.
    @inline(__always)
    @discardableResult
    func appendPing() throws -> Int {
        let id = nextID
        nextID += 1
        try appendRequest(id: id, rest: #","method":"ping"}"#)
        return id
    }

    /// Queues the initialize request (id 0).
    func appendInitialize() throws {
        try appendRequest(id: 0, rest: #","method":"initialize","params":{"clientInfo":{"name":"rpc-bench"}}}"#)
    }

    /// Writes everything queued, looping over partial writes.
    func flush() throws {
        var offset = 0
        while offset < outLen {
            let written = write(stdinFD, outBuf + offset, outLen - offset)
            if written > 0 {
                offset += written
                continue
            }
            if written < 0 && errno == EINTR {
                if Clock.now() >= deadline { throw PeerError.timeout }
                continue
            }
            if written < 0 && errno == EPIPE { throw PeerError.closed }
            throw PeerError.io("write: \(errnoText())")
        }
        outLen = 0
    }

    private static let headerName: StaticString = "Content-Length: "
    private static let headerEnd: StaticString = "\r\n\r\n"

    @inline(__always)
    private func append(_ text: StaticString) {
        let count = text.utf8CodeUnitCount
        (outBuf + outLen).update(from: text.utf8Start, count: count)
        outLen += count
    }

    @inline(__always)
    private func putDecimal(_ value: Int, count: Int) {
        var rest = value
        var index = outLen + count - 1
        repeat {
            outBuf[index] = UInt8(truncatingIfNeeded: 48 + rest % 10)
            rest /= 10
            index -= 1
        } while index >= outLen
        outLen += count
    }

    // MARK: Reading

    /// Returns the id of the next complete frame (-1 if it has no numeric id), reading as needed.
    @inline(__always)
    func nextFrame() throws -> Int {
        while true {
            let id = try parseFrame()
            if id != Self.incomplete { return id }
            try fill()
        }
    }

    /// Blocks until at least one frame is complete, then consumes every complete frame in the buffer.
    /// Returns how many of them carried a numeric id (i.e. look like responses).
    @inline(__always)
    func readResponses() throws -> Int {
        var count = 0
        while true {
            let id = try parseFrame()
            if id == Self.incomplete {
                if count > 0 { return count }
                try fill()
            } else if id >= 0 {
                count += 1
            }
        }
    }

    /// One read(2) into the tail of the input buffer, compacting first if the tail is short.
    private func fill() throws {
        if head == tail {
            head = 0
            tail = 0
        } else if inCap - tail < 1 << 16 {
            // Keep reads large: move the partial frame to the front.
            let pending = tail - head
            memmove(inBuf, inBuf + head, pending)
            head = 0
            tail = pending
        }
        if tail == inCap { throw PeerError.badFrame("frame larger than \(inCap) bytes") }
        while true {
            let got = read(stdoutFD, inBuf + tail, inCap - tail)
            if got > 0 {
                tail += got
                return
            }
            if got == 0 { throw PeerError.closed }
            if errno == EINTR {
                if Clock.now() >= deadline { throw PeerError.timeout }
                continue
            }
            throw PeerError.io("read: \(errnoText())")
        }
    }

    /// Consumes one complete frame if there is one; returns its id, -1 without a numeric id, or `incomplete`.
    @inline(__always)
    private func parseFrame() throws -> Int {
        let available = tail - head
        if available == 0 { return Self.incomplete }
        let base = inBuf + head
        switch framing {
        case .ndjson:
            guard let newline = memchr(base, 0x0a, available) else { return Self.incomplete }
            let lineLen = UnsafeMutableRawPointer(base).distance(to: newline)
            head += lineLen + 1
            return Self.parseID(base, lineLen)
        case .lsp:
            guard let headerLen = find(Self.crlfcrlf, in: base, available) else { return Self.incomplete }
            let bodyLen = try Self.contentLength(base, headerLen)
            let frameLen = headerLen + 4 + bodyLen
            if available < frameLen { return Self.incomplete }
            head += frameLen
            return Self.parseID(base + headerLen + 4, bodyLen)
        }
    }

    private static let crlfcrlf: StaticString = "\r\n\r\n"
    private static let contentLengthLower: StaticString = "content-length:"
    private static let idKey: StaticString = "\"id\""

    /// Finds `Content-Length:` (any case) among the header lines and parses its value.
    @inline(__always)
    private static func contentLength(_ header: UnsafeMutablePointer<UInt8>, _ length: Int) throws -> Int {
        let key = contentLengthLower.utf8Start
        let keyLen = contentLengthLower.utf8CodeUnitCount
        var lineStart = 0
        while lineStart < length {
            if length - lineStart > keyLen {
                var matches = true
                for offset in 0..<keyLen where header[lineStart + offset] | 0x20 != key[offset] | 0x20 {
                    matches = false
                    break
                }
                if matches {
                    var index = lineStart + keyLen
                    while index < length && (header[index] == 0x20 || header[index] == 0x09) { index += 1 }
                    var value = 0
                    var digits = 0
                    while index < length && header[index] >= 0x30 && header[index] <= 0x39 {
                        value = value * 10 + Int(header[index] - 0x30)
                        digits += 1
                        index += 1
                    }
                    if digits == 0 { throw PeerError.badFrame("unparsable Content-Length") }
                    return value
                }
            }
            while lineStart < length && header[lineStart] != 0x0a { lineStart += 1 }
            lineStart += 1
        }
        throw PeerError.badFrame("header without Content-Length")
    }

    /// The integer after the first `"id"` key, or -1 (string ids and notifications don't count).
    @inline(__always)
    private static func parseID(_ body: UnsafeMutablePointer<UInt8>, _ length: Int) -> Int {
        guard let found = find(idKey, in: body, length) else { return -1 }
        var index = found + idKey.utf8CodeUnitCount
        // Python's json.dumps writes `"id": 3`, ujson and Swift encoders `"id":3`.
        while index < length && (body[index] == 0x20 || body[index] == 0x09) { index += 1 }
        guard index < length && body[index] == 0x3a else { return -1 }
        index += 1
        while index < length && (body[index] == 0x20 || body[index] == 0x09) { index += 1 }
        var value = 0
        var digits = 0
        while index < length && body[index] >= 0x30 && body[index] <= 0x39 {
            value = value &* 10 &+ Int(body[index] - 0x30)
            digits += 1
            index += 1
        }
        return digits == 0 ? -1 : value
    }
}

/// Offset of `needle` in `haystack[0..<length]`; memchr on the first byte, then compare.
/// (memmem is a GNU extension that the Glibc module does not export.)
@inline(__always)
func find(_ needle: StaticString, in haystack: UnsafeMutablePointer<UInt8>, _ length: Int) -> Int? {
    let pattern = needle.utf8Start
    let count = needle.utf8CodeUnitCount
    var offset = 0
    while length - offset >= count {
        guard let hit = memchr(haystack + offset, Int32(pattern[0]), length - offset - count + 1) else { return nil }
        let start = UnsafeMutableRawPointer(haystack).distance(to: hit)
        if memcmp(haystack + start, pattern, count) == 0 { return start }
        offset = start + 1
    }
    return nil
}

@inline(__always)
func digitCount(_ value: Int) -> Int {
    var count = 1
    var rest = value
    while rest >= 10 {
        rest /= 10
        count += 1
    }
    return count
}

func errnoText() -> String {
    String(cString: strerror(errno))
}
