import JSON

/// Which items and properties of the current instance some keyword has evaluated successfully:
/// the annotations `unevaluatedItems` and `unevaluatedProperties` depend on.
struct Evaluated {
    var properties: Set<String> = []
    var allProperties = false
    /// Items before this index were evaluated (by `prefixItems`).
    var itemPrefix = 0
    var allItems = false
    /// Items matched by `contains`.
    var itemIndices: Set<Int> = []

    mutating func merge(_ other: Evaluated) {
        if other.allProperties {
            allProperties = true
        } else if !other.properties.isEmpty {
            properties.formUnion(other.properties)
        }
        itemPrefix = max(itemPrefix, other.itemPrefix)
        allItems = allItems || other.allItems
        if !other.itemIndices.isEmpty { itemIndices.formUnion(other.itemIndices) }
    }
}

/// One validation run: walks the compiled nodes over an instance, keeping the instance and
/// keyword paths, the dynamic scope for `$dynamicRef`, and the errors found.
final class Evaluator {
    let program: CompiledProgram
    let maximumDepth: Int
    /// Whether errors are wanted; when not, evaluation stops at the first failure.
    var collecting: Bool
    var errors: [ValidationError] = []

    /// Escaped reference tokens of the current instance location.
    var instancePath: [String] = []
    /// Escaped reference tokens of the current keyword location (the evaluation path).
    var keywordPath: [String] = []
    /// Resources entered, outermost first.
    var dynamicScope: [Int] = []
    /// `$ref` targets being evaluated, with the instance depth at which they were entered.
    var activeReferences: Set<ActiveReference> = []
    var depth = 0
    /// How many times evaluation moved to another value (a member, an item, a property name):
    /// two applications of one subschema at the same count are applications to the same value.
    var instanceDepth = 0

    struct ActiveReference: Hashable {
        var node: Int
        var instanceDepth: Int
    }

    init(program: CompiledProgram, maximumDepth: Int, collecting: Bool) {
        self.program = program
        self.maximumDepth = maximumDepth
        self.collecting = collecting
    }

    var tracksAnnotations: Bool { program.tracksAnnotations }

    /// Evaluates node `index` against `instance`; on success its annotations are merged into `evaluated`.
    func evaluate(_ index: Int, _ instance: JSONValue, _ evaluated: inout Evaluated) -> Bool {
        let node = program.nodes[index]
        switch node.body {
        case .always(true):
            return true
        case .always(false):
            reportFalseSchema(node)
            return false
        case .keywords(let keywords):
            guard depth < maximumDepth else {
                reportTooDeep(node)
                return false
            }
            depth += 1
            let entersResource = dynamicScope.last != node.resource
            if entersResource { dynamicScope.append(node.resource) }
            defer {
                depth -= 1
                if entersResource { dynamicScope.removeLast() }
            }
            var local = Evaluated()
            var valid = true
            for keyword in keywords {
                guard evaluate(keyword, instance, &local) else {
                    valid = false
                    if collecting { continue }
                    return false
                }
            }
            if valid && tracksAnnotations { evaluated.merge(local) }
            return valid
        }
    }

    private func evaluate(_ keyword: Keyword, _ instance: JSONValue, _ evaluated: inout Evaluated) -> Bool {
        switch keyword.kind {
        case .ref, .dynamicRef:
            return evaluateCore(keyword, instance, &evaluated)
        case .allOf, .anyOf, .oneOf, .not, .conditional, .dependentSchemas, .prefixItems, .items, .contains,
            .properties, .patternProperties, .additionalProperties, .propertyNames:
            return evaluateApplicator(keyword, instance, &evaluated)
        case .unevaluatedItems, .unevaluatedProperties:
            return evaluateUnevaluated(keyword, instance, &evaluated)
        default:
            return evaluateValidation(keyword, instance)
        }
    }

    // MARK: - Descending

    /// Evaluates `node` against the same instance (an in-place applicator), under keyword path `tokens`.
    func evaluateInPlace(
        _ node: Int,
        _ instance: JSONValue,
        keywordTokens tokens: [String],
        _ evaluated: inout Evaluated
    ) -> Bool {
        keywordPath.append(contentsOf: tokens)
        defer { keywordPath.removeLast(tokens.count) }
        return evaluate(node, instance, &evaluated)
    }

    /// Evaluates `node` against a member or item of the instance (its annotations stay with it).
    func evaluateChild(
        _ node: Int,
        _ child: JSONValue,
        instanceToken: String,
        keywordTokens tokens: [String]
    ) -> Bool {
        instancePath.append(instanceToken)
        keywordPath.append(contentsOf: tokens)
        instanceDepth += 1
        defer {
            instanceDepth -= 1
            instancePath.removeLast()
            keywordPath.removeLast(tokens.count)
        }
        var ignored = Evaluated()
        return evaluate(node, child, &ignored)
    }

    /// Runs `body` with error collection switched on or off, restoring it afterwards.
    func withCollecting<T>(_ on: Bool, _ body: () -> T) -> T {
        let saved = collecting
        collecting = on
        defer { collecting = saved }
        return body()
    }

    /// Runs `body` (which evaluates a subschema), then removes the errors it added and returns the
    /// first one's message along with `body`'s result.
    func firstMessage(of body: () -> Bool) -> (valid: Bool, message: String?) {
        let start = errors.count
        let valid = body()
        let message = errors.count > start ? errors[start].message : nil
        errors.removeSubrange(start...)
        return (valid, message)
    }

    // MARK: - Reporting

    // Kept out of `evaluate(_:_:_:)` so that its stack frame, repeated at every level of nesting, stays small.
    @inline(never)
    private func reportFalseSchema(_ node: SchemaNode) {
        report("no value is allowed here (the schema is false)", keyword: nil, absoluteLocation: node.absoluteLocation)
    }

    @inline(never)
    private func reportTooDeep(_ node: SchemaNode) {
        report(
            "the instance or schema is nested too deeply to validate (more than \(maximumDepth) levels)",
            keyword: nil,
            absoluteLocation: node.absoluteLocation
        )
    }

    /// Records an error for `keyword` at the current instance location (extended by `instanceToken`).
    /// `keywordSuffix` extends the keyword location below the keyword (e.g. the property name under `properties`).
    func fail(
        _ keyword: Keyword,
        _ message: @autoclosure () -> String,
        instanceToken: String? = nil,
        keywordSuffix: [String] = []
    ) {
        guard collecting else { return }
        var name = keyword.name
        var absoluteLocation = keyword.absoluteLocation
        for token in keywordSuffix {
            name += "/" + token
            absoluteLocation? += "/" + token
        }
        report(message(), keyword: name, absoluteLocation: absoluteLocation, instanceToken: instanceToken)
    }

    private func report(
        _ message: String,
        keyword: String?,
        absoluteLocation: String?,
        instanceToken: String? = nil
    ) {
        guard collecting else { return }
        var instanceLocation = ""
        for token in instancePath { instanceLocation += "/" + token }
        if let instanceToken { instanceLocation += "/" + instanceToken }
        var keywordLocation = ""
        for token in keywordPath { keywordLocation += "/" + token }
        if let keyword { keywordLocation += "/" + keyword }
        errors.append(
            ValidationError(
                instanceLocation: instanceLocation,
                keywordLocation: keywordLocation,
                absoluteKeywordLocation: absoluteLocation,
                message: message
            )
        )
    }
}
