import Crypto
import Foundation
import GRDB
import ModelProviders

/// Whether a call may be answered from the response cache, per request (`cache` of `runStage`).
public enum CachePolicy: String, Sendable, Hashable, Codable {
    /// Answer from the cache when it holds a fresh answer; store new answers.
    case use
    /// Always call the model, and store its answer in place of the cached one.
    case refresh
    /// Neither read nor write the cache.
    case off
}

/// The `cache` section of `stagerunner.yaml`.
///
/// ```yaml
/// cache:
///   ttlSeconds: 604800   # how long an answer stays fresh (default 30 days)
///   default: use         # the policy of requests that name none (use, refresh or off)
/// ```
public struct CacheSettings: Sendable, Hashable, Decodable {
    public var ttlSeconds: Double?
    public var `default`: CachePolicy?

    public init(ttlSeconds: Double? = nil, default policy: CachePolicy? = nil) {
        self.ttlSeconds = ttlSeconds
        self.default = policy
    }

    /// Thirty days.
    public static let defaultTTL: Double = 30 * 24 * 3600
}

/// Answers of network providers, keyed by their content: the provider, the model, the messages
/// and the parameters (max tokens, temperature). A hit is returned marked `cached` and costs
/// nothing. Only complete answers are stored: never an error, never a truncated answer. The
/// embedded provider is not cached (it is deterministic and free).
///
/// It lives at `.stagerunner/cache.sqlite`, beside the call log rather than in it: the cache can
/// be deleted at any time to start afresh without losing the record of calls.
public final class ResponseCache: Sendable {
    let database: DatabaseQueue

    /// The home host's cache (``HostDatabases``); other hosts write theirs under `.stagerunner/hosts/`.
    public static let relativePath = ".stagerunner/cache.sqlite"
    static let fileName = "cache.sqlite"

    /// Whose caches answer when this one has no answer.
    private let hosts: HostDatabases?
    private let checkpoints: Checkpoints

    /// Answers removed at most when the cache is opened: the rest go at the next opening, so
    /// that opening a cache that has not been opened for months costs no more than a moment.
    static let purgeLimit = 10_000

    /// Opens (and creates or migrates) the cache at `path`; with `ttl`, removes answers older
    /// than `ttl` seconds (at most ``purgeLimit`` of them).
    public convenience init(path: String, ttl: Double? = nil, hosts: HostDatabases? = nil) throws {
        try self.init(database: CallLog.openStateDatabase(path), ttl: ttl, hosts: hosts)
    }

    /// A cache in memory, for a workspace on a read-only file system.
    public static func inMemory() throws -> ResponseCache {
        try ResponseCache(database: DatabaseQueue(), ttl: nil, hosts: nil)
    }

