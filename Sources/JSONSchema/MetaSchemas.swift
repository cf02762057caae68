import JSON

/// The draft 2020-12 dialect meta-schema and its vocabulary meta-schemas, restated as values with
/// the same URIs, `$dynamicAnchor`s and constraints as the published ones (titles, comments and
/// defaults left out), so that `$ref`s to them resolve offline.
enum MetaSchemas {
    static let base = "https://json-schema.org/draft/2020-12/"
    static let dialect = base + "schema"

    static let documents: [String: JSONValue] = {
        var documents: [String: JSONValue] = [dialect: dialectSchema]
        for (name, vocabulary) in vocabularies {
            documents[base + "meta/" + name] = vocabulary
        }
        return documents
    }()

    private static func vocabulary(_ name: String, _ vocabularyName: String, _ rest: [String: JSONValue]) -> JSONValue {
        var members: [String: JSONValue] = [
            "$schema": .string(dialect),
            "$id": .string(base + "meta/" + name),
            "$vocabulary": .object([base + "vocab/" + vocabularyName: true]),
            "$dynamicAnchor": "meta",
            "type": ["object", "boolean"],
        ]
        members.merge(rest) { _, new in new }
        return .object(members)
    }

    private static let anySchema: JSONValue = ["$dynamicRef": "#meta"]
    private static let schemaMap: JSONValue = ["type": "object", "additionalProperties": anySchema]

    private static let dialectSchema: JSONValue = [
        "$schema": .string(dialect),
        "$id": .string(dialect),
        "$vocabulary": .object(
            Dictionary(
                uniqueKeysWithValues: [
                    "core", "applicator", "unevaluated", "validation", "meta-data", "format-annotation", "content",
                ]
                .map { (base + "vocab/" + $0, JSONValue.bool(true)) }
            )
        ),
        "$dynamicAnchor": "meta",
        "allOf": [
            ["$ref": "meta/core"], ["$ref": "meta/applicator"], ["$ref": "meta/unevaluated"],
            ["$ref": "meta/validation"], ["$ref": "meta/meta-data"], ["$ref": "meta/format-annotation"],
            ["$ref": "meta/content"],
        ],
        "type": ["object", "boolean"],
        "properties": [
            "definitions": schemaMap,
            "dependencies": [
                "type": "object",
                "additionalProperties": ["anyOf": [anySchema, ["$ref": "meta/validation#/$defs/stringArray"]]],
            ],
            "$recursiveAnchor": ["$ref": "meta/core#/$defs/anchorString"],
            "$recursiveRef": ["$ref": "meta/core#/$defs/uriReferenceString"],
        ],
    ]

