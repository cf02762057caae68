import Foundation

/// `file:` URIs as LSP clients send them (`rootUri`, `workspaceFolders[].uri`), read as local paths.
enum FileURI {
    /// Why a URI names no local path; `problem` reads after the member's name.
    struct Failure: Error, Sendable {
        var problem: String
    }

    /// The percent-decoded path of `uri`: `file:///home/me/a%20b` → `/home/me/a b`. The authority
    /// may be empty or `localhost`; a query or fragment ends the path, as RFC 3986 reads it.
    static func path(of uri: String) throws(Failure) -> String {
        guard let colon = uri.firstIndex(of: ":"), uri[..<colon].lowercased() == "file" else {
            throw Failure(
                problem: "must be a file: URI such as file:///path/to/workspace, not '\(uri)': "
                    + "the server reads the workspace from its own disk"
            )
        }
        var rest = Substring(uri[uri.index(after: colon)...])
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            let host = rest[..<authorityEnd]
            guard host.isEmpty || host.lowercased() == "localhost" else {
                throw Failure(
                    problem: "names the host '\(host)' in '\(uri)': only this machine's files "
                        + "(file:///…) can be a workspace"
                )
            }
            rest = rest[authorityEnd...]
        }
        let pathEnd = rest.firstIndex { $0 == "?" || $0 == "#" } ?? rest.endIndex
        let encoded = rest[..<pathEnd]
        guard encoded.hasPrefix("/") else {
            throw Failure(problem: "has no absolute path in '\(uri)': write file:///path/to/workspace")
        }
        return try percentDecoded(encoded, uri: uri)
    }

    private static func percentDecoded(_ text: Substring, uri: String) throws(Failure) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw Failure(problem: "has a '%' not followed by two hex digits in '\(uri)'")
            }
            bytes.append(high << 4 | low)
        }
        guard !bytes.contains(0), let path = String(validating: bytes, as: UTF8.self) else {
            throw Failure(problem: "decodes to a path that is not UTF-8 text in '\(uri)'")
        }
        return path
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension FileURI {
    /// The `file:` URI of an absolute path, each byte outside RFC 3986's unreserved set and `/`
    /// percent-encoded: `/home/me/a b` → `file:///home/me/a%20b`.
    static func uri(of path: String) -> String {
        var text = "file://"
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "/"):
                text.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                text += String(format: "%%%02X", byte)
            }
        }
        return text
    }
}