    private init(database: DatabaseQueue, ttl: Double?, hosts: HostDatabases?) throws {
        self.database = database
        self.hosts = hosts
        checkpoints = Checkpoints(hosts: hosts)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1: responses") { db in
            try db.create(table: "responses") { table in
                table.primaryKey("key", .text)
                table.column("provider", .text).notNull()
                table.column("model", .text).notNull()
                table.column("text", .text).notNull()
                table.column("finishReason", .text).notNull()
                table.column("promptTokens", .integer).notNull()
                table.column("completionTokens", .integer).notNull()
                table.column("answeredModel", .text).notNull()
                /// Seconds since 1970.
                table.column("storedAt", .double).notNull()
            }
        }
        migrator.registerMigration("2: storedAt index") { db in
            // Expired answers are found without reading every row (and its text).
            try db.create(index: "responses_storedAt", on: "responses", columns: ["storedAt"])
        }
        migrator.registerMigration("3: usage may be unknown") { db in
            // Token counts become nullable (a provider that reports none); the cache may be
            // emptied at any time, so the table starts afresh rather than being copied.
            try db.drop(table: "responses")
            try db.create(table: "responses") { table in
                table.primaryKey("key", .text)
                table.column("provider", .text).notNull()
                table.column("model", .text).notNull()
                table.column("text", .text).notNull()
                table.column("finishReason", .text).notNull()
                table.column("promptTokens", .integer)
                table.column("completionTokens", .integer)
                table.column("answeredModel", .text).notNull()
                /// Seconds since 1970.
                table.column("storedAt", .double).notNull()
            }
            try db.create(index: "responses_storedAt", on: "responses", columns: ["storedAt"])
        }
        try migrator.migrate(database)
        if let ttl {
            // Expired answers are never used, so a purge that fails (a lock held past the busy
            // timeout) only waits for the next opening.
            _ = try? database.write { db in try Self.removeExpired(db, ttl: ttl, limit: Self.purgeLimit) }
        }
    }

    /// Opens this host's cache of `workspace`, removing answers older than `ttl` seconds; the
    /// other hosts' caches answer what it cannot.
    public convenience init(workspace: Workspace, ttl: Double? = nil, hosts: HostDatabases? = nil) throws {
        let hosts = hosts ?? HostDatabases.resolve(workspace)
        try self.init(path: workspace.path(hosts.own(Self.fileName)), ttl: ttl, hosts: hosts)
    }

    /// The key of a request to `provider`: SHA-256 of its content, in a stable encoding.
    public static func key(provider: String, _ request: CompletionRequest) -> String {
        var text = "v1\u{1F}\(provider)\u{1F}\(request.model)\u{1F}"
        text += request.maxTokens.map(String.init) ?? "-"
        text += "\u{1F}" + (request.temperature.map { "\($0)" } ?? "-")
        for message in request.messages {
            // Lengths first, so no content can pass for a boundary.
            text += "\u{1E}\(message.role.rawValue)\u{1F}\(message.content.utf8.count)\u{1F}\(message.content)"
        }
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The stored answer to `request` if it is younger than `ttl` seconds, marked cached and free.
    public func lookup(provider: String, _ request: CompletionRequest, ttl: Double) async throws -> Completion? {
        let key = Self.key(provider: provider, request)
        let oldest = Date().timeIntervalSince1970 - ttl
        let read = { @Sendable (db: Database) throws -> Completion? in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT * FROM responses WHERE key = ? AND storedAt >= ?",
                    arguments: [key, oldest]
                )
            else { return nil }
            return Completion(
                text: row["text"],
                finishReason: FinishReason(rawValue: row["finishReason"]) ?? .other,
                usage: ProviderCall.usage(prompt: row["promptTokens"], completion: row["completionTokens"]),
                cost: 0,
                provider: row["provider"],
                model: row["answeredModel"],
                cached: true
            )
        }
        if let answer = try await database.read(read) { return answer }
        for path in hosts?.others(Self.fileName) ?? [] {
            if let answer = HostDatabases.readImmutable(path, read), let answer { return answer }
        }
        return nil
    }

    /// Stores a complete answer (replacing an older one); errors never get here, and truncated
    /// answers are refused.
    public func store(provider: String, _ request: CompletionRequest, _ completion: Completion) async throws {
        guard completion.finishReason != .length, !completion.cached else { return }
        let key = Self.key(provider: provider, request)
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO responses
                    (key, provider, model, text, finishReason, promptTokens, completionTokens, answeredModel, storedAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    key, provider, request.model, completion.text, completion.finishReason.rawValue,
                    completion.usage?.promptTokens, completion.usage?.completionTokens, completion.model,
                    Date().timeIntervalSince1970,
                ]
            )
        }
        await checkpoints.afterWrite(database)
    }

    /// Copies what was written into the database file, for the other hosts (``HostDatabases``).
    public func checkpoint() async { await checkpoints.checkpoint(database) }

    /// Removes the answers older than `ttl` seconds (the oldest `limit` of them, when given);
    /// returns how many.
    @discardableResult
    public func removeExpired(ttl: Double, limit: Int? = nil) async throws -> Int {
        try await database.write { db in try Self.removeExpired(db, ttl: ttl, limit: limit) }
    }

    private static func removeExpired(_ db: Database, ttl: Double, limit: Int?) throws -> Int {
        let oldest = Date().timeIntervalSince1970 - ttl
        try db.execute(
            sql: """
                DELETE FROM responses WHERE rowid IN
                (SELECT rowid FROM responses WHERE storedAt < ? ORDER BY storedAt LIMIT ?)
                """,
            arguments: [oldest, limit ?? -1]
        )
        return db.changesCount
    }

    /// How many answers are stored.
    public func count() async throws -> Int {
        try await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM responses") ?? 0 }
    }
}
