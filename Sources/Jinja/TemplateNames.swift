/// A filter or test a template names that this engine does not have: found when the template is
/// checked, before a render meets it.
public struct UnknownName: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case filter, test
    }

    public var kind: Kind
    public var name: String
    public var line: Int
    /// What rendering would say: "no filter named 'x'", or why a Jinja2 built-in is not supported.
    public var message: String
}

/// A variable a template reads from its context, where it first does.
public struct FreeName: Sendable, Hashable {
    public var name: String
    public var line: Int
}

extension Template {
    /// The filters and tests the template uses that rendering would refuse, in the order written.
    public var unknownNames: [UnknownName] {
        var found = NameWalker.Found()
        NameWalker.walk(body, into: &found)
        return found.unknown
    }

    /// The variables the template reads from what it is rendered with, each once, in the order
    /// first used: names it uses that it never assigns itself (with `set`, `for`, `with`, a macro
    /// or its parameters) and that are not globals. A name assigned anywhere in the template
    /// counts as assigned everywhere, so that nothing it provides itself is listed.
    public var freeNames: [FreeName] {
        var found = NameWalker.Found()
        NameWalker.walk(body, into: &found)
        var seen: Set<String> = NameWalker.globals
        seen.formUnion(found.bound)
        var names: [FreeName] = []
        for reference in found.references where seen.insert(reference.name).inserted { names.append(reference) }
        return names
    }
}

private enum NameWalker {
    struct Found {
        var unknown: [UnknownName] = []
        var references: [FreeName] = []
        var bound: Set<String> = []
    }

    static let globals: Set<String> = [
        "range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "caller", "varargs", "kwargs",
        "true", "false", "none", "True", "False", "None",
    ]

    static func bind(_ target: AssignTarget, into found: inout Found) {
        switch target {
        case .name(let name): found.bound.insert(name)
        case .tuple(let targets): for target in targets { bind(target, into: &found) }
        case .namespaceAttribute: break
        }
    }

    static func walk(_ scope: Scope, into found: inout Found) {
        for statement in scope.statements { walk(statement, into: &found) }
    }

    static func walk(_ statements: [Statement], into found: inout Found) {
        for statement in statements { walk(statement, into: &found) }
    }

    static func walk(_ statement: Statement, into found: inout Found) {
        switch statement {
        case .text: break
        case .output(let expr): walk(expr, into: &found)
        case .conditional(let branches, let otherwise):
            for branch in branches {
                walk(branch.test, into: &found)
                walk(branch.body, into: &found)
            }
            if let otherwise { walk(otherwise, into: &found) }
        case .forLoop(let loop):
            bind(loop.target, into: &found)
            walk(loop.iterable, into: &found)
            if let condition = loop.condition { walk(condition, into: &found) }
            walk(loop.body, into: &found)
            if let otherwise = loop.otherwise { walk(otherwise, into: &found) }
        case .set(let target, let expr, _):
            bind(target, into: &found)
            walk(expr, into: &found)
        case .setBlock(let target, let body, let filter, _):
            bind(target, into: &found)
            walk(body, into: &found)
            if let filter { walk(filter, into: &found) }
        case .with(let assignments, let body, _):
            for (target, expr) in assignments {
                bind(target, into: &found)
                walk(expr, into: &found)
            }
            walk(body, into: &found)
        case .filterBlock(let filter, let body):
            walk(filter, into: &found)
            walk(body, into: &found)
        case .macro(let macro): walk(macro, into: &found)
        case .callBlock(let call, let caller):
            walk(call, into: &found)
            walk(caller, into: &found)
        }
    }

    static func walk(_ macro: MacroDefinition, into found: inout Found) {
        found.bound.insert(macro.name)
        for parameter in macro.parameters {
            found.bound.insert(parameter.name)
            if let value = parameter.defaultValue { walk(value, into: &found) }
        }
        walk(macro.body, into: &found)
    }

    static func walk(_ arguments: Arguments, into found: inout Found) {
        for expr in arguments.positional { walk(expr, into: &found) }
        for (_, expr) in arguments.keyword { walk(expr, into: &found) }
    }

    static func walk(_ expr: Expr, into found: inout Found) {
        switch expr.kind {
        case .literal: break
        case .name(let name): found.references.append(FreeName(name: name, line: expr.line))
        case .list(let items), .tuple(let items), .concat(let items):
            for item in items { walk(item, into: &found) }
        case .dict(let pairs):
            for pair in pairs {
                walk(pair.key, into: &found)
                walk(pair.value, into: &found)
            }
        case .attribute(let base, _), .negate(let base), .plus(let base), .not(let base): walk(base, into: &found)
        case .item(let base, let key):
            walk(base, into: &found)
            walk(key, into: &found)
        case .slice(let base, let start, let stop, let step):
            for part in [base, start, stop, step] { if let part { walk(part, into: &found) } }
        case .call(let base, let arguments):
            walk(base, into: &found)
            walk(arguments, into: &found)
        case .filter(let base, let name, let arguments):
            if let base { walk(base, into: &found) }
            walk(arguments, into: &found)
            if !TemplateRenderer.filterNames.contains(name) {
                found.unknown.append(
                    UnknownName(
                        kind: .filter,
                        name: name,
                        line: expr.line,
                        message: TemplateRenderer.unknownFilterMessage(name)
                    )
                )
            }
        case .test(let base, let name, let arguments):
            walk(base, into: &found)
            walk(arguments, into: &found)
            if !TemplateRenderer.testNames.contains(name) {
                found.unknown.append(
                    UnknownName(kind: .test, name: name, line: expr.line, message: "no test named '\(name)'")
                )
            }
        case .binary(_, let left, let right), .and(let left, let right), .or(let left, let right):
            walk(left, into: &found)
            walk(right, into: &found)
        case .compare(let first, let rest):
            walk(first, into: &found)
            for (_, expr) in rest { walk(expr, into: &found) }
        case .conditional(let test, let then, let otherwise):
            walk(test, into: &found)
            walk(then, into: &found)
            if let otherwise { walk(otherwise, into: &found) }
        }
    }
}

extension Template {
    /// The filters templates can use (Jinja2's built-ins, less the refused ones).
    public static var filterNames: Set<String> { TemplateRenderer.filterNames }
    /// The tests templates can use.
    public static var testNames: Set<String> { TemplateRenderer.testNames }
}
