import JSON

/// A request id: JSON-RPC allows a string, a number or null.
///
/// Fractional numbers are rejected when decoding (the specification says ids SHOULD NOT have
/// them), so that an id always echoes back exactly as the client wrote it.
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case number(Int64)
    case string(String)
    case null

    public var description: String {
        switch self {
        case .number(let value): return String(value)
        case .string(let value): return "\"\(value)\""
        case .null: return "null"
        }
    }

    /// The id as a JSON value.
    public var json: JSONValue {
        switch self {
        case .number(let value): return .integer(value)
        case .string(let value): return .string(value)
        case .null: return .null
        }
    }

    /// The id from a JSON value, or nil when the value cannot be an id.
    public init?(json: JSONValue) {
        switch json {
        case .integer(let value): self = .number(value)
        case .string(let value): self = .string(value)
        case .null: self = .null
        default: return nil
        }
    }

    func write(into bytes: inout [UInt8]) {
        switch self {
        case .number(let value): JSONWriter.writeInteger(value, into: &bytes)
        case .string(let value): JSONWriter.writeString(value, into: &bytes)
        case .null: bytes.append(contentsOf: "null".utf8)
        }
    }
}
