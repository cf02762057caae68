import Foundation

/// A cap on tokens and on cost; either may be absent (no cap).
public struct BudgetCap: Sendable, Hashable, Decodable {
    public var tokens: Int?
    public var costUsd: Double?

    public init(tokens: Int? = nil, costUsd: Double? = nil) {
        self.tokens = tokens
        self.costUsd = costUsd
    }
}

/// The `budgets` section of `stagerunner.yaml`: caps per request, per job (each `budgetScope` a
/// caller names is one job), for the whole server process, and for the workspace (every server
/// on it, every run).
///
/// ```yaml
/// budgets:
///   request: {tokens: 20000, costUsd: 0.50}
///   job: {costUsd: 5}
///   process: {tokens: 2000000, costUsd: 50}
///   workspace: {costUsd: 500}
/// ```
///
/// Calls to network providers also draw on budgets that every server on the workspace shares
/// (``SharedBudgets``): the `workspace` cap, and the `job` cap of a `budgetScope` that callers
/// name (several servers may name one). A job that a server runs (`runTask`, `runPipeline`) has
/// one owner, so its cap is held by that server.
///
/// Before a call, its tokens are estimated as the prompt's (four bytes a token) plus `maxTokens`,
/// and its cost as those tokens at the model's price. A call that would take a scope past a cap
/// — counting what was spent and what calls in flight have reserved — is refused before anything
/// is sent. A per-request token cap also bounds the answer: a request without `maxTokens` gets
/// the tokens the cap leaves after the prompt. Calls to models without a price count toward
/// token caps only. Answers served from the cache spend nothing.
public struct Budgets: Sendable, Hashable, Decodable {
    public var request: BudgetCap?
    public var job: BudgetCap?
    public var process: BudgetCap?
    public var workspace: BudgetCap?

    public init(
        request: BudgetCap? = nil,
        job: BudgetCap? = nil,
        process: BudgetCap? = nil,
        workspace: BudgetCap? = nil
    ) {
        self.request = request
        self.job = job
        self.process = process
        self.workspace = workspace
    }
}

/// Why a budget refused a call: which cap, its limit, and what was spent.
public struct BudgetRefusal: Error, Sendable, Hashable {
    public enum Scope: String, Sendable, Hashable {
        case request
        case job
        case process
        case workspace
    }

    public enum Unit: String, Sendable, Hashable {
        case tokens
        case costUsd = "cost_usd"
    }

    public var scope: Scope
    /// The job's `budgetScope`, for job caps.
    public var scopeId: String?
    public var unit: Unit
    public var limit: Double
    /// Used by calls that finished.
    public var spent: Double
    /// Held by calls in flight.
    public var reserved: Double
    /// What this call may use.
    public var needed: Double

    public init(
        scope: Scope,
        scopeId: String? = nil,
        unit: Unit,
        limit: Double,
        spent: Double,
        reserved: Double,
        needed: Double
    ) {
        self.scope = scope
        self.scopeId = scopeId
        self.unit = unit
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.needed = needed
    }

    /// The sentence the error carries.
    public var message: String {
        let key = "budgets.\(scope.rawValue).\(unit == .tokens ? "tokens" : "costUsd")"
        let kind = unit == .tokens ? "token" : "cost"
        switch scope {
        case .request:
            return "the \(kind) budget per request is \(amount(limit)) and this call may use up to \(amount(needed)); "
                + "lower maxTokens, shorten the prompt or raise \(key) in stagerunner.yaml"
        case .job, .process, .workspace:
            let owner =
                switch scope {
                case .job: "job '\(scopeId ?? "")'"
                case .process: "this server process"
                default: "the workspace (every server on it)"
                }
            let held = reserved > 0 ? " (\(amount(reserved)) held by calls in flight)" : ""
            let remedy =
                switch scope {
                case .job: " or use another budgetScope"
                case .process: " or restart the server"
                default: ""
                }
            return "the \(kind) budget of \(owner) is \(amount(limit)): \(amount(spent)) spent\(held), "
                + "and this call may use up to \(amount(needed)); raise \(key) in stagerunner.yaml" + remedy
        }
    }

