import Foundation
import GRDB
import JSON
import Synchronization

/// One model call (cached or not), as a row of the call log, `.stagerunner/calls.sqlite`
/// (protocol/README.md section 8.1).
public struct CallRecord: Sendable, Hashable, Codable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "llm_calls"

    public var id: Int64?
    /// ISO 8601, UTC.
    public var createdAt: String
    public var runId: String
    /// The generation's stage (`draft`, `essay`, `evaluation`), or the task stage that made the
    /// call (`inference`, `critique`, `refine`, …).
    public var stage: String
    /// The generation's id, or the name of the task that made the call.
    public var genId: String
    /// The generation's template; nil for a task's call.
    public var templateId: String?
    public var model: String
    public var provider: String
    /// SHA-256 of the template text: which version of the prompt was used.
    public var promptVersion: String?
    /// The call's parameters (max tokens, temperature, …) as JSON.
    public var parameters: String
    /// `success`, `json_parse_error`, `parser_failure`, `stub_fallback` or `truncated` (the
    /// answer's, as in its metadata), `error` (no answer), or `storage_error` (an answer whose
    /// generation could not be committed).
    public var status: String
    public var error: String?
    public var latencyMs: Double
    /// The tokens the provider reported; nil when it reported none (or the call failed).
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// US dollars; 0 when cached or embedded, nil when the model's price is unknown or the call failed.
    public var costUsd: Double?
    public var cached: Bool
    /// Failed attempts retried before the outcome, and why each failed: a JSON array of
    /// "kind: message" strings (rows written before it was an array hold them joined by "; ").
    public var retries = 0
    public var retryErrors: String?
    /// Why the call failed, in a word (``ModelError/Kind``: rate_limit, timeout, …); nil when it answered.
    public var errorKind: String?

    public init(
        createdAt: String,
        runId: String,
        stage: String,
        genId: String,
        templateId: String?,
        model: String,
        provider: String,
        promptVersion: String?,
        parameters: String,
        status: String,
        error: String?,
        latencyMs: Double,
        promptTokens: Int?,
        completionTokens: Int?,
        costUsd: Double?,
        cached: Bool,
        retries: Int = 0,
        retryErrors: String? = nil,
        errorKind: String? = nil
    ) {
        self.createdAt = createdAt
        self.runId = runId
        self.stage = stage
        self.genId = genId
        self.templateId = templateId
        self.model = model
        self.provider = provider
        self.promptVersion = promptVersion
        self.parameters = parameters
        self.status = status
        self.error = error
        self.latencyMs = latencyMs
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.costUsd = costUsd
        self.cached = cached
        self.retries = retries
        self.retryErrors = retryErrors
        self.errorKind = errorKind
    }

    /// `reasons` as the `retryErrors` column holds them: a JSON array, nil when there are none.
    public static func retryErrors(_ reasons: [String]) -> String? {
        guard !reasons.isEmpty else { return nil }
        var bytes: [UInt8] = []
        JSONWriter.write(.array(reasons.map(JSONValue.string)), into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    /// Inserts the row through one prepared statement, kept by the connection: GRDB's generic
    /// `insert` encodes the record and looks its table up again for every row.
    mutating func append(to db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO llm_calls (createdAt, runId, stage, genId, templateId, model, provider, promptVersion,
                parameters, status, error, latencyMs, promptTokens, completionTokens, costUsd, cached, retries,
                retryErrors, errorKind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        )
        try statement.execute(arguments: [
            createdAt, runId, stage, genId, templateId, model, provider, promptVersion, parameters, status, error,
            latencyMs, promptTokens, completionTokens, costUsd, cached, retries, retryErrors, errorKind,
        ])
        id = db.lastInsertedRowID
    }
}

/// Spend and failures per model and status: how a user answers "what did we spend and what failed".
public struct CallSummary: Sendable, Hashable, Codable, FetchableRecord {
    public var model: String
    public var status: String
    public var calls: Int
    public var promptTokens: Int
    public var completionTokens: Int
    /// US dollars, over the calls whose price is known.
    public var cost: Double
    /// Calls that answered but whose model has no price (their cost is not in `cost`).
    public var unpricedCalls: Int
    /// Calls that answered but whose provider reported no usage (their tokens are not in the sums).
    public var unreportedCalls: Int
}

extension CallLog {
    /// Opens a database of the workspace's private state (`.stagerunner/`): the folder and the
    /// file are created for their owner alone (prompts and answers can be private; SQLite gives
    /// its `-wal` and `-shm` files the database's mode), another process may be writing (a 5 s
    /// busy timeout), and WAL with synchronous=NORMAL makes a commit cost no fsync while
    /// surviving a crash of the process; only a power loss can drop the last rows, which a log of
    /// calls and a cache of answers can afford. `cacheKiB` bounds the connection's page cache
    /// (SQLite's default is 2 MiB).
    static func openStateDatabase(_ path: String, cacheKiB: Int? = nil) throws -> DatabaseQueue {
        try OwnerOnly.createDirectories((path as NSString).deletingLastPathComponent)
        // When another process creates it meanwhile, that one's is opened.
        try? OwnerOnly.createFile(path, [UInt8]())
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if let cacheKiB { try db.execute(sql: "PRAGMA cache_size = -\(cacheKiB)") }
        }
        let database = try DatabaseQueue(path: path, configuration: configuration)
        try database.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        return database
    }
}

