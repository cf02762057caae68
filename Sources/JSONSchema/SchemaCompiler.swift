import JSON

/// Turns schema documents into a ``CompiledProgram``: finds every schema resource (`$id`) and
/// anchor, resolves references to node indices, and checks and converts each keyword's operand.
///
/// A subschema is identified by its document and the JSON Pointer to it inside that document, so a
/// subschema reached both by nesting and by `$ref` is compiled once, and recursive references
/// become cycles in the node graph.
final class SchemaCompiler {
    /// The scheme of URIs that only exist because a schema has no absolute `$id`; never shown to users.
    static let anonymousScheme = "stagerunner-schema:"
    /// The base URI of a root schema without an absolute `$id`.
    static let anonymousBase = anonymousScheme + "/root.json"

    /// A schema resource: the subschema that declared an `$id` (or a document root), with its anchors.
    struct Resource {
        var document: String
        var pointer: String
        var anchors: [String: String] = [:]
        var dynamicAnchors: Set<String> = []
    }

    /// The vocabularies whose keywords are compiled (from the root's `$schema` meta-schema).
    struct Vocabularies {
        var applicator = true
        var validation = true
        var unevaluated = true
    }

    let registry: SchemaRegistry
    let rootDocument: String
    var vocabularies = Vocabularies()

    var documents: [String: JSONValue] = [:]
    var resources: [Resource] = []
    var resourceByURI: [String: Int] = [:]
    var resourceByLocation: [String: Int] = [:]
    /// The base URI in effect at each indexed subschema, by `document#pointer`.
    var baseByLocation: [String: String] = [:]
    var nodes: [SchemaNode?] = []
    var nodeByLocation: [String: Int] = [:]
    var compiledResources: Set<Int> = []
    var indexedWholeRegistry = false
    var usesUnevaluated = false

    init(registry: SchemaRegistry, rootDocument: String) {
        self.registry = registry
        self.rootDocument = rootDocument
    }

    /// Compiles `schema` (the root document) and everything it references.
    static func compile(_ schema: JSONValue, registry: SchemaRegistry) throws(SchemaError) -> CompiledProgram {
        var rootURI = anonymousBase
        if case .string(let id)? = schema["$id"] {
            let reference = URIReference(id).resolved(against: URIReference(anonymousBase)).withoutFragment
            rootURI = reference.text
        }
        let compiler = SchemaCompiler(registry: registry, rootDocument: rootURI)
        compiler.vocabularies = try compiler.vocabularies(declaredBy: schema)
        compiler.load(schema, as: rootURI)
        let root = try compiler.node(document: rootURI, pointer: "")
        let dynamicAnchors = try compiler.compileDynamicAnchors()
        return CompiledProgram(
            nodes: compiler.nodes.map { $0! },
            root: root,
            dynamicAnchors: dynamicAnchors,
            tracksAnnotations: compiler.usesUnevaluated
        )
    }

    // MARK: - Documents and resources

    /// Records `document` under `uri` and indexes its resources and anchors.
    func load(_ document: JSONValue, as uri: String) {
        guard documents[uri] == nil else { return }
        documents[uri] = document
        _ = registerResource(uri, document: uri, pointer: "")
        index(document, document: uri, pointer: "", base: uri)
    }

    private func registerResource(_ uri: String, document: String, pointer: String) -> Int {
        let location = document + "#" + pointer
        if let existing = resourceByLocation[location] {
            if resourceByURI[uri] == nil { resourceByURI[uri] = existing }
            return existing
        }
        if let existing = resourceByURI[uri] { return existing }
        resources.append(Resource(document: document, pointer: pointer))
        resourceByURI[uri] = resources.count - 1
        resourceByLocation[location] = resources.count - 1
        return resources.count - 1
    }

