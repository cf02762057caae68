import JSON
import JSONRPC

extension StageRunnerServer {
    /// `ping` answers `{}` at once, or `{"echo": value}` when params carry `echo`: a liveness
    /// probe that also shows a value surviving the round trip (re-serialized: object keys sorted,
    /// numbers in their shortest form).
    static func ping(_ context: RequestContext) throws(ResponseError) -> RawJSON {
        guard let params = context.params else { return .emptyObject }
        guard case .object(let members) = try params.checkedValue() else {
            throw .invalidParams(field: "params", problem: "must be an object such as {\"echo\": …}")
        }
        guard let echo = members["echo"] else { return .emptyObject }
        return RawJSON(["echo": echo])
    }
}
