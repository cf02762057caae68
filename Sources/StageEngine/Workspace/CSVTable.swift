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
        var records: [Row] = []
        var problems: [Diagnostic] = []
        var scalars = Array(text.unicodeScalars)
        if scalars.first == "\u{FEFF}" { scalars.removeFirst() }

        var index = 0
        var line = 1
        var column = 1
        var current: [Cell] = []
        var rowLine = 1
        var rowIsBlank = true

        func endRow() {
            if !(rowIsBlank && current.count <= 1 && (current.first?.value.isEmpty ?? true)) {
                records.append(Row(line: rowLine, cells: current))
            }
            current = []
            rowIsBlank = true
        }

        while index <= scalars.count {
            // One field per iteration.
            let fieldLine = line
            let fieldColumn = column
            if current.isEmpty { rowLine = line }
            var value = String.UnicodeScalarView()
            if index < scalars.count && scalars[index] == "\"" {
                rowIsBlank = false
                index += 1
                column += 1
                var closed = false
                while index < scalars.count {
                    let scalar = scalars[index]
                    if scalar == "\"" {
                        if index + 1 < scalars.count && scalars[index + 1] == "\"" {
                            value.append("\"")
                            index += 2
                            column += 2
                            continue
                        }
                        index += 1
                        column += 1
                        closed = true
                        break
                    }
                    if scalar == "\n" {
                        line += 1
                        column = 1
                    } else {
                        column += 1
                    }
                    value.append(scalar)
                    index += 1
                }
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
                if index < scalars.count && scalars[index] != "," && scalars[index] != "\n" && scalars[index] != "\r" {
                    problems.append(
                        Diagnostic(
                            file: file,
                            line: line,
                            column: column,
                            code: "csv.text-after-quote",
                            message: "text after a closing quote; quote the whole field and double any '\"' inside"
                        )
                    )
                    while index < scalars.count && scalars[index] != "," && scalars[index] != "\n" {
                        index += 1
                        column += 1
                    }
                }
            } else {
                while index < scalars.count {
                    let scalar = scalars[index]
                    if scalar == "," || scalar == "\n" { break }
                    if scalar == "\r" && index + 1 < scalars.count && scalars[index + 1] == "\n" { break }
                    if scalar == "\"" {
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
                    value.append(scalar)
                    index += 1
                    column += 1
                }
                if !value.isEmpty { rowIsBlank = false }
            }
            current.append(Cell(value: String(value), line: fieldLine, column: fieldColumn))
            if index >= scalars.count {
                endRow()
                break
            }
            let separator = scalars[index]
            if separator == "," {
                rowIsBlank = false
                index += 1
                column += 1
                continue
            }
            // A line end (CRLF or LF).
            if separator == "\r" { index += 1 }
            index += 1
            line += 1
            column = 1
            endRow()
        }

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
            var cells = row.cells
            if cells.count < header.count {
                let last = cells.last
                cells += (cells.count..<header.count).map { _ in
                    Cell(value: "", line: last?.line ?? row.line, column: 0)
                }
            } else {
                cells = Array(cells.prefix(header.count))
            }
            body[position].cells = cells
        }
        rows = body
        diagnostics = problems
    }

    /// The position of a column in the header.
    public func columnIndex(_ name: String) -> Int? {
        header.firstIndex { $0.value == name }
    }
}