    /// Walks the subschemas of `value`, recording `$id`s, `$anchor`s and `$dynamicAnchor`s.
    private func index(_ value: JSONValue, document: String, pointer: String, base: String) {
        let location = document + "#" + pointer
        guard baseByLocation[location] == nil else { return }
        guard case .object(let members) = value else {
            baseByLocation[location] = base
            return
        }
        var base = base
        if case .string(let id)? = members["$id"] {
            base = URIReference(id).resolved(against: URIReference(base)).withoutFragment.text
            _ = registerResource(base, document: document, pointer: pointer)
        }
        baseByLocation[location] = base
        let resource = resourceByURI[base]!
        if case .string(let anchor)? = members["$anchor"] {
            resources[resource].anchors[anchor] = pointer
        }
        if case .string(let anchor)? = members["$dynamicAnchor"] {
            resources[resource].anchors[anchor] = pointer
            resources[resource].dynamicAnchors.insert(anchor)
        }
        for (keyword, member) in members {
            let keywordPointer = pointer + "/" + JSONPointer.escape(keyword)
            switch keyword {
            case "additionalProperties", "propertyNames", "items", "contains", "not", "if", "then", "else",
                "unevaluatedItems", "unevaluatedProperties", "contentSchema":
                index(member, document: document, pointer: keywordPointer, base: base)
            case "allOf", "anyOf", "oneOf", "prefixItems":
                guard case .array(let elements) = member else { continue }
                for (position, element) in elements.enumerated() {
                    index(element, document: document, pointer: keywordPointer + "/\(position)", base: base)
                }
            case "properties", "patternProperties", "dependentSchemas", "$defs":
                guard case .object(let schemas) = member else { continue }
                for (name, schema) in schemas {
                    index(
                        schema,
                        document: document,
                        pointer: keywordPointer + "/" + JSONPointer.escape(name),
                        base: base
                    )
                }
            default:
                continue
            }
        }
    }

    /// The resource with absolute URI `uri`, loading it from the registry (or the bundled
    /// meta-schemas) on first use.
    func resource(at uri: String) -> Int? {
        if let known = resourceByURI[uri] { return known }
        if let document = registry.document(at: uri) {
            load(document, as: uri)
            return resourceByURI[uri]
        }
        // The URI may be an `$id` embedded in some registry document.
        if !indexedWholeRegistry {
            indexedWholeRegistry = true
            for documentURI in registry.uris {
                if let document = registry.document(at: documentURI) { load(document, as: documentURI) }
            }
            return resourceByURI[uri]
        }
        return nil
    }

    /// The location as users see it: a pointer inside the root schema, or `uri#pointer` elsewhere.
    func displayLocation(document: String, pointer: String) -> String {
        document == rootDocument ? pointer : document + "#" + pointer
    }

    // MARK: - Nodes

    /// The node of the subschema at `pointer` inside `document`, compiling it on first use.
    func node(document: String, pointer: String) throws(SchemaError) -> Int {
        let location = document + "#" + pointer
        if let known = nodeByLocation[location] { return known }
        guard let root = documents[document], let value = JSONPointer.resolve(pointer, in: root) else {
            throw SchemaError(
                schemaLocation: displayLocation(document: document, pointer: pointer),
                message: "no schema exists at this location"
            )
        }
        if baseByLocation[location] == nil {
            // Reached through a pointer into an unknown keyword: index it under its nearest known ancestor's base.
            index(
                value,
                document: document,
                pointer: pointer,
                base: inheritedBase(document: document, pointer: pointer)
            )
        }
        let base = baseByLocation[location]!
        let resource = resourceByURI[base]!
        compiledResources.insert(resource)
        let index = nodes.count
        nodes.append(nil)
        nodeByLocation[location] = index
        var absoluteLocation: String?
        if !base.hasPrefix(Self.anonymousScheme) {
            let resourcePointer = resources[resource].pointer
            absoluteLocation = base + "#" + pointer.dropFirst(resourcePointer.count)
        }
        let context = NodeContext(
            document: document,
            pointer: pointer,
            base: base,
            resource: resource,
            absoluteLocation: absoluteLocation,
            isRootDocument: document == rootDocument
        )
        let body: SchemaNode.Body
        switch value {
        case .bool(let flag):
            body = .always(flag)
        case .object(let members):
            body = .keywords(try compileKeywords(members, context))
        default:
            throw SchemaError(
                schemaLocation: context.location,
                message: "a schema must be an object or a boolean, found \(Describe.value(value))"
            )
        }
        nodes[index] = SchemaNode(body: body, resource: resource, absoluteLocation: absoluteLocation)
        return index
    }

