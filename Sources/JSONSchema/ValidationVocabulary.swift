import JSON

// The validation vocabulary: assertions on the instance itself (type, enum, const, numeric
// bounds, string length and pattern, array and object sizes, uniqueItems, required,
// dependentRequired). `format` is an annotation only and is never checked.

extension SchemaCompiler {
    func compileValidationKeywords(
        _ members: JSONObject,
        _ context: NodeContext,
        into keywords: inout [Keyword]
    ) throws(SchemaError) {
        if let value = members["type"] {
            keywords.append(makeKeyword("type", context, .type(try types(value, context))))
        }
        if let value = members["enum"] {
            guard case .array(let allowed) = value else {
                throw invalid("enum", context, "enum must be an array of values, found \(Describe.value(value))")
            }
            keywords.append(makeKeyword("enum", context, .enumeration(allowed)))
        }
        if let value = members["const"] {
            keywords.append(makeKeyword("const", context, .constant(value)))
        }
        for name in ["multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"] {
            guard let value = members[name] else { continue }
            switch value {
            case .integer, .double: break
            default: throw invalid(name, context, "\(name) must be a number, found \(Describe.value(value))")
            }
            let kind: Keyword.Kind
            switch name {
            case "multipleOf":
                guard JSONEquality.compare(value, .integer(0)) > 0 else {
                    throw invalid(name, context, "multipleOf must be greater than 0, found \(Describe.value(value))")
                }
                kind = .multipleOf(value)
            case "maximum": kind = .maximum(value)
            case "exclusiveMaximum": kind = .exclusiveMaximum(value)
            case "minimum": kind = .minimum(value)
            default: kind = .exclusiveMinimum(value)
            }
            keywords.append(makeKeyword(name, context, kind))
        }
        let sizes: [(String, (Int) -> Keyword.Kind)] = [
            ("maxLength", Keyword.Kind.maxLength), ("minLength", Keyword.Kind.minLength),
            ("maxItems", Keyword.Kind.maxItems), ("minItems", Keyword.Kind.minItems),
            ("maxProperties", Keyword.Kind.maxProperties), ("minProperties", Keyword.Kind.minProperties),
        ]
        for (name, make) in sizes {
            if let size = try nonNegativeInteger(name, members, context) {
                keywords.append(makeKeyword(name, context, make(size)))
            }
        }
        // minContains and maxContains only matter next to contains (applicator vocabulary);
        // they are checked here so that a bad value is reported even without it.
        _ = try nonNegativeInteger("minContains", members, context)
        _ = try nonNegativeInteger("maxContains", members, context)
        if let value = members["pattern"] {
            guard case .string(let source) = value else {
                throw invalid("pattern", context, "pattern must be a string, found \(Describe.value(value))")
            }
            guard let pattern = ECMARegex(source) else {
                throw invalid("pattern", context, "\(Describe.value(value)) is not a valid regular expression")
            }
            keywords.append(makeKeyword("pattern", context, .pattern(pattern)))
        }
        if let value = members["uniqueItems"] {
            guard case .bool(let unique) = value else {
                throw invalid("uniqueItems", context, "uniqueItems must be a boolean, found \(Describe.value(value))")
            }
            if unique { keywords.append(makeKeyword("uniqueItems", context, .uniqueItems)) }
        }
        if let value = members["required"] {
            keywords.append(makeKeyword("required", context, .required(try strings("required", value, context))))
        }
        if let value = members["dependentRequired"] {
            guard case .object(let dependencies) = value else {
                throw invalid(
                    "dependentRequired",
                    context,
                    "dependentRequired must be an object of string arrays, found \(Describe.value(value))"
                )
            }
            var compiled: [(property: String, required: [String])] = []
            for property in dependencies.keys.sorted() {
                compiled.append((property, try strings("dependentRequired", dependencies[property]!, context)))
            }
            keywords.append(makeKeyword("dependentRequired", context, .dependentRequired(compiled)))
        }
    }

