import JSON
import Testing

@Suite("JSON Patch")
struct JSONPatchTests {
    @Test func setReplacesAnExistingMember() {
        var document: JSONValue = ["tasks": ["a": ["state": "pending"]]]
        let operation = document.set("running", at: ["tasks", "a", "state"])
        #expect(operation == JSONPatchOperation(op: .replace, path: "/tasks/a/state", value: "running"))
        #expect(document == ["tasks": ["a": ["state": "running"]]])
    }

    @Test func setAddsAtTheFirstMissingLevel() {
        var document: JSONValue = ["tasks": [:]]
        let operation = document.set(3, at: ["tasks", "b", "attempts"])
        #expect(operation == JSONPatchOperation(op: .add, path: "/tasks/b", value: ["attempts": 3]))
        #expect(document == ["tasks": ["b": ["attempts": 3]]])
    }

    @Test func removeDeletesAndSaysSo() {
        var document: JSONValue = ["a": 1, "b": 2]
        #expect(document.remove(at: ["a"]) == JSONPatchOperation(op: .remove, path: "/a"))
        #expect(document.remove(at: ["zz"]) == nil)
        #expect(document == ["b": 2])
    }

    @Test func pointersEscapeSlashAndTilde() {
        var document: JSONValue = [:]
        let operation = document.set(true, at: ["a/b", "c~d"])
        #expect(operation.path == "/a~1b")
        #expect(JSONPatchOperation.pointer(["a/b", "c~d"]) == "/a~1b/c~0d")
        let copy = try? JSONValue.object([:]).applying([
            JSONPatchOperation(op: .add, path: "/a~1b", value: ["c~d": true])
        ])
        #expect(copy == document)
    }

    @Test func operationsReplayedOnACopyGiveTheSameDocument() throws {
        var document: JSONValue = ["rev": 0, "tasks": [:]]
        let start = document
        var operations: [JSONPatchOperation] = []
        operations.append(document.set(1, at: ["rev"]))
        operations.append(document.set("running", at: ["tasks", "x", "state"]))
        operations.append(document.set("inference", at: ["tasks", "x", "currentStage"]))
        operations.append(document.set(nil, at: ["tasks", "x", "currentStage"]))
        operations.append(document.remove(at: ["tasks", "x", "state"])!)
        #expect(try start.applying(operations) == document)
    }

    @Test func aPatchThatDoesNotFitIsAnError() {
        #expect(throws: JSONPatchError(description: "replace at '/a': there is no such member")) {
            try JSONValue.object([:]).applying([JSONPatchOperation(op: .replace, path: "/a", value: 1)])
        }
        #expect(throws: JSONPatchError(description: "no object at the parent of '/a/b'")) {
            try JSONValue.object([:]).applying([JSONPatchOperation(op: .add, path: "/a/b", value: 1)])
        }
    }
}
