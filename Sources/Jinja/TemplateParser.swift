/// Recursive-descent parser following Jinja2's grammar and operator precedence.
struct TemplateParser {
    /// Nesting allowed for blocks, brackets and unary operators while parsing.
    static let maximumNesting = 200
    /// Height allowed for an expression tree (long `a + b + …` chains grow it without nesting).
    static let maximumExpressionHeight = 400

    private let tokens: [TemplateToken]
    private let name: String
    private var index = 0
    private var depth = 0
    private var nesting = NestingBudget(limit: Int.max)

    init(tokens: [TemplateToken], name: String) {
        self.tokens = tokens
        self.name = name
    }

    private var current: TemplateToken { tokens[index] }
    private var next: TemplateToken { tokens[min(index + 1, tokens.count - 1)] }

    private func fail(_ message: String, at token: TemplateToken) -> TemplateError {
        TemplateError(kind: .syntax, message: message, templateName: name, line: token.line, column: token.column)
    }

    private func fail(_ message: String, line: Int? = nil) -> TemplateError {
        // An explicit line points elsewhere (an unclosed block's opening tag), where no column is kept.
        TemplateError(
            kind: .syntax,
            message: message,
            templateName: name,
            line: line ?? current.line,
            column: line == nil ? current.column : 0
        )
    }

    private func describe(_ token: TemplateToken) -> String {
        switch token.kind {
        case .end: return "end of template"
        case .variableEnd: return "end of print statement"
        case .blockEnd: return "end of statement block"
        case .variableBegin: return "'{{'"
        case .blockBegin: return "'{%'"
        case .data: return "template data"
        case .string: return "string literal"
        default: return "'\(token.text)'"
        }
    }

