import Foundation
import JSON

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

    /// Decodes the value as `T`; a mismatch is an `invalidParams` error that names the field
    /// (`params.clientInfo.name`) and the problem.
    public func decode<T: Decodable>(_ type: T.Type, as name: String = "params") throws(ResponseError) -> T {
        do {
            return try JSONValueDecoder.decode(T.self, from: value(), root: name)
        } catch {
            throw ResponseError.invalidParams(field: error.field, problem: error.problem)
        }
    }
}
