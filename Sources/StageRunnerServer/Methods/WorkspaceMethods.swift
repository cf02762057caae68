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
        let (catalog, _) = await (try engine.runner()).validate()
        let templates = catalog.templates.all.filter { entry in
            (stage == nil || entry.stage == stage) && (params.includeInactive ?? true || entry.active)
        }
        return RawJSON([
            "templates": .array(
                templates.map { entry in
                    var members: [String: JSONValue] = [
                        "stage": .string(entry.stage.rawValue),
                        "id": .string(entry.id),
                        "name": .string(entry.name),
                        "description": .string(entry.description),
                        "generator": .string(entry.generator.rawValue),
                        "active": .bool(entry.active),
                        "file": .string(entry.file),
                    ]
                    if let parser = entry.parser { members["parser"] = .string(parser) }
                    return .object(members)
                }
            )
        ])
    }

    /// The most diagnostics `validateWorkspace` lists; `errors` and `warnings` count them all.
    /// A broken file of a million rows would otherwise make an answer of hundreds of megabytes.
    static let listedDiagnostics = 1000

    func validateWorkspace(_ context: RequestContext) async throws -> RawJSON {
        _ = try context.decodeParams(EmptyParams.self)
        let runner = try await engine.runner()
        let (catalog, diagnostics) = await runner.validate()
        let errors = diagnostics.filter { $0.severity == .error }.count
        return RawJSON([
            "root": .string(runner.workspace.root),
            "valid": .bool(errors == 0),
            "errors": .integer(Int64(errors)),
            "warnings": .integer(Int64(diagnostics.filter { $0.severity == .warning }.count)),
            "templates": .integer(Int64(catalog.templates.all.count)),
            "generations": .integer(Int64(catalog.membership.rows.count)),
            "diagnosticsOmitted": .integer(Int64(max(0, diagnostics.count - Self.listedDiagnostics))),
            "diagnostics": .array(
                diagnostics.prefix(Self.listedDiagnostics).map { diagnostic in
                    [
                        "file": .string(diagnostic.file),
                        "line": .integer(Int64(diagnostic.line)),
                        "column": .integer(Int64(diagnostic.column)),
                        "severity": .string(diagnostic.severity.rawValue),
                        "code": .string(diagnostic.code),
                        "message": .string(diagnostic.message),
                    ]
                }
            ),
        ])
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
