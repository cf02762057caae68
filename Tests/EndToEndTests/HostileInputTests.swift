import Foundation
import JSON
import JSONRPC
import TestSupport
import Testing

/// One hostile input: the bytes sent, and the exact answer expected (`$WORKSPACE` stands for the
/// workspace's path).
struct HostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [UInt8]
    let expected: String
    let lsp: Bool

    init(_ name: String, _ input: [UInt8], _ expected: String, lsp: Bool) {
        self.name = name
        self.input = input
        self.expected = expected
        self.lsp = lsp
    }

    var testDescription: String { name }
}

/// The hostile-input catalogue: framing, JSON, JSON-RPC structure, every kind of params, paths
/// that try to leave the workspace (`..`, absolute, symbolic links, NUL, newlines). Each case
/// checks the exact error a client sees, then that the same server still answers `ping`.
@Suite("Hostile input catalogue")
struct HostileInputTests {
    static let cases: [HostileCase] = [
        HostileCase(
            "not json",
            Array(#"hello\#n"#.utf8),
            #"{"error":{"code":-32700,"data":{"hint":"send exactly one UTF-8 JSON value per message","offset":0},"message":"Parse error: unexpected 'h', expected a JSON value at byte 0"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "truncated object",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"ping"\#n"#.utf8),
            #"{"error":{"code":-32700,"data":{"hint":"send exactly one UTF-8 JSON value per message","offset":39},"message":"Parse error: unexpected end of input, expected ',' or '}' in an object at byte 39"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "array of nothing",
            Array(#"[]\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: empty batch"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "number",
            Array(#"42\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: expected an object, found a number"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "string",
            Array(#""ping"\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: expected an object, found a string"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "wrong version",
            Array(#"{"jsonrpc":"1.0","id":1,"method":"ping"}\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: \"jsonrpc\" must be exactly \"2.0\""},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "missing version",
            Array(#"{"id":1,"method":"ping"}\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: \"jsonrpc\" must be exactly \"2.0\""},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "method number",
            Array(#"{"jsonrpc":"2.0","id":1,"method":7}\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: \"method\" must be a string"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "id object",
            Array(#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: \"id\" must be a string, an integer or null"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "id float",
            Array(#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: \"id\" must be a string, an integer or null"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "params string",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}\#n"#.utf8),
            #"{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: \"params\" must be an object, an array or null"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "invalid utf8",
            [
                123, 34, 106, 115, 111, 110, 114, 112, 99, 34, 58, 34, 50, 46, 48, 34, 44, 34, 105, 100, 34, 58, 49, 44,
                34, 109, 101, 116, 104, 111, 100, 34, 58, 34, 112, 255, 105, 110, 103, 34, 125, 10,
            ],
            #"{"error":{"code":-32700,"data":{"hint":"send exactly one UTF-8 JSON value per message","offset":35},"message":"Parse error: invalid UTF-8 (byte 0xFF) at byte 35"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "lone surrogate escape",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"echo":"\ud800"}}\#n"#.utf8),
            #"{"id":1,"jsonrpc":"2.0","result":{"echo":"�"}}"#,
            lsp: false
        ),
        HostileCase(
            "deep nesting",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"ping","params":\#(String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000))}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32700,"data":{"hint":"send exactly one UTF-8 JSON value per message","offset":560},"message":"Parse error: nesting deeper than 512 levels at byte 560"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "huge number",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"echo":1e400}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params","problem":"contains 1e400 at byte 8, a number too large for a double"},"message":"Invalid params: params contains 1e400 at byte 8, a number too large for a double"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "duplicate keys",
            Array(#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}\#n"#.utf8),
            #"{"id":2,"jsonrpc":"2.0","result":{}}"#,
            lsp: false
        ),
        HostileCase(
            "nul in method",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"pi\u0000ng"}\#n"#.utf8),
            #"{"error":{"code":-32601,"data":{"available":["cancelJob","getArtifact","getStatus","initialize","listJobs","listTemplates","ping","renderPrompt","resumeJob","retryTask","runPipeline","runStage","runTask","shutdown","subscribeStatus","unsubscribeStatus","validateWorkspace"],"method":"pi\u0000ng"},"message":"Method not found: 'pi\u0000ng'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "empty batch member",
            Array(#"[1]\#n"#.utf8),
            #"[{"error":{"code":-32600,"data":{"hint":"a request is {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}"},"message":"Invalid Request: expected an object, found a number"},"id":null,"jsonrpc":"2.0"}]"#,
            lsp: false
        ),
        HostileCase(
            "unknown method",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"rm -rf"}\#n"#.utf8),
            #"{"error":{"code":-32601,"data":{"available":["cancelJob","getArtifact","getStatus","initialize","listJobs","listTemplates","ping","renderPrompt","resumeJob","retryTask","runPipeline","runStage","runTask","shutdown","subscribeStatus","unsubscribeStatus","validateWorkspace"],"method":"rm -rf"},"message":"Method not found: 'rm -rf'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "rpc internal",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}\#n"#.utf8),
            #"{"error":{"code":-32601,"data":{"available":["cancelJob","getArtifact","getStatus","initialize","listJobs","listTemplates","ping","renderPrompt","resumeJob","retryTask","runPipeline","runStage","runTask","shutdown","subscribeStatus","unsubscribeStatus","validateWorkspace"],"method":"rpc.discover"},"message":"Method not found: 'rpc.discover'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage stage wrong type",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":5}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.stage","problem":"must be a string, not 5"},"message":"Invalid params: params.stage must be a string, not 5"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage genId absolute",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"/etc/passwd"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.genId","problem":"genId '/etc/passwd' may only contain letters, digits, '.', '_' and '-'"},"message":"Invalid params: genId '/etc/passwd' may only contain letters, digits, '.', '_' and '-'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage genId newline",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"a\nb"}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.genId","problem":"genId 'a\nb' may only contain letters, digits, '.', '_' and '-'"},"message":"Invalid params: genId 'a\nb' may only contain letters, digits, '.', '_' and '-'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage genId nul",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"a\u0000b"}}\#n"#.utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.genId","problem":"genId 'a\u0000b' may only contain letters, digits, '.', '_' and '-'"},"message":"Invalid params: genId 'a\u0000b' may only contain letters, digits, '.', '_' and '-'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage genId long",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"\#(String(repeating: "a", count: 5000))"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.genId","problem":"genId is longer than 128 characters"},"message":"Invalid params: genId is longer than 128 characters"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage maxTokens huge",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"d-creative","maxTokens":99999999999999999999}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.maxTokens","problem":"must be an integer, not 1e+20"},"message":"Invalid params: params.maxTokens must be an integer, not 1e+20"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage maxTokens negative",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"d-creative","maxTokens":-1}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.maxTokens","problem":"must be at least 1"},"message":"Invalid params: params.maxTokens must be at least 1"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage templateId traversal",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","templateId":"../../../etc/passwd","model":"m"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.templateId","problem":"templateId '../../../etc/passwd' must not start with '.'"},"message":"Invalid params: templateId '../../../etc/passwd' must not start with '.'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage values array",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","genId":"x","values":[1]}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.values","problem":"must be an object of template variables"},"message":"Invalid params: params.values must be an object of template variables"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runStage parser unknown",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runStage","params":{"stage":"draft","templateId":"creative-synthesis","model":"m","parserName":"xml"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.parserName","problem":"unknown parser 'xml'; known parsers: complex, essay_block, essay_block_lenient, essay_idea_last, identity, in_last_line, json"},"message":"Invalid params: unknown parser 'xml'; known parsers: complex, essay_block, essay_block_lenient, essay_idea_last, identity, in_last_line, json"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "renderPrompt emoji genId",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"renderPrompt","params":{"stage":"draft","genId":"😀"}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.genId","problem":"genId '😀' may only contain letters, digits, '.', '_' and '-'"},"message":"Invalid params: genId '😀' may only contain letters, digits, '.', '_' and '-'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask task traversal",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":"../../etc/passwd"}}\#n"#.utf8),
            #"{"error":{"code":-32015,"data":{"file":"../../etc/passwd","kind":"task"},"message":"Task: ../../etc/passwd: the task file must be a path relative to the workspace, inside it"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask task absolute",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":"/etc/passwd"}}\#n"#.utf8),
            #"{"error":{"code":-32015,"data":{"file":"/etc/passwd","kind":"task"},"message":"Task: /etc/passwd: the task file must be a path relative to the workspace, inside it"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask timeout zero",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"stages":{}},"timeout":0}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.timeout","problem":"must be a number of seconds above 0, at most 86400"},"message":"Invalid params: params.timeout must be a number of seconds above 0, at most 86400"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask maxRefinements huge",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"stages":{}},"maxRefinements":1000}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.maxRefinements","problem":"must be from 0 to 100"},"message":"Invalid params: params.maxRefinements must be from 0 to 100"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask write traversal",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"stages":{"integration":{"write":"../../x"}}}}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"task","path":"stages.integration.write"},"message":"Task: <inline>: stages.integration.write: '../../x' must be a relative path inside the run's folder, without '..'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runPipeline traversal",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":"../p.yaml"}}\#n"#.utf8),
            #"{"error":{"code":-32015,"data":{"file":"../p.yaml","kind":"pipeline"},"message":"Pipeline: ../p.yaml: the pipeline file must be a path relative to the workspace, inside it"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runPipeline task traversal",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":{"tasks":[{"task":"../../../etc/passwd"}]}}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"pipeline","path":"tasks[0].task"},"message":"Pipeline: <inline>: tasks[0].task: '../../../etc/passwd' must be a relative path that stays inside the workspace"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "getStatus traversal",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"getStatus","params":{"jobId":"../../etc"}}\#n"#.utf8),
            #"{"error":{"code":-32016,"data":{"jobId":"../../etc","kind":"job","reason":"not_found"},"message":"Job: no job '../../etc': job ids look like 20261122T014501Z-3fa9"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "getArtifact absolute",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"getArtifact","params":{"jobId":"x","path":"/etc/passwd"}}\#n"#.utf8
            ),
            #"{"error":{"code":-32016,"data":{"jobId":"x","kind":"job","reason":"not_found"},"message":"Job: no job 'x' in $WORKSPACE/jobs"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "subscribe bad delivery",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"subscribeStatus","params":{"delivery":"stream"}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.delivery","problem":"must be snapshot or patch, not 'stream'"},"message":"Invalid params: params.delivery must be snapshot or patch, not 'stream'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "unsubscribe unknown",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"unsubscribeStatus","params":{"subscriptionId":"sub-99"}}\#n"#.utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.subscriptionId","problem":"'sub-99' is not a subscription of this connection"},"message":"Invalid params: params.subscriptionId 'sub-99' is not a subscription of this connection"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "listJobs bad state",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"listJobs","params":{"state":"sleeping"}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.state","problem":"must be one of pending, running, done, failed, cancelled, interrupted, not 'sleeping'"},"message":"Invalid params: params.state must be one of pending, running, done, failed, cancelled, interrupted, not 'sleeping'"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "initialize workspace missing",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"workspaceRoot":"/no/such/dir"}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.workspaceRoot","problem":"'/no/such/dir' does not exist"},"message":"Invalid params: params.workspaceRoot '/no/such/dir' does not exist"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask task symlink out",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":"escape.yaml"}}\#n"#.utf8),
            #"{"error":{"code":-32015,"data":{"file":"escape.yaml","kind":"task"},"message":"Task: escape.yaml: the task file must be a path relative to the workspace, inside it"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask template symlink out",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":"tasks/leaky.yaml"}}\#n"#.utf8),
            #"{"error":{"code":-32015,"data":{"file":"tasks/leaky.yaml","kind":"task","path":"stages.promptTemplating.template"},"message":"Task: tasks/leaky.yaml: stages.promptTemplating.template: 'secret.j2' leads outside the workspace through a symbolic link"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask inline command",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"stages":{"ingestion":{"command":["sh","-c","id"]}}}}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"task","path":"stages.ingestion.command"},"message":"Task: <inline>: stages.ingestion.command: command handlers run only from task files in the workspace, not from a task given inline; put the task in a file and pass its path"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask stage unknown",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"stages":{"postprocessing":{"parse":"json"}}}}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"task","path":"stages.postprocessing"},"message":"Task: <inline>: stages.postprocessing: is not a stage; the stages are ingestion, preProcessing, promptTemplating, inference, parsing, validateStructure, validateQuality, critique, refine, finalValidation, integration"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask task newline name",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"name":"a\nb","stages":{}}}}\#n"#.utf8
            ),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"task","path":"name"},"message":"Task: <inline>: name: 'a\nb' must be letters, digits, '.', '_' or '-' (it names the run's folder)"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runTask runId traversal",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runTask","params":{"task":{"stages":{}},"runId":"../../x"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.runId","problem":"must be 1 to 100 letters, digits, '.', '_' or '-' (it names the run's folder)"},"message":"Invalid params: params.runId must be 1 to 100 letters, digits, '.', '_' or '-' (it names the run's folder)"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runPipeline empty tasks",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":{"tasks":[]}}}\#n"#.utf8),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"pipeline","path":"tasks"},"message":"Pipeline: <inline>: tasks: is required: a non-empty list of {name, task} entries"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runPipeline duplicate names",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":{"tasks":[{"name":"a","task":"t.yaml"},{"name":"a","task":"t.yaml"}]}}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32015,"data":{"file":"<inline>","kind":"pipeline","path":"tasks[1].name"},"message":"Pipeline: <inline>: tasks[1].name: 'a' is already the name of an earlier task; give each task its own"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "runPipeline name too long",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"runPipeline","params":{"pipeline":{"tasks":[{"task":"t.yaml"}]},"name":"\#(String(repeating: "n", count: 300))"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32602,"data":{"field":"params.name","problem":"must be 1 to 200 characters"},"message":"Invalid params: params.name must be 1 to 200 characters"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "getArtifact nul",
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"getArtifact","params":{"jobId":"20261122T000000Z-0000","path":"a\u0000b"}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32016,"data":{"jobId":"20261122T000000Z-0000","kind":"job","reason":"not_found"},"message":"Job: no job '20261122T000000Z-0000' in $WORKSPACE/jobs"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "cancelJob unknown",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"cancelJob","params":{"jobId":"20261122T000000Z-0000"}}\#n"#.utf8),
            #"{"error":{"code":-32016,"data":{"jobId":"20261122T000000Z-0000","kind":"job","reason":"not_found"},"message":"Job: no job '20261122T000000Z-0000' in $WORKSPACE/jobs"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "retryTask missing task",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"retryTask","params":{"jobId":"20261122T000000Z-0000"}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params.task","problem":"is required but missing"},"message":"Invalid params: params.task is required but missing"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "ping huge number",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"echo":1e400}}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params","problem":"contains 1e400 at byte 8, a number too large for a double"},"message":"Invalid params: params contains 1e400 at byte 8, a number too large for a double"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "validateWorkspace params array",
            Array(#"{"jsonrpc":"2.0","id":1,"method":"validateWorkspace","params":[1]}\#n"#.utf8),
            #"{"error":{"code":-32602,"data":{"field":"params","problem":"is an array of 1 value (positional params), but 'validateWorkspace' takes its params by name: send an object such as {\"name\": value}"},"message":"Invalid params: params is an array of 1 value (positional params), but 'validateWorkspace' takes its params by name: send an object such as {\"name\": value}"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "initialize twice",
            Array(
                #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}\#n{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\#n"#
                    .utf8
            ),
            #"{"error":{"code":-32600,"data":{"hint":"send 'initialize' once per connection, as the first request"},"message":"Invalid Request: 'initialize' was already received"},"id":1,"jsonrpc":"2.0"}"#,
            lsp: false
        ),
        HostileCase(
            "lsp negative length",
            Array(#"Content-Length: -5\#r\#n\#r\#n{}"#.utf8),
            #"{"error":{"code":-32700,"data":{"hint":"frame each message as Content-Length: <bytes>\\r\\n\\r\\n<JSON body>"},"message":"Parse error: invalid Content-Length '-5' (expected a non-negative whole number of bytes)"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: true
        ),
        HostileCase(
            "lsp non numeric length",
            Array(#"Content-Length: abc\#r\#n\#r\#n{}"#.utf8),
            #"{"error":{"code":-32700,"data":{"hint":"frame each message as Content-Length: <bytes>\\r\\n\\r\\n<JSON body>"},"message":"Parse error: invalid Content-Length 'abc' (expected a non-negative whole number of bytes)"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: true
        ),
        HostileCase(
            "lsp missing length",
            Array(#"Content-Type: application/json\#r\#n\#r\#n{"jsonrpc":"2.0","id":1,"method":"ping"}"#.utf8),
            #"{"error":{"code":-32700,"data":{"hint":"frame each message as Content-Length: <bytes>\\r\\n\\r\\n<JSON body>"},"message":"Parse error: missing Content-Length header"},"id":null,"jsonrpc":"2.0"}"#,
            lsp: true
        ),
    ]

    /// A copy of the daydream example plus files that point out of the workspace.
    static func workspace() throws -> ExampleCopy {
        let copy = try ExampleCopy(
            "daydream",
            files: ["tasks/leaky.yaml": "stages:\n  promptTemplating: { template: secret.j2 }\n"]
        )
        try FileManager.default.createSymbolicLink(
            atPath: copy.root + "/escape.yaml",
            withDestinationPath: "/etc/passwd"
        )
        try FileManager.default.createSymbolicLink(
            atPath: copy.root + "/tasks/secret.j2",
            withDestinationPath: "/etc/hostname"
        )
        return copy
    }

    @Test("a hostile input gets its exact error, and the server still answers", arguments: cases)
    func survives(_ hostile: HostileCase) async throws {
        let workspace = try Self.workspace()
        defer { workspace.remove() }
        let server = try ServerProcess(
            ["serve", "--workspace", workspace.root, "--log-level", "critical"],
            framing: hostile.lsp ? .lsp : .ndjson
        )
        server.send(bytes: hostile.input)
        server.send(#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#)
        let pong = try await server.output.response(id: "after")
        #expect(pong["result"] == [:])
        // Requests run concurrently: the answer may come after the ping's.
        try await server.output.wait("the answer") { messages, _ in
            messages.contains { $0["id"] != "after" && $0["id"] != 0 }
        }
        let answers = server.output.messages.filter { $0["id"] != "after" && $0["id"] != 0 }
        let expected = try JSONParser.parse(
            Array(hostile.expected.replacingOccurrences(of: "$WORKSPACE", with: workspace.root).utf8)
        )
        #expect(answers.last == expected)
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
    }

    @Test(
        "a 24 MB request (ping, runStage) costs the server at most about twice its size while it runs",
        arguments: [Framing.lsp, .ndjson]
    )
    func largeRequestMemory(framing: Framing) async throws {
        let example = try ExampleCopy("daydream")
        defer { example.remove() }
        let server = try ServerProcess(
            ["serve", "--workspace", example.root, "--log-level", "critical"],
            framing: framing
        )
        let small =
            #"{"stage":"draft","templateId":"systematic-analytical","model":"m","promptText":"Warm up.","maxTokens":100}"#
        server.send(#"{"jsonrpc":"2.0","id":1,"method":"runStage","params":\#(small)}"#)
        #expect(try await server.output.response(id: 1)["result"]?["status"] == "success")
        let size = 24 << 20
        let text = String(repeating: "x", count: size)
        let requests = [
            #"{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"\#(text)"}}"#,
            #"{"jsonrpc":"2.0","id":3,"method":"runStage","params":{"stage":"draft","templateId":"systematic-analytical","model":"m","promptText":"\#(text)","maxTokens":100}}"#,
        ]
        for (offset, request) in requests.enumerated() {
            let before = try #require(ProcessFigures(pid: server.pid)).rssKB * 1024
            // The write blocks until the server has read it all: not on the tests' shared threads.
            try await onOwnThread { server.send(request) }
            let answer = try await server.output.response(id: .integer(Int64(offset + 2)))
            #expect(answer["error"] == nil)
            let peak = try #require(ProcessFigures(pid: server.pid)).peakKB * 1024
            // Before: the frame, a copy of the params, their tree and the engine's copies (5×).
            #expect(
                Double(peak - before) < 2.5 * Double(size),
                "request \(offset + 2): peak \(peak - before) bytes above \(before)"
            )
        }
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
    }

    @Test("a frame that announces more bytes than the limit is refused, and the server exits cleanly at end of input")
    func hugeDeclaredLength() async throws {
        let server = try ServerProcess(["serve", "--log-level", "critical"], framing: .lsp)
        server.send(bytes: Array("Content-Length: 99999999999999\r\n\r\n{}".utf8))
        let error = try await server.output.response(id: nil)
        #expect(error["error"]?["code"] == -32600)
        #expect(error["error"]?["data"]?["size"] == 99_999_999_999_999)
        server.closeInput()
        #expect(try await server.exitStatus() == 0)
    }
}
