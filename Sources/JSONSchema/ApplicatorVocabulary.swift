import JSON

// The applicator vocabulary: keywords that apply subschemas to the instance itself (allOf, anyOf,
// oneOf, not, if/then/else, dependentSchemas) or to its items and members (prefixItems, items,
// contains, properties, patternProperties, additionalProperties, propertyNames).

extension SchemaCompiler {
    func compileApplicatorKeywords(
        _ members: JSONObject,
        _ context: NodeContext,
        into keywords: inout [Keyword]
    ) throws(SchemaError) {
        for name in ["allOf", "anyOf", "oneOf"] {
            guard let value = members[name] else { continue }
            guard case .array(let elements) = value, !elements.isEmpty else {
                throw invalid(
                    name,
                    context,
                    "\(name) must be a non-empty array of schemas, found \(Describe.value(value))"
                )
            }
            var schemas: [Int] = []
            for position in elements.indices { schemas.append(try subschema(context, name, String(position))) }
            let kind: Keyword.Kind
            switch name {
            case "allOf": kind = .allOf(schemas)
            case "anyOf": kind = .anyOf(schemas)
            default: kind = .oneOf(schemas)
            }
            keywords.append(makeKeyword(name, context, kind))
        }
        if members["not"] != nil {
            keywords.append(makeKeyword("not", context, .not(try subschema(context, "not"))))
        }
        if members["if"] != nil {
            let condition = try subschema(context, "if")
            let then = members["then"] == nil ? nil : try subschema(context, "then")
            let otherwise = members["else"] == nil ? nil : try subschema(context, "else")
            keywords.append(makeKeyword("if", context, .conditional(condition: condition, then: then, else: otherwise)))
        }
        if let value = members["dependentSchemas"] {
            let named = try namedSchemas("dependentSchemas", value, context)
            keywords.append(makeKeyword("dependentSchemas", context, .dependentSchemas(named)))
        }
        var prefixCount = 0
        if let value = members["prefixItems"] {
            guard case .array(let elements) = value, !elements.isEmpty else {
                throw invalid(
                    "prefixItems",
                    context,
                    "prefixItems must be a non-empty array of schemas, found \(Describe.value(value))"
                )
            }
            var schemas: [Int] = []
            for position in elements.indices { schemas.append(try subschema(context, "prefixItems", String(position))) }
            prefixCount = schemas.count
            keywords.append(makeKeyword("prefixItems", context, .prefixItems(schemas)))
        }
        if members["items"] != nil {
            keywords.append(
                makeKeyword("items", context, .items(try subschema(context, "items"), firstIndex: prefixCount))
            )
        }
        if members["contains"] != nil {
            let minimum = try nonNegativeInteger("minContains", members, context) ?? 1
            let maximum = try nonNegativeInteger("maxContains", members, context)
            let schema = try subschema(context, "contains")
            keywords.append(makeKeyword("contains", context, .contains(schema, minimum: minimum, maximum: maximum)))
        }
        var declared: Set<String> = []
        if let value = members["properties"] {
            let named = try namedSchemas("properties", value, context)
            declared = Set(named.map(\.name))
            keywords.append(makeKeyword("properties", context, .properties(named)))
        }
        var patterns: [ECMARegex] = []
        if let value = members["patternProperties"] {
            guard case .object(let schemas) = value else {
                throw invalid(
                    "patternProperties",
                    context,
                    "patternProperties must be an object of schemas, found \(Describe.value(value))"
                )
            }
            var compiled: [PatternSchema] = []
            for source in schemas.keys.sorted() {
                guard let pattern = ECMARegex(source) else {
                    throw invalid(
                        "patternProperties",
                        context,
                        "\(Describe.value(.string(source))) is not a valid regular expression"
                    )
                }
                compiled.append(
                    PatternSchema(pattern: pattern, schema: try subschema(context, "patternProperties", source))
                )
            }
            patterns = compiled.map(\.pattern)
            keywords.append(makeKeyword("patternProperties", context, .patternProperties(compiled)))
        }
        if members["additionalProperties"] != nil {
            let schema = try subschema(context, "additionalProperties")
            keywords.append(
                makeKeyword(
                    "additionalProperties",
                    context,
                    .additionalProperties(schema, declared: declared, patterns: patterns)
                )
            )
        }
        if members["propertyNames"] != nil {
            keywords.append(
                makeKeyword("propertyNames", context, .propertyNames(try subschema(context, "propertyNames")))
            )
        }
    }

