import Foundation
import GRDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which host writes which of the workspace's SQLite files. SQLite's WAL mode needs memory shared
/// by everyone who writes a database, which a network file system does not give across hosts, so
/// no file is written from two hosts: the host that first opened the workspace (named in
/// `.stagerunner/host`) writes `.stagerunner/calls.sqlite` and `.stagerunner/cache.sqlite`, every
/// other host its own pair under `.stagerunner/hosts/<host>/`. Servers of one host share their
/// host's files.
///
/// What spans the workspace (the response cache, where the workspace budget starts, the call
/// log's summary) also reads the other hosts' files, opened *immutable*: nothing is locked or
/// written in them, so a reader cannot disturb the host that writes them, and it sees what that
/// host's SQLite has checkpointed into the database file (every 1,000 pages of log, and when its
/// last server closes the file). A file that cannot be read at that moment is passed over.
public struct HostDatabases: Sendable {
    /// The host that writes the files at the top of `.stagerunner/`.
    static let homeRecordPath = ".stagerunner/host"
    static let hostsFolder = ".stagerunner/hosts"

    let workspace: Workspace
    /// This host's name, as a file name.
    public let host: String
    /// Whether this host writes the files at the top of `.stagerunner/`.
    public let isHome: Bool

    /// The files of `workspace` on this host. The first host to open a workspace records itself
    /// as its home; call it while holding the workspace's open lock.
    public static func resolve(_ workspace: Workspace) -> HostDatabases {
        let host = fileName(ProcessIdentity.host)
        let record = workspace.path(homeRecordPath)
        if let text = try? String(contentsOfFile: record, encoding: .utf8) {
            let home = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return HostDatabases(workspace: workspace, host: host, isHome: home == host || home.isEmpty)
        }
        // A workspace from before hosts were recorded, or a new one: this host is its home. Where
        // nothing can be recorded (a read-only workspace) nothing is written either.
        try? OwnerOnly.createDirectories(workspace.path(".stagerunner"))
        try? OwnerOnly.createFile(record, Array("\(host)\n".utf8))
        return HostDatabases(workspace: workspace, host: host, isHome: true)
    }

    /// The workspace-relative path of this host's database `name` (`calls.sqlite`).
    public func own(_ name: String) -> String {
        isHome ? ".stagerunner/\(name)" : "\(Self.hostsFolder)/\(host)/\(name)"
    }

    /// Whether any other host has opened the workspace.
    var hasOtherHosts: Bool {
        !isHome
            || !((try? FileManager.default.contentsOfDirectory(atPath: workspace.path(Self.hostsFolder))) ?? []).isEmpty
    }

    /// The absolute paths of the other hosts' databases `name` that exist.
    public func others(_ name: String) -> [String] {
        var paths: [String] = []
        if !isHome { paths.append(workspace.path(".stagerunner/\(name)")) }
        let folder = workspace.path(Self.hostsFolder)
        for other in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted() where other != host
        {
            paths.append("\(folder)/\(other)/\(name)")
        }
        return paths.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// Reads the database at `path` (another host's) without locking or writing anything in it;
    /// nil when it cannot be read now (a checkpoint under way, a file from a newer version).
    static func readImmutable<T>(_ path: String, _ read: (Database) throws -> T) -> T? {
        var configuration = Configuration()
        configuration.readonly = true
        let encoded = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        guard let database = try? DatabaseQueue(path: "file:\(encoded)?immutable=1", configuration: configuration)
        else {
            return nil
        }
        return try? database.read(read)
    }

    /// A host name as a file name: letters, digits, `.`, `-` and `_`, others as `_`.
    static func fileName(_ host: String) -> String {
        let name = String(
            String.UnicodeScalarView(
                host.unicodeScalars.map { scalar in
                    scalar.isASCII
                        && (CharacterSet.alphanumerics.contains(scalar) || "._-".unicodeScalars.contains(scalar))
                        ? scalar : "_"
                }
            )
        )
        return name.isEmpty || name.hasPrefix(".") ? "host-" + name : name
    }
}

/// Copies a database's write-ahead log into the database file (a passive checkpoint) at most every
/// ``interval`` after writes while other hosts share the workspace, and when the server ends: the
/// other hosts read the file alone (``HostDatabases``), so this is how soon they see what this
/// host wrote. A workspace of one host pays nothing for it.
final class Checkpoints: Sendable {
    static let interval: Duration = .seconds(2)
    private let hosts: HostDatabases?
    private let last = Mutex(ContinuousClock.now)

    init(hosts: HostDatabases?) { self.hosts = hosts }

    /// After a write to `database`: a checkpoint when the last one is ``interval`` old.
    func afterWrite(_ database: DatabaseQueue) async {
        let now = ContinuousClock.now
        let due = last.withLock { last in
            guard now - last >= Self.interval else { return false }
            last = now
            return true
        }
        if due, hosts?.hasOtherHosts == true { await checkpoint(database) }
    }

    /// A checkpoint now; one that cannot run (a reader holds the log) waits for the next write.
    func checkpoint(_ database: DatabaseQueue) async {
        _ = try? await database.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }
}
