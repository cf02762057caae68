import JSONRPC

/// Feeds the input to a `FrameDecoder` in chunks, in every framing mode.
///
/// The first byte picks the mode and the maximum message size, the next eight the chunk sizes
/// (cycled); the rest is the stream. Every frame handed out must be within the size limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 9 else { return 0 }
    let control = data[0]
    let modes = FramingMode.allCases
    let mode = modes[Int(control) % modes.count]
    let maximumMessageSize = (control & 0x80) != 0 ? 64 : 1 << 20
    let chunkSizes = (1...8).map { Int(data[$0]) + 1 }
    let stream = UnsafeBufferPointer(start: data + 9, count: size - 9)

    var decoder = FrameDecoder(mode: mode, maximumMessageSize: maximumMessageSize)
    var frames = 0
    let handle: (FrameDecoder.Event) -> Void = { event in
        if case .frame(let body) = event {
            precondition(body.count <= maximumMessageSize, "frame over the size limit")
            // Touch every byte so that a dangling buffer is caught by the address sanitizer.
            var sum = 0
            for byte in body { sum &+= Int(byte) }
            frames &+= sum & 1
        }
    }
    var offset = 0
    var next = 0
    while offset < stream.count {
        let count = min(chunkSizes[next % chunkSizes.count], stream.count - offset)
        next += 1
        // A copy per chunk, so that a decoder keeping a pointer into a past chunk is caught.
        let chunk = Array(stream[offset..<offset + count])
        chunk.withUnsafeBufferPointer { decoder.feed($0, handle) }
        offset += count
    }
    decoder.finish(handle)
    return frames == -1 ? 1 : 0
}
