import CHeap
import JSON
import JSONRPC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Methods the end-to-end tests drive the real binary with (`serve --enable-test-methods`):
/// a cancellable slow request, a handler that writes to stdout behind the protocol's back, and
/// the heap in use (for leak tests; exact when the server runs with `MALLOC_ARENA_MAX=1`, since
/// glibc counts the main arena only).
enum TestMethods {
    struct SleepParams: Decodable {
        var ms: Int
    }

    struct PrintParams: Decodable {
        var text: String
    }

    static func register(in table: inout MethodTable) {
        table.register("test/sleep") { context in
            let params = try context.decodeParams(SleepParams.self)
            guard (0...600_000).contains(params.ms) else {
                throw ResponseError.invalidParams(field: "params.ms", problem: "must be between 0 and 600000")
            }
            try await Task.sleep(for: .milliseconds(params.ms))
            return RawJSON(["slept": .integer(Int64(params.ms))])
        }
        table.register(immediate: "test/print") { context throws(ResponseError) in
            let params = try context.decodeParams(PrintParams.self)
            // Both the buffered and the raw path to fd 1: neither may reach the protocol stream.
            print(params.text)
            fflush(nil)  // every stdio stream, stdout included
            _ = params.text.utf8CString.withUnsafeBufferPointer { write(STDOUT_FILENO, $0.baseAddress, $0.count - 1) }
            return .emptyObject
        }
        table.register(immediate: "test/heap") { _ throws(ResponseError) in
            RawJSON(["inUse": .integer(Int64(sr_heap_in_use()))])
        }
    }
}
