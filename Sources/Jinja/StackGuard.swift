#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Tells when the current thread's stack is nearly used up, so that deeply nested templates fail with an
/// error instead of crashing, whatever stack size the calling thread was given.
struct StackGuard {
    /// Lowest stack address we let recursion reach; 0 when the stack bounds are unknown.
    private let floor: UInt

    /// Room kept free below the deepest check for the frames between two checks.
    static let margin: UInt = 128 * 1024

    init() {
        var low: UInt = 0
        #if canImport(Glibc)
        // pthread_getattr_np is a GNU extension the Glibc module does not import, so look it up at run time.
        typealias GetAttributes = @convention(c) (pthread_t, UnsafeMutablePointer<pthread_attr_t>) -> Int32
        if let symbol = dlsym(nil, "pthread_getattr_np") {
            let getAttributes = unsafeBitCast(symbol, to: GetAttributes.self)
            let attributes = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
            defer { attributes.deallocate() }
            if getAttributes(pthread_self(), attributes) == 0 {
                var address: UnsafeMutableRawPointer?
                var size = 0
                if pthread_attr_getstack(attributes, &address, &size) == 0, let address {
                    low = UInt(bitPattern: address)
                }
                pthread_attr_destroy(attributes)
            }
        }
        #elseif canImport(Darwin)
        let thread = pthread_self()
        low = UInt(bitPattern: pthread_get_stackaddr_np(thread)) - UInt(pthread_get_stacksize_np(thread))
        #endif
        floor = low == 0 ? 0 : low + StackGuard.margin
    }

    /// Whether the caller is closer to the end of the stack than the margin.
    var isExhausted: Bool {
        var marker: UInt8 = 0
        let here = withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
        return here < floor
    }
}

/// Counts nesting and, past a depth no ordinary template reaches, also watches the stack.
struct NestingBudget {
    private var depth = 0
    private var stack: StackGuard?
    /// Looking up the stack bounds costs a system call, so shallow templates never pay for it.
    private static let checkStackFrom = 48

    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Enters one level; false when the depth limit or the stack is exhausted.
    mutating func enter() -> Bool {
        depth += 1
        if depth > limit { return false }
        if depth >= NestingBudget.checkStackFrom {
            if stack == nil { stack = StackGuard() }
            if stack!.isExhausted { return false }
        }
        return true
    }

    mutating func leave() { depth -= 1 }
}
