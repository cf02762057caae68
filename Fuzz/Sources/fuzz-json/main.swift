import JSON

/// Parses the input as JSON; whatever parses must survive a round trip: write, parse again, equal.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // Out-of-range numbers become infinity otherwise, which JSON writes as null.
    guard let value = try? JSONParser.parse(bytes, rejectingOutOfRangeNumbers: true) else { return 0 }
    var written: [UInt8] = []
    JSONWriter.write(value, into: &written)
    let again: JSONValue
    do {
        again = try JSONParser.parse(written, rejectingOutOfRangeNumbers: true)
    } catch {
        fatalError("written JSON does not parse: \(error.description(in: written))")
    }
    precondition(again == value, "round trip changed the value")
    var pretty: [UInt8] = []
    JSONWriter.writePretty(value, into: &pretty)
    guard let fromPretty = try? JSONParser.parse(pretty, rejectingOutOfRangeNumbers: true), fromPretty == value else {
        fatalError("pretty-printed JSON does not read back as the same value")
    }
    return 0
}