/// The SQLite call log of a workspace, at `.stagerunner/calls.sqlite`.
public final class CallLog: Sendable {
    let database: DatabaseQueue

    /// The home host's log (``HostDatabases``); other hosts write theirs under `.stagerunner/hosts/`.
    public static let relativePath = ".stagerunner/calls.sqlite"
    static let fileName = "calls.sqlite"

    /// Whose logs are read with this one.
    private let hosts: HostDatabases?
    private let checkpoints: Checkpoints
    /// Calls the database could not take (a full disk): written before the next call's row, and
    /// at the end of the server. A paid call is never dropped while it can be kept.
    private let unwritten = Mutex<[CallRecord]>([])
    private let queue = Mutex(Queue())
    /// The most calls kept waiting; past it the oldest are given up.
    static let unwrittenLimit = 10_000

    /// Opens (and creates or migrates) the log at `path`; with `hosts`, the other hosts' logs of
    /// the workspace are read with it.
    public convenience init(path: String, hosts: HostDatabases? = nil) throws {
        // The log is appended to and rarely read: a small page cache serves its inserts, where
        // the default would grow the server by up to 2 MiB as the log grows.
        try self.init(database: Self.openStateDatabase(path, cacheKiB: 64), hosts: hosts)
    }

    /// A log in memory, for a workspace on a read-only file system: what it records goes with
    /// the process.
    public static func inMemory() throws -> CallLog {
        try CallLog(database: DatabaseQueue(), hosts: nil)
    }

    private init(database: DatabaseQueue, hosts: HostDatabases?) throws {
        self.database = database
        self.hosts = hosts
        checkpoints = Checkpoints(hosts: hosts)
        try Self.migrator.migrate(database)
    }

    /// Opens this host's log of `workspace`.
    public convenience init(workspace: Workspace, hosts: HostDatabases? = nil) throws {
        let hosts = hosts ?? HostDatabases.resolve(workspace)
        try self.init(path: workspace.path(hosts.own(Self.fileName)), hosts: hosts)
    }

