#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Walks a compiled template once per render. One instance per render call, so its mutable state is never shared.
final class TemplateRenderer {
    /// Longest list `range()` may build and longest string `*` may build, so hostile input cannot exhaust memory.
    static let maximumRange = 10_000_000
    static let maximumRepeat = 100_000_000

    /// `size` (a width, a precision, an indent) when a string that long may be built; a larger
    /// one is a limit error instead of an allocation of that size.
    static func checkedSize(_ size: Int, _ what: String) throws(RenderFailure) -> Int {
        guard size <= maximumRepeat else { throw .limit("\(what) \(size) is too large") }
        return size
    }

    let templateName: String
    private let context: [String: TemplateValue]
    private var converted: [String: Value] = [:]
    /// Innermost last; the first frame holds template-level `set`s.
    private var frames: [[String: Value]] = [[:]]
    private var output = ""
    /// The text a `{% filter %}` or `{% set x | f %}` block feeds its filter chain.
    private var blockInput: Value?
    private var macroDepth = 0
    private var nesting = NestingBudget(limit: TemplateRenderer.maximumDepth)
    /// Above the deepest single template the parser accepts (200 blocks plus a 400-high expression).
    static let maximumDepth = 1_000
    /// Recursive macros stop here, well before the stack would.
    static let maximumMacroDepth = 50

    init(templateName: String, context: [String: TemplateValue]) {
        self.templateName = templateName
        self.context = context
    }

    func render(_ body: Scope) throws(TemplateError) -> String {
        do {
            shadow(body.shadowed, line: 1)
            try run(body.statements)
        } catch {
            throw templateError(error, line: 0)
        }
        return output
    }

    func templateError(_ failure: RenderFailure, line: Int) -> TemplateError {
        switch failure {
        case .located(let error): return error
        case .undefined(let undefined):
            return TemplateError(
                kind: .undefined,
                message: undefined.message,
                templateName: templateName,
                line: undefined.line
            )
        case .type(let message):
            return TemplateError(kind: .type, message: message, templateName: templateName, line: line)
        case .value(let message):
            return TemplateError(kind: .value, message: message, templateName: templateName, line: line)
        case .zeroDivision(let message):
            return TemplateError(kind: .zeroDivision, message: message, templateName: templateName, line: line)
        case .unknownName(let message):
            return TemplateError(kind: .unknownName, message: message, templateName: templateName, line: line)
        case .limit(let message):
            return TemplateError(kind: .limit, message: message, templateName: templateName, line: line)
        }
    }

    // MARK: Statements

    private func run(_ body: [Statement]) throws(RenderFailure) {
        try descend()
        defer { nesting.leave() }
        for statement in body {
            switch statement {
            case .text(let text):
                output += text
            case .output(let expr):
                let value = try evaluate(expr)
                do {
                    output += try value.pythonString()
                } catch {
                    throw .located(templateError(error, line: expr.line))
                }
            case .conditional(let branches, let otherwise):
                var taken = false
                for branch in branches where try truth(branch.test) {
                    try run(branch.body)
                    taken = true
                    break
                }
                if !taken, let otherwise { try run(otherwise) }
            case .forLoop(let loop):
                try runFor(loop)
            case .set(let target, let expr, let line):
                try assign(target, try evaluate(expr), line: line)
            case .setBlock(let target, let body, let filter, let line):
                var value = Value.string(try capture(body, line: line))
                if let filter { value = try applyBlockFilter(filter, to: value) }
                try assign(target, value, line: line)
            case .with(let assignments, let body, let line):
                var values: [(AssignTarget, Value)] = []
                for (target, expr) in assignments { values.append((target, try evaluate(expr))) }
                frames.append([:])
                defer { frames.removeLast() }
                shadow(body.shadowed, line: line)
                for (target, value) in values { try assign(target, value, line: line) }
                try run(body.statements)
            case .macro(let macro):
                frames[frames.count - 1][macro.name] = .macro(macro)
            case .callBlock(let call, let caller):
                guard case .call(let callee, let arguments) = call.kind else { break }
                let function = try evaluate(callee)
                var (positional, keyword) = try evaluateArguments(arguments)
                keyword["caller"] = .caller(caller, frames)
                let result = try locate(call.line) { () throws(RenderFailure) in
                    try self.call(
                        function,
                        positional,
                        keyword,
                        keywordOrder: arguments.keyword.map(\.name) + ["caller"],
                        line: call.line
                    )
                }
                output += try locate(call.line) { () throws(RenderFailure) in try result.pythonString() }
            case .filterBlock(let filter, let body):
                let text = try capture(body, line: filter.line)
                output += try locate(filter.line) { () throws(RenderFailure) in
                    try applyBlockFilter(filter, to: .string(text)).pythonString()
                }
            }
        }
    }

    /// Renders a block body in its own frame and returns its text.
    private func capture(_ body: Scope, line: Int) throws(RenderFailure) -> String {
        let saved = output
        output = ""
        defer { output = saved }
        try runInFrame(body, line: line)
        return output
    }

    private func runInFrame(_ body: Scope, line: Int) throws(RenderFailure) {
        frames.append([:])
        defer { frames.removeLast() }
        shadow(body.shadowed, line: line)
        try run(body.statements)
    }

