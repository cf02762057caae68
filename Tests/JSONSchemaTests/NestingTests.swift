import Foundation
import JSON
import JSONSchema
import Testing

/// Recursion through references and deeply nested instances end with an error, never a crash.
@Suite("Deep nesting and recursion")
struct NestingTests {
    static let tree: JSONValue = [
        "$defs": ["node": ["type": "array", "items": ["$ref": "#/$defs/node"]]],
        "$ref": "#/$defs/node",
    ]

    static func nested(_ depth: Int) -> JSONValue {
        var value: JSONValue = []
        for _ in 0..<depth { value = [value] }
        return value
    }

    @Test func moderatelyDeepInstancesValidate() throws {
        let schema = try JSONSchema(Self.tree)
        #expect(schema.isValid(Self.nested(50)))
        #expect(!schema.isValid([[[1]]]))
        #expect(
            schema.validate([[[1]]]).errors.map(\.description)
                == ["at /0/0/0: expected array, found number 1 (schema /$ref/items/$ref/items/$ref/items/$ref/type)"]
        )
    }

    @Test func veryDeepInstancesFailWithAnErrorInsteadOfCrashing() throws {
        let schema = try JSONSchema(Self.tree)
        let deep = Self.nested(5_000)
        #expect(!schema.isValid(deep))
        let errors = schema.validate(deep).errors
        #expect(errors.count == 1)
        #expect(
            errors.first?.message == "the instance or schema is nested too deeply to validate (more than 256 levels)"
        )
        var shallow = schema
        shallow.maximumDepth = 10
        #expect(!shallow.isValid(Self.nested(20)))
        #expect(shallow.isValid(Self.nested(3)))
    }

    @Test func deepValidationFitsInAOneMegabyteThreadStack() async throws {
        let schema = try JSONSchema(Self.tree)
        let deep = Self.nested(1_000)
        let outcome: Bool = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: schema.validate(deep).isValid)
            }
            // Debug builds use about 1.5 KiB of stack per level of the default 256; release builds far less.
            thread.stackSize = 1 << 20
            thread.start()
        }
        #expect(!outcome)
    }

    @Test func referenceLoopsThatNeverReachTheInstanceAreReported() throws {
        let schema = try JSONSchema([
            "$defs": ["a": ["$ref": "#/$defs/b"], "b": ["$ref": "#/$defs/a"]], "$ref": "#/$defs/a",
        ])
        let errors = schema.validate(1).errors
        #expect(
            errors.map(\.description) == [
                "at root: the reference loops back to a schema already applied here, so it can never finish "
                    + "(schema /$ref/$ref/$ref)"
            ]
        )
        #expect(!schema.isValid(1))
        let selfReference = try JSONSchema(["$ref": "#"])
        #expect(!selfReference.isValid("x"))
    }

    @Test func recursiveSchemasAreCompiledOnce() throws {
        let schema: JSONValue = [
            "$id": "https://example.com/tree",
            "$dynamicAnchor": "node",
            "type": "object",
            "properties": [
                "value": ["type": "integer"],
                "children": ["type": "array", "items": ["$dynamicRef": "#node"]],
            ],
        ]
        let compiled = try JSONSchema(schema)
        #expect(compiled.isValid(["value": 1, "children": [["value": 2, "children": [["value": 3]]]]]))
        let error = try #require(compiled.validate(["children": [["children": [["value": "x"]]]]]).errors.first)
        #expect(error.instanceLocation == "/children/0/children/0/value")
        #expect(
            error.keywordLocation == "/properties/children/items/$dynamicRef/properties/children/items/$dynamicRef/"
                + "properties/value/type"
        )
    }
}

/// One compiled schema shared by many tasks at once.
@Suite("Concurrent use")
struct ConcurrencyTests {
    @Test func oneSchemaValidatesFromManyTasksAtOnce() async throws {
        let schema = try JSONSchema([
            "type": "array",
            "items": ["type": "string", "pattern": "^[a-z]+[0-9]*$"],
            "uniqueItems": true,
        ])
        let results = await withTaskGroup(of: [Bool].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    (0..<200).map { index in
                        schema.isValid([.string("abc\(index)"), index.isMultiple(of: 2) ? "x1" : "Y1"])
                    }
                }
            }
            var all: [[Bool]] = []
            for await result in group { all.append(result) }
            return all
        }
        let expected = (0..<200).map { $0.isMultiple(of: 2) }
        #expect(results.count == 8)
        #expect(results.allSatisfy { $0 == expected })
    }
}
