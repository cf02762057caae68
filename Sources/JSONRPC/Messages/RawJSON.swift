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

    /// The value as a tree, refusing numbers too large for a `Double` (`1e400`), which `value()`
    /// would turn into `null`: an `invalidParams` error naming `name`.
    public func checkedValue(as name: String = "params") throws(ResponseError) -> JSONValue {
        do {
            return try JSONParser.parse(bytes, rejectingOutOfRangeNumbers: true)
        } catch {
            let literal = bytes[min(error.offset, bytes.count)...].prefix { byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "+-.eE".utf8.contains(byte)
            }
            throw ResponseError.invalidParams(
                field: name,
                problem:
                    "contains \(String(decoding: literal, as: UTF8.self)) at byte \(error.offset), a number too large for a double"
            )
        }
    }

    /// The JSON text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Decodes the value as `T`; a mismatch is an `invalidParams` error that names the field
    /// (`params.clientInfo.name`) and the problem.
    /// A number too large for a `Double` (`1e400`) is refused rather than silently turned into
    /// something else.
    public func decode<T: Decodable>(_ type: T.Type, as name: String = "params") throws(ResponseError) -> T {
        let tree = try checkedValue(as: name)
        do {
            return try JSONValueDecoder.decode(T.self, from: tree, root: name)
        } catch {
            throw ResponseError.invalidParams(field: error.field, problem: error.problem)
        }
    }
}