    /// Hides outer values of names the scope assigns before using (see `Scope.shadowed`).
    private func shadow(_ names: [String], line: Int) {
        for name in names {
            frames[frames.count - 1][name] = .undefined(
                Undefined(message: "undefined variable '\(name)'", line: line, shadow: true)
            )
        }
    }

    private func applyBlockFilter(_ filter: Expr, to value: Value) throws(RenderFailure) -> Value {
        let saved = blockInput
        blockInput = value
        defer { blockInput = saved }
        return try evaluate(filter)
    }

    private func truth(_ expr: Expr) throws(RenderFailure) -> Bool {
        let value = try evaluate(expr)
        return try locate(expr.line) { () throws(RenderFailure) in try value.truthy() }
    }

    /// Attaches a line to failures that do not have one yet.
    func locate<T>(_ line: Int, _ body: () throws(RenderFailure) -> T) throws(RenderFailure) -> T {
        do {
            return try body()
        } catch {
            if case .located = error { throw error }
            throw .located(templateError(error, line: line))
        }
    }

    /// Runs a loop over its iterable, or over `nested` items when a recursive loop calls `loop(items)`.
    private func runFor(_ loop: ForLoop, nested: Value? = nil, depth0: Int = 0) throws(RenderFailure) {
        let iterable: Value
        if let nested { iterable = nested } else { iterable = try evaluate(loop.iterable) }
        var items = try locate(loop.iterable.line) { () throws(RenderFailure) in try iterable.iterate() }
        if let condition = loop.condition {
            var kept: [Value] = []
            for item in items {
                frames.append([:])
                defer { frames.removeLast() }
                try assign(loop.target, item, line: loop.line)
                guard try truth(condition) else { continue }
                // Jinja2's filter generator re-packs unpacked targets, so `loop.previtem` sees tuples.
                if case .tuple = loop.target { kept.append(.tuple(try item.iterate())) } else { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let otherwise = loop.otherwise { try runInFrame(otherwise, line: loop.line) }
            return
        }
        // Only recursive calls go deeper; nested plain loops all report depth 1, as in Jinja2.
        let state = LoopState(items: items, depth0: depth0)
        if loop.recursive { state.recursion = (loop, frames.count) }
        for (index, item) in items.enumerated() {
            state.index0 = index
            // A fresh frame per iteration: `set` inside the body neither leaks out nor carries over,
            // which is how Jinja2 scopes loop bodies.
            var frame = [String: Value](minimumCapacity: 4)
            frame["loop"] = .loop(state)
            frames.append(frame)
            shadow(loop.body.shadowed, line: loop.line)
            defer { frames.removeLast() }
            try assign(loop.target, item, line: loop.line)
            try run(loop.body.statements)
        }
    }

    private func assign(_ target: AssignTarget, _ value: Value, line: Int) throws(RenderFailure) {
        switch target {
        case .name(let name):
            frames[frames.count - 1][name] = value
        case .tuple(let targets):
            let items = try locate(line) { () throws(RenderFailure) in try value.iterate() }
            guard items.count == targets.count else {
                let message =
                    items.count < targets.count
                    ? "not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "too many values to unpack (expected \(targets.count))"
                throw .located(templateError(.value(message), line: line))
            }
            for (target, item) in zip(targets, items) { try assign(target, item, line: line) }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let namespace) = lookup(name, line: line) else {
                throw .located(templateError(.type("can only assign attributes to namespace objects"), line: line))
            }
            namespace.attributes[attribute] = value
        }
    }

    // MARK: Expressions

    func lookup(_ name: String, line: Int) -> Value {
        for index in stride(from: frames.count - 1, through: 0, by: -1) where !frames[index].isEmpty {
            if let value = frames[index][name] {
                // Report a shadowed name where it is used, not where its scope began.
                if case .undefined(let undefined) = value, undefined.shadow {
                    return .undefined(Undefined(message: undefined.message, line: line))
                }
                return value
            }
        }
        if let value = converted[name] { return value }
        if let value = context[name] {
            let result = Value(value)
            converted[name] = result
            return result
        }
        switch name {
        case "range", "dict", "namespace", "cycler", "joiner", "lipsum": return .function(name)
        default: break
        }
        return .undefined(Undefined(message: "undefined variable '\(name)'", line: line))
    }

    func evaluate(_ expr: Expr) throws(RenderFailure) -> Value {
        try descend()
        defer { nesting.leave() }
        return try locate(expr.line) { () throws(RenderFailure) in try evaluateUnlocated(expr) }
    }

    /// Counts statement and expression nesting across macro calls, which the parser's limits cannot see.
    private func descend() throws(RenderFailure) {
        guard nesting.enter() else {
            nesting.leave()
            throw .limit("template nested too deeply to render (recursive macro or deep nesting)")
        }
    }

    private func evaluateUnlocated(_ expr: Expr) throws(RenderFailure) -> Value {
        switch expr.kind {
        case .literal(let literal):
            return Value(literal)
        case .name(let name):
            return lookup(name, line: expr.line)
        case .list(let items):
            var values: [Value] = []
            values.reserveCapacity(items.count)
            for item in items { values.append(try evaluate(item)) }
            return .list(values)
        case .tuple(let items):
            var values: [Value] = []
            for item in items { values.append(try evaluate(item)) }
            return .tuple(values)
        case .dict(let pairs):
            var dict = Dict()
            for pair in pairs {
                let key = try evaluate(pair.key)
                guard case .string(let text) = key else {
                    throw .type("only string keys are supported in dict literals, not '\(key.typeName)'")
                }
                dict[text] = try evaluate(pair.value)
            }
            return .dict(dict)
        case .attribute(let base, let name):
            return try attribute(of: try evaluate(base), name, path: base.path, line: expr.line)
        case .item(let base, let key):
            return try item(of: try evaluate(base), try evaluate(key), path: base.path, line: expr.line)
        case .slice(let base, let start, let stop, let step):
            let value = try evaluate(base)
            let bounds = (
                try start.map { e throws(RenderFailure) in try evaluate(e) },
                try stop.map { e throws(RenderFailure) in try evaluate(e) },
                try step.map { e throws(RenderFailure) in try evaluate(e) }
            )
            return try slice(value, bounds.0, bounds.1, bounds.2)
        case .call(let callee, let arguments):
            let function = try evaluate(callee)
            let (positional, keyword) = try evaluateArguments(arguments)
            return try call(
                function,
                positional,
                keyword,
                keywordOrder: arguments.keyword.map(\.name),
                line: expr.line
            )
        case .filter(let base, let name, let arguments):
            let input: Value
            if let base { input = try evaluate(base) } else { input = blockInput ?? .none }
            let (positional, keyword) = try evaluateArguments(arguments)
            return try applyFilter(name, input, positional, keyword, line: expr.line)
        case .test(let base, let name, let arguments):
            let input = try evaluate(base)
            let (positional, keyword) = try evaluateArguments(arguments)
            return .bool(try applyTest(name, input, positional, keyword))
        case .negate(let operand):
            switch try evaluate(operand) {
            case .int(let number):
                guard number != Int.min else { throw .integerOverflow }
                return .int(-number)
            case .bool(let flag): return .int(flag ? -1 : 0)
            case .double(let number): return .double(-number)
            case .undefined(let undefined): throw .undefined(undefined)
            case let value: throw .type("bad operand type for unary -: '\(value.typeName)'")
            }
        case .plus(let operand):
            switch try evaluate(operand) {
            case .bool(let flag): return .int(flag ? 1 : 0)
            case let value where value.numeric != nil: return value
            case .undefined(let undefined): throw .undefined(undefined)
            case let value: throw .type("bad operand type for unary +: '\(value.typeName)'")
            }
        case .not(let operand):
            return .bool(!(try evaluate(operand).truthy()))
        case .and(let left, let right):
            let value = try evaluate(left)
            return try value.truthy() ? try evaluate(right) : value
        case .or(let left, let right):
            let value = try evaluate(left)
            return try value.truthy() ? value : try evaluate(right)
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left), try evaluate(right))
        case .compare(let first, let rest):
            var left = try evaluate(first)
            for (op, rightExpr) in rest {
                let right = try evaluate(rightExpr)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .concat(let items):
            var text = ""
            for item in items { text += try evaluate(item).pythonString() }
            return .string(text)
        case .conditional(let test, let then, let otherwise):
            if try truth(test) { return try evaluate(then) }
            if let otherwise { return try evaluate(otherwise) }
            return .undefined(
                Undefined(
                    message: "the inline if-expression evaluated to false and has no else",
                    line: expr.line,
                    lenient: true
                )
            )
        }
    }

