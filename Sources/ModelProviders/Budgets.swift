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
/// caller names is one job) and for the whole server process.
///
/// ```yaml
/// budgets:
///   request: {tokens: 20000, costUsd: 0.50}
///   job: {costUsd: 5}
///   process: {tokens: 2000000, costUsd: 50}
/// ```
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

    public init(request: BudgetCap? = nil, job: BudgetCap? = nil, process: BudgetCap? = nil) {
        self.request = request
        self.job = job
        self.process = process
    }
}

/// Why a budget refused a call: which cap, its limit, and what was spent.
public struct BudgetRefusal: Sendable, Hashable {
    public enum Scope: String, Sendable, Hashable {
        case request
        case job
        case process
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
        case .job, .process:
            let owner = scope == .job ? "job '\(scopeId ?? "")'" : "this server process"
            let held = reserved > 0 ? " (\(amount(reserved)) held by calls in flight)" : ""
            return "the \(kind) budget of \(owner) is \(amount(limit)): \(amount(spent)) spent\(held), "
                + "and this call may use up to \(amount(needed)); raise \(key) in stagerunner.yaml"
                + (scope == .process ? " or restart the server" : " or use another budgetScope")
        }
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

/// What has been spent against the budgets: per job and for the process (the engine's life).
/// Calls reserve their estimate before they are sent and settle with their usage after.
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

    public init() {}

    /// A call's hold on the budgets, to settle when it ends.
    public struct Reservation: Sendable {
        let job: String?
        let tokens: Int
        let cost: Double
    }

    /// Reserves a call of `tokens` costing `cost` (nil: unknown), or refuses it.
    public func reserve(
        tokens: Int,
        cost: Double?,
        job: String?,
        budgets: Budgets
    ) throws(ModelError) -> Reservation {
        let cost = cost ?? 0
        func check(_ cap: BudgetCap?, _ scope: BudgetRefusal.Scope, _ spend: Spend) throws(ModelError) {
            guard let cap else { return }
            if let limit = cap.tokens, spend.tokens + spend.reservedTokens + tokens > limit {
                throw refusal(
                    .init(
                        scope: scope,
                        scopeId: scope == .job ? job : nil,
                        unit: .tokens,
                        limit: Double(limit),
                        spent: Double(spend.tokens),
                        reserved: Double(spend.reservedTokens),
                        needed: Double(tokens)
                    )
                )
            }
            // A little slack for floating point: a cap of $1 admits calls adding up to $1.
            if let limit = cap.costUsd, spend.cost + spend.reservedCost + cost > limit + 1e-12 {
                throw refusal(
                    .init(
                        scope: scope,
                        scopeId: scope == .job ? job : nil,
                        unit: .costUsd,
                        limit: limit,
                        spent: spend.cost,
                        reserved: spend.reservedCost,
                        needed: cost
                    )
                )
            }
        }
        try check(budgets.request, .request, Spend())
        if let job { try check(budgets.job, .job, jobs[job] ?? Spend()) }
        try check(budgets.process, .process, process)
        process.reservedTokens += tokens
        process.reservedCost += cost
        if let job {
            jobs[job, default: Spend()].reservedTokens += tokens
            jobs[job, default: Spend()].reservedCost += cost
            jobs[job, default: Spend()].openCalls += 1
        }
        return Reservation(job: job, tokens: tokens, cost: cost)
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
    }

    /// Starts a run of a job that has already spent `tokens` and `cost` (its status document's
    /// totals), so that the job's cap counts every run, before a restart too.
    public func open(job: String, tokens: Int, cost: Double) {
        guard jobs[job] == nil else { return }
        jobs[job] = Spend(tokens: tokens, cost: cost)
    }

    /// Ends a run of a job: its spend is in its status document, so the ledger forgets it once no
    /// call holds a reservation.
    public func close(job: String) {
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
