import JSON
import JSONSchema

/// Splits the input at its first NUL into a schema and an instance (without a NUL the input is
/// both), parses both as JSON, compiles the schema and validates the instance.
///
/// Compile errors are expected; traps are not, and both validation entry points must agree.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = bytes.firstIndex(of: 0) ?? size
    let schemaBytes = UnsafeBufferPointer(rebasing: bytes[0..<split])
    let instanceBytes = split < size ? UnsafeBufferPointer(rebasing: bytes[(split + 1)...]) : schemaBytes
    guard let schemaValue = try? JSONParser.parse(schemaBytes),
        let instance = try? JSONParser.parse(instanceBytes)
    else { return 0 }
    guard let schema = try? JSONSchema(schemaValue) else { return 0 }
    let result = schema.validate(instance)
    precondition(result.errors.isEmpty == schema.isValid(instance), "validate and isValid disagree")
    _ = result.description
    return 0
}
