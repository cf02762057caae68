import Foundation

/// One JSON value kept as its UTF-8 text, already validated.
///
/// `params` and `result` travel as raw bytes until a handler asks for them, so routing a message
/// never builds a tree it does not need.
public struct RawJSON: Sendable, Hashable {
    /// The JSON text as UTF-8.
    public let bytes: [UInt8]

    /// Wraps bytes that are known to hold exactly one valid JSON value.
    public init(validated bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Encodes a JSON value.
    public init(_ value: JSONValue) {
        var bytes: [UInt8] = []
        JSONWriter.write(value, into: &bytes)
        self.bytes = bytes
    }

    /// Encodes any `Encodable` value with sorted keys.
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.bytes = Array(try encoder.encode(value))
    }

    /// `{}`
    public static let emptyObject = RawJSON(validated: Array("{}".utf8))
    /// `null`
    public static let null = RawJSON(validated: Array("null".utf8))

    /// The value as a tree.
    public func value() -> JSONValue {
        // The bytes were validated when this was made, so parsing cannot fail.
        (try? JSONParser.parse(bytes)) ?? .null
    }

    /// The JSON text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Decodes the value as `T`; a mismatch is an `invalidParams` error that names the field.
    public func decode<T: Decodable>(_ type: T.Type, as name: String = "params") throws(ResponseError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw ResponseError.invalidParams(decoding: error, root: name)
        } catch {
            throw ResponseError.invalidParams(field: name, problem: "\(error)")
        }
    }
}

extension ResponseError {
    /// Turns a `DecodingError` into an error that names the field (`params.clientInfo.name`) and
    /// the problem in plain words.
    static func invalidParams(decoding error: DecodingError, root: String) -> ResponseError {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.reduce(root) { partial, key in
                if let index = key.intValue { return "\(partial)[\(index)]" }
                return "\(partial).\(key.stringValue)"
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .invalidParams(field: path(context.codingPath + [key]), problem: "is required but missing")
        case .typeMismatch(let type, let context):
            return .invalidParams(field: path(context.codingPath), problem: "must be \(describe(type))")
        case .valueNotFound(let type, let context):
            return .invalidParams(field: path(context.codingPath), problem: "must be \(describe(type)), not null")
        case .dataCorrupted(let context):
            return .invalidParams(field: path(context.codingPath), problem: context.debugDescription)
        @unknown default:
            return .invalidParams(field: root, problem: "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is [Any].Type: return "an array"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array<") { return "an array" }
            if name.hasPrefix("Dictionary<") { return "an object" }
            return "an object (\(name))"
        }
    }
}
