import Foundation
import JSON
import JSONRPC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pipe whose ends close on exec (so a spawned child holds only what it is given).
public struct PipePair: Sendable {
    public let readEnd: Int32
    public let writeEnd: Int32

    public init() {
        var descriptors: [Int32] = [0, 0]
        precondition(pipe(&descriptors) == 0, "pipe failed: errno \(errno)")
        readEnd = descriptors[0]
        writeEnd = descriptors[1]
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
    }
}

/// SIGPIPE ignored in the test process, once: a reader that is gone is EPIPE, as `writeAll`
/// promises, not the end of the whole test run (an in-process server ignores it too, but a run
/// filtered to the process tests may have none).
private let brokenPipesIgnored: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Writes every byte; returns false when the reader is gone.
@discardableResult
public func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
    _ = brokenPipesIgnored
    let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: false)
    return (try? handle.write(contentsOf: bytes)) != nil
}

/// `body` framed for the wire.
public func framed(_ body: String, _ framing: Framing) -> [UInt8] {
    var output: [UInt8] = []
    framing.frame(Array(body.utf8), into: &output)
    return output
}

/// Parses JSON text that a test wrote by hand (crashes the test on a typo, by design).
public func json(_ text: String) -> JSONValue {
    do {
        return try JSONParser.parse(Array(text.utf8))
    } catch {
        fatalError("test JSON does not parse: \(error) in \(text)")
    }
}

/// Runs `body` on a fresh OS thread, which may block (tests must not park the cooperative pool
/// that the handlers under test need).
final class ThreadBody: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }

    func start() {
        Thread.detachNewThread { [self] in body() }
    }
}