    private func evaluateArguments(_ arguments: Arguments) throws(RenderFailure) -> ([Value], [String: Value]) {
        var positional: [Value] = []
        for expr in arguments.positional { positional.append(try evaluate(expr)) }
        var keyword: [String: Value] = [:]
        for (name, expr) in arguments.keyword { keyword[name] = try evaluate(expr) }
        return (positional, keyword)
    }

    // MARK: Attributes and items

    private static let stringMethods: Set<String> = [
        "upper", "lower", "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "replace",
        "title", "capitalize", "join", "find", "count", "isdigit", "isalpha", "isalnum", "isspace", "isupper",
        "islower", "splitlines", "format", "zfill", "ljust", "rjust", "center", "removeprefix", "removesuffix",
    ]
    private static let dictMethods: Set<String> = ["items", "keys", "values", "get"]
    private static let listMethods: Set<String> = ["count", "index"]

    private func missing(_ what: String, _ base: Value, path: String?, line: Int) -> Value {
        let owner = path.map { "'\($0)'" } ?? "\(base.typeName) object"
        return .undefined(Undefined(message: "undefined \(what) of \(owner)", line: line))
    }

    /// `base.name`: Python attributes (methods) first, then items, as Jinja2's `getattr` does.
    func attribute(of base: Value, _ name: String, path: String?, line: Int) throws(RenderFailure) -> Value {
        switch base {
        case .undefined(let undefined):
            throw .undefined(undefined)
        case .dict(let dict):
            if TemplateRenderer.dictMethods.contains(name) { return .method(base, name) }
            if let value = dict[name] { return value }
        case .string:
            if TemplateRenderer.stringMethods.contains(name) { return .method(base, name) }
        case .list, .tuple:
            if TemplateRenderer.listMethods.contains(name) { return .method(base, name) }
            // groupby() yields (grouper, list) pairs that Jinja2 also lets templates read by name.
            if case .tuple(let pair) = base, pair.count == 2, name == "grouper" || name == "list" {
                return name == "grouper" ? pair[0] : pair[1]
            }
        case .namespace(let namespace):
            if let value = namespace.attributes[name] { return value }
        case .loop(let loop):
            if let value = loopAttribute(loop, name, line: line) { return value }
        case .helper(let helper):
            switch (helper.kind, name) {
            case (.cycler(let items), "current"): return items.isEmpty ? .none : items[helper.position]
            case (.cycler, "next"), (.cycler, "reset"): return .method(base, name)
            default: break
            }
        default:
            break
        }
        return missing("attribute '\(name)'", base, path: path, line: line)
    }

