import JSON

/// Encodes outgoing messages as compact JSON bytes (the frame body, without framing).
public enum MessageEncoder {
    private static let resultPrefix = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
    private static let resultInfix = Array(#","result":"#.utf8)
    private static let errorInfix = Array(#","error":"#.utf8)

    /// `{"jsonrpc":"2.0","id":…,"result":…}`
    public static func result(id: RequestID, _ result: RawJSON, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: resultPrefix)
        id.write(into: &bytes)
        bytes.append(contentsOf: resultInfix)
        bytes.append(contentsOf: result.bytes)
        bytes.append(UInt8(ascii: "}"))
    }

    /// `{"jsonrpc":"2.0","id":…,"error":{…}}`
    public static func error(id: RequestID, _ error: ResponseError, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: resultPrefix)
        id.write(into: &bytes)
        bytes.append(contentsOf: errorInfix)
        JSONWriter.write(error.json, into: &bytes)
        bytes.append(UInt8(ascii: "}"))
    }

    /// A response with either outcome.
    public static func response(id: RequestID, _ outcome: Result<RawJSON, ResponseError>, into bytes: inout [UInt8]) {
        switch outcome {
        case .success(let value): result(id: id, value, into: &bytes)
        case .failure(let failure): error(id: id, failure, into: &bytes)
        }
    }

    /// `{"jsonrpc":"2.0","method":…,"params":…}`
    public static func notification(method: String, params: RawJSON?, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: #"{"jsonrpc":"2.0","method":"#.utf8)
        JSONWriter.writeString(method, into: &bytes)
        if let params {
            bytes.append(contentsOf: #","params":"#.utf8)
            bytes.append(contentsOf: params.bytes)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// `{"jsonrpc":"2.0","id":…,"method":…,"params":…}`
    public static func request(id: RequestID, method: String, params: RawJSON?, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: resultPrefix)
        id.write(into: &bytes)
        bytes.append(contentsOf: #","method":"#.utf8)
        JSONWriter.writeString(method, into: &bytes)
        if let params {
            bytes.append(contentsOf: #","params":"#.utf8)
            bytes.append(contentsOf: params.bytes)
        }
        bytes.append(UInt8(ascii: "}"))
    }
}
