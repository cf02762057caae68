import CCurl

/// The libcurl the engine talks to model providers through, loaded on first use.
public enum Libcurl {
    /// Why libcurl cannot be used, or nil when it can. Loads it on the first call.
    public static var loadProblem: String? {
        sr_curl_load().map { String(cString: $0) }
    }

    /// libcurl's version line (`libcurl/7.88.1 OpenSSL/3.0.15 …`), or why it is unavailable.
    public static var version: String {
        guard let text = sr_curl_version() else { return "libcurl unavailable: \(loadProblem ?? "unknown reason")" }
        return String(cString: text)
    }
}