    /// Why `cap` refuses a call of `tokens` and `cost` in a scope that has spent and holds what
    /// is given, or nil when it admits it.
    public static func check(
        _ cap: BudgetCap?,
        scope: Scope,
        scopeId: String? = nil,
        spent: (tokens: Int, cost: Double),
        reserved: (tokens: Int, cost: Double),
        tokens: Int,
        cost: Double
    ) -> BudgetRefusal? {
        guard let cap else { return nil }
        if let limit = cap.tokens, spent.tokens + reserved.tokens + tokens > limit {
            return BudgetRefusal(
                scope: scope,
                scopeId: scopeId,
                unit: .tokens,
                limit: Double(limit),
                spent: Double(spent.tokens),
                reserved: Double(reserved.tokens),
                needed: Double(tokens)
            )
        }
        // A little slack for floating point: a cap of $1 admits calls adding up to $1.
        if let limit = cap.costUsd, spent.cost + reserved.cost + cost > limit + 1e-12 {
            return BudgetRefusal(
                scope: scope,
                scopeId: scopeId,
                unit: .costUsd,
                limit: limit,
                spent: spent.cost,
                reserved: reserved.cost,
                needed: cost
            )
        }
        return nil
    }

    func amount(_ value: Double) -> String {
        switch unit {
        case .tokens: return "\(Int(value.rounded())) tokens"
        case .costUsd: return "$" + Self.dollars(value)
        }
    }

