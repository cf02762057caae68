import Foundation

/// How the processes sharing a workspace exclude each other (who opens the databases first,
/// who generates a generation, who runs a job, who holds a provider's call slot). Set for the
/// whole workspace in `stagerunner.yaml`, since every server on it must use the same:
///
/// ```yaml
/// locking: {mode: leases, leaseSeconds: 30}   # default: {mode: flock}
/// ```
public enum Locking: Sendable, Hashable, CustomStringConvertible {
    /// `flock(2)` locks, which the kernel releases when their holder dies. Linux keeps them
    /// across hosts on local file systems and NFSv4.
    case flock
    /// Lease files next to the lock files, for file systems where `flock` does not work across
    /// hosts (NFSv3 without `lockd`, some FUSE file systems): a lease is a file created
    /// exclusively, naming its holder, whose server keeps a heartbeat file beating. A holder in
    /// this host's PID namespace is gone when its process is; one elsewhere when its heartbeat
    /// has not changed for `seconds`, as timed by the waiter's own clock, so the hosts' clocks
    /// never have to agree.
    case leases(seconds: Double)

    /// How long another host's heartbeat may stand still before its leases are taken over.
    public static let defaultLeaseSeconds = 30.0

    public var description: String {
        switch self {
        case .flock: "flock"
        case .leases(let seconds): "leases of \(seconds) s"
        }
    }
}

/// The `locking` key of `stagerunner.yaml`.
public struct LockingSettings: Sendable, Hashable, Decodable {
    public var mode: Mode
    /// For `leases`: seconds another host's heartbeat may stand still (default 30).
    public var leaseSeconds: Double?

    public enum Mode: String, Sendable, Hashable, Decodable, CaseIterable {
        case flock, leases
    }

    public init(mode: Mode, leaseSeconds: Double? = nil) {
        self.mode = mode
        self.leaseSeconds = leaseSeconds
    }

    enum CodingKeys: String, CodingKey {
        case mode, leaseSeconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .mode)
        guard let mode = Mode(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                forKey: .mode,
                in: container,
                debugDescription: "is '\(text)'; use flock (the default) or leases"
            )
        }
        self.mode = mode
        leaseSeconds = try container.decodeIfPresent(Double.self, forKey: .leaseSeconds)
        if let leaseSeconds, !(0.1...3600).contains(leaseSeconds) {
            throw DecodingError.dataCorruptedError(
                forKey: .leaseSeconds,
                in: container,
                debugDescription: "is \(leaseSeconds); give between 0.1 and 3600 seconds"
            )
        }
        if mode == .flock && leaseSeconds != nil {
            throw DecodingError.dataCorruptedError(
                forKey: .leaseSeconds,
                in: container,
                debugDescription: "applies to mode leases only"
            )
        }
    }

    /// The locking these settings ask for.
    public var locking: Locking {
        switch mode {
        case .flock: .flock
        case .leases: .leases(seconds: leaseSeconds ?? Locking.defaultLeaseSeconds)
        }
    }
}
