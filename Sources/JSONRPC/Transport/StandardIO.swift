#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's standard streams, prepared for a protocol on stdio.
public enum StandardIO {
    /// Takes stdout for the protocol and returns its private descriptor.
    ///
    /// fd 1 is duplicated for the protocol writer and then pointed at stderr, so that a stray
    /// `print` anywhere in the process lands in the log instead of corrupting the stream.
    /// SIGPIPE is ignored so that a peer that goes away shows up as EPIPE, not as a dead process.
    public static func takeStandardOutput() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let protocolDescriptor = dup(STDOUT_FILENO)
        precondition(protocolDescriptor >= 0, "dup(stdout) failed: errno \(errno)")
        _ = fcntl(protocolDescriptor, F_SETFD, FD_CLOEXEC)
        dup2(STDERR_FILENO, STDOUT_FILENO)
        return protocolDescriptor
    }
}
