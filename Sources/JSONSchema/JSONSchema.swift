import JSON

/// A JSON Schema (draft 2020-12), compiled once and then used to validate any number of instances.
///
/// Scope: the core, applicator, validation and unevaluated vocabularies of draft 2020-12 —
/// `$id`, `$anchor`, `$dynamicAnchor`, `$ref`, `$dynamicRef` and `$defs` with relative URI
/// resolution and JSON Pointer fragments (`~0`/`~1` and percent-decoding); `allOf`, `anyOf`,
/// `oneOf`, `not`, `if`/`then`/`else`, `dependentSchemas`, `prefixItems`, `items`, `contains`
/// with `minContains`/`maxContains`, `properties`, `patternProperties`, `additionalProperties`,
/// `propertyNames`, `unevaluatedItems`, `unevaluatedProperties`; `type`, `enum`, `const`,
/// `multipleOf`, the numeric bounds, `minLength`/`maxLength` (counted in Unicode code points),
/// `pattern`, the array and object size bounds, `uniqueItems`, `required`, `dependentRequired`;
/// boolean schemas. Numbers compare by value (`1` equals `1.0`, which is also an integer),
/// objects ignore member order, and `multipleOf` tolerates binary floating-point rounding. When
/// the root's `$schema` names a registry meta-schema with a `$vocabulary`, only the listed
/// vocabularies' keywords apply. Unknown keywords are ignored.
///
/// `format` is an annotation only: it never makes an instance invalid. The meta-data and content
/// keywords (`title`, `default`, `contentMediaType`, …) are ignored likewise.
///
/// Regular expressions (`pattern`, `patternProperties`) are ECMA-262 patterns run by ICU
/// (Foundation's `NSRegularExpression`) over Unicode code points, unanchored. Where the dialects
/// differ the pattern is translated: `\d` and `\w` (and their negations) stay ASCII-only, `$`
/// matches only at the very end, and `[` and `&` inside a class are literal; `\b` and `\s` keep
/// ICU's Unicode definitions, and ICU-only syntax (possessive quantifiers, inline flags) is
/// accepted rather than rejected.
///
/// References never touch the network: `$ref` may point into the schema itself, into documents
/// of the ``SchemaRegistry``, or to the bundled draft 2020-12 meta-schemas; anything else is a
/// ``SchemaError`` at compile time. References that loop without moving into the instance, and
/// instances nested deeper than ``maximumDepth``, produce a validation error instead of running
/// forever or exhausting the stack.
///
/// ```swift
/// let schema = try JSONSchema(["type": "object", "required": ["name"]])
/// let result = schema.validate(["nom": "x"])
/// // result.errors[0].description == #"at root: "name" is required (schema /required)"#
/// ```
public struct JSONSchema: Sendable {
    let program: CompiledProgram

    /// The deepest nesting of subschema evaluations allowed before validation gives up on an
    /// instance with an error (each level of instance nesting costs at least one).
    public var maximumDepth: Int = 256

    /// Compiles `schema`. `$ref`s are resolved now, against the schema itself, `registry` and the
    /// bundled meta-schemas; a root without an absolute `$id` is a document with no URI of its own.
    ///
    /// - Throws: ``SchemaError`` with the location and a description of the first problem: a keyword
    ///   whose value has the wrong type or range, an invalid regular expression, a subschema that is
    ///   neither an object nor a boolean, or a reference that resolves to nothing.
    public init(_ schema: JSONValue, registry: SchemaRegistry = .init()) throws(SchemaError) {
        program = try SchemaCompiler.compile(schema, registry: registry)
    }

    /// Validates `instance`, returning every error found (none when it is valid).
    public func validate(_ instance: JSONValue) -> ValidationResult {
        let evaluator = Evaluator(program: program, maximumDepth: maximumDepth, collecting: true)
        var ignored = Evaluated()
        _ = evaluator.evaluate(program.root, instance, &ignored)
        return ValidationResult(errors: evaluator.errors)
    }

    /// Whether `instance` is valid; faster than ``validate(_:)`` since it stops at the first failure.
    public func isValid(_ instance: JSONValue) -> Bool {
        let evaluator = Evaluator(program: program, maximumDepth: maximumDepth, collecting: false)
        var ignored = Evaluated()
        return evaluator.evaluate(program.root, instance, &ignored)
    }
}