    private static let vocabularies: [(String, JSONValue)] = [
        (
            "core",
            vocabulary(
                "core",
                "core",
                [
                    "properties": [
                        "$id": ["$ref": "#/$defs/uriReferenceString", "pattern": "^[^#]*#?$"],
                        "$schema": ["$ref": "#/$defs/uriString"],
                        "$ref": ["$ref": "#/$defs/uriReferenceString"],
                        "$anchor": ["$ref": "#/$defs/anchorString"],
                        "$dynamicRef": ["$ref": "#/$defs/uriReferenceString"],
                        "$dynamicAnchor": ["$ref": "#/$defs/anchorString"],
                        "$vocabulary": [
                            "type": "object",
                            "propertyNames": ["$ref": "#/$defs/uriString"],
                            "additionalProperties": ["type": "boolean"],
                        ],
                        "$comment": ["type": "string"],
                        "$defs": schemaMap,
                    ],
                    "$defs": [
                        "anchorString": ["type": "string", "pattern": "^[A-Za-z_][-A-Za-z0-9._]*$"],
                        "uriString": ["type": "string", "format": "uri"],
                        "uriReferenceString": ["type": "string", "format": "uri-reference"],
                    ],
                ]
            )
        ),
        (
            "applicator",
            vocabulary(
                "applicator",
                "applicator",
                [
                    "properties": [
                        "prefixItems": ["$ref": "#/$defs/schemaArray"],
                        "items": anySchema,
                        "contains": anySchema,
                        "additionalProperties": anySchema,
                        "properties": schemaMap,
                        "patternProperties": [
                            "type": "object", "additionalProperties": anySchema, "propertyNames": ["format": "regex"],
                        ],
                        "dependentSchemas": schemaMap,
                        "propertyNames": anySchema,
                        "if": anySchema,
                        "then": anySchema,
                        "else": anySchema,
                        "allOf": ["$ref": "#/$defs/schemaArray"],
                        "anyOf": ["$ref": "#/$defs/schemaArray"],
                        "oneOf": ["$ref": "#/$defs/schemaArray"],
                        "not": anySchema,
                    ],
                    "$defs": ["schemaArray": ["type": "array", "minItems": 1, "items": anySchema]],
                ]
            )
        ),
        (
            "unevaluated",
            vocabulary(
                "unevaluated",
                "unevaluated",
                ["properties": ["unevaluatedItems": anySchema, "unevaluatedProperties": anySchema]]
            )
        ),
        (
            "validation",
            vocabulary(
                "validation",
                "validation",
                [
                    "properties": [
                        "type": [
                            "anyOf": [
                                ["$ref": "#/$defs/simpleTypes"],
                                [
                                    "type": "array", "items": ["$ref": "#/$defs/simpleTypes"], "minItems": 1,
                                    "uniqueItems": true,
                                ],
                            ]
                        ],
                        "const": true,
                        "enum": ["type": "array", "items": true],
                        "multipleOf": ["type": "number", "exclusiveMinimum": 0],
                        "maximum": ["type": "number"],
                        "exclusiveMaximum": ["type": "number"],
                        "minimum": ["type": "number"],
                        "exclusiveMinimum": ["type": "number"],
                        "maxLength": ["$ref": "#/$defs/nonNegativeInteger"],
                        "minLength": ["$ref": "#/$defs/nonNegativeIntegerDefault0"],
                        "pattern": ["type": "string", "format": "regex"],
                        "maxItems": ["$ref": "#/$defs/nonNegativeInteger"],
                        "minItems": ["$ref": "#/$defs/nonNegativeIntegerDefault0"],
                        "uniqueItems": ["type": "boolean"],
                        "maxContains": ["$ref": "#/$defs/nonNegativeInteger"],
                        "minContains": ["$ref": "#/$defs/nonNegativeInteger"],
                        "maxProperties": ["$ref": "#/$defs/nonNegativeInteger"],
                        "minProperties": ["$ref": "#/$defs/nonNegativeIntegerDefault0"],
                        "required": ["$ref": "#/$defs/stringArray"],
                        "dependentRequired": [
                            "type": "object", "additionalProperties": ["$ref": "#/$defs/stringArray"],
                        ],
                    ],
                    "$defs": [
                        "nonNegativeInteger": ["type": "integer", "minimum": 0],
                        "nonNegativeIntegerDefault0": ["$ref": "#/$defs/nonNegativeInteger"],
                        "simpleTypes": ["enum": ["array", "boolean", "integer", "null", "number", "object", "string"]],
                        "stringArray": ["type": "array", "items": ["type": "string"], "uniqueItems": true],
                    ],
                ]
            )
        ),
        (
            "meta-data",
            vocabulary(
                "meta-data",
                "meta-data",
                [
                    "properties": [
                        "title": ["type": "string"],
                        "description": ["type": "string"],
                        "default": true,
                        "deprecated": ["type": "boolean"],
                        "readOnly": ["type": "boolean"],
                        "writeOnly": ["type": "boolean"],
                        "examples": ["type": "array", "items": true],
                    ]
                ]
            )
        ),
        (
            "format-annotation",
            vocabulary("format-annotation", "format-annotation", ["properties": ["format": ["type": "string"]]])
        ),
        (
            "format-assertion",
            vocabulary("format-assertion", "format-assertion", ["properties": ["format": ["type": "string"]]])
        ),
        (
            "content",
            vocabulary(
                "content",
                "content",
                [
                    "properties": [
                        "contentEncoding": ["type": "string"],
                        "contentMediaType": ["type": "string"],
                        "contentSchema": anySchema,
                    ]
                ]
            )
        ),
    ]
}