    /// The value of keyword `name` when present: a non-negative integer (`2.0` counts).
    func nonNegativeInteger(
        _ name: String,
        _ members: JSONObject,
        _ context: NodeContext
    ) throws(SchemaError) -> Int? {
        guard let value = members[name] else { return nil }
        guard let integer = value.integerValue, integer >= 0 else {
            throw invalid(name, context, "\(name) must be a non-negative integer, found \(Describe.value(value))")
        }
        return Int(clamping: integer)
    }

    private func strings(_ name: String, _ value: JSONValue, _ context: NodeContext) throws(SchemaError) -> [String] {
        guard case .array(let elements) = value else {
            throw invalid(name, context, "\(name) must be an array of strings, found \(Describe.value(value))")
        }
        var strings: [String] = []
        for element in elements {
            guard case .string(let string) = element else {
                throw invalid(name, context, "\(name) must contain only strings, found \(Describe.value(element))")
            }
            strings.append(string)
        }
        return strings
    }

    private func types(_ value: JSONValue, _ context: NodeContext) throws(SchemaError) -> JSONTypes {
        let names: [JSONValue]
        switch value {
        case .string: names = [value]
        case .array(let elements): names = elements
        default:
            throw invalid(
                "type",
                context,
                "type must be a type name or an array of them, found \(Describe.value(value))"
            )
        }
        var types: JSONTypes = []
        for name in names {
            guard case .string(let text) = name, let type = JSONTypes.named.first(where: { $0.0 == text })?.1 else {
                throw invalid(
                    "type",
                    context,
                    "\(Describe.value(name)) is not a type name (expected one of "
                        + "\"array\", \"boolean\", \"integer\", \"null\", \"number\", \"object\", \"string\")"
                )
            }
            types.insert(type)
        }
        return types
    }
}

