import JSON

// The core vocabulary's applicators: `$ref` and `$dynamicRef`. (`$id`, `$anchor`,
// `$dynamicAnchor` and `$defs` are handled while indexing resources in ``SchemaCompiler``.)

extension SchemaCompiler {
    func compileCoreKeywords(
        _ members: JSONObject,
        _ context: NodeContext,
        into keywords: inout [Keyword]
    ) throws(SchemaError) {
        for name in ["$id", "$anchor", "$dynamicAnchor"] {
            if let value = members[name], value.stringValue == nil {
                throw invalid(name, context, "\(name) must be a string, found \(Describe.value(value))")
            }
        }
        if let value = members["$defs"] {
            guard case .object(let definitions) = value else {
                throw invalid("$defs", context, "$defs must be an object of schemas, found \(Describe.value(value))")
            }
            // Compiled even when unused, so that a mistake in one is reported now rather than never.
            for name in definitions.keys.sorted() { _ = try subschema(context, "$defs", name) }
        }
        if let value = members["$ref"] {
            guard case .string(let reference) = value else {
                throw invalid("$ref", context, "$ref must be a URI reference string, found \(Describe.value(value))")
            }
            let target = try resolveReference(reference, keyword: "$ref", context)
            keywords.append(makeKeyword("$ref", context, .ref(target.node)))
        }
        if let value = members["$dynamicRef"] {
            guard case .string(let reference) = value else {
                throw invalid(
                    "$dynamicRef",
                    context,
                    "$dynamicRef must be a URI reference string, found \(Describe.value(value))"
                )
            }
            let target = try resolveReference(reference, keyword: "$dynamicRef", context)
            keywords.append(
                makeKeyword("$dynamicRef", context, .dynamicRef(target: target.node, anchor: target.dynamicAnchor))
            )
        }
    }
}

extension Evaluator {
    func evaluateCore(_ keyword: Keyword, _ instance: JSONValue, _ evaluated: inout Evaluated) -> Bool {
        var target: Int
        switch keyword.kind {
        case .ref(let node):
            target = node
        case .dynamicRef(let node, let anchor):
            target = node
            if let anchor {
                // The outermost resource in the dynamic scope that declares the anchor wins.
                for resource in dynamicScope {
                    if let dynamicTarget = program.dynamicAnchors[resource][anchor] {
                        target = dynamicTarget
                        break
                    }
                }
            }
        default:
            preconditionFailure("not a core keyword")
        }
        let active = ActiveReference(node: target, instanceDepth: instanceDepth)
        guard activeReferences.insert(active).inserted else {
            // The same subschema is already being applied to this very value: following the
            // reference again would never end.
            reportLoop(keyword)
            return false
        }
        defer { activeReferences.remove(active) }
        return evaluateInPlace(target, instance, keywordTokens: [keyword.name], &evaluated)
    }

    @inline(never)
    private func reportLoop(_ keyword: Keyword) {
        fail(keyword, "the reference loops back to a schema already applied here, so it can never finish")
    }
}
