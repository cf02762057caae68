/// A constant written in the template.
enum Literal: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

/// An expression node with the line it starts on, for error messages.
struct Expr: Sendable {
    indirect enum Kind: Sendable {
        case literal(Literal)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(key: Expr, value: Expr)])
        case attribute(Expr, String)
        case item(Expr, Expr)
        case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
        case call(Expr, Arguments)
        /// `value|name(args)`; the base is nil inside `{% filter %}` blocks and `{% set x | f %}`.
        case filter(Expr?, String, Arguments)
        case test(Expr, String, Arguments)
        case negate(Expr)
        case plus(Expr)
        case not(Expr)
        case binary(BinaryOperator, Expr, Expr)
        case and(Expr, Expr)
        case or(Expr, Expr)
        case compare(Expr, [(CompareOperator, Expr)])
        case concat([Expr])
        case conditional(test: Expr, then: Expr, otherwise: Expr?)
    }

    var kind: Kind
    var line: Int
    /// Nesting height, bounded by the parser so that evaluation cannot exhaust the stack.
    var height: Int

    init(_ kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
        self.height = 1 + Expr.childHeight(kind)
    }

    private static func childHeight(_ kind: Kind) -> Int {
        func most(_ items: [Expr?]) -> Int { items.reduce(0) { max($0, $1?.height ?? 0) } }
        func most(_ arguments: Arguments) -> Int {
            max(most(arguments.positional), most(arguments.keyword.map(\.value)))
        }
        switch kind {
        case .literal, .name: return 0
        case .list(let items), .tuple(let items), .concat(let items): return most(items)
        case .dict(let pairs): return max(most(pairs.map(\.key)), most(pairs.map(\.value)))
        case .attribute(let base, _), .negate(let base), .plus(let base), .not(let base): return base.height
        case .item(let base, let key): return max(base.height, key.height)
        case .slice(let base, let start, let stop, let step): return most([base, start, stop, step])
        case .call(let base, let arguments), .test(let base, _, let arguments):
            return max(base.height, most(arguments))
        case .filter(let base, _, let arguments): return max(base?.height ?? 0, most(arguments))
        case .binary(_, let left, let right), .and(let left, let right), .or(let left, let right):
            return max(left.height, right.height)
        case .compare(let first, let rest): return max(first.height, most(rest.map(\.1)))
        case .conditional(let test, let then, let otherwise): return most([test, then, otherwise])
        }
    }

    /// How the expression reads in an error message, when it is a plain name or dotted path.
    var path: String? {
        switch kind {
        case .name(let name): return name
        case .attribute(let base, let name): return base.path.map { "\($0).\(name)" }
        case .item(let base, let key):
            guard let prefix = base.path else { return nil }
            switch key.kind {
            case .literal(.int(let index)): return "\(prefix)[\(index)]"
            case .literal(.string(let text)): return "\(prefix)['\(text)']"
            default: return nil
            }
        default: return nil
        }
    }
}

/// Call arguments: positional, then keyword.
struct Arguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(name: String, value: Expr)] = []
}

enum BinaryOperator: String, Sendable {
    case add = "+"
    case subtract = "-"
    case multiply = "*"
    case divide = "/"
    case floorDivide = "//"
    case modulo = "%"
    case power = "**"
}

enum CompareOperator: String, Sendable {
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessEqual = "<="
    case greater = ">"
    case greaterEqual = ">="
    case isIn = "in"
    case notIn = "not in"
}

/// Where `for` and `set` put values.
indirect enum AssignTarget: Sendable {
    case name(String)
    case tuple([AssignTarget])
    /// `{% set ns.attr = … %}` on a namespace.
    case namespaceAttribute(String, String)
}

/// A statement or piece of output.
indirect enum Statement: Sendable {
    case text(String)
    case output(Expr)
    case conditional(branches: [(test: Expr, body: [Statement])], otherwise: [Statement]?)
    case forLoop(ForLoop)
    case set(AssignTarget, Expr, line: Int)
    case setBlock(AssignTarget, body: Scope, filter: Expr?, line: Int)
    case with(assignments: [(AssignTarget, Expr)], body: Scope, line: Int)
    case filterBlock(Expr, body: Scope)
    case macro(MacroDefinition)
    /// `{% call(params) macro(args) %}body{% endcall %}`: calls the macro with the body as `caller`.
    case callBlock(Expr, caller: MacroDefinition)
}

/// `{% macro name(a, b=default) %}…{% endmacro %}`.
struct MacroDefinition: Sendable {
    var name: String
    var parameters: [(name: String, defaultValue: Expr?)]
    var body: Scope
    /// Whether the body reads `varargs` / `kwargs`, which is what lets a call pass extra arguments in Jinja2.
    var acceptsVarargs: Bool
    var acceptsKwargs: Bool
    /// Whether the body reads `caller`, which `{% call %}` blocks need.
    var acceptsCaller: Bool
    var line: Int
}

/// Statements that run in their own variable frame, as Jinja2 gives loop bodies, `with`, block `set` and
/// `filter` blocks.
struct Scope: Sendable {
    var statements: [Statement]
    /// Names assigned in this scope before any use, which Jinja2 treats as local from the start of the scope:
    /// they hide outer values and context variables and are undefined until assigned.
    var shadowed: [String] = []
}

struct ForLoop: Sendable {
    var target: AssignTarget
    var iterable: Expr
    var condition: Expr?
    var body: Scope
    var otherwise: Scope?
    /// `{% for … recursive %}`: the body may call `loop(items)` to render nested items.
    var recursive = false
    var line: Int
}
