import CCurl

/// The libcurl the engine talks to model providers through.
public enum Libcurl {
    /// libcurl's version line, e.g. `libcurl/7.88.1 OpenSSL/3.0.15 zlib/1.2.13 …`.
    public static var version: String {
        guard let text = curl_version() else { return "libcurl (unknown version)" }
        return String(cString: text)
    }
}