    /// `read` on this log and on each other host's that can be read now.
    private func readAll<T: Sendable>(_ read: @escaping @Sendable (Database) throws -> T) async throws -> [T] {
        var results = [try await database.read(read)]
        for path in hosts?.others(Self.fileName) ?? [] {
            if let result = HostDatabases.readImmutable(path, read) { results.append(result) }
        }
        return results
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1: llm_calls") { db in
            try db.create(table: CallRecord.databaseTableName) { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("createdAt", .text).notNull()
                table.column("runId", .text).notNull()
                table.column("stage", .text).notNull()
                table.column("genId", .text).notNull()
                table.column("templateId", .text)
                table.column("model", .text).notNull()
                table.column("provider", .text).notNull()
                table.column("promptVersion", .text)
                table.column("parameters", .text).notNull()
                table.column("status", .text).notNull()
                table.column("error", .text)
                table.column("latencyMs", .double).notNull()
                table.column("promptTokens", .integer).notNull()
                table.column("completionTokens", .integer).notNull()
                table.column("cost", .double).notNull()
                table.column("cached", .boolean).notNull()
            }
            try db.create(index: "llm_calls_gen", on: CallRecord.databaseTableName, columns: ["genId"])
        }
        migrator.registerMigration("2: retries") { db in
            try db.alter(table: CallRecord.databaseTableName) { table in
                table.add(column: "retries", .integer).notNull().defaults(to: 0)
                table.add(column: "retryErrors", .text)
            }
        }
        migrator.registerMigration("3: costUsd") { db in
            // The cost becomes nullable: null says the model's price is unknown, which 0 would hide.
            try db.alter(table: CallRecord.databaseTableName) { table in
                table.add(column: "costUsd", .double)
            }
            try db.execute(sql: "UPDATE llm_calls SET costUsd = cost")
            try db.alter(table: CallRecord.databaseTableName) { table in
                table.drop(column: "cost")
            }
        }
        migrator.registerMigration("4: errorKind") { db in
            try db.alter(table: CallRecord.databaseTableName) { table in
                table.add(column: "errorKind", .text)
            }
        }
        migrator.registerMigration("5: usage may be unknown") { db in
            // SQLite cannot drop NOT NULL from a column: the table is copied into one whose token
            // counts may be null (a provider that reports none, a call that failed).
            let columns =
                "id, createdAt, runId, stage, genId, templateId, model, provider, promptVersion, parameters, "
                + "status, error, latencyMs, promptTokens, completionTokens, cached, retries, retryErrors, "
                + "costUsd, errorKind"
            try db.create(table: "llm_calls_new") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("createdAt", .text).notNull()
                table.column("runId", .text).notNull()
                table.column("stage", .text).notNull()
                table.column("genId", .text).notNull()
                table.column("templateId", .text)
                table.column("model", .text).notNull()
                table.column("provider", .text).notNull()
                table.column("promptVersion", .text)
                table.column("parameters", .text).notNull()
                table.column("status", .text).notNull()
                table.column("error", .text)
                table.column("latencyMs", .double).notNull()
                table.column("promptTokens", .integer)
                table.column("completionTokens", .integer)
                table.column("cached", .boolean).notNull()
                table.column("retries", .integer).notNull().defaults(to: 0)
                table.column("retryErrors", .text)
                table.column("costUsd", .double)
                table.column("errorKind", .text)
            }
            try db.execute(sql: "INSERT INTO llm_calls_new (\(columns)) SELECT \(columns) FROM llm_calls")
            // A failed call used to be written with 0 tokens: it reported none.
            try db.execute(
                sql: "UPDATE llm_calls_new SET promptTokens = NULL, completionTokens = NULL WHERE status = 'error'"
            )
            try db.drop(table: "llm_calls")
            try db.rename(table: "llm_calls_new", to: "llm_calls")
            try db.create(index: "llm_calls_gen", on: CallRecord.databaseTableName, columns: ["genId"])
        }
        return migrator
    }

    /// Appends a call; returns it with its id. The row is written even when the calling task
    /// has been cancelled: a call that was made (and may have been paid for) is always logged.
    ///
    /// When the database cannot take it (a full disk), the call is kept in memory and written
    /// with the next row that can be, and the error is thrown; ``unwrittenCount`` says how many
    /// wait.
    @discardableResult
    public func record(_ call: CallRecord) async throws -> CallRecord {
        let turn: Turn = try await withCheckedThrowingContinuation { continuation in
            let leads = queue.withLock { queue in
                if queue.writing {
                    queue.waiting.append((call, continuation))
                    return false
                }
                queue.writing = true
                return true
            }
            if leads { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .written(let inserted): return inserted
        case .lead: return try await lead(call)
        }
    }

    /// What a call handed to ``record(_:)`` gets: its row, written by another's transaction, or
    /// the turn to write its own and those that came meanwhile.
    private enum Turn: Sendable {
        case written(CallRecord)
        case lead
    }

    /// The calls handed over while a transaction is being written, and whether one is.
    private struct Queue {
        var waiting: [(call: CallRecord, continuation: CheckedContinuation<Turn, any Error>)] = []
        var writing = false
    }

    /// Group commit: one transaction takes `call` and every call waiting, then the first to come
    /// meanwhile writes the next. Under load a transaction holds many rows, where one each would
    /// cost every model call a commit and a hop to the database's queue.
    private func lead(_ call: CallRecord) async throws -> CallRecord {
        let followers = queue.withLock { queue in
            defer { queue.waiting = [] }
            return queue.waiting
        }
        let outcome: Result<[CallRecord], any Error>
        do {
            outcome = .success(try await write([call] + followers.map(\.call)))
        } catch {
            outcome = .failure(error)
        }
        let next = queue.withLock { queue in
            guard !queue.waiting.isEmpty else {
                queue.writing = false
                return nil as CheckedContinuation<Turn, any Error>?
            }
            return queue.waiting.removeFirst().continuation
        }
        next?.resume(returning: .lead)
        switch outcome {
        case .success(let rows):
            for (follower, row) in zip(followers, rows.dropFirst()) {
                follower.continuation.resume(returning: .written(row))
            }
            return rows[0]
        case .failure(let error):
            for follower in followers { follower.continuation.resume(throwing: error) }
            throw error
        }
    }

    /// How many calls wait to be written.
    public var unwrittenCount: Int { unwritten.withLock { $0.count } }

    /// Writes the calls that wait, if the database takes them now; returns how many still wait.
    @discardableResult
    public func writeUnwritten() async -> Int {
        guard unwrittenCount > 0 else { return 0 }
        _ = try? await write([])
        return unwrittenCount
    }

    /// Inserts the calls that wait, then `calls`, in one transaction; returns `calls` inserted.
    /// When it fails, they all wait again, in order.
    private func write(_ calls: [CallRecord]) async throws -> [CallRecord] {
        let taken = Taken()
        do {
            let inserted = try await Self.evenIfCancelled { [self] in
                try await database.write { db -> [CallRecord] in
                    // Taken inside the write, which runs one at a time: no row is written twice.
                    let waiting = self.unwritten.withLock { waiting in
                        defer { waiting.removeAll() }
                        return waiting
                    }
                    taken.calls.withLock { $0 = waiting }
                    for var earlier in waiting { try earlier.append(to: db) }
                    return try calls.map { call in
                        var inserted = call
                        try inserted.append(to: db)
                        return inserted
                    }
                }
            }
            await checkpoints.afterWrite(database)
            return inserted
        } catch {
            keep(taken.calls.withLock { $0 }, then: calls)
            throw error
        }
    }

    /// The waiting calls a write took, to put back if it fails.
    private final class Taken: Sendable {
        let calls = Mutex<[CallRecord]>([])
    }

    /// Puts the `taken` calls back in front of those waiting and `calls` after them, the oldest
    /// given up past ``unwrittenLimit``.
    private func keep(_ taken: [CallRecord], then calls: [CallRecord]) {
        unwritten.withLock { waiting in
            waiting = taken + waiting + calls
            if waiting.count > Self.unwrittenLimit { waiting.removeFirst(waiting.count - Self.unwrittenLimit) }
        }
    }

    /// Copies what was written into the database file, for the other hosts (``HostDatabases``).
    public func checkpoint() async { await checkpoints.checkpoint(database) }

    /// Turns writing off or on, as a full disk would (for tests of what a failing log keeps).
    func setWritable(_ writable: Bool) async throws {
        try await database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA query_only = \(writable ? 0 : 1)")
        }
    }

    /// Sets the status and error of the call with id `id`: a call is logged once it has ended,
    /// before its generation is committed, and a commit that fails is recorded afterwards.
    public func update(_ id: Int64, status: String, error: String?) async throws {
        try await Self.evenIfCancelled { [database] in
            try await database.write { db in
                try db.execute(
                    sql: "UPDATE llm_calls SET status = ?, error = ? WHERE id = ?",
                    arguments: [status, error, id]
                )
            }
        }
    }

    /// Runs `write` where cancellation cannot reach it (GRDB's writes refuse to start in a
    /// cancelled task), only when the caller is cancelled: the common path makes no extra task.
    private static func evenIfCancelled<T: Sendable>(
        _ write: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard Task.isCancelled else { return try await write() }
        return try await Task { try await write() }.value
    }

    /// The most recent calls of every host, newest first.
    public func recent(limit: Int = 50) async throws -> [CallRecord] {
        let logs = try await readAll { db in try CallRecord.order(Column("id").desc).limit(limit).fetchAll(db) }
        guard logs.count > 1 else { return logs.first ?? [] }
        return Array(logs.joined().sorted { $0.createdAt > $1.createdAt }.prefix(limit))
    }

    /// Tokens and dollars of the calls that providers other than `excluded` answered (cached
    /// answers cost nothing): where the workspace's shared budget starts.
    func spent(excluding excluded: String) throws -> (tokens: Int, cost: Double) {
        let read = { (db: Database) throws -> (tokens: Int, cost: Double) in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(COALESCE(promptTokens, 0) + COALESCE(completionTokens, 0)), 0) AS tokens,
                           COALESCE(SUM(costUsd), 0) AS cost
                    FROM llm_calls WHERE provider != ? AND NOT cached
                    """,
                arguments: [excluded]
            )
            return (row?["tokens"] ?? 0, row?["cost"] ?? 0)
        }
        var total = try database.read(read)
        for path in hosts?.others(Self.fileName) ?? [] {
            guard let spent = HostDatabases.readImmutable(path, read) else { continue }
            total = (total.tokens + spent.tokens, total.cost + spent.cost)
        }
        return total
    }

    /// Totals per model and status, over every host's log.
    public func summary() async throws -> [CallSummary] {
        let logs = try await readAll { db in
            try CallSummary.fetchAll(
                db,
                sql: """
                    SELECT model, status, COUNT(*) AS calls, COALESCE(SUM(promptTokens), 0) AS promptTokens,
                           COALESCE(SUM(completionTokens), 0) AS completionTokens,
                           SUM(promptTokens IS NULL AND completionTokens IS NULL AND status != 'error')
                               AS unreportedCalls,
                           COALESCE(SUM(costUsd), 0) AS cost,
                           SUM(costUsd IS NULL AND status != 'error') AS unpricedCalls
                    FROM llm_calls GROUP BY model, status ORDER BY model, status
                    """
            )
        }
        guard logs.count > 1 else { return logs.first ?? [] }
        var totals: [String: CallSummary] = [:]
        for row in logs.joined() {
            let key = "\(row.model)\u{1F}\(row.status)"
            guard var total = totals[key] else {
                totals[key] = row
                continue
            }
            total.calls += row.calls
            total.promptTokens += row.promptTokens
            total.completionTokens += row.completionTokens
            total.cost += row.cost
            total.unpricedCalls += row.unpricedCalls
            total.unreportedCalls += row.unreportedCalls
            totals[key] = total
        }
        return totals.values.sorted { ($0.model, $0.status) < ($1.model, $1.status) }
    }
}

/// Calls of the log summed for one generation (or task), model, provider, stage, UTC day, status
/// and cache use: the rows a ``CostReport`` groups further.
public struct CallGroup: Sendable, Hashable, Codable, FetchableRecord {
    public var genId: String
    public var stage: String
    public var model: String
    public var provider: String
    /// `YYYY-MM-DD` (UTC).
    public var day: String
    public var status: String
    public var cached: Bool
    public var calls: Int
    /// Failed attempts retried within these calls.
    public var retries: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var cost: Double
    /// Calls that answered but whose cost is unknown (no price, or no usage reported): their
    /// cost is not in `cost`.
    public var unpricedCalls: Int
}

extension CallLog {
    /// The calls of one generation (or of one task, by its name) at `stage`, oldest first, over
    /// every host's log.
    public func calls(genId: String, stage: String) async throws -> [CallRecord] {
        let logs = try await readAll { db in
            try CallRecord.filter(Column("genId") == genId && Column("stage") == stage).order(Column("id")).fetchAll(db)
        }
        return logs.joined().sorted { $0.createdAt < $1.createdAt }
    }

    /// The whole log in ``CallGroup``s, over every host's log.
    public func callGroups() async throws -> [CallGroup] {
        let logs = try await readAll { db in
            try CallGroup.fetchAll(
                db,
                sql: """
                    SELECT genId, stage, model, provider, substr(createdAt, 1, 10) AS day, status, cached,
                           COUNT(*) AS calls, COALESCE(SUM(retries), 0) AS retries,
                           COALESCE(SUM(promptTokens), 0) AS promptTokens,
                           COALESCE(SUM(completionTokens), 0) AS completionTokens,
                           COALESCE(SUM(costUsd), 0) AS cost,
                           SUM(costUsd IS NULL AND status != 'error'
                               AND NOT (status = 'cancelled' AND promptTokens IS NULL AND completionTokens IS NULL))
                               AS unpricedCalls
                    FROM llm_calls GROUP BY genId, stage, model, provider, day, status, cached
                    """
            )
        }
        return Array(logs.joined())
    }
}