    private mutating func advance() -> TemplateToken {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func isOp(_ text: String) -> Bool { current.kind == .op && current.text == text }
    private func isName(_ text: String) -> Bool { current.kind == .name && current.text == text }

    private mutating func skipOp(_ text: String) -> Bool {
        guard isOp(text) else { return false }
        _ = advance()
        return true
    }

    private mutating func skipName(_ text: String) -> Bool {
        guard isName(text) else { return false }
        _ = advance()
        return true
    }

    private mutating func expectOp(_ text: String) throws(TemplateError) {
        guard skipOp(text) else { throw fail("expected '\(text)', got \(describe(current))") }
    }

    private mutating func expectName() throws(TemplateError) -> String {
        guard current.kind == .name else { throw fail("expected a name, got \(describe(current))") }
        return advance().text
    }

    private mutating func expectBlockEnd() throws(TemplateError) {
        guard current.kind == .blockEnd else { throw fail("expected end of statement block, got \(describe(current))") }
        _ = advance()
    }

    private mutating func enter() throws(TemplateError) {
        depth += 1
        // The stack check covers threads with small stacks; the fixed limit keeps results the same everywhere.
        if depth > TemplateParser.maximumNesting || !nesting.enter() {
            throw TemplateError(
                kind: .limit,
                message: "template nested too deeply (more than \(TemplateParser.maximumNesting) levels)",
                templateName: name,
                line: current.line
            )
        }
    }

    private mutating func leave() {
        depth -= 1
        nesting.leave()
    }

    private func make(_ kind: Expr.Kind, line: Int) throws(TemplateError) -> Expr {
        let expr = Expr(kind, line: line)
        if expr.height > TemplateParser.maximumExpressionHeight {
            throw TemplateError(
                kind: .limit,
                message: "expression too complex (deeper than \(TemplateParser.maximumExpressionHeight) operations)",
                templateName: name,
                line: line
            )
        }
        return expr
    }

    // MARK: Statements

    mutating func parseTemplate() throws(TemplateError) -> [Statement] {
        let body = try parseBody(until: [])
        guard current.kind == .end else { throw fail("unexpected \(describe(current))") }
        return body
    }

    /// Parses until one of `endTags` opens a block tag (left unconsumed, positioned on the tag name).
    private mutating func parseBody(
        until endTags: Set<String>,
        opener: (tag: String, line: Int)? = nil
    ) throws(TemplateError) -> [Statement] {
        try enter()
        defer { leave() }
        var body: [Statement] = []
        while true {
            let token = current
            switch token.kind {
            case .data:
                _ = advance()
                body.append(.text(token.text))
            case .variableBegin:
                _ = advance()
                let expr = try parseTuple()
                guard current.kind == .variableEnd else {
                    throw fail("expected end of print statement, got \(describe(current))")
                }
                _ = advance()
                body.append(.output(expr))
            case .blockBegin:
                let tag = next
                guard tag.kind == .name else {
                    _ = advance()
                    throw fail("expected a tag name after '{%', got \(describe(current))")
                }
                if endTags.contains(tag.text) {
                    _ = advance()
                    return body
                }
                _ = advance()
                body.append(try parseStatement())
            case .end:
                if let opener {
                    let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw fail(
                        "unclosed '\(opener.tag)' block: the template ended while looking for \(expected)",
                        line: opener.line
                    )
                }
                return body
            default:
                throw fail("unexpected \(describe(token))")
            }
        }
    }

    private static let endTagOwners: [String: String] = [
        "endif": "if", "elif": "if", "else": "if or for", "endfor": "for", "endset": "set", "endwith": "with",
        "endfilter": "filter", "endraw": "raw", "endmacro": "macro", "endcall": "call",
    ]

    private mutating func parseStatement() throws(TemplateError) -> Statement {
        let token = advance()
        switch token.text {
        case "if": return try parseIf(line: token.line)
        case "for": return try parseFor(line: token.line)
        case "set": return try parseSet(line: token.line)
        case "with": return try parseWith(line: token.line)
        case "filter": return try parseFilterBlock(line: token.line)
        case "macro": return try parseMacro(line: token.line)
        case "call": return try parseCallBlock(line: token.line)
        case "print":
            let expr = try parseTuple()
            try expectBlockEnd()
            return .output(expr)
        default:
            if let owner = TemplateParser.endTagOwners[token.text] {
                throw fail("unexpected '\(token.text)' outside of \(owner) block", at: token)
            }
            throw fail("unknown tag '\(token.text)'", at: token)
        }
    }

    private mutating func parseIf(line: Int) throws(TemplateError) -> Statement {
        var branches: [(test: Expr, body: [Statement])] = []
        var otherwise: [Statement]?
        var test = try parseTuple(withConditional: false)
        try expectBlockEnd()
        while true {
            let body = try parseBody(until: ["elif", "else", "endif"], opener: ("if", line))
            branches.append((test, body))
            let tag = advance()
            if tag.text == "elif" {
                test = try parseTuple(withConditional: false)
                try expectBlockEnd()
                continue
            }
            if tag.text == "else" {
                try expectBlockEnd()
                otherwise = try parseBody(until: ["endif"], opener: ("if", line))
                _ = advance()
            }
            try expectBlockEnd()
            return .conditional(branches: branches, otherwise: otherwise)
        }
    }

    private mutating func parseFor(line: Int) throws(TemplateError) -> Statement {
        let target = try parseAssignTarget(endName: "in")
        guard skipName("in") else { throw fail("expected 'in', got \(describe(current))") }
        let iterable = try parseTuple(withConditional: false, endName: "recursive")
        var condition: Expr?
        if skipName("if") { condition = try parseExpression() }
        let recursive = skipName("recursive")
        try expectBlockEnd()
        let body = try parseBody(until: ["endfor", "else"], opener: ("for", line))
        var otherwise: [Statement]?
        if advance().text == "else" {
            try expectBlockEnd()
            otherwise = try parseBody(until: ["endfor"], opener: ("for", line))
            _ = advance()
        }
        try expectBlockEnd()
        return .forLoop(
            ForLoop(
                target: target,
                iterable: iterable,
                condition: condition,
                body: Scope(statements: body),
                otherwise: otherwise.map { Scope(statements: $0) },
                recursive: recursive,
                line: line
            )
        )
    }

    private mutating func parseSet(line: Int) throws(TemplateError) -> Statement {
        let target = try parseAssignTarget(endName: nil, allowNamespace: true)
        if skipOp("=") {
            let value = try parseTuple()
            try expectBlockEnd()
            return .set(target, value, line: line)
        }
        var filter: Expr?
        if isOp("|") { filter = try parseFilters(nil) }
        try expectBlockEnd()
        let body = try parseBody(until: ["endset"], opener: ("set", line))
        _ = advance()
        try expectBlockEnd()
        return .setBlock(target, body: Scope(statements: body), filter: filter, line: line)
    }

    private mutating func parseWith(line: Int) throws(TemplateError) -> Statement {
        var assignments: [(AssignTarget, Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget(endName: nil)
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        try expectBlockEnd()
        let body = try parseBody(until: ["endwith"], opener: ("with", line))
        _ = advance()
        try expectBlockEnd()
        return .with(assignments: assignments, body: Scope(statements: body), line: line)
    }

    private mutating func parseMacro(line: Int) throws(TemplateError) -> Statement {
        let name = try expectName()
        let parameters = try parseMacroParameters()
        try expectBlockEnd()
        let body = try parseBody(until: ["endmacro"], opener: ("macro", line))
        _ = advance()
        try expectBlockEnd()
        return .macro(makeMacro(name, parameters, body, line: line))
    }

    private func makeMacro(
        _ name: String,
        _ parameters: [(name: String, defaultValue: Expr?)],
        _ body: [Statement],
        line: Int
    ) -> MacroDefinition {
        let names = ScopeAnalyzer.allNames(in: body)
        return MacroDefinition(
            name: name,
            parameters: parameters,
            body: Scope(statements: body),
            acceptsVarargs: names.contains("varargs"),
            acceptsKwargs: names.contains("kwargs"),
            acceptsCaller: names.contains("caller"),
            line: line
        )
    }

    private mutating func parseCallBlock(line: Int) throws(TemplateError) -> Statement {
        let parameters = isOp("(") ? try parseMacroParameters() : []
        let call = try parseExpression()
        guard case .call = call.kind else { throw fail("expected a call expression after 'call'", line: line) }
        try expectBlockEnd()
        let body = try parseBody(until: ["endcall"], opener: ("call", line))
        _ = advance()
        try expectBlockEnd()
        return .callBlock(call, caller: makeMacro("caller", parameters, body, line: line))
    }

    private mutating func parseMacroParameters() throws(TemplateError) -> [(name: String, defaultValue: Expr?)] {
        try expectOp("(")
        var parameters: [(name: String, defaultValue: Expr?)] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let parameter = try expectName()
            var defaultValue: Expr?
            if skipOp("=") {
                defaultValue = try parseExpression()
            } else if parameters.contains(where: { $0.defaultValue != nil }) {
                throw fail("non-default argument follows default argument")
            }
            parameters.append((parameter, defaultValue))
        }
        try expectOp(")")
        return parameters
    }

    private mutating func parseFilterBlock(line: Int) throws(TemplateError) -> Statement {
        // `{% filter upper|trim %}` reads like a filter chain without a value.
        let name = try expectName()
        var filter = try parseFilterCall(nil, name: name, line: line)
        filter = try parseFilters(filter)
        try expectBlockEnd()
        let body = try parseBody(until: ["endfilter"], opener: ("filter", line))
        _ = advance()
        try expectBlockEnd()
        return .filterBlock(filter, body: Scope(statements: body))
    }

    private mutating func parseAssignTarget(
        endName: String?,
        allowNamespace: Bool = false
    ) throws(TemplateError) -> AssignTarget {
        if allowNamespace, current.kind == .name, next.kind == .op, next.text == "." {
            let base = advance().text
            _ = advance()
            return .namespaceAttribute(base, try expectName())
        }
        var targets: [AssignTarget] = []
        var sawComma = false
        while true {
            if !targets.isEmpty {
                guard skipOp(",") else { break }
                sawComma = true
                if current.kind != .name && !isOp("(") { break }
                if let endName, isName(endName) { break }
            }
            if skipOp("(") {
                targets.append(try parseAssignTarget(endName: nil))
                try expectOp(")")
                continue
            }
            let name = try expectName()
            if ["true", "false", "none", "True", "False", "None"].contains(name) {
                throw fail("can't assign to constant '\(name)'")
            }
            targets.append(.name(name))
        }
        if targets.count == 1 && !sawComma { return targets[0] }
        return .tuple(targets)
    }

    // MARK: Expressions

    /// `a, b` makes a tuple, as in Jinja2's output and `set` statements.
    private mutating func parseTuple(
        withConditional: Bool = true,
        endName: String? = nil
    ) throws(TemplateError) -> Expr {
        let line = current.line
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard skipOp(",") else { break }
                sawComma = true
            }
            if current.kind == .variableEnd || current.kind == .blockEnd || isOp(")") { break }
            if let endName, isName(endName) { break }
            if !withConditional && isName("if") && !items.isEmpty { break }
            items.append(withConditional ? try parseExpression() : try parseOr())
        }
        if items.count == 1 && !sawComma { return items[0] }
        if items.isEmpty { throw fail("expected an expression, got \(describe(current))") }
        return try make(.tuple(items), line: line)
    }

