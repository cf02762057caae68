import JSON
import JSONRPC

extension RPCServer {
    /// `ping` answers `{}` at once, or `{"echo": value}` when params carry `echo`: a liveness
    /// probe that also shows a value surviving the round trip (re-serialized: object keys sorted,
    /// numbers in their shortest form).
    static func ping(_ context: RequestContext) throws(ResponseError) -> RawJSON {
        guard context.params != nil else { return .emptyObject }
        guard case .object(let members) = try context.namedParams().checkedValue(),
            let echo = members["echo"]
        else { return .emptyObject }
        return RawJSON(["echo": echo])
    }
}
