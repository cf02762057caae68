import JSON
import JSONRPC

/// Decodes the input as one frame body, as the connection does with every frame it reads.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = UnsafeBufferPointer(start: data, count: size)
    let content = MessageDecoder.decode(frame)
    // The array entry point must agree with the buffer one.
    precondition(MessageDecoder.decode(Array(frame)) == content, "the two decode entry points disagree")
    // Every result is described and hashed, as logging and the connection's tables do.
    var hasher = Hasher()
    hasher.combine(content)
    _ = hasher.finalize()
    _ = String(describing: content)
    return 0
}
