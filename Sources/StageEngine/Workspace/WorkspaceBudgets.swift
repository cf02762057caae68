import Foundation
import Logging
import ModelProviders
import Synchronization

/// The budgets every server on the workspace shares (``SharedBudgets``), in
/// `.stagerunner/budgets/ledger.json`: what the workspace and each shared `budgetScope` have
/// spent, and the holds of calls in flight. It is read and rewritten (atomically, by rename)
/// under the lock `.stagerunner/budgets/ledger.lock`, a few microseconds a call.
///
/// A hold names its holder: a lock file under `.stagerunner/budgets/holders/` that its server
/// keeps for its whole life. The kernel releases that lock when the server dies, however it dies,
/// so the next update that can take it knows the holder is gone and gives its holds back: a
/// killed server never keeps budget from the others.
///
/// The ledger starts from the call log's totals of network providers, so a `workspace` cap counts
/// what was spent before the first server that shares it. It is kept only while a shared cap is
/// set: without one it is removed (``forget()``), so that a cap set later starts from the call
/// logs again rather than from a count that stopped meanwhile.
final class WorkspaceBudgets: SharedBudgets {
    let workspace: Workspace
    /// Tokens and dollars the workspace spent before the ledger existed.
    private let spentBefore: @Sendable () -> (tokens: Int, cost: Double)
    private let holder = Mutex<FileLock?>(nil)
    private let logger: Logger?

    static let folder = ".stagerunner/budgets"
    static let ledgerPath = "\(folder)/ledger.json"
    static let lockPath = "\(folder)/ledger.lock"
    static let holdersFolder = "\(folder)/holders"

    init(
        workspace: Workspace,
        logger: Logger? = nil,
        spentBefore: @escaping @Sendable () -> (tokens: Int, cost: Double)
    ) {
        self.workspace = workspace
        self.logger = logger
        self.spentBefore = spentBefore
    }

    deinit {
        holder.withLock { $0?.release(removing: true) }
    }

    /// What the file holds.
    struct Ledger: Codable, Equatable {
        struct Amount: Codable, Equatable {
            var tokens = 0
            var costUsd = 0.0
        }

        struct Hold: Codable, Equatable {
            var id: String
            /// The holder's lock file, under `holders/`.
            var holder: String
            var scope: String?
            var tokens: Int
            var costUsd: Double
        }

        var workspace = Amount()
        var scopes: [String: Amount] = [:]
        var holds: [Hold] = []
    }

    func hold(
        tokens: Int,
        cost: Double,
        scope: String?,
        workspaceCap: BudgetCap?,
        scopeCap: BudgetCap?
    ) -> Result<SharedBudgetHold?, BudgetRefusal> {
        guard let name = holderName() else { return .success(nil) }
        let result = update { ledger -> Result<SharedBudgetHold?, BudgetRefusal> in
            func check(_ cap: BudgetCap?, _ refusalScope: BudgetRefusal.Scope, _ held: String?) -> BudgetRefusal? {
                let holds = ledger.holds.filter { held == nil || $0.scope == held }
                let spent = held.map { ledger.scopes[$0] ?? .init() } ?? ledger.workspace
                return BudgetRefusal.check(
                    cap,
                    scope: refusalScope,
                    scopeId: held,
                    spent: (spent.tokens, spent.costUsd),
                    reserved: (holds.reduce(0) { $0 + $1.tokens }, holds.reduce(0) { $0 + $1.costUsd }),
                    tokens: tokens,
                    cost: cost
                )
            }
            if let scope, let refusal = check(scopeCap, .job, scope) { return .failure(refusal) }
            if let refusal = check(workspaceCap, .workspace, nil) { return .failure(refusal) }
            let id = "\(name)-\(UInt64.random(in: 0...UInt64.max))"
            ledger.holds.append(.init(id: id, holder: name, scope: scope, tokens: tokens, costUsd: cost))
            return .success(SharedBudgetHold(id: id))
        }
        return result ?? .success(nil)
    }

