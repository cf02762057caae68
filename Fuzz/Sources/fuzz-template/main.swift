import Jinja

/// Compiles the input as a template and renders it with a small fixed context.
///
/// The first byte picks the options (trim_blocks, lstrip_blocks, keep_trailing_newline); the rest,
/// read as UTF-8 (invalid sequences replaced), is the source. Errors are expected; traps are not.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let flags = data[0]
    let options = TemplateOptions(
        trimBlocks: flags & 1 != 0,
        lstripBlocks: flags & 2 != 0,
        keepTrailingNewline: flags & 4 != 0
    )
    let source = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    guard let template = try? Template(source: source, name: "fuzz", options: options) else { return 0 }
    _ = try? template.render(context)
    return 0
}

let context: [String: TemplateValue] = [
    "name": "Ada",
    "empty": "",
    "count": 3,
    "ratio": 0.5,
    "flag": true,
    "nothing": nil,
    "items": [1, "two", 3.0, nil, ["nested": [true, false]]],
    "user": ["name": "Grace", "tags": ["a", "b"], "age": 85],
    "essay": "First line.\nSecond line with <html> & \"quotes\".\n",
]
