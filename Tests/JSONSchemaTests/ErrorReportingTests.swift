import JSON
import JSONSchema
import Testing

/// The errors a user sees: exact messages, instance and keyword locations, and their order.
@Suite("Validation errors")
struct ErrorReportingTests {
    func errors(_ schema: JSONValue, _ instance: JSONValue) throws -> [String] {
        try JSONSchema(schema).validate(instance).errors.map(\.description)
    }

    @Test func requiredPropertyInsideNestedItems() throws {
        let schema: JSONValue = [
            "type": "object",
            "properties": [
                "items": [
                    "type": "array",
                    "items": ["type": "object", "required": ["name"]],
                ]
            ],
        ]
        let result = try JSONSchema(schema).validate(["items": [["name": "a"], ["name": "b"], ["nom": "c"]]])
        #expect(
            result.errors == [
                ValidationError(
                    instanceLocation: "/items/2",
                    keywordLocation: "/properties/items/items/required",
                    message: #""name" is required"#
                )
            ]
        )
        #expect(result.description == #"at /items/2: "name" is required (schema /properties/items/items/required)"#)
    }

    @Test func typeMismatchesNameWhatWasFound() throws {
        #expect(
            try errors(["type": "integer"], "x") == [#"at root: expected integer, found string "x" (schema /type)"#]
        )
        #expect(try errors(["type": "integer"], 1.5) == ["at root: expected integer, found number 1.5 (schema /type)"])
        #expect(
            try errors(["type": ["string", "null"]], ["a": 1])
                == ["at root: expected string or null, found object with 1 property (schema /type)"]
        )
        #expect(try JSONSchema(["type": "integer"]).isValid(1.0))
    }

    @Test func numericBounds() throws {
        #expect(try errors(["maximum": 2], 3) == ["at root: 3 is greater than the maximum 2 (schema /maximum)"])
        #expect(try errors(["minimum": 2.5], 1) == ["at root: 1 is less than the minimum 2.5 (schema /minimum)"])
        #expect(
            try errors(["exclusiveMaximum": 3], 3)
                == ["at root: 3 is not less than the exclusive maximum 3 (schema /exclusiveMaximum)"]
        )
        #expect(
            try errors(["exclusiveMinimum": 3], 3.0)
                == ["at root: 3.0 is not greater than the exclusive minimum 3 (schema /exclusiveMinimum)"]
        )
        #expect(try errors(["multipleOf": 2], 7) == ["at root: 7 is not a multiple of 2 (schema /multipleOf)"])
    }

    @Test func multipleOfToleratesBinaryFractions() throws {
        let tenth = try JSONSchema(["multipleOf": 0.1])
        #expect(tenth.isValid(0.3))
        #expect(tenth.isValid(1.7))
        #expect(tenth.isValid(12_345_678.9))
        #expect(!tenth.isValid(0.35))
        let cent = try JSONSchema(["multipleOf": 0.01])
        #expect(cent.isValid(19.99))
        #expect(cent.isValid(4.35))
        #expect(!cent.isValid(0.005))
        #expect(!cent.isValid(1e-12))
        #expect(try JSONSchema(["multipleOf": 1]).isValid(1e300))
        #expect(!(try JSONSchema(["multipleOf": 1]).isValid(1_000_000_000.5)))
    }

    @Test func stringsCountCodePoints() throws {
        // Two code points, one user-perceived character.
        #expect(try JSONSchema(["maxLength": 1]).isValid("💩"))
        #expect(!(try JSONSchema(["maxLength": 1]).isValid("e\u{301}")))
        #expect(
            try errors(["minLength": 3], "ab")
                == [#"at root: "ab" is shorter than the minimum length 3 (2 characters) (schema /minLength)"#]
        )
        #expect(
            try errors(["maxLength": 2], "abc")
                == [#"at root: "abc" is longer than the maximum length 2 (3 characters) (schema /maxLength)"#]
        )
    }

    @Test func enumAndConstUseJSONEquality() throws {
        #expect(try JSONSchema(["enum": [1, "a"]]).isValid(1.0))
        #expect(try JSONSchema(["const": ["a": [1, 2], "b": true]]).isValid(["b": true, "a": [1.0, 2]]))
        #expect(
            try errors(["enum": ["red", "green"]], "blue")
                == [#"at root: "blue" is not one of the allowed values: "red", "green" (schema /enum)"#]
        )
        #expect(try errors(["const": "a"], "b") == [#"at root: expected "a", found "b" (schema /const)"#])
        #expect(
            try errors(["uniqueItems": true], [1, 2, 1.0])
                == ["at root: items 0 and 2 are equal, but items must be unique (schema /uniqueItems)"]
        )
    }

    @Test func refsAppearInTheKeywordLocation() throws {
        let schema: JSONValue = [
            "$defs": ["positive": ["type": "integer", "minimum": 1]],
            "properties": ["count": ["$ref": "#/$defs/positive"]],
        ]
        let result = try JSONSchema(schema).validate(["count": 0])
        #expect(result.errors.map(\.keywordLocation) == ["/properties/count/$ref/minimum"])
        #expect(result.errors.map(\.instanceLocation) == ["/count"])
        #expect(result.errors.map(\.absoluteKeywordLocation) == [nil])
        // A relative root $id gives no absolute location either.
        let relative = try JSONSchema(["$id": "order.json", "minimum": 1])
        #expect(relative.validate(0).errors.map(\.absoluteKeywordLocation) == [nil])
    }

    @Test func absoluteKeywordLocationWhenTheSchemaHasAnID() throws {
        let schema: JSONValue = [
            "$id": "https://example.com/order.json",
            "$defs": ["qty": ["$id": "quantity.json", "type": "integer"]],
            "properties": ["qty": ["$ref": "quantity.json"]],
        ]
        let error = try #require(try JSONSchema(schema).validate(["qty": "x"]).errors.first)
        #expect(error.keywordLocation == "/properties/qty/$ref/type")
        #expect(error.absoluteKeywordLocation == "https://example.com/quantity.json#/type")
    }

    @Test func disallowedPropertiesAndItemsAreNamed() throws {
        let schema: JSONValue = [
            "properties": ["a": true, "gone": false],
            "additionalProperties": false,
            "prefixItems": [true],
            "items": false,
        ]
        #expect(
            try errors(schema, ["a": 1, "b~/": 2, "gone": 3]) == [
                #"at /gone: the property "gone" is not allowed (schema /properties/gone)"#,
                #"at /b~0~1: the property "b~/" is not allowed (schema /additionalProperties)"#,
            ]
        )
        #expect(try errors(schema, [1, 2]) == ["at /1: no item is allowed at index 1 (schema /items)"])
        #expect(
            try errors(["unevaluatedProperties": false, "properties": ["a": true]], ["a": 1, "z": 2])
                == [#"at /z: the property "z" is not allowed (schema /unevaluatedProperties)"#]
        )
        #expect(try errors(false, 1) == ["at root: no value is allowed here (the schema is false) (schema root)"])
    }

    @Test func alternativesSummariseEachBranch() throws {
        #expect(
            try errors(["anyOf": [["type": "string"], ["type": "null"]]], 3) == [
                "at root: the value matches none of the 2 alternatives of anyOf: "
                    + "[0] expected string, found number 3; [1] expected null, found number 3 (schema /anyOf)"
            ]
        )
        #expect(
            try errors(["oneOf": [["type": "integer"], ["minimum": 0]]], 3) == [
                "at root: the value matches more than one alternative of oneOf (0, 1), but must match exactly one "
                    + "(schema /oneOf)"
            ]
        )
        #expect(
            try errors(["not": ["type": "string"]], "x")
                == ["at root: the value must not match the schema of not, but it does (schema /not)"]
        )
        #expect(
            try errors(["if": ["type": "string"], "then": ["minLength": 2], "else": ["minimum": 0]], -1)
                == ["at root: -1 is less than the minimum 0 (schema /else/minimum)"]
        )
    }

    @Test func objectAndArrayKeywords() throws {
        #expect(
            try errors(["dependentRequired": ["card": ["cvv"]]], ["card": "1"])
                == [#"at root: "cvv" is required when "card" is present (schema /dependentRequired)"#]
        )
        #expect(
            try errors(["propertyNames": ["maxLength": 3]], ["long": 1, "ok": 2]) == [
                #"at root: the property name "long" is not allowed: "long" is longer than the maximum length 3 "#
                    + "(4 characters) (schema /propertyNames)"
            ]
        )
        #expect(
            try errors(["minProperties": 2], ["a": 1])
                == ["at root: the object has 1 property, fewer than the minimum 2 (schema /minProperties)"]
        )
        #expect(
            try errors(["maxItems": 1], [1, 2])
                == ["at root: the array has 2 items, more than the maximum 1 (schema /maxItems)"]
        )
        #expect(
            try errors(["contains": ["type": "string"]], [1])
                == ["at root: no item matches the schema of contains (schema /contains)"]
        )
        #expect(
            try errors(["contains": ["type": "string"], "maxContains": 1], ["a", "b"])
                == ["at root: 2 items match the schema of contains, more than the maximum 1 (schema /contains)"]
        )
    }

    @Test func errorsComeInAFixedOrder() throws {
        let schema: JSONValue = [
            "required": ["z", "a"],
            "properties": ["b": ["type": "string"], "a": ["type": "string"]],
            "patternProperties": ["^c": ["type": "string"]],
        ]
        let instance: JSONValue = ["c2": 1, "b": 1, "c1": 1]
        let expected = [
            #"at root: "z" is required (schema /required)"#,
            #"at root: "a" is required (schema /required)"#,
            "at /b: expected string, found number 1 (schema /properties/b/type)",
            "at /c1: expected string, found number 1 (schema /patternProperties/^c/type)",
            "at /c2: expected string, found number 1 (schema /patternProperties/^c/type)",
        ]
        for _ in 0..<5 { #expect(try errors(schema, instance) == expected) }
    }

    @Test func formatIsOnlyAnAnnotation() throws {
        let schema = try JSONSchema(["format": "email"])
        #expect(schema.isValid("not an email"))
        #expect(try JSONSchema(["format": "date-time", "type": "string"]).isValid("yesterday"))
    }
}
