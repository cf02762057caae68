#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Minimal file writing for test artifacts.
enum FileOutput {
    static func write(_ text: String, to directory: String, file: String) {
        var partial = ""
        for component in directory.split(separator: "/") {
            partial += "/" + component
            mkdir(partial, 0o755)
        }
        guard let handle = fopen(directory + "/" + file, "w") else { return }
        fputs(text, handle)
        fclose(handle)
    }
}
