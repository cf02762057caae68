import JSON
import JSONSchema
import Testing

/// Schemas that cannot be compiled, and references that lead nowhere.
@Suite("Schema errors")
struct SchemaErrorTests {
    func compileError(_ schema: JSONValue, registry: SchemaRegistry = .init()) -> SchemaError? {
        do {
            _ = try JSONSchema(schema, registry: registry)
            return nil
        } catch {
            return error
        }
    }

    @Test func keywordsWithValuesOfTheWrongKind() {
        #expect(
            compileError(["properties": ["age": ["minimum": "0"]]])
                == SchemaError(
                    schemaLocation: "/properties/age/minimum",
                    message: #"minimum must be a number, found "0""#
                )
        )
        #expect(
            compileError(["type": "text"])?.description
                == #"invalid schema at /type: "text" is not a type name (expected one of "array", "boolean", "#
                + #""integer", "null", "number", "object", "string")"#
        )
        #expect(
            compileError(["required": "name"])?.description
                == #"invalid schema at /required: required must be an array of strings, found "name""#
        )
        #expect(
            compileError(["items": 3])?.description
                == "invalid schema at /items: a schema must be an object or a boolean, found 3"
        )
        #expect(
            compileError(["minLength": -1])?.description
                == "invalid schema at /minLength: minLength must be a non-negative integer, found -1"
        )
        #expect(
            compileError(["multipleOf": 0])?.description
                == "invalid schema at /multipleOf: multipleOf must be greater than 0, found 0"
        )
        #expect(
            compileError(["anyOf": []])?.description
                == "invalid schema at /anyOf: anyOf must be a non-empty array of schemas, found []"
        )
        #expect(
            compileError(["pattern": "(unclosed"])?.description
                == #"invalid schema at /pattern: "(unclosed" is not a valid regular expression"#
        )
        #expect(
            compileError(["$defs": ["a~b/c": ["type": 1]]])?.schemaLocation == "/$defs/a~0b~1c/type"
        )
        // $defs are checked even when nothing refers to them.
        #expect(compileError(["$defs": ["unused": ["maxItems": 1.5]]])?.schemaLocation == "/$defs/unused/maxItems")
    }

    @Test func unknownRemoteReferenceNamesTheURI() {
        let error = compileError(["$ref": "https://example.com/schemas/person.json#/properties/name"])
        #expect(error?.schemaLocation == "/$ref")
        #expect(
            error?.message
                == #"$ref "https://example.com/schemas/person.json#/properties/name" refers to "#
                + #""https://example.com/schemas/person.json", which is not a known schema (add it to the "#
                + "SchemaRegistry; remote schemas are never downloaded)"
        )
        #expect(
            compileError(["properties": ["a": ["$ref": "other.json"]]])?.description
                == #"invalid schema at /properties/a/$ref: $ref "other.json" refers to "other.json", which is not "#
                + "a known schema (add it to the SchemaRegistry; remote schemas are never downloaded)"
        )
    }

    @Test func referencesToMissingPlacesInsideKnownDocuments() {
        #expect(
            compileError(["$ref": "#/$defs/missing"])?.description
                == ##"invalid schema at /$ref: $ref "#/$defs/missing" points to nothing: the root schema has no "##
                + "value at /$defs/missing"
        )
        #expect(
            compileError(["$id": "https://example.com/a", "$ref": "#nowhere"])?.description
                == ##"invalid schema at /$ref: $ref "#nowhere" names the anchor "nowhere", which "##
                + #""https://example.com/a" does not define"#
        )
    }

    @Test func registryDocumentsResolveAndTheirErrorsNameTheirURI() throws {
        var registry = SchemaRegistry()
        try registry.add(["$id": "https://example.com/name.json", "type": "string", "minLength": 1])
        try registry.add(["maxLength": "ten"], uri: "https://example.com/broken.json")
        let schema = try JSONSchema(
            ["properties": ["name": ["$ref": "https://example.com/name.json"]]],
            registry: registry
        )
        #expect(schema.isValid(["name": "Ada"]))
        let error = try #require(schema.validate(["name": ""]).errors.first)
        #expect(error.keywordLocation == "/properties/name/$ref/minLength")
        #expect(error.absoluteKeywordLocation == "https://example.com/name.json#/minLength")
        #expect(
            compileError(["$ref": "https://example.com/broken.json"], registry: registry)?.description
                == #"invalid schema at https://example.com/broken.json#/maxLength: maxLength must be a "#
                + #"non-negative integer, found "ten""#
        )
        #expect(throws: SchemaError.self) { try registry.add(true, uri: "relative.json") }
    }

    @Test func theMetaSchemaIsBundled() throws {
        let schema = try JSONSchema(["$ref": "https://json-schema.org/draft/2020-12/schema"])
        #expect(schema.isValid(["type": "string", "minLength": 2]))
        #expect(!schema.isValid(["type": "text"]))
        #expect(!schema.isValid(["minLength": -1]))
    }
}
