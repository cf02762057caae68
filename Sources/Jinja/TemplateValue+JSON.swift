import JSON

extension TemplateValue {
    /// A JSON value as a template value; objects keep their members' order.
    public init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .integer(let value): self = Int(exactly: value).map(TemplateValue.int) ?? .double(Double(value))
        case .double(let value): self = .double(value)
        case .string(let value): self = .string(value)
        case .array(let values): self = .array(values.map(TemplateValue.init(json:)))
        case .object(let members):
            self = .object(TemplateObject(members.entries.map { ($0.key, TemplateValue(json: $0.value)) }))
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
            return .object(JSONObject(object.entries.map { ($0.key, $0.value.json) }))
        }
    }
}
