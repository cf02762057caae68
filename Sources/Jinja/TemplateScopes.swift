/// Reproduces the part of Jinja2's symbol tracking (`idtracking.py`) that changes what a template prints:
/// a name whose first appearance in a scope is an assignment is local to that whole scope, so nested loops
/// and reads before the assignment see it undefined instead of an outer or context value.
///
/// Jinja2 analyses a scope's own statements first (stopping at nested loop, `with`, block `set` and
/// `filter` bodies), then each nested scope with the names of all enclosing scopes known.
enum ScopeAnalyzer {
    static func resolve(_ scope: Scope, ancestors: Set<String>, parameters: Set<String>) -> Scope {
        var visitor = Visitor(ancestors: ancestors, references: parameters)
        for statement in scope.statements { visitor.visit(statement, inBranch: false) }
        let known = ancestors.union(visitor.references)
        return Scope(statements: scope.statements.map { resolveNested($0, known: known) }, shadowed: visitor.shadowed)
    }

    /// Rebuilds a statement with its nested scopes analysed.
    private static func resolveNested(_ statement: Statement, known: Set<String>) -> Statement {
        switch statement {
        case .text, .output, .set:
            return statement
        case .conditional(let branches, let otherwise):
            return .conditional(
                branches: branches.map { ($0.test, $0.body.map { resolveNested($0, known: known) }) },
                otherwise: otherwise.map { $0.map { resolveNested($0, known: known) } }
            )
        case .forLoop(var loop):
            loop.body = resolve(loop.body, ancestors: known, parameters: loop.target.names.union(["loop"]))
            loop.otherwise = loop.otherwise.map { resolve($0, ancestors: known, parameters: []) }
            return .forLoop(loop)
        case .setBlock(let target, let body, let filter, let line):
            return .setBlock(target, body: resolve(body, ancestors: known, parameters: []), filter: filter, line: line)
        case .with(let assignments, let body, let line):
            let targets = assignments.reduce(into: Set<String>()) { $0.formUnion($1.0.names) }
            return .with(
                assignments: assignments,
                body: resolve(body, ancestors: known, parameters: targets),
                line: line
            )
        case .filterBlock(let filter, let body):
            return .filterBlock(filter, body: resolve(body, ancestors: known, parameters: []))
        case .macro(var macro):
            let parameters = Set(macro.parameters.map(\.name)).union(["varargs", "kwargs", "caller"])
            macro.body = resolve(macro.body, ancestors: known, parameters: parameters)
            return .macro(macro)
        case .callBlock(let call, var caller):
            let parameters = Set(caller.parameters.map(\.name)).union(["varargs", "kwargs", "caller"])
            caller.body = resolve(caller.body, ancestors: known, parameters: parameters)
            return .callBlock(call, caller: caller)
        }
    }

    /// Every name read anywhere in the statements, nested scopes included.
    static func allNames(in statements: [Statement]) -> Set<String> {
        var visitor = Visitor(ancestors: [], references: [])
        func walk(_ statements: [Statement]) {
            for statement in statements {
                visitor.visit(statement, inBranch: false)
                switch statement {
                case .conditional(let branches, let otherwise):
                    for branch in branches { walk(branch.body) }
                    walk(otherwise ?? [])
                case .forLoop(let loop):
                    if let condition = loop.condition { visitor.visit(condition) }
                    walk(loop.body.statements)
                    walk(loop.otherwise?.statements ?? [])
                case .setBlock(_, let body, let filter, _):
                    if let filter { visitor.visit(filter) }
                    walk(body.statements)
                case .with(let assignments, let body, _):
                    for (_, value) in assignments { visitor.visit(value) }
                    walk(body.statements)
                case .filterBlock(_, let body):
                    walk(body.statements)
                case .macro(let macro), .callBlock(_, let macro):
                    for case let value? in macro.parameters.map(\.defaultValue) { visitor.visit(value) }
                    walk(macro.body.statements)
                default:
                    break
                }
            }
        }
        walk(statements)
        return visitor.references
    }

    private struct Visitor {
        let ancestors: Set<String>
        /// Names this scope owns a variable for.
        var references: Set<String>
        var shadowed: [String] = []

        init(ancestors: Set<String>, references: Set<String>) {
            self.ancestors = ancestors
            self.references = references
        }

        mutating func load(_ name: String) {
            if !ancestors.contains(name) { references.insert(name) }
        }

        mutating func store(_ name: String, inBranch: Bool) {
            guard !references.contains(name) else { return }
            references.insert(name)
            // An enclosing scope's variable is aliased, and Jinja2 falls back to the context for names
            // assigned in only some branches of an `if`; otherwise the name starts undefined.
            if !ancestors.contains(name) && !inBranch { shadowed.append(name) }
        }

        mutating func visit(_ statement: Statement, inBranch: Bool) {
            switch statement {
            case .text:
                break
            case .output(let expr):
                visit(expr)
            case .conditional(let branches, let otherwise):
                for branch in branches {
                    visit(branch.test)
                    for inner in branch.body { visit(inner, inBranch: true) }
                }
                for inner in otherwise ?? [] { visit(inner, inBranch: true) }
            case .forLoop(let loop):
                visit(loop.iterable)
            case .set(let target, let value, _):
                visit(value)
                assign(target, inBranch: inBranch)
            case .setBlock(let target, _, _, _):
                assign(target, inBranch: inBranch)
            case .with(let assignments, _, _):
                for (_, value) in assignments { visit(value) }
            case .filterBlock(let filter, _):
                visit(filter)
            case .macro(let macro):
                store(macro.name, inBranch: inBranch)
            case .callBlock(let call, _):
                visit(call)
            }
        }

        mutating func assign(_ target: AssignTarget, inBranch: Bool) {
            switch target {
            case .name(let name): store(name, inBranch: inBranch)
            case .tuple(let targets): for inner in targets { assign(inner, inBranch: inBranch) }
            case .namespaceAttribute(let name, _): load(name)
            }
        }

        mutating func visit(_ expr: Expr) {
            switch expr.kind {
            case .literal: break
            case .name(let name): load(name)
            case .list(let items), .tuple(let items), .concat(let items): for item in items { visit(item) }
            case .dict(let pairs):
                for pair in pairs {
                    visit(pair.key)
                    visit(pair.value)
                }
            case .attribute(let base, _), .negate(let base), .plus(let base), .not(let base): visit(base)
            case .item(let base, let key):
                visit(base)
                visit(key)
            case .slice(let base, let start, let stop, let step):
                visit(base)
                for part in [start, stop, step] { if let part { visit(part) } }
            case .call(let base, let arguments), .test(let base, _, let arguments):
                visit(base)
                visit(arguments)
            case .filter(let base, _, let arguments):
                if let base { visit(base) }
                visit(arguments)
            case .binary(_, let left, let right), .and(let left, let right), .or(let left, let right):
                visit(left)
                visit(right)
            case .compare(let first, let rest):
                visit(first)
                for (_, operand) in rest { visit(operand) }
            case .conditional(let test, let then, let otherwise):
                visit(test)
                visit(then)
                if let otherwise { visit(otherwise) }
            }
        }

        mutating func visit(_ arguments: Arguments) {
            for value in arguments.positional { visit(value) }
            for (_, value) in arguments.keyword { visit(value) }
        }
    }
}

extension AssignTarget {
    /// The plain names this target binds.
    var names: Set<String> {
        switch self {
        case .name(let name): return [name]
        case .tuple(let targets): return targets.reduce(into: []) { $0.formUnion($1.names) }
        case .namespaceAttribute: return []
        }
    }
}
