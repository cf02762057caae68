import StageEngine

/// Reads the input (as UTF-8) as a CSV catalog, the way the template catalogs and membership files
/// are read: every problem must become a diagnostic, cells must have positions inside the text,
/// and every row must have as many cells as the header (short rows padded, long ones cut).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let table = CSVTable(text: text, file: "data/1_raw/essay_templates.csv")
    let lineCount = text.reduce(1) { $1.isNewline ? $0 + 1 : $0 } + 1
    for cell in table.header + table.rows.flatMap(\.cells) {
        // Column 0: a cell padded in for a short row, which has no position of its own.
        guard cell.line >= 1, cell.column >= 0, cell.line <= lineCount else {
            fatalError("cell \(cell.value.debugDescription) at \(cell.line):\(cell.column)")
        }
    }
    for row in table.rows where row.cells.count != table.header.count {
        fatalError("row at line \(row.line) has \(row.cells.count) cells, the header \(table.header.count)")
    }
    for (index, cell) in table.header.enumerated() {
        guard let found = table.columnIndex(cell.value) else { fatalError("header column \(index) not found") }
        precondition(table.header[found].value == cell.value, "columnIndex found another column")
    }
    for name in ["template_id", "generator", "active", "parser"] { _ = table.columnIndex(name) }
    for diagnostic in table.diagnostics { _ = String(describing: diagnostic) }
    return 0
}
