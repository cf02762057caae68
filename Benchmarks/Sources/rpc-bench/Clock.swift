import Glibc

/// Monotonic nanosecond clock; clock_gettime is a vDSO call, cheap enough for per-message timing.
enum Clock {
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    static func nanoseconds(_ seconds: Double) -> UInt64 {
        UInt64(seconds * 1e9)
    }
}

/// Interrupts blocking syscalls so a hung peer turns into a timeout instead of a hung benchmark.
///
/// SIGALRM is installed without SA_RESTART, so read/write/waitpid return EINTR when it fires; callers then compare
/// the clock with their deadline. The timer repeats so a signal that lands between syscalls is not lost.
enum Watchdog {
    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGALRM, &action, nil)
        // A peer that dies mid-write must give EPIPE, not kill the benchmark.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Starts firing after `seconds`, then every 250 ms until disarmed.
    static func arm(seconds: Double) {
        let whole = Int(seconds)
        let micros = Int((seconds - Double(whole)) * 1e6)
        var timer = itimerval(
            it_interval: timeval(tv_sec: 0, tv_usec: 250_000),
            it_value: timeval(tv_sec: whole, tv_usec: max(micros, whole == 0 ? 1 : 0))
        )
        setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil)
    }

    static func disarm() {
        var timer = itimerval()
        setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil)
    }
}
