import JSON

extension TemplateValue {
    /// A JSON value as a template value (JSON objects arrive unordered; their keys are sorted).
    public init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .integer(let value): self = Int(exactly: value).map(TemplateValue.int) ?? .double(Double(value))
        case .double(let value): self = .double(value)
        case .string(let value): self = .string(value)
        case .array(let values): self = .array(values.map(TemplateValue.init(json:)))
        case .object(let members):
            self = .object(TemplateObject(members.keys.sorted().map { ($0, TemplateValue(json: members[$0]!)) }))
        }
    }

    /// The value as JSON.
    public var json: JSONValue {
        switch self {
        case .null: return .null
        case .bool(let value): return .bool(value)
        case .int(let value): return .integer(Int64(value))
        case .double(let value): return .double(value)
        case .string(let value): return .string(value)
        case .array(let values): return .array(values.map(\.json))
        case .object(let object):
            return .object(Dictionary(uniqueKeysWithValues: object.entries.map { ($0.key, $0.value.json) }))
        }
    }
}
