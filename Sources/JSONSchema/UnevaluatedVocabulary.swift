import JSON

// The unevaluated vocabulary: `unevaluatedItems` and `unevaluatedProperties` apply their subschema
// to the items and members that no other keyword of the same schema object (including those
// reached through in-place applicators and references that succeeded) has evaluated.

extension SchemaCompiler {
    func compileUnevaluatedKeywords(
        _ members: JSONObject,
        _ context: NodeContext,
        into keywords: inout [Keyword]
    ) throws(SchemaError) {
        if members["unevaluatedItems"] != nil {
            usesUnevaluated = true
            keywords.append(
                makeKeyword("unevaluatedItems", context, .unevaluatedItems(try subschema(context, "unevaluatedItems")))
            )
        }
        if members["unevaluatedProperties"] != nil {
            usesUnevaluated = true
            let schema = try subschema(context, "unevaluatedProperties")
            keywords.append(makeKeyword("unevaluatedProperties", context, .unevaluatedProperties(schema)))
        }
    }
}

extension Evaluator {
    func evaluateUnevaluated(_ keyword: Keyword, _ instance: JSONValue, _ evaluated: inout Evaluated) -> Bool {
        switch keyword.kind {
        case .unevaluatedItems(let schema):
            guard case .array(let items) = instance, !evaluated.allItems else { return true }
            var valid = true
            for position in evaluated.itemPrefix..<max(evaluated.itemPrefix, items.count)
            where !evaluated.itemIndices.contains(position) {
                if !evaluateItem(schema, items[position], position, keyword) {
                    valid = false
                    if !collecting { return false }
                }
            }
            evaluated.allItems = true
            return valid

        case .unevaluatedProperties(let schema):
            guard case .object(let members) = instance, !evaluated.allProperties else { return true }
            var valid = true
            for name in members.keys.sorted() where !evaluated.properties.contains(name) {
                let token = JSONPointer.escape(name)
                if !evaluateMember(schema, members[name]!, token, keywordTokens: [keyword.name], keyword) {
                    valid = false
                    if !collecting { return false }
                }
            }
            evaluated.allProperties = true
            return valid

        default:
            preconditionFailure("not an unevaluated keyword")
        }
    }
}