    func settle(_ hold: SharedBudgetHold, tokens: Int, cost: Double) {
        _ = update { ledger in
            guard let index = ledger.holds.firstIndex(where: { $0.id == hold.id }) else { return }
            let settled = ledger.holds.remove(at: index)
            ledger.workspace.tokens += tokens
            ledger.workspace.costUsd += cost
            if let scope = settled.scope {
                ledger.scopes[scope, default: .init()].tokens += tokens
                ledger.scopes[scope, default: .init()].costUsd += cost
            }
        }
    }

    func forget() {
        let path = workspace.path(Self.ledgerPath)
        // One look a call; the lock only when there is something to drop.
        guard FileManager.default.fileExists(atPath: path),
            let lock = try? FileLock.acquireBlocking(workspace.path(Self.lockPath), in: workspace)
        else { return }
        unlink(path)
        lock.release()
    }

    /// The ledger as it is now (nil before the first shared call), for status and tests.
    func current() -> Ledger? {
        guard let data = FileManager.default.contents(atPath: workspace.path(Self.ledgerPath)) else { return nil }
        return try? JSONDecoder().decode(Ledger.self, from: data)
    }

    /// This server's holder lock, taken on first use and kept for the server's life; nil when no
    /// lock can be taken (a read-only workspace).
    private func holderName() -> String? {
        holder.withLock { held -> String? in
            if let held { return (held.path as NSString).lastPathComponent }
            let name = "\(ProcessIdentity.space)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).lock"
            guard let lock = try? FileLock.tryAcquire(workspace.path("\(Self.holdersFolder)/\(name)"), in: workspace)
            else {
                return nil
            }
            lock.record(ProcessIdentity.currentRecord)
            held = lock
            return name
        }
    }

    /// Runs `change` on the ledger under its lock, after giving back the holds of servers that
    /// are gone, and saves it; nil when the ledger cannot be locked.
    private func update<Result>(_ change: (inout Ledger) -> Result) -> Result? {
        guard let lock = try? FileLock.acquireBlocking(workspace.path(Self.lockPath), in: workspace) else { return nil }
        defer { lock.release() }
        let path = workspace.path(Self.ledgerPath)
        var ledger: Ledger
        if let data = FileManager.default.contents(atPath: path) {
            do {
                ledger = try JSONDecoder().decode(Ledger.self, from: data)
            } catch {
                // Only this type writes it, by rename: a damaged file was edited by hand.
                logger?.error(
                    "the budget ledger cannot be read; it starts again from the call log's totals",
                    metadata: ["path": "\(path)", "error": "\(error)"]
                )
                ledger = started()
            }
        } else {
            ledger = started()
        }
        let before = ledger
        releaseHoldsOfGoneServers(&ledger)
        let result = change(&ledger)
        if ledger != before { save(ledger, to: path) }
        return result
    }

    private func started() -> Ledger {
        let spent = spentBefore()
        return Ledger(workspace: .init(tokens: spent.tokens, costUsd: spent.cost))
    }

    private func releaseHoldsOfGoneServers(_ ledger: inout Ledger) {
        let own = holder.withLock { $0.map { ($0.path as NSString).lastPathComponent } }
        var gone: Set<String> = []
        for name in Set(ledger.holds.map(\.holder)) where name != own {
            let path = workspace.path("\(Self.holdersFolder)/\(name)")
            if !FileManager.default.fileExists(atPath: path) {
                gone.insert(name)
            } else if let lock = try? FileLock.tryAcquire(path, in: workspace) {
                // Its server has died (the kernel let go of its lock); the file goes with it.
                lock.release(removing: true)
                gone.insert(name)
            }
        }
        if !gone.isEmpty {
            logger?.notice(
                "gave back the budget held by servers that are gone",
                metadata: ["holders": "\(gone.sorted())"]
            )
            ledger.holds.removeAll { gone.contains($0.holder) }
        }
    }

    private func save(_ ledger: Ledger, to path: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(ledger) else { return }
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = "\(folder)/\(Temporaries.name(for: (path as NSString).lastPathComponent))"
        do {
            try OwnerOnly.createFile(temporary, data)
            guard rename(temporary, path) == 0 else { throw OwnerOnly.Failure(path, "cannot rename") }
        } catch {
            unlink(temporary)
            logger?.error("cannot write the budget ledger", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
