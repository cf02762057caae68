import OutputParsing

/// Runs every parser of ``ParserRegistry/standard`` (`json` among them) over the input as UTF-8.
///
/// A parser must not trap on any input, must name itself in its outcome and keep the raw text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let registry = ParserRegistry.standard
    for name in registry.names {
        guard let parser = try? registry.parser(named: name) else { fatalError("\(name) is listed but not found") }
        let outcome = parser.parse(raw)
        precondition(outcome.parser == name, "\(name): the outcome names \(outcome.parser)")
        precondition(outcome.llmRawText == raw, "\(name): the raw text was not kept")
        if !outcome.succeeded {
            let stubbed = parser.parse(raw, stubFallback: { "stub" })
            precondition(stubbed.text == "stub", "\(name): the stub fallback was not used")
        }
    }
    return 0
}