    private func loopAttribute(_ loop: LoopState, _ name: String, line: Int) -> Value? {
        let count = loop.items.count
        switch name {
        case "index": return .int(loop.index0 + 1)
        case "index0": return .int(loop.index0)
        case "revindex": return .int(count - loop.index0)
        case "revindex0": return .int(count - loop.index0 - 1)
        case "first": return .bool(loop.index0 == 0)
        case "last": return .bool(loop.index0 == count - 1)
        case "length": return .int(count)
        case "depth": return .int(loop.depth0 + 1)
        case "depth0": return .int(loop.depth0)
        case "previtem":
            if loop.index0 > 0 { return loop.items[loop.index0 - 1] }
            return .undefined(Undefined(message: "there is no previous item", line: line))
        case "nextitem":
            if loop.index0 + 1 < count { return loop.items[loop.index0 + 1] }
            return .undefined(Undefined(message: "there is no next item", line: line))
        case "cycle", "changed": return .method(.loop(loop), name)
        default: return nil
        }
    }

    /// `base[key]`: items first, then attributes for string keys, as Jinja2's `getitem` does.
    func item(of base: Value, _ key: Value, path: String?, line: Int) throws(RenderFailure) -> Value {
        if case .undefined(let undefined) = base { throw .undefined(undefined) }
        if case .undefined(let undefined) = key { throw .undefined(undefined) }
        switch (base, key) {
        case (.list(let items), _), (.tuple(let items), _):
            if let index = key.integer {
                let resolved = index < 0 ? index + items.count : index
                if resolved >= 0 && resolved < items.count { return items[resolved] }
            }
        case (.string(let text), _):
            if let index = key.integer {
                let scalars = Array(text.unicodeScalars)
                let resolved = index < 0 ? index + scalars.count : index
                if resolved >= 0 && resolved < scalars.count { return .string(String(scalars[resolved])) }
            }
        case (.dict(let dict), .string(let name)):
            if let value = dict[name] { return value }
        default:
            break
        }
        if case .string(let name) = key {
            return try attribute(of: base, name, path: path, line: line)
        }
        return missing("item \(try key.pythonRepr())", base, path: path, line: line)
    }