    /// The subschemas of an object-of-schemas keyword, sorted by name.
    func namedSchemas(
        _ keyword: String,
        _ value: JSONValue,
        _ context: NodeContext
    ) throws(SchemaError) -> [NamedSchema] {
        guard case .object(let schemas) = value else {
            throw invalid(keyword, context, "\(keyword) must be an object of schemas, found \(Describe.value(value))")
        }
        var named: [NamedSchema] = []
        for name in schemas.keys.sorted() {
            named.append(NamedSchema(name: name, schema: try subschema(context, keyword, name)))
        }
        return named
    }
}

extension Evaluator {
    /// Dispatches to one small function per keyword, which keeps stack frames small in deep recursion.
    func evaluateApplicator(_ keyword: Keyword, _ instance: JSONValue, _ evaluated: inout Evaluated) -> Bool {
        switch keyword.kind {
        case .allOf(let schemas):
            return applyAllOf(schemas, keyword, instance, &evaluated)
        case .anyOf(let schemas):
            return applyAnyOf(schemas, keyword, instance, &evaluated)
        case .oneOf(let schemas):
            return applyOneOf(schemas, keyword, instance, &evaluated)
        case .not(let schema):
            return applyNot(schema, keyword, instance, &evaluated)
        case .conditional(let condition, let then, let otherwise):
            return applyConditional(condition, then, otherwise, keyword, instance, &evaluated)
        case .dependentSchemas(let schemas):
            return applyDependentSchemas(schemas, keyword, instance, &evaluated)
        case .prefixItems(let schemas):
            return applyPrefixItems(schemas, keyword, instance, &evaluated)
        case .items(let schema, let firstIndex):
            return applyItems(schema, firstIndex, keyword, instance, &evaluated)
        case .contains(let schema, let minimum, let maximum):
            return applyContains(schema, minimum, maximum, keyword, instance, &evaluated)
        case .properties(let schemas):
            return applyProperties(schemas, keyword, instance, &evaluated)
        case .patternProperties(let schemas):
            return applyPatternProperties(schemas, keyword, instance, &evaluated)
        case .additionalProperties(let schema, let declared, let patterns):
            return applyAdditionalProperties(schema, declared, patterns, keyword, instance, &evaluated)
        case .propertyNames(let schema):
            return applyPropertyNames(schema, keyword, instance, &evaluated)
        default:
            preconditionFailure("not an applicator keyword")
        }
    }

    private func applyAllOf(
        _ schemas: [Int],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        var valid = true
        for (position, schema) in schemas.enumerated()
        where !evaluateInPlace(schema, instance, keywordTokens: [keyword.name, String(position)], &evaluated) {
            valid = false
            if !collecting { return false }
        }
        return valid
    }

    private func applyAnyOf(
        _ schemas: [Int],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        var matched = false
        var messages: [String] = []
        for (position, schema) in schemas.enumerated() {
            let outcome = firstMessage {
                evaluateInPlace(schema, instance, keywordTokens: [keyword.name, String(position)], &evaluated)
            }
            if outcome.valid {
                matched = true
                if !tracksAnnotations { return true }
            } else if let message = outcome.message {
                messages.append("[\(position)] \(message)")
            }
        }
        if !matched {
            fail(
                keyword,
                "the value matches none of the \(schemas.count) alternatives of anyOf" + listing(messages)
            )
        }
        return matched
    }

