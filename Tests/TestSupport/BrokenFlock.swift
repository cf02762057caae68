import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A library for `LD_PRELOAD` whose `flock(2)` fails with `ENOLCK`, as it does on a file system
/// without working locks (NFSv3 without `lockd`): servers started with it show what such a file
/// system does to the `flock` locking, and that `locking: {mode: leases}` does without it.
/// Compiled once per test process with the machine's C compiler (`cc`, or the Swift
/// toolchain's `clang`).
public enum BrokenFlock {
    /// Compiled on a thread of its own, once: the compiler may take seconds on a loaded machine,
    /// and a test that waited for it on the cooperative pool would hold up every other test.
    private static let built = Task { try await onOwnThread { try compile() } }

    /// The environment that starts a server with it.
    public static func environment() async throws -> [String: String] {
        ["LD_PRELOAD": try await library()]
    }

    /// The library's path.
    public static func library() async throws -> String {
        try await built.value
    }

    private static func compile() throws -> String {
        let folder = NSTemporaryDirectory() + "stagerunner-broken-flock-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let source = folder + "/broken-flock.c"
        let library = folder + "/broken-flock.so"
        try """
        #include <errno.h>
        int flock(int descriptor, int operation) {
            (void)descriptor;
            (void)operation;
            errno = ENOLCK;
            return -1;
        }
        """.write(toFile: source, atomically: true, encoding: .utf8)
        let status = try runToExit([
            "/bin/sh", "-c", #"$(command -v cc || command -v clang) -shared -fPIC -o "$1" "$2""#, "sh", library, source,
        ])
        guard status == 0 else {
            throw Failure(description: "cannot compile \(source) with cc or clang (exit \(status))")
        }
        return library
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }
}

/// Runs `arguments` (a path, then its arguments) and waits for it; returns its pid and exit
/// status. Spawned and reaped here rather than by Foundation's `Process`, whose wait can miss
/// the end of a child in a process that reaps its other children itself.
@discardableResult
public func runToExit(_ arguments: [String]) throws -> Int32 {
    try spawnAndWait(arguments).status
}

/// ``runToExit(_:)``, with the pid the child had.
public func spawnAndWait(_ arguments: [String]) throws -> (pid: pid_t, status: Int32) {
    var child: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let result = posix_spawn(&child, arguments[0], nil, nil, argv, environ)
    guard result == 0 else {
        throw BrokenFlock.Failure(description: "cannot run \(arguments[0]): posix_spawn \(result)")
    }
    var raw: Int32 = 0
    while waitpid(child, &raw, 0) < 0 && errno == EINTR {}
    return (child, (raw >> 8) & 0xff)
}