    private func inheritedBase(document: String, pointer: String) -> String {
        var pointer = Substring(pointer)
        while let slash = pointer.lastIndex(of: "/") {
            pointer = pointer[..<slash]
            if let base = baseByLocation[document + "#" + pointer] { return base }
        }
        return document
    }

    /// Compiles the subschemas every reachable resource names with `$dynamicAnchor`, since a
    /// `$dynamicRef` may resolve to any of them at run time.
    private func compileDynamicAnchors() throws(SchemaError) -> [[String: Int]] {
        var done: Set<Int> = []
        while true {
            let pending = compiledResources.subtracting(done).sorted()
            if pending.isEmpty { break }
            for resource in pending {
                done.insert(resource)
                for anchor in resources[resource].dynamicAnchors.sorted() {
                    let pointer = resources[resource].anchors[anchor]!
                    _ = try node(document: resources[resource].document, pointer: pointer)
                }
            }
        }
        var table: [[String: Int]] = Array(repeating: [:], count: resources.count)
        for resource in compiledResources {
            for anchor in resources[resource].dynamicAnchors {
                let pointer = resources[resource].anchors[anchor]!
                table[resource][anchor] = nodeByLocation[resources[resource].document + "#" + pointer]
            }
        }
        return table
    }

    /// Resolves a `$ref`/`$dynamicRef` value against the current base URI: the target node, and
    /// the anchor name when the target was designated by a `$dynamicAnchor`.
    func resolveReference(
        _ reference: String,
        keyword: String,
        _ context: NodeContext
    ) throws(SchemaError) -> (node: Int, dynamicAnchor: String?) {
        let uri = URIReference(reference).resolved(against: URIReference(context.base))
        let resourceURI = uri.withoutFragment.text
        let fragment = URIReference.percentDecoded(uri.fragment ?? "")
        guard let resource = resource(at: resourceURI) else {
            throw SchemaError(
                schemaLocation: context.location + "/" + keyword,
                message: "\(keyword) \"\(reference)\" refers to \(Describe.uri(resourceURI)), which is not a known "
                    + "schema (add it to the SchemaRegistry; remote schemas are never downloaded)"
            )
        }
        let target = resources[resource]
        if fragment.isEmpty {
            return (try node(document: target.document, pointer: target.pointer), nil)
        }
        if fragment.hasPrefix("/") {
            guard JSONPointer.tokens(fragment) != nil,
                let root = documents[target.document],
                JSONPointer.resolve(target.pointer + fragment, in: root) != nil
            else {
                throw SchemaError(
                    schemaLocation: context.location + "/" + keyword,
                    message: "\(keyword) \"\(reference)\" points to nothing: \(Describe.uri(resourceURI)) has no "
                        + "value at \(fragment)"
                )
            }
            return (try node(document: target.document, pointer: target.pointer + fragment), nil)
        }
        guard let pointer = target.anchors[fragment] else {
            throw SchemaError(
                schemaLocation: context.location + "/" + keyword,
                message: "\(keyword) \"\(reference)\" names the anchor \"\(fragment)\", which "
                    + "\(Describe.uri(resourceURI)) does not define"
            )
        }
        let node = try node(document: target.document, pointer: pointer)
        return (node, target.dynamicAnchors.contains(fragment) ? fragment : nil)
    }

