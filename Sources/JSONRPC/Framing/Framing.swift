import JSON

/// How messages are delimited on the byte stream.
public enum Framing: String, Sendable, Hashable, CaseIterable {
    /// The LSP base protocol: `Content-Length: N\r\n\r\n` then N bytes of JSON.
    case lsp
    /// Newline-delimited JSON: one message per line.
    case ndjson

    /// Appends `body` framed this way.
    public func frame(_ body: [UInt8], into output: inout [UInt8]) {
        switch self {
        case .lsp:
            output.append(contentsOf: Self.contentLengthPrefix)
            JSONWriter.writeInteger(Int64(body.count), into: &output)
            output.append(contentsOf: [0x0D, 0x0A, 0x0D, 0x0A])
            output.append(contentsOf: body)
        case .ndjson:
            output.append(contentsOf: body)
            output.append(0x0A)
        }
    }

    private static let contentLengthPrefix = Array("Content-Length: ".utf8)
}

/// The framing a connection uses: fixed, or detected from the first byte the peer sends.
public enum FramingMode: String, Sendable, Hashable, CaseIterable {
    /// `C`/`c` first means LSP headers, anything else newline-delimited JSON.
    case auto
    case lsp
    case ndjson
}