    mutating func parseExpression() throws(TemplateError) -> Expr {
        try enter()
        defer { leave() }
        var expr = try parseOr()
        while isName("if") {
            let line = advance().line
            let test = try parseOr()
            var otherwise: Expr?
            if skipName("else") { otherwise = try parseExpression() }
            expr = try make(.conditional(test: test, then: expr, otherwise: otherwise), line: line)
        }
        return expr
    }

    private mutating func parseOr() throws(TemplateError) -> Expr {
        var left = try parseAnd()
        while isName("or") {
            let line = advance().line
            left = try make(.or(left, try parseAnd()), line: line)
        }
        return left
    }

    private mutating func parseAnd() throws(TemplateError) -> Expr {
        var left = try parseNot()
        while isName("and") {
            let line = advance().line
            left = try make(.and(left, try parseNot()), line: line)
        }
        return left
    }

    private mutating func parseNot() throws(TemplateError) -> Expr {
        if isName("not") {
            try enter()
            defer { leave() }
            let line = advance().line
            return try make(.not(try parseNot()), line: line)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(TemplateError) -> Expr {
        let line = current.line
        let first = try parseMath1()
        var rest: [(CompareOperator, Expr)] = []
        while true {
            if current.kind == .op, let op = CompareOperator(rawValue: current.text), op != .isIn, op != .notIn {
                _ = advance()
                rest.append((op, try parseMath1()))
            } else if skipName("in") {
                rest.append((.isIn, try parseMath1()))
            } else if isName("not") && next.kind == .name && next.text == "in" {
                _ = advance()
                _ = advance()
                rest.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        if rest.isEmpty { return first }
        return try make(.compare(first, rest), line: line)
    }

    private mutating func parseMath1() throws(TemplateError) -> Expr {
        var left = try parseConcat()
        while current.kind == .op, current.text == "+" || current.text == "-" {
            let token = advance()
            left = try make(
                .binary(token.text == "+" ? .add : .subtract, left, try parseConcat()),
                line: token.line
            )
        }
        return left
    }

    private mutating func parseConcat() throws(TemplateError) -> Expr {
        let line = current.line
        var items = [try parseMath2()]
        while skipOp("~") { items.append(try parseMath2()) }
        if items.count == 1 { return items[0] }
        return try make(.concat(items), line: line)
    }

    private mutating func parseMath2() throws(TemplateError) -> Expr {
        var left = try parsePower()
        while current.kind == .op, let op = BinaryOperator(rawValue: current.text),
            [.multiply, .divide, .floorDivide, .modulo].contains(op)
        {
            let line = advance().line
            left = try make(.binary(op, left, try parsePower()), line: line)
        }
        return left
    }

    private mutating func parsePower() throws(TemplateError) -> Expr {
        var left = try parseUnary()
        while isOp("**") {
            let line = advance().line
            left = try make(.binary(.power, left, try parseUnary()), line: line)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws(TemplateError) -> Expr {
        try enter()
        defer { leave() }
        let line = current.line
        var expr: Expr
        if skipOp("-") {
            expr = try make(.negate(try parseUnary(withFilter: false)), line: line)
        } else if skipOp("+") {
            expr = try make(.plus(try parseUnary(withFilter: false)), line: line)
        } else {
            expr = try parsePrimary()
        }
        expr = try parsePostfix(expr)
        if withFilter { expr = try parseFilterExpression(expr) }
        return expr
    }

    private mutating func parsePrimary() throws(TemplateError) -> Expr {
        let token = current
        switch token.kind {
        case .name:
            _ = advance()
            switch token.text {
            case "true", "True": return try make(.literal(.bool(true)), line: token.line)
            case "false", "False": return try make(.literal(.bool(false)), line: token.line)
            case "none", "None": return try make(.literal(.none), line: token.line)
            default: return try make(.name(token.text), line: token.line)
            }
        case .string:
            var text = advance().text
            while current.kind == .string { text += advance().text }
            return try make(.literal(.string(text)), line: token.line)
        case .integer:
            _ = advance()
            return try make(.literal(.int(Int(token.text) ?? 0)), line: token.line)
        case .float:
            _ = advance()
            return try make(.literal(.double(Double(token.text) ?? 0)), line: token.line)
        case .op where token.text == "(":
            _ = advance()
            if skipOp(")") { return try make(.tuple([]), line: token.line) }
            let expr = try parseTuple()
            try expectOp(")")
            return expr
        case .op where token.text == "[":
            _ = advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return try make(.list(items), line: token.line)
        case .op where token.text == "{":
            _ = advance()
            var pairs: [(key: Expr, value: Expr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            try expectOp("}")
            return try make(.dict(pairs), line: token.line)
        default:
            throw fail("unexpected \(describe(token)) in expression")
        }
    }

    private mutating func parsePostfix(_ base: Expr) throws(TemplateError) -> Expr {
        var expr = base
        while true {
            let line = current.line
            if skipOp(".") {
                let token = advance()
                switch token.kind {
                case .name: expr = try make(.attribute(expr, token.text), line: line)
                case .integer:
                    expr = try make(.item(expr, Expr(.literal(.int(Int(token.text) ?? 0)), line: line)), line: line)
                default: throw fail("expected a name after '.', got \(describe(token))")
                }
            } else if skipOp("[") {
                expr = try parseSubscript(expr, line: line)
            } else if isOp("(") {
                expr = try make(.call(expr, try parseCallArguments()), line: line)
            } else {
                return expr
            }
        }
    }

    private mutating func parseSubscript(_ base: Expr, line: Int) throws(TemplateError) -> Expr {
        var start: Expr?
        // `x[]` and `x[a, b]` index with a tuple, as in Jinja2.
        if skipOp("]") { return try make(.item(base, try make(.tuple([]), line: line)), line: line) }
        if !isOp(":") {
            start = try parseExpression()
            if skipOp("]") { return try make(.item(base, start!), line: line) }
            if isOp(",") {
                var items = [start!]
                while skipOp(",") {
                    if isOp("]") { break }
                    items.append(try parseExpression())
                }
                try expectOp("]")
                return try make(.item(base, try make(.tuple(items), line: line)), line: line)
            }
        }
        try expectOp(":")
        var stop: Expr?
        var step: Expr?
        if !isOp("]") && !isOp(":") { stop = try parseExpression() }
        if skipOp(":"), !isOp("]") { step = try parseExpression() }
        try expectOp("]")
        return try make(.slice(base, start: start, stop: stop, step: step), line: line)
    }

    private mutating func parseCallArguments() throws(TemplateError) -> Arguments {
        try expectOp("(")
        var arguments = Arguments()
        while !isOp(")") {
            if !arguments.positional.isEmpty || !arguments.keyword.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            if isOp("*") || isOp("**") { throw fail("*args and **kwargs are not supported") }
            if current.kind == .name, next.kind == .op, next.text == "=" {
                let name = advance().text
                _ = advance()
                arguments.keyword.append((name, try parseExpression()))
            } else {
                guard arguments.keyword.isEmpty else { throw fail("positional argument after keyword argument") }
                arguments.positional.append(try parseExpression())
            }
        }
        try expectOp(")")
        return arguments
    }

    private mutating func parseFilterExpression(_ base: Expr) throws(TemplateError) -> Expr {
        var expr = base
        while true {
            if isOp("|") {
                expr = try parseFilters(expr, single: true)
            } else if isName("is") {
                expr = try parseTest(expr)
            } else if isOp("(") {
                expr = try make(.call(expr, try parseCallArguments()), line: current.line)
            } else {
                return expr
            }
        }
    }

    /// `|name(args)`, repeated unless `single`.
    private mutating func parseFilters(_ base: Expr?, single: Bool = false) throws(TemplateError) -> Expr {
        var expr = base
        while isOp("|") {
            let line = advance().line
            let name = try expectName()
            expr = try parseFilterCall(expr, name: name, line: line)
            if single { break }
        }
        guard let expr else { throw fail("expected a filter") }
        return expr
    }

    private mutating func parseFilterCall(_ base: Expr?, name: String, line: Int) throws(TemplateError) -> Expr {
        var fullName = name
        while isOp(".") {
            _ = advance()
            fullName += "." + (try expectName())
        }
        let arguments = isOp("(") ? try parseCallArguments() : Arguments()
        return try make(.filter(base, fullName, arguments), line: line)
    }

    private mutating func parseTest(_ base: Expr) throws(TemplateError) -> Expr {
        let line = advance().line
        let negated = skipName("not")
        let name = try expectName()
        var arguments = Arguments()
        if isOp("(") {
            arguments = try parseCallArguments()
        } else if [.name, .string, .integer, .float].contains(current.kind) || isOp("[") || isOp("{") || isOp("("),
            !isName("else"), !isName("or"), !isName("and")
        {
            if isName("is") { throw fail("you cannot chain multiple tests with 'is'") }
            arguments.positional = [try parsePostfix(try parsePrimary())]
        }
        let test = try make(.test(base, name, arguments), line: line)
        return negated ? try make(.not(test), line: line) : test
    }
}