    /// The vocabularies in use: those listed by the `$vocabulary` of the meta-schema named by
    /// `$schema` when it is a registry document that has one; all of them otherwise.
    private func vocabularies(declaredBy schema: JSONValue) throws(SchemaError) -> Vocabularies {
        guard case .string(let metaSchemaURI)? = schema["$schema"],
            let metaSchema = registry.document(at: metaSchemaURI),
            case .object(let declared)? = metaSchema["$vocabulary"]
        else { return Vocabularies() }
        let prefix = MetaSchemas.base + "vocab/"
        return Vocabularies(
            applicator: declared[prefix + "applicator"] != nil,
            validation: declared[prefix + "validation"] != nil,
            unevaluated: declared[prefix + "unevaluated"] != nil
        )
    }

    // MARK: - Keywords

    /// Where a node is being compiled, as keyword compilers need it.
    struct NodeContext {
        var document: String
        var pointer: String
        var base: String
        var resource: Int
        var absoluteLocation: String?
        var isRootDocument: Bool

        /// The pointer inside the root schema, or `uri#pointer` inside another document.
        var location: String { isRootDocument ? pointer : document + "#" + pointer }

        func absoluteLocation(of keyword: String) -> String? {
            absoluteLocation.map { $0 + "/" + JSONPointer.escape(keyword) }
        }
    }

    /// Evaluation order: assertions on the value itself first (so a type mismatch is reported
    /// first), then references and in-place applicators, then members and items, and the
    /// `unevaluated*` keywords last, once every other keyword has recorded what it evaluated.
    /// Items and members go in the order the specification lists their keywords.
    private static func rank(_ kind: Keyword.Kind) -> Int {
        switch kind {
        case .type: return 0
        case .enumeration, .constant: return 1
        case .ref, .dynamicRef: return 3
        case .allOf, .anyOf, .oneOf, .not, .conditional, .dependentSchemas: return 4
        case .prefixItems: return 5
        case .items: return 6
        case .contains: return 7
        case .properties: return 8
        case .patternProperties: return 9
        case .additionalProperties: return 10
        case .propertyNames: return 11
        case .unevaluatedItems, .unevaluatedProperties: return 12
        default: return 2
        }
    }

    private func compileKeywords(
        _ members: JSONObject,
        _ context: NodeContext
    ) throws(SchemaError) -> [Keyword] {
        var keywords: [Keyword] = []
        try compileCoreKeywords(members, context, into: &keywords)
        if vocabularies.applicator { try compileApplicatorKeywords(members, context, into: &keywords) }
        if vocabularies.unevaluated { try compileUnevaluatedKeywords(members, context, into: &keywords) }
        if vocabularies.validation { try compileValidationKeywords(members, context, into: &keywords) }
        // Stable order: by rank, then by keyword name.
        return keywords.enumerated()
            .sorted { left, right in
                let (leftRank, rightRank) = (Self.rank(left.element.kind), Self.rank(right.element.kind))
                if leftRank != rightRank { return leftRank < rightRank }
                return left.element.name < right.element.name
            }
            .map(\.element)
    }

    /// The node for the subschema at `tokens` below the current one.
    func subschema(_ context: NodeContext, _ tokens: String...) throws(SchemaError) -> Int {
        var pointer = context.pointer
        for token in tokens { pointer += "/" + JSONPointer.escape(token) }
        return try node(document: context.document, pointer: pointer)
    }

    /// A `SchemaError` for keyword `keyword` of the current node.
    func invalid(_ keyword: String, _ context: NodeContext, _ message: String) -> SchemaError {
        SchemaError(schemaLocation: context.location + "/" + JSONPointer.escape(keyword), message: message)
    }

    func makeKeyword(_ name: String, _ context: NodeContext, _ kind: Keyword.Kind) -> Keyword {
        Keyword(name: JSONPointer.escape(name), absoluteLocation: context.absoluteLocation(of: name), kind: kind)
    }
}