    private func applyOneOf(
        _ schemas: [Int],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        var matches: [Int] = []
        var messages: [String] = []
        for (position, schema) in schemas.enumerated() {
            let outcome = firstMessage {
                evaluateInPlace(schema, instance, keywordTokens: [keyword.name, String(position)], &evaluated)
            }
            if outcome.valid {
                matches.append(position)
                if matches.count > 1 && !collecting && !tracksAnnotations { return false }
            } else if let message = outcome.message {
                messages.append("[\(position)] \(message)")
            }
        }
        if matches.isEmpty {
            fail(
                keyword,
                "the value matches none of the \(schemas.count) alternatives of oneOf" + listing(messages)
            )
        } else if matches.count > 1 {
            let positions = matches.map(String.init).joined(separator: ", ")
            fail(
                keyword,
                "the value matches more than one alternative of oneOf (\(positions)), but must match exactly one"
            )
        }
        return matches.count == 1
    }

    private func applyNot(
        _ schema: Int,
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        var ignored = Evaluated()
        let matched = withCollecting(false) {
            evaluateInPlace(schema, instance, keywordTokens: [keyword.name], &ignored)
        }
        if matched { fail(keyword, "the value must not match the schema of not, but it does") }
        return !matched
    }

    private func applyConditional(
        _ condition: Int,
        _ then: Int?,
        _ otherwise: Int?,
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        // Without then or else, if only matters for the annotations of a successful match.
        if then == nil && otherwise == nil && !tracksAnnotations { return true }
        let holds = withCollecting(false) {
            evaluateInPlace(condition, instance, keywordTokens: ["if"], &evaluated)
        }
        if holds, let then {
            return evaluateInPlace(then, instance, keywordTokens: ["then"], &evaluated)
        }
        if !holds, let otherwise {
            return evaluateInPlace(otherwise, instance, keywordTokens: ["else"], &evaluated)
        }
        return true
    }

    private func applyDependentSchemas(
        _ schemas: [NamedSchema],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .object(let members) = instance else { return true }
        var valid = true
        for dependent in schemas where members[dependent.name] != nil {
            let tokens = [keyword.name, JSONPointer.escape(dependent.name)]
            if !evaluateInPlace(dependent.schema, instance, keywordTokens: tokens, &evaluated) {
                valid = false
                if !collecting { return false }
            }
        }
        return valid
    }

    private func applyPrefixItems(
        _ schemas: [Int],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .array(let items) = instance else { return true }
        var valid = true
        for position in 0..<min(schemas.count, items.count) {
            let token = String(position)
            if !evaluateChild(
                schemas[position],
                items[position],
                instanceToken: token,
                keywordTokens: [keyword.name, token]
            ) {
                valid = false
                if !collecting { return false }
            }
        }
        evaluated.itemPrefix = max(evaluated.itemPrefix, min(schemas.count, items.count))
        return valid
    }

    private func applyItems(
        _ schema: Int,
        _ firstIndex: Int,
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .array(let items) = instance else { return true }
        var valid = true
        if firstIndex < items.count {
            for position in firstIndex..<items.count where !evaluateItem(schema, items[position], position, keyword) {
                valid = false
                if !collecting { return false }
            }
        }
        evaluated.allItems = true
        return valid
    }

    private func applyContains(
        _ schema: Int,
        _ minimum: Int,
        _ maximum: Int?,
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .array(let items) = instance else { return true }
        var matching: [Int] = []
        withCollecting(false) {
            for (position, item) in items.enumerated()
            where evaluateChild(schema, item, instanceToken: String(position), keywordTokens: [keyword.name]) {
                matching.append(position)
            }
        }
        if tracksAnnotations { evaluated.itemIndices.formUnion(matching) }
        if matching.count < minimum {
            fail(
                keyword,
                matching.isEmpty
                    ? "no item matches the schema of contains"
                        + (minimum > 1 ? " (at least \(minimum) must)" : "")
                    : "\(Describe.count(matching.count, "item")) \(matching.count == 1 ? "matches" : "match") "
                        + "the schema of contains, fewer than the minimum \(minimum)"
            )
            return false
        }
        if let maximum, matching.count > maximum {
            fail(
                keyword,
                "\(Describe.count(matching.count, "item")) match the schema of contains, more than the maximum \(maximum)"
            )
            return false
        }
        return true
    }

