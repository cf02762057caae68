import JSONRPC
import Logging
import StageEngine
import StageRunnerServer
import TestSupport

/// Where a test's server runs: a connection in this process, or the built binary.
enum Transport: String, CaseIterable, CustomStringConvertible {
    case inProcess
    case process

    var description: String { rawValue }
}

/// How a test's server is started; the same settings as `serve` flags or as ``ServerOptions``.
struct ServerSetup {
    var requireInitialize = false
    var enableTestMethods = true
    var maxMessageSize: Int?
    var workspace: String?

    var arguments: [String] {
        var arguments = ["serve", "--log-level", "error"]
        if requireInitialize { arguments.append("--require-initialize") }
        if enableTestMethods { arguments.append("--enable-test-methods") }
        if let maxMessageSize { arguments += ["--max-message-size", String(maxMessageSize)] }
        if let workspace { arguments += ["--workspace", workspace] }
        return arguments
    }

    func peer(_ transport: Transport, _ framing: Framing) throws -> any RPCPeer {
        switch transport {
        case .process:
            return try ServerProcess(arguments, framing: framing)
        case .inProcess:
            var options = ServerOptions(workspace: try Workspace(path: workspace ?? "."))
            options.requireInitialize = requireInitialize
            options.enableTestMethods = enableTestMethods
            if let maxMessageSize { options.maximumMessageSize = maxMessageSize }
            var logger = Logger(label: "test-server")
            logger.logLevel = .critical
            let server = RPCServer(options: options, logger: logger)
            return InProcessPeer(framing: framing) { input, output in server.connect(input: input, output: output) }
        }
    }
}

/// Every combination of transport and framing.
let everyTransportAndFraming: [(Transport, Framing)] = Transport.allCases.flatMap { transport in
    Framing.allCases.map { (transport, $0) }
}