    /// Up to six decimals, trailing zeros dropped: `0.5`, `0.000125`.
    static func dollars(_ value: Double) -> String {
        var text = String(format: "%.6f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

/// The budgets that every server on a workspace draws from together (the `workspace` cap, and the
/// `job` caps of scopes that callers name), kept where all of them see it.
public protocol SharedBudgets: Sendable {
    /// Holds `tokens` and `cost` for a call against the workspace's cap and, with `scope`,
    /// against that scope's `scopeCap`, checked against what every server has spent and holds;
    /// or says which cap refuses. A nil hold: nothing is shared here (a read-only workspace), so
    /// the caller holds the caps itself.
    func hold(
        tokens: Int,
        cost: Double,
        scope: String?,
        workspaceCap: BudgetCap?,
        scopeCap: BudgetCap?
    ) -> Result<SharedBudgetHold?, BudgetRefusal>

    /// Ends a call: its hold is replaced by what it used.
    func settle(_ hold: SharedBudgetHold, tokens: Int, cost: Double)

    /// No shared cap is in force: what was kept for them is dropped, so that a cap set later
    /// starts from the whole record of calls, not from a count that stopped meanwhile.
    func forget()
}

/// A call's hold on the shared budgets, to settle when it ends.
public struct SharedBudgetHold: Sendable, Hashable {
    public let id: String

    public init(id: String) { self.id = id }
}

/// What has been spent against the budgets: per job and for the process (the engine's life), and,
/// through ``SharedBudgets``, for the workspace. Calls reserve their estimate before they are
/// sent and settle with their usage after.
public actor BudgetLedger {
    struct Spend {
        var tokens = 0
        var cost = 0.0
        var reservedTokens = 0
        var reservedCost = 0.0
        /// Calls reserved and not yet settled.
        var openCalls = 0
    }

    private var process = Spend()
    private var jobs: [String: Spend] = [:]
    /// Jobs this process runs (``open(job:tokens:cost:)``): their caps are held here.
    private var ownJobs: Set<String> = []
    private let shared: (any SharedBudgets)?

    /// A ledger of one process; with `shared`, calls that say so also draw on the budgets every
    /// server on the workspace shares.
    public init(shared: (any SharedBudgets)? = nil) {
        self.shared = shared
    }

    /// A call's hold on the budgets, to settle when it ends.
    public struct Reservation: Sendable {
        /// The job whose cap this process holds for the call.
        let job: String?
        let tokens: Int
        let cost: Double
        let sharedHold: SharedBudgetHold?
    }

    /// Reserves a call of `tokens` costing `cost` (nil: unknown), or refuses it. A `shared`
    /// call (to a network provider) also counts toward the workspace's cap, and its job, unless
    /// this process runs it, is held across servers.
    public func reserve(
        tokens: Int,
        cost: Double?,
        job: String?,
        budgets: Budgets,
        shared sharing: Bool = false
    ) throws(ModelError) -> Reservation {
        let cost = cost ?? 0
        func check(_ cap: BudgetCap?, _ scope: BudgetRefusal.Scope, _ spend: Spend) throws(ModelError) {
            let refusal = BudgetRefusal.check(
                cap,
                scope: scope,
                scopeId: scope == .job ? job : nil,
                spent: (spend.tokens, spend.cost),
                reserved: (spend.reservedTokens, spend.reservedCost),
                tokens: tokens,
                cost: cost
            )
            if let refusal { throw self.refusal(refusal) }
        }
        try check(budgets.request, .request, Spend())
        let namedScope = job.map { !ownJobs.contains($0) } == true ? job : nil
        // The shared ledger costs file work on every call: it is kept only while a cap needs it.
        let needed = budgets.workspace != nil || (namedScope != nil && budgets.job != nil)
        if sharing && !needed { self.shared?.forget() }
        let shared = sharing && needed ? self.shared : nil
        let sharedJob = shared != nil ? namedScope : nil
        if let job, sharedJob == nil { try check(budgets.job, .job, jobs[job] ?? Spend()) }
        try check(budgets.process, .process, process)
        var hold: SharedBudgetHold?
        var localJob = sharedJob == nil ? job : nil
        if let shared {
            switch shared.hold(
                tokens: tokens,
                cost: cost,
                scope: sharedJob,
                workspaceCap: budgets.workspace,
                scopeCap: sharedJob == nil ? nil : budgets.job
            ) {
            case .success(let taken):
                hold = taken
                if taken == nil, let job = sharedJob {
                    // Nothing shared here: this process holds the job's cap.
                    try check(budgets.job, .job, jobs[job] ?? Spend())
                    localJob = job
                }
            case .failure(let refusal):
                throw self.refusal(refusal)
            }
        }
        process.reservedTokens += tokens
        process.reservedCost += cost
        if let job = localJob {
            jobs[job, default: Spend()].reservedTokens += tokens
            jobs[job, default: Spend()].reservedCost += cost
            jobs[job, default: Spend()].openCalls += 1
        }
        return Reservation(job: localJob, tokens: tokens, cost: cost, sharedHold: hold)
    }

    /// Ends a call: its reservation is replaced by what it used (nothing when it failed).
    public func settle(_ reservation: Reservation, tokens: Int, cost: Double?) {
        func apply(_ spend: inout Spend) {
            spend.reservedTokens -= reservation.tokens
            spend.reservedCost -= reservation.cost
            spend.tokens += tokens
            spend.cost += cost ?? 0
            spend.openCalls -= 1
        }
        apply(&process)
        if let job = reservation.job { apply(&jobs[job, default: Spend()]) }
        if let hold = reservation.sharedHold { shared?.settle(hold, tokens: tokens, cost: cost ?? 0) }
    }

    /// Starts a run of a job that has already spent `tokens` and `cost` (its status document's
    /// totals), so that the job's cap counts every run, before a restart too.
    public func open(job: String, tokens: Int, cost: Double) {
        ownJobs.insert(job)
        guard jobs[job] == nil else { return }
        jobs[job] = Spend(tokens: tokens, cost: cost)
    }

    /// Ends a run of a job: its spend is in its status document, so the ledger forgets it once no
    /// call holds a reservation.
    public func close(job: String) {
        ownJobs.remove(job)
        if jobs[job]?.openCalls == 0 { jobs[job] = nil }
    }

    /// Tokens and dollars spent, by the process or by one job.
    public func spent(job: String? = nil) -> (tokens: Int, cost: Double) {
        let spend = job.map { jobs[$0] ?? Spend() } ?? process
        return (spend.tokens, spend.cost)
    }

    private func refusal(_ refusal: BudgetRefusal) -> ModelError {
        var error = ModelError(.budgetExceeded, refusal.message)
        error.budget = refusal
        return error
    }
}