    private func applyProperties(
        _ schemas: [NamedSchema],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .object(let members) = instance else { return true }
        var valid = true
        for property in schemas {
            guard let member = members[property.name] else { continue }
            if tracksAnnotations { evaluated.properties.insert(property.name) }
            let token = JSONPointer.escape(property.name)
            if !evaluateMember(property.schema, member, token, keywordTokens: [keyword.name, token], keyword) {
                valid = false
                if !collecting { return false }
            }
        }
        return valid
    }

    private func applyPatternProperties(
        _ schemas: [PatternSchema],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .object(let members) = instance else { return true }
        var valid = true
        for name in members.keys.sorted() {
            let token = JSONPointer.escape(name)
            for pattern in schemas where pattern.pattern.matches(name) {
                if tracksAnnotations { evaluated.properties.insert(name) }
                let tokens = [keyword.name, JSONPointer.escape(pattern.pattern.source)]
                if !evaluateMember(pattern.schema, members[name]!, token, keywordTokens: tokens, keyword) {
                    valid = false
                    if !collecting { return false }
                }
            }
        }
        return valid
    }

    private func applyAdditionalProperties(
        _ schema: Int,
        _ declared: Set<String>,
        _ patterns: [ECMARegex],
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .object(let members) = instance else { return true }
        var valid = true
        for name in members.keys.sorted()
        where !declared.contains(name) && !patterns.contains(where: { $0.matches(name) }) {
            if tracksAnnotations { evaluated.properties.insert(name) }
            let token = JSONPointer.escape(name)
            if !evaluateMember(schema, members[name]!, token, keywordTokens: [keyword.name], keyword) {
                valid = false
                if !collecting { return false }
            }
        }
        return valid
    }

    private func applyPropertyNames(
        _ schema: Int,
        _ keyword: Keyword,
        _ instance: JSONValue,
        _ evaluated: inout Evaluated
    ) -> Bool {
        guard case .object(let members) = instance else { return true }
        var valid = true
        instanceDepth += 1
        defer { instanceDepth -= 1 }
        for name in members.keys.sorted() {
            var ignored = Evaluated()
            let outcome = firstMessage {
                evaluateInPlace(schema, .string(name), keywordTokens: [keyword.name], &ignored)
            }
            if !outcome.valid {
                valid = false
                fail(
                    keyword,
                    "the property name \(Describe.value(.string(name))) is not allowed"
                        + (outcome.message.map { ": \($0)" } ?? "")
                )
                if !collecting { return false }
            }
        }
        return valid
    }

    /// Applies an item schema; a `false` schema yields one clear error naming the item.
    func evaluateItem(_ schema: Int, _ item: JSONValue, _ position: Int, _ keyword: Keyword) -> Bool {
        if case .always(false) = program.nodes[schema].body {
            fail(keyword, "no item is allowed at index \(position)", instanceToken: String(position))
            return false
        }
        return evaluateChild(schema, item, instanceToken: String(position), keywordTokens: [keyword.name])
    }

    /// Applies a member schema; a `false` schema yields one clear error naming the property.
    func evaluateMember(
        _ schema: Int,
        _ member: JSONValue,
        _ token: String,
        keywordTokens tokens: [String],
        _ keyword: Keyword
    ) -> Bool {
        if case .always(false) = program.nodes[schema].body {
            let name = JSONPointer.tokens("/" + token)?.first ?? token
            fail(
                keyword,
                "the property \(Describe.value(.string(name))) is not allowed",
                instanceToken: token,
                keywordSuffix: Array(tokens.dropFirst())
            )
            return false
        }
        return evaluateChild(schema, member, instanceToken: token, keywordTokens: tokens)
    }

    /// `: [0] …; [1] …` for the first error of each failed alternative.
    private func listing(_ messages: [String]) -> String {
        messages.isEmpty ? "" : ": " + messages.joined(separator: "; ")
    }
}
