/// A CSV file read strictly (RFC 4180), with the line and column of every cell, so that each
/// problem can be reported where it is.
///
/// Quoted fields may hold commas, doubled quotes and line breaks; CRLF and LF line ends are both
/// accepted; a UTF-8 byte-order mark is skipped. Blank lines are ignored.
public struct CSVTable: Sendable {
    public struct Cell: Sendable, Hashable {
        public var value: String
        public var line: Int
        public var column: Int
    }

    public struct Row: Sendable, Hashable {
        /// The line the row starts on.
        public var line: Int
        public var cells: [Cell]
    }

    /// Path relative to the workspace, for diagnostics.
    public let file: String
    public let header: [Cell]
    public let rows: [Row]
    /// Syntax problems (unterminated quote, wrong number of fields, …).
    public let diagnostics: [Diagnostic]

    /// Parses `text`; never fails: what cannot be read becomes a diagnostic.
    public init(text: String, file: String) {
        self.file = file
        var text = text
        let (records, syntax) = text.withUTF8 { Self.records(in: $0, file: file) }
        var problems = syntax
        header = records.first?.cells ?? []
        var body = Array(records.dropFirst())
        for (position, row) in body.enumerated() where row.cells.count != header.count {
            problems.append(
                Diagnostic(
                    file: file,
                    line: row.line,
                    column: 0,
                    code: "csv.field-count",
                    message: "row has \(row.cells.count) fields but the header has \(header.count)"
                )
            )
            // Pad or cut so that the cells line up with the header for the checks that follow.
            body[position].cells = Self.fitted(row, fields: header.count)
        }
        rows = body
        diagnostics = problems
    }

    /// The records of `bytes` (UTF-8), each cell with its line and column (counted in Unicode
    /// scalars), and the syntax problems met. Works on the bytes: a membership file of a million
    /// rows is read without making a scalar array of it or growing each cell a scalar at a time.
    static func records(in bytes: UnsafeBufferPointer<UInt8>, file: String) -> ([Row], [Diagnostic]) {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n")
        let carriageReturn = UInt8(ascii: "\r")
        let count = bytes.count
        var records: [Row] = []
        var problems: [Diagnostic] = []
        var index = 0
        // A UTF-8 byte-order mark.
        if count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { index = 3 }
        var line = 1
        var column = 1
        var current: [Cell] = []
        var rowLine = 1
        var rowIsBlank = true
        var unquoted: [UInt8] = []

        func endRow() {
            if !(rowIsBlank && current.count <= 1 && (current.first?.value.isEmpty ?? true)) {
                records.append(Row(line: rowLine, cells: current))
            }
            current = []
            rowIsBlank = true
        }
        /// Counts the byte as a column unless it continues a multi-byte character.
        func advanceColumn(_ byte: UInt8) {
            if byte & 0xC0 != 0x80 { column += 1 }
        }

        while index <= count {
            // One field per iteration.
            let fieldLine = line
            let fieldColumn = column
            if current.isEmpty { rowLine = line }
            let value: String
            if index < count && bytes[index] == quote {
                rowIsBlank = false
                index += 1
                column += 1
                unquoted.removeAll(keepingCapacity: true)
                var closed = false
                while index < count {
                    let byte = bytes[index]
                    if byte == quote {
                        if index + 1 < count && bytes[index + 1] == quote {
                            unquoted.append(quote)
                            index += 2
                            column += 2
                            continue
                        }
                        index += 1
                        column += 1
                        closed = true
                        break
                    }
                    if byte == newline {
                        line += 1
                        column = 1
                    } else {
                        advanceColumn(byte)
                    }
                    unquoted.append(byte)
                    index += 1
                }
                value = String(decoding: unquoted, as: UTF8.self)
                if !closed {
                    problems.append(
                        Diagnostic(
                            file: file,
                            line: fieldLine,
                            column: fieldColumn,
                            code: "csv.unterminated-quote",
                            message: "quoted field is never closed; add the closing '\"'"
                        )
                    )
                }
                // After a closing quote only a separator or a line end may follow.
                if index < count && bytes[index] != comma && bytes[index] != newline && bytes[index] != carriageReturn {
                    problems.append(
                        Diagnostic(
                            file: file,
                            line: line,
                            column: column,
                            code: "csv.text-after-quote",
                            message: "text after a closing quote; quote the whole field and double any '\"' inside"
                        )
                    )
                    while index < count && bytes[index] != comma && bytes[index] != newline {
                        advanceColumn(bytes[index])
                        index += 1
                    }
                }
            } else {
                let start = index
                while index < count {
                    let byte = bytes[index]
                    if byte == comma || byte == newline { break }
                    if byte == carriageReturn && index + 1 < count && bytes[index + 1] == newline { break }
                    if byte == quote {
                        problems.append(
                            Diagnostic(
                                file: file,
                                line: line,
                                column: column,
                                code: "csv.stray-quote",
                                message: "'\"' inside an unquoted field; quote the field and double the '\"'"
                            )
                        )
                    }
                    advanceColumn(byte)
                    index += 1
                }
                value = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                if index > start { rowIsBlank = false }
            }
            current.append(Cell(value: value, line: fieldLine, column: fieldColumn))
            if index >= count {
                endRow()
                break
            }
            if bytes[index] == comma {
                rowIsBlank = false
                index += 1
                column += 1
                continue
            }
            // A line end (CRLF or LF).
            if bytes[index] == carriageReturn { index += 1 }
            index += 1
            line += 1
            column = 1
            endRow()
        }
        return (records, problems)
    }

    /// The first record in `bytes`, which start a record on line `line`; with `fields`, its cells
    /// padded or cut to that many as ``init(text:file:)`` does for rows of the wrong length.
    static func record(_ bytes: UnsafeBufferPointer<UInt8>, file: String, line: Int, fields: Int? = nil) -> Row? {
        guard var row = records(in: bytes, file: file).0.first else { return nil }
        let shift = line - 1
        row.line += shift
        for position in row.cells.indices { row.cells[position].line += shift }
        if let fields, row.cells.count != fields { row.cells = fitted(row, fields: fields) }
        return row
    }

    /// The row's cells padded with empty ones, or cut, to `fields`.
    static func fitted(_ row: Row, fields: Int) -> [Cell] {
        guard row.cells.count < fields else { return Array(row.cells.prefix(fields)) }
        let last = row.cells.last
        return row.cells
            + (row.cells.count..<fields).map { _ in Cell(value: "", line: last?.line ?? row.line, column: 0) }
    }

    /// The position of a column in the header.
    public func columnIndex(_ name: String) -> Int? {
        header.firstIndex { $0.value == name }
    }
}