    private func slice(_ base: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws(RenderFailure) -> Value {
        func bound(_ value: Value?) throws(RenderFailure) -> Int? {
            guard let value else { return nil }
            if case .none = value { return nil }
            guard let number = value.integer else {
                if case .undefined(let undefined) = value { throw .undefined(undefined) }
                throw .type("slice indices must be integers or None")
            }
            return number
        }
        let stepValue = try bound(step) ?? 1
        guard stepValue != 0 else { throw .value("slice step cannot be zero") }
        let count: Int
        switch base {
        case .list(let items), .tuple(let items): count = items.count
        case .string(let text): count = text.unicodeScalars.count
        case .undefined(let undefined): throw .undefined(undefined)
        default: throw .type("'\(base.typeName)' object is not subscriptable")
        }
        // Python's slice.indices(): clamp into range depending on the step's direction.
        func clamp(_ value: Int?, _ defaultValue: Int) -> Int {
            guard var value else { return defaultValue }
            if value < 0 { value += count }
            if stepValue > 0 { return min(max(value, 0), count) }
            return min(max(value, -1), count - 1)
        }
        let first = clamp(try bound(start), stepValue > 0 ? 0 : count - 1)
        let last = clamp(try bound(stop), stepValue > 0 ? count : -1)
        var indexes: [Int] = []
        var i = first
        while stepValue > 0 ? i < last : i > last {
            indexes.append(i)
            i += stepValue
        }
        switch base {
        case .list(let items): return .list(indexes.map { items[$0] })
        case .tuple(let items): return .tuple(indexes.map { items[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            var out = String.UnicodeScalarView()
            for index in indexes { out.append(scalars[index]) }
            return .string(String(out))
        default: return .none
        }
    }

    // MARK: Calls

    private func call(
        _ function: Value,
        _ positional: [Value],
        _ keyword: [String: Value],
        keywordOrder: [String],
        line: Int
    ) throws(RenderFailure) -> Value {
        switch function {
        case .undefined(let undefined):
            throw .undefined(undefined)
        case .method(let receiver, let name):
            return try callMethod(receiver, name, positional, keyword)
        case .function("range"):
            guard keyword.isEmpty, (1...3).contains(positional.count) else {
                throw .type("range expected 1 to 3 integer arguments")
            }
            var bounds: [Int] = []
            for argument in positional {
                if case .undefined(let undefined) = argument { throw .undefined(undefined) }
                guard let number = argument.integer else {
                    throw .type("'\(argument.typeName)' object cannot be interpreted as an integer")
                }
                bounds.append(number)
            }
            let start = bounds.count == 1 ? 0 : bounds[0]
            let stop = bounds.count == 1 ? bounds[0] : bounds[1]
            let step = bounds.count == 3 ? bounds[2] : 1
            guard step != 0 else { throw .value("range() arg 3 must not be zero") }
            let size =
                step > 0
                ? (stop > start ? (stop - start - 1) / step + 1 : 0)
                : (start > stop ? (start - stop - 1) / -step + 1 : 0)
            guard size <= TemplateRenderer.maximumRange else {
                throw .limit("range() of \(size) items is over the limit of \(TemplateRenderer.maximumRange)")
            }
            return .list(stride(from: start, to: stop, by: step).map { .int($0) })
        case .macro(let macro):
            return try callMacro(macro, positional, keyword, keywordOrder: keywordOrder, scope: [frames[0]], line: line)
        case .caller(let macro, let scope):
            return try callMacro(macro, positional, keyword, keywordOrder: keywordOrder, scope: scope, line: line)
        case .loop(let state):
            guard let recursion = state.recursion else { throw .type("'LoopContext' object is not callable") }
            guard positional.count == 1, keyword.isEmpty else { throw .type("loop() takes exactly one argument") }
            // Like Jinja2's loop function, the nested run sees the loop's surroundings, not this iteration.
            let savedFrames = frames
            let savedOutput = output
            frames = Array(frames.prefix(recursion.frameCount))
            output = ""
            defer {
                frames = savedFrames
                output = savedOutput
            }
            try runFor(recursion.loop, nested: positional[0], depth0: state.depth0 + 1)
            return .string(output)
        case .function("cycler"):
            guard !positional.isEmpty else { throw .value("cycler(): at least one item has to be provided") }
            return .helper(Helper(.cycler(positional)))
        case .function("lipsum"):
            throw .unknownName(
                "the global 'lipsum' is not supported: its text is random, and a prompt must render the same "
                    + "for the same generation; write the filler text into the template"
            )
        case .function("joiner"):
            let separator = try (positional.first ?? keyword["sep"])?.pythonString() ?? ", "
            return .helper(Helper(.joiner(separator)))
        case .helper(let helper):
            // Calling a joiner yields nothing the first time and the separator afterwards.
            guard case .joiner(let separator) = helper.kind else { throw .type("'Cycler' object is not callable") }
            defer { helper.position = 1 }
            return .string(helper.position == 0 ? "" : separator)
        case .function("dict"), .function("namespace"):
            guard positional.isEmpty else { throw .type("only keyword arguments are supported") }
            var dict = Dict()
            for key in keywordOrder where keyword[key] != nil { dict[key] = keyword[key] }
            if case .function("dict") = function { return .dict(dict) }
            let namespace = Namespace()
            namespace.attributes = dict
            return .namespace(namespace)
        default:
            throw .type("'\(function.typeName)' object is not callable")
        }
    }

    private func callMacro(
        _ macro: MacroDefinition,
        _ positional: [Value],
        _ keyword: [String: Value],
        keywordOrder: [String],
        scope: [[String: Value]],
        line: Int
    ) throws(RenderFailure) -> Value {
        guard macroDepth < TemplateRenderer.maximumMacroDepth else {
            throw .limit("macro calls nested more than \(TemplateRenderer.maximumMacroDepth) deep")
        }
        let count = macro.parameters.count
        guard positional.count <= count || macro.acceptsVarargs else {
            throw .type("macro '\(macro.name)' takes not more than \(count) argument(s)")
        }
        var frame: [String: Value] = [:]
        var remaining = keyword
        var needDefaults: [(String, Expr)] = []
        for (index, parameter) in macro.parameters.enumerated() {
            if index < positional.count {
                if remaining[parameter.name] != nil {
                    throw .type("macro '\(macro.name)' got multiple values for argument '\(parameter.name)'")
                }
                frame[parameter.name] = positional[index]
            } else if let value = remaining.removeValue(forKey: parameter.name) {
                frame[parameter.name] = value
            } else if let defaultValue = parameter.defaultValue {
                needDefaults.append((parameter.name, defaultValue))
            } else {
                frame[parameter.name] = .undefined(
                    Undefined(message: "parameter '\(parameter.name)' was not provided", line: line)
                )
            }
        }
        if macro.acceptsVarargs { frame["varargs"] = .tuple(Array(positional.dropFirst(count))) }
        if let caller = remaining["caller"], macro.acceptsCaller {
            frame["caller"] = caller
            remaining["caller"] = nil
        }
        if macro.acceptsKwargs {
            var extra = Dict()
            for key in keywordOrder where remaining[key] != nil { extra[key] = remaining[key] }
            frame["kwargs"] = .dict(extra)
        } else if let unexpected = remaining.keys.sorted().first {
            throw .type("macro '\(macro.name)' takes no keyword argument '\(unexpected)'")
        }
        // The body sees template-level variables and its arguments, not the caller's loop variables.
        let savedFrames = frames
        let savedOutput = output
        frames = scope + [frame]
        output = ""
        macroDepth += 1
        defer {
            frames = savedFrames
            output = savedOutput
            macroDepth -= 1
        }
        shadow(macro.body.shadowed, line: macro.line)
        for (name, expr) in needDefaults { frames[frames.count - 1][name] = try evaluate(expr) }
        try run(macro.body.statements)
        return .string(output)
    }

    private func callMethod(
        _ receiver: Value,
        _ name: String,
        _ args: [Value],
        _ keyword: [String: Value]
    ) throws(RenderFailure) -> Value {
        for argument in args + Array(keyword.values) {
            if case .undefined(let undefined) = argument, !undefined.lenient { throw .undefined(undefined) }
        }
        func argument(_ index: Int, _ key: String) -> Value? {
            index < args.count ? args[index] : keyword[key]
        }
        switch receiver {
        case .loop(let loop):
            if name == "changed" {
                if let last = loop.lastChanged, last.count == args.count {
                    var same = true
                    for (a, b) in zip(last, args) where !(try a.pythonEquals(b)) {
                        same = false
                        break
                    }
                    if same { return .bool(false) }
                }
                loop.lastChanged = args
                return .bool(true)
            }
            guard !args.isEmpty else { throw .type("no items for cycling given") }
            return args[loop.index0 % args.count]
        case .helper(let helper):
            guard case .cycler(let items) = helper.kind, !items.isEmpty else { return .none }
            if name == "reset" {
                helper.position = 0
                return .none
            }
            let current = items[helper.position]
            helper.position = (helper.position + 1) % items.count
            return current
        case .dict(let dict):
            switch name {
            case "items": return .list(dict.keys.map { .tuple([.string($0), dict[$0]!]) })
            case "keys": return .list(dict.keys.map { .string($0) })
            case "values": return .list(dict.values)
            default:
                guard let key = argument(0, "key") else { throw .type("get expected at least 1 argument, got 0") }
                if case .string(let text) = key, let value = dict[text] { return value }
                return argument(1, "default") ?? .none
            }
        case .list(let items), .tuple(let items):
            guard let needle = argument(0, "value") else { throw .type("\(name)() takes exactly one argument") }
            var matches: [Int] = []
            for (index, item) in items.enumerated() where try item.pythonEquals(needle) { matches.append(index) }
            if name == "count" { return .int(matches.count) }
            guard let first = matches.first else { throw .value("\(try needle.pythonRepr()) is not in list") }
            return .int(first)
        case .string(let text):
            return try callStringMethod(text, name, args, keyword)
        default:
            throw .type("'\(receiver.typeName)' object has no method '\(name)'")
        }
    }

    private func callStringMethod(
        _ text: String,
        _ name: String,
        _ args: [Value],
        _ keyword: [String: Value]
    ) throws(RenderFailure) -> Value {
        func stringArgument(_ index: Int, _ key: String) throws(RenderFailure) -> String? {
            let value = index < args.count ? args[index] : keyword[key]
            switch value {
            case nil, .none?: return nil
            case .string(let string)?: return string
            case let other?: throw .type("\(name)() argument must be str or None, not \(other.typeName)")
            }
        }
        switch name {
        case "upper": return .string(text.uppercased())
        case "lower": return .string(pythonLower(text))
        case "strip", "lstrip", "rstrip":
            let chars = try stringArgument(0, "chars")
            return .string(pythonStrip(text, chars: chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "split", "rsplit":
            let separator = try stringArgument(0, "sep")
            var maxSplit = -1
            if let limit = (args.count > 1 ? args[1] : keyword["maxsplit"])?.integer { maxSplit = limit }
            if separator == "" { throw .value("empty separator") }
            let parts = pythonSplit(text, separator: separator, maxSplit: maxSplit, fromRight: name == "rsplit")
            return .list(parts.map { .string($0) })
        case "startswith", "endswith":
            guard let prefix = args.first else { throw .type("\(name)() takes at least 1 argument (0 given)") }
            var candidates: [Value] = [prefix]
            if case .tuple(let items) = prefix { candidates = items }
            let scalars = Array(text.unicodeScalars)
            for candidate in candidates {
                guard case .string(let affix) = candidate else {
                    throw .type("\(name) first arg must be str or a tuple of str, not \(candidate.typeName)")
                }
                let affixScalars = Array(affix.unicodeScalars)
                if name == "startswith"
                    ? scalars.starts(with: affixScalars)
                    : scalars.reversed().starts(with: affixScalars.reversed())
                {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "replace":
            guard let old = try stringArgument(0, "old"), let new = try stringArgument(1, "new") else {
                throw .type("replace() takes at least 2 arguments")
            }
            let count = (args.count > 2 ? args[2] : keyword["count"])?.integer ?? -1
            return .string(pythonReplace(text, old, new, count: count))
        case "title": return .string(pythonStrTitle(text))
        case "capitalize": return .string(pythonCapitalize(text))
        case "join":
            guard let iterable = args.first else { throw .type("join() takes exactly one argument (0 given)") }
            var parts: [String] = []
            for item in try iterable.iterate() {
                guard case .string(let part) = item else {
                    throw .type("sequence item \(parts.count): expected str instance, \(item.typeName) found")
                }
                parts.append(part)
            }
            return .string(parts.joined(separator: text))
        case "find", "count":
            guard let needle = try stringArgument(0, "sub") else { throw .type("\(name)() takes at least 1 argument") }
            let haystack = Array(text.unicodeScalars)
            let pattern = Array(needle.unicodeScalars)
            if name == "count" {
                if pattern.isEmpty { return .int(haystack.count + 1) }
                return .int(pythonOccurrences(haystack, pattern).count)
            }
            if pattern.isEmpty { return .int(0) }
            return .int(pythonOccurrences(haystack, pattern).first ?? -1)
        case "isdigit", "isalpha", "isalnum", "isspace":
            let scalars = text.unicodeScalars
            guard !scalars.isEmpty else { return .bool(false) }
            return .bool(
                scalars.allSatisfy { scalar in
                    switch name {
                    case "isdigit":
                        return scalar.properties.numericType == .digit || scalar.properties.numericType == .decimal
                    case "isalpha": return scalar.properties.isAlphabetic
                    case "isalnum": return scalar.properties.isAlphabetic || scalar.properties.numericType != nil
                    default: return scalar.isPythonWhitespace
                    }
                }
            )
        case "isupper", "islower":
            let cased = text.unicodeScalars.filter { $0.properties.isCased }
            guard !cased.isEmpty else { return .bool(false) }
            return .bool(cased.allSatisfy { name == "isupper" ? $0.properties.isUppercase : $0.properties.isLowercase })
        case "splitlines":
            return .list(pythonSplitLines(text).map { .string($0) })
        case "format":
            return .string(try pythonStrFormat(text, args, keyword))
        case "zfill", "ljust", "rjust", "center":
            guard
                let width = try args.first?.integer.map({ size throws(RenderFailure) in
                    try TemplateRenderer.checkedSize(size, "\(name)() width")
                })
            else { throw .type("\(name)() takes an integer width") }
            let fill = try stringArgument(1, "fillchar") ?? (name == "zfill" ? "0" : " ")
            let length = text.unicodeScalars.count
            guard width > length else { return .string(text) }
            let pad = width - length
            switch name {
            case "ljust": return .string(text + String(repeating: fill, count: pad))
            case "rjust": return .string(String(repeating: fill, count: pad) + text)
            case "center":
                let left = pad / 2 + (pad & width & 1)
                return .string(String(repeating: fill, count: left) + text + String(repeating: fill, count: pad - left))
            default:
                if let first = text.first, first == "-" || first == "+" {
                    return .string(String(first) + String(repeating: "0", count: pad) + text.dropFirst())
                }
                return .string(String(repeating: "0", count: pad) + text)
            }
        case "removeprefix", "removesuffix":
            guard let affix = try stringArgument(0, "prefix") else { throw .type("\(name)() takes one argument") }
            let scalars = Array(text.unicodeScalars)
            let affixScalars = Array(affix.unicodeScalars)
            if name == "removeprefix", scalars.starts(with: affixScalars) {
                return .string(makeString(scalars.dropFirst(affixScalars.count)))
            }
            if name == "removesuffix", !affixScalars.isEmpty, scalars.reversed().starts(with: affixScalars.reversed()) {
                return .string(makeString(scalars.dropLast(affixScalars.count)))
            }
            return .string(text)
        default:
            throw .type("'str' object has no method '\(name)'")
        }
    }

    // MARK: Operators

    private func binary(_ op: BinaryOperator, _ left: Value, _ right: Value) throws(RenderFailure) -> Value {
        if case .undefined(let undefined) = left { throw .undefined(undefined) }
        if case .undefined(let undefined) = right { throw .undefined(undefined) }
        let unsupported = RenderFailure.type(
            "unsupported operand type(s) for \(op.rawValue): '\(left.typeName)' and '\(right.typeName)'"
        )
        if let a = left.integer, let b = right.integer {
            return try integerArithmetic(op, a, b)
        }
        if let a = left.numeric, let b = right.numeric {
            return try floatArithmetic(op, a, b)
        }
        switch (op, left, right) {
        case (.add, .string(let a), .string(let b)): return .string(a + b)
        case (.add, .list(let a), .list(let b)): return .list(a + b)
        case (.add, .tuple(let a), .tuple(let b)): return .tuple(a + b)
        case (.multiply, .string(let text), _), (.multiply, _, .string(let text)):
            guard let times = (left.integer ?? right.integer) else { throw unsupported }
            let size = text.unicodeScalars.count * max(times, 0)
            guard size <= TemplateRenderer.maximumRepeat else { throw .limit("repeated string would be too large") }
            return .string(String(repeating: text, count: max(times, 0)))
        case (.multiply, .list(let items), _), (.multiply, _, .list(let items)),
            (.multiply, .tuple(let items), _), (.multiply, _, .tuple(let items)):
            guard let times = (left.integer ?? right.integer) else { throw unsupported }
            guard items.count * max(times, 0) <= TemplateRenderer.maximumRange else {
                throw .limit("repeated list would be too large")
            }
            let repeated = Array([[Value]](repeating: items, count: max(times, 0)).joined())
            if case .tuple = left { return .tuple(repeated) }
            if case .tuple = right { return .tuple(repeated) }
            return .list(repeated)
        case (.modulo, .string(let format), _):
            return .string(try pythonPercentFormat(format, right))
        default:
            throw unsupported
        }
    }

    private func integerArithmetic(_ op: BinaryOperator, _ a: Int, _ b: Int) throws(RenderFailure) -> Value {
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws(RenderFailure) -> Value {
            guard !result.overflow else { throw .integerOverflow }
            return .int(result.partialValue)
        }
        switch op {
        case .add: return try checked(a.addingReportingOverflow(b))
        case .subtract: return try checked(a.subtractingReportingOverflow(b))
        case .multiply: return try checked(a.multipliedReportingOverflow(by: b))
        case .divide:
            guard b != 0 else { throw .zeroDivision("division by zero") }
            return .double(Double(a) / Double(b))
        case .floorDivide, .modulo:
            guard b != 0 else { throw .zeroDivision("integer division or modulo by zero") }
            guard !(a == Int.min && b == -1) else { throw .integerOverflow }
            var quotient = a / b
            var remainder = a % b
            // Python rounds toward negative infinity; Swift toward zero.
            if remainder != 0 && ((remainder < 0) != (b < 0)) {
                quotient -= 1
                remainder += b
            }
            return .int(op == .floorDivide ? quotient : remainder)
        case .power:
            if b < 0 {
                guard a != 0 else { throw .zeroDivision("0.0 cannot be raised to a negative power") }
                return .double(pow(Double(a), Double(b)))
            }
            var result = 1
            var base = a
            var exponent = b
            while exponent > 0 {
                if exponent & 1 == 1 {
                    let product = result.multipliedReportingOverflow(by: base)
                    guard !product.overflow else { throw .integerOverflow }
                    result = product.partialValue
                }
                exponent >>= 1
                if exponent > 0 {
                    let square = base.multipliedReportingOverflow(by: base)
                    guard !square.overflow else { throw .integerOverflow }
                    base = square.partialValue
                }
            }
            return .int(result)
        }
    }

    private func floatArithmetic(_ op: BinaryOperator, _ a: Double, _ b: Double) throws(RenderFailure) -> Value {
        switch op {
        case .add: return .double(a + b)
        case .subtract: return .double(a - b)
        case .multiply: return .double(a * b)
        case .divide:
            guard b != 0 else { throw .zeroDivision("float division by zero") }
            return .double(a / b)
        case .floorDivide, .modulo:
            guard b != 0 else { throw .zeroDivision("float floor division by zero") }
            // CPython's float_divmod.
            var mod = fmod(a, b)
            var div = (a - mod) / b
            if mod != 0 {
                if (b < 0) != (mod < 0) {
                    mod += b
                    div -= 1
                }
            } else {
                mod = copysign(0, b)
            }
            var floorDiv: Double
            if div != 0 {
                floorDiv = div.rounded(.down)
                if div - floorDiv > 0.5 { floorDiv += 1 }
            } else {
                floorDiv = copysign(0, a / b)
            }
            return .double(op == .floorDivide ? floorDiv : mod)
        case .power:
            if a == 0 && b < 0 { throw .zeroDivision("0.0 cannot be raised to a negative power") }
            if a < 0 && b != b.rounded() {
                throw .type("complex results (negative base, fractional power) are not supported")
            }
            return .double(pow(a, b))
        }
    }

    private func compare(_ op: CompareOperator, _ left: Value, _ right: Value) throws(RenderFailure) -> Bool {
        switch op {
        case .equal: return try left.pythonEquals(right)
        case .notEqual: return !(try left.pythonEquals(right))
        case .less: return try left.pythonLess(right)
        case .greater: return try right.pythonLess(left)
        case .lessEqual:
            if try left.pythonLess(right) { return true }
            return try left.pythonEquals(right)
        case .greaterEqual:
            if try right.pythonLess(left) { return true }
            return try left.pythonEquals(right)
        case .isIn: return try contains(right, left)
        case .notIn: return !(try contains(right, left))
        }
    }

    func contains(_ container: Value, _ element: Value) throws(RenderFailure) -> Bool {
        switch container {
        case .string(let text):
            guard case .string(let needle) = element else {
                if case .undefined(let undefined) = element { throw .undefined(undefined) }
                throw .type("'in <string>' requires string as left operand, not \(element.typeName)")
            }
            if needle.isEmpty { return true }
            return !pythonOccurrences(Array(text.unicodeScalars), Array(needle.unicodeScalars)).isEmpty
        case .list(let items), .tuple(let items):
            for item in items where try element.pythonEquals(item) { return true }
            return false
        case .dict(let dict):
            switch element {
            case .undefined(let undefined): throw .undefined(undefined)
            case .string(let key): return dict[key] != nil
            case .list, .dict, .namespace: throw .type("unhashable type: '\(element.typeName)'")
            default: return false
            }
        case .undefined(let undefined):
            throw .undefined(undefined)
        default:
            throw .type("argument of type '\(container.typeName)' is not iterable")
        }
    }
}
