import Foundation
import GRDB
import Synchronization
import Testing

@testable import StageEngine

@Suite("Call log: every paid call is kept")
struct CallLogTests {
    static func call(_ genId: String) -> CallRecord {
        CallRecord(
            createdAt: "2026-12-05T00:00:00Z",
            runId: "run-\(genId)",
            stage: "draft",
            genId: genId,
            templateId: "t",
            model: "m",
            provider: "mock",
            promptVersion: nil,
            parameters: "{}",
            status: "success",
            error: nil,
            latencyMs: 1,
            promptTokens: 3,
            completionTokens: 4,
            costUsd: 0.01,
            cached: false
        )
    }

    @Test("calls the database cannot take are kept, in order, and written with the next row it takes")
    func unwrittenCallsAreKept() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("calllog-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = try CallLog(path: folder + "/calls.sqlite")
        try await log.record(Self.call("a"))
        try await log.setWritable(false)
        await #expect(throws: (any Error).self) { try await log.record(Self.call("b")) }
        await #expect(throws: (any Error).self) { try await log.record(Self.call("c")) }
        #expect(log.unwrittenCount == 2)
        #expect(await log.writeUnwritten() == 2, "still full")
        try await log.setWritable(true)
        try await log.record(Self.call("d"))
        #expect(log.unwrittenCount == 0)
        let genIds = try await log.recent().map(\.genId)
        #expect(genIds == ["d", "c", "b", "a"])

        try await log.setWritable(false)
        await #expect(throws: (any Error).self) { try await log.record(Self.call("e")) }
        try await log.setWritable(true)
        #expect(await log.writeUnwritten() == 0, "written at the end of the server")
        #expect(try await log.recent(limit: 1).map(\.genId) == ["e"])
    }

    /// Counts the transactions committed on the log's connection.
    final class Commits: TransactionObserver, Sendable {
        let count = Mutex(0)
        func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool { true }
        func databaseDidChange(with event: DatabaseEvent) {}
        func databaseDidCommit(_ db: Database) { count.withLock { $0 += 1 } }
        func databaseDidRollback(_ db: Database) {}
    }

    @Test("calls recorded at once share transactions, and each gets back its own row with its id")
    func concurrentCallsGetTheirOwnRows() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("calllog-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = try CallLog(path: folder + "/calls.sqlite")
        let commits = Commits()
        try await log.database.writeWithoutTransaction { db in db.add(transactionObserver: commits) }
        var call = Self.call("x")
        call.templateId = nil
        call.promptTokens = nil
        call.costUsd = nil
        call.retries = 2
        call.retryErrors = CallRecord.retryErrors(["timeout: slow", "rate_limit: busy"])
        call.errorKind = "timeout"
        let inserted = try await withThrowingTaskGroup(of: CallRecord.self) { group in
            for number in 0..<200 {
                group.addTask { [call] in
                    var numbered = call
                    numbered.genId = "g\(number)"
                    return try await log.record(numbered)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(inserted.compactMap(\.id)).count == 200)
        let stored = try await log.recent(limit: 500)
        #expect(stored.count == 200)
        #expect(Set(stored) == Set(inserted), "every column as given, under the id it was given")
        // All 200 are handed over before the first transaction is written: one each would be 200.
        #expect(commits.count.withLock { $0 } < 200)
    }
}
