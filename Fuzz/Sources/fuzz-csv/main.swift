import StageEngine

/// Reads the input (as UTF-8) as a CSV catalog, the way the template catalogs and membership files
/// are read: every problem must become a diagnostic, with positions inside the text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let table = CSVTable(text: text, file: "data/1_raw/essay_templates.csv")
    let lineCount = text.reduce(1) { $1.isNewline ? $0 + 1 : $0 } + 1
    for cell in table.header + table.rows.flatMap(\.cells) {
        precondition(cell.line >= 1 && cell.column >= 1, "cell at \(cell.line):\(cell.column)")
        precondition(cell.line <= lineCount + text.unicodeScalars.count, "cell past the end")
    }
    for (index, cell) in table.header.enumerated() {
        guard let found = table.columnIndex(cell.value) else { fatalError("header column \(index) not found") }
        precondition(table.header[found].value == cell.value, "columnIndex found another column")
    }
    for name in ["template_id", "generator", "active", "parser"] { _ = table.columnIndex(name) }
    for diagnostic in table.diagnostics { _ = String(describing: diagnostic) }
    return 0
}
