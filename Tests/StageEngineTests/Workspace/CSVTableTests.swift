import StageEngine
import Testing

@Suite("CSV table")
struct CSVTableTests {
    @Test func readsQuotedFieldsWithPositions() {
        let table = CSVTable(
            text: "\u{FEFF}id,text,n\r\na,\"x, \"\"y\"\"\",1\nb,\"two\nlines\",2\n\n",
            file: "t.csv"
        )
        #expect(table.diagnostics.isEmpty)
        #expect(table.header.map(\.value) == ["id", "text", "n"])
        #expect(table.rows.map { $0.cells.map(\.value) } == [["a", "x, \"y\"", "1"], ["b", "two\nlines", "2"]])
        #expect(table.rows.map(\.line) == [2, 3])
        #expect(table.rows[1].cells[2].line == 4)
        #expect(table.rows[1].cells[2].column == 8)
        #expect(table.rows[0].cells[1].column == 3)
    }

    @Test("columns count characters, not bytes; a lone CR stays in its field; a trailing comma is an empty field")
    func positionsAndEdges() {
        let table = CSVTable(text: "a,b,c\né😀x,\"ü\"\"\",z\nr\rs,,\n", file: "t.csv")
        #expect(table.diagnostics.isEmpty)
        #expect(table.rows.map { $0.cells.map(\.value) } == [["é😀x", "ü\"", "z"], ["r\rs", "", ""]])
        #expect(table.rows[0].cells.map(\.column) == [1, 5, 11])
        #expect(table.rows[1].cells.map(\.column) == [1, 5, 6])
        let problem = CSVTable(text: "a,b\n😀,x\"y\n", file: "t.csv").diagnostics.map(\.description)
        #expect(
            problem == [
                "t.csv:2:4: error: '\"' inside an unquoted field; quote the field and double the '\"' [csv.stray-quote]"
            ]
        )
    }

    @Test(
        "reports each syntax problem where it is",
        arguments: [
            (
                "a,b\n1,\"open\n",
                "t.csv:2:3: error: quoted field is never closed; add the closing '\"' [csv.unterminated-quote]"
            ),
            ("a,b\n1,2,3\n", "t.csv:2: error: row has 3 fields but the header has 2 [csv.field-count]"),
            (
                "a,b\n1,x\"y\n",
                "t.csv:2:4: error: '\"' inside an unquoted field; quote the field and double the '\"' [csv.stray-quote]"
            ),
            (
                "a,b\n\"q\"x,2\n",
                "t.csv:2:4: error: text after a closing quote; quote the whole field and double any '\"' inside [csv.text-after-quote]"
            ),
        ]
    )
    func syntaxProblems(text: String, expected: String) {
        #expect(CSVTable(text: text, file: "t.csv").diagnostics.map(\.description) == [expected])
    }
}