extension Evaluator {
    func evaluateValidation(_ keyword: Keyword, _ instance: JSONValue) -> Bool {
        switch keyword.kind {
        case .type(let types):
            if types.admits(instance) { return true }
            fail(keyword, "expected \(types.listing), found \(Describe.typed(instance))")
            return false

        case .enumeration(let allowed):
            if allowed.contains(where: { JSONEquality.equal($0, instance) }) { return true }
            let shown = allowed.prefix(10).map(Describe.value).joined(separator: ", ")
            fail(
                keyword,
                "\(Describe.value(instance)) is not one of the allowed values: \(shown)"
                    + (allowed.count > 10 ? ", …" : "")
            )
            return false

        case .constant(let expected):
            if JSONEquality.equal(expected, instance) { return true }
            fail(keyword, "expected \(Describe.value(expected)), found \(Describe.value(instance))")
            return false

        case .multipleOf(let divisor):
            guard instance.isNumber, !Self.isMultiple(instance, of: divisor) else { return true }
            fail(keyword, "\(Describe.value(instance)) is not a multiple of \(Describe.value(divisor))")
            return false

        case .maximum(let limit):
            guard instance.isNumber, JSONEquality.compare(instance, limit) > 0 else { return true }
            fail(keyword, "\(Describe.value(instance)) is greater than the maximum \(Describe.value(limit))")
            return false

        case .exclusiveMaximum(let limit):
            guard instance.isNumber, JSONEquality.compare(instance, limit) >= 0 else { return true }
            fail(keyword, "\(Describe.value(instance)) is not less than the exclusive maximum \(Describe.value(limit))")
            return false

        case .minimum(let limit):
            guard instance.isNumber, JSONEquality.compare(instance, limit) < 0 else { return true }
            fail(keyword, "\(Describe.value(instance)) is less than the minimum \(Describe.value(limit))")
            return false

        case .exclusiveMinimum(let limit):
            guard instance.isNumber, JSONEquality.compare(instance, limit) <= 0 else { return true }
            fail(
                keyword,
                "\(Describe.value(instance)) is not greater than the exclusive minimum \(Describe.value(limit))"
            )
            return false

        case .maxLength(let limit):
            guard case .string(let text) = instance else { return true }
            let length = text.unicodeScalars.count
            guard length > limit else { return true }
            fail(
                keyword,
                "\(Describe.value(instance)) is longer than the maximum length \(limit) "
                    + "(\(Describe.count(length, "character")))"
            )
            return false

        case .minLength(let limit):
            guard case .string(let text) = instance else { return true }
            let length = text.unicodeScalars.count
            guard length < limit else { return true }
            fail(
                keyword,
                "\(Describe.value(instance)) is shorter than the minimum length \(limit) "
                    + "(\(Describe.count(length, "character")))"
            )
            return false

        case .pattern(let pattern):
            guard case .string(let text) = instance, !pattern.matches(text) else { return true }
            fail(
                keyword,
                "\(Describe.value(instance)) does not match the pattern \(Describe.value(.string(pattern.source)))"
            )
            return false

        case .maxItems(let limit):
            guard case .array(let items) = instance, items.count > limit else { return true }
            fail(keyword, "the array has \(Describe.count(items.count, "item")), more than the maximum \(limit)")
            return false

        case .minItems(let limit):
            guard case .array(let items) = instance, items.count < limit else { return true }
            fail(keyword, "the array has \(Describe.count(items.count, "item")), fewer than the minimum \(limit)")
            return false

        case .uniqueItems:
            guard case .array(let items) = instance, let (first, second) = JSONEquality.firstDuplicate(in: items)
            else { return true }
            fail(keyword, "items \(first) and \(second) are equal, but items must be unique")
            return false

        case .maxProperties(let limit):
            guard case .object(let members) = instance, members.count > limit else { return true }
            let found = Describe.count(members.count, "property", plural: "properties")
            fail(keyword, "the object has \(found), more than the maximum \(limit)")
            return false

        case .minProperties(let limit):
            guard case .object(let members) = instance, members.count < limit else { return true }
            let found = Describe.count(members.count, "property", plural: "properties")
            fail(keyword, "the object has \(found), fewer than the minimum \(limit)")
            return false

        case .required(let names):
            guard case .object(let members) = instance else { return true }
            var valid = true
            for name in names where members[name] == nil {
                valid = false
                fail(keyword, "\(Describe.value(.string(name))) is required")
                if !collecting { return false }
            }
            return valid

        case .dependentRequired(let dependencies):
            guard case .object(let members) = instance else { return true }
            var valid = true
            for dependency in dependencies where members[dependency.property] != nil {
                for name in dependency.required where members[name] == nil {
                    valid = false
                    fail(
                        keyword,
                        "\(Describe.value(.string(name))) is required when "
                            + "\(Describe.value(.string(dependency.property))) is present"
                    )
                    if !collecting { return false }
                }
            }
            return valid

        default:
            preconditionFailure("not a validation keyword")
        }
    }

    /// Whether `value` is an integer multiple of `divisor` (which is positive). Integers are
    /// checked exactly; otherwise the quotient is computed in floating point and accepted when
    /// it is within a few units in the last place of a whole number, so that decimal fractions
    /// such as `0.3` and `0.1` (not exact in binary) do not give false negatives.
    static func isMultiple(_ value: JSONValue, of divisor: JSONValue) -> Bool {
        if case .integer(let number) = value, case .integer(let step) = divisor {
            return number % step == 0
        }
        let quotient = value.doubleValue / divisor.doubleValue
        guard quotient.isFinite else { return false }
        let whole = quotient.rounded()
        return abs(quotient - whole) <= 4 * quotient.ulp
    }
}

extension JSONValue {
    var isNumber: Bool {
        switch self {
        case .integer, .double: return true
        default: return false
        }
    }

    var doubleValue: Double {
        switch self {
        case .integer(let number): return Double(number)
        case .double(let number): return number
        default: return .nan
        }
    }
}
