/// The version of the wire protocol described in `protocol/`. A renamed or removed method, or
/// an incompatible change of a message, bumps the major number; additions bump the minor one.
public enum ProtocolVersion {
    public static let current = "1.0"
    public static let major = 1

    /// Whether a client speaking `version` can talk to this server (same major version).
    static func isCompatible(_ version: String) -> Bool {
        guard let first = version.split(separator: ".", omittingEmptySubsequences: false).first,
            let major = Int(first)
        else { return false }
        return major == Self.major
    }
}
