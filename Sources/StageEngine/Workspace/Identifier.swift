/// Rules for the names that become path components: template ids, generation ids, stage names.
///
/// Such a name is 1–128 characters of letters, digits, `.`, `_` and `-`, does not start with
/// `.`, and so can never be a separator, `..`, or a hidden file: every path built from it stays
/// inside the workspace.
public enum Identifier {
    public static let maximumLength = 128

    /// Why `value` cannot be used as a `kind` (e.g. "template id"), or nil when it can.
    public static func problem(_ value: String, kind: String) -> String? {
        if value.isEmpty { return "\(kind) is empty" }
        if value.utf8.count > maximumLength { return "\(kind) is longer than \(maximumLength) characters" }
        if value.hasPrefix(".") { return "\(kind) '\(value)' must not start with '.'" }
        for scalar in value.unicodeScalars {
            let allowed =
                (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
                || scalar == "." || scalar == "_" || scalar == "-"
            if !allowed {
                return "\(kind) '\(value)' may only contain letters, digits, '.', '_' and '-'"
            }
        }
        return nil
    }
}
