import JSON

/// Schema documents that `$ref` and `$dynamicRef` may point to, by absolute URI.
///
/// Nothing is ever fetched: a reference to a URI that is neither in the registry, nor an `$id`
/// inside one of its documents, nor one of the bundled draft 2020-12 meta-schemas (see
/// ``bundledMetaSchemaURIs``) makes compilation fail with a ``SchemaError`` naming the URI.
public struct SchemaRegistry: Sendable {
    /// Documents by absolute URI without fragment.
    private(set) var documents: [String: JSONValue] = [:]

    /// An empty registry (the bundled meta-schemas remain available).
    public init() {}

    /// The URIs of the documents added so far, sorted.
    public var uris: [String] { documents.keys.sorted() }

    /// Adds `document` under the absolute URI `uri` (a trailing empty fragment `#` is ignored).
    /// A document of the same URI added earlier is replaced.
    public mutating func add(_ document: JSONValue, uri: String) throws(SchemaError) {
        let reference = URIReference(uri)
        guard reference.isAbsolute, reference.fragment?.isEmpty ?? true else {
            throw SchemaError(
                schemaLocation: "",
                message: "a registry URI must be absolute and have no fragment, found \"\(uri)\""
            )
        }
        documents[reference.withoutFragment.text] = document
    }

    /// Adds `document` under the absolute URI of its own `$id`.
    public mutating func add(_ document: JSONValue) throws(SchemaError) {
        guard case .string(let id)? = document["$id"] else {
            throw SchemaError(schemaLocation: "", message: "the document has no \"$id\" to register it under")
        }
        try add(document, uri: id)
    }

    /// The document added under `uri`, or the bundled meta-schema of that URI.
    public func document(at uri: String) -> JSONValue? {
        let key = URIReference(uri).withoutFragment.text
        return documents[key] ?? MetaSchemas.documents[key]
    }

    /// The URIs of the draft 2020-12 meta-schemas that are always available, so that schemas can
    /// `$ref` the meta-schema (e.g. to accept "any schema") without network access.
    public static var bundledMetaSchemaURIs: [String] { MetaSchemas.documents.keys.sorted() }
}
