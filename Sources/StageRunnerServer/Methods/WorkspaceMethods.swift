import JSON
import JSONRPC
import ModelProviders
import StageEngine

struct ListTemplatesParams: Decodable, Sendable {
    var stage: String?
    var includeInactive: Bool?
}

extension RPCServer {
    func listTemplates(_ context: RequestContext) async throws -> RawJSON {
        let params = try context.decodeParams(ListTemplatesParams.self)
        var stage: GenerationStage?
        if let name = params.stage {
            guard let known = GenerationStage(rawValue: name) else {
                throw ResponseError.invalidParams(
                    field: "params.stage",
                    problem: "must be one of draft, essay, evaluation, not '\(name)'"
                )
            }
            stage = known
        }
        let templates = await (try engine.runner()).templates(
            stage: stage,
            activeOnly: !(params.includeInactive ?? true)
        )
        return RawJSON(["templates": .array(templates.map(\.json))])
    }

    /// The most diagnostics `validateWorkspace` lists; `errors` and `warnings` count them all.
    /// A broken file of a million rows would otherwise make an answer of hundreds of megabytes.
    static let listedDiagnostics = 1000

    func validateWorkspace(_ context: RequestContext) async throws -> RawJSON {
        _ = try context.decodeParams(EmptyParams.self)
        return RawJSON(await (try engine.runner()).validationReport().json(listing: Self.listedDiagnostics))
    }
}

/// Methods that take no parameters accept none, `{}`, or an object of ignored members.
struct EmptyParams: Decodable, Sendable {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        // Asking for a keyed container is what rejects arrays and scalars.
        _ = try decoder.container(keyedBy: AnyKey.self)
    }
}
