import JSONRPC
import StageEngine
import Testing

@testable import StageRunnerServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Lifecycle")
struct LifecycleTests {
    func makeServer(requireInitialize: Bool = false) throws -> RPCServer {
        var options = ServerOptions(workspace: try Workspace(path: "/tmp"))
        options.requireInitialize = requireInitialize
        return RPCServer(options: options)
    }

    @Test func scriptsMaySkipInitialize() throws {
        let lifecycle = try makeServer().lifecycle
        #expect(lifecycle.admit("ping") == nil)
        #expect(lifecycle.workspace.root == "/tmp")
    }

    @Test func strictClientsMustInitializeFirst() throws {
        let lifecycle = try makeServer(requireInitialize: true).lifecycle
        #expect(lifecycle.admit("ping")?.code == ResponseError.Code.serverNotInitialized)
        #expect(lifecycle.admit("initialize") == nil)
        // shutdown is always allowed, so a client can end a server it never initialized.
        #expect(lifecycle.admit("shutdown") == nil)
    }

    @Test func shutdownTakesEffectOnIntake() throws {
        let lifecycle = try makeServer().lifecycle
        #expect(lifecycle.admit("shutdown") == nil)
        #expect(lifecycle.shutdownReceived)
        let refused = lifecycle.admit("ping")
        #expect(refused?.code == ResponseError.Code.invalidRequest)
        #expect(
            refused?.message
                == "Invalid Request: the server is shutting down; only the 'exit' notification is accepted now"
        )
    }

    @Test func exitStatusFollowsLSP() throws {
        let server = try makeServer()
        #expect(server.exitStatus(for: .endOfInput) == 0)
        #expect(server.exitStatus(for: .signal(SIGTERM)) == 0)
        #expect(server.exitStatus(for: .exitNotification) == 1)
        #expect(server.exitStatus(for: .outputFailed(32)) == 1)
        _ = server.lifecycle.admit("shutdown")
        #expect(server.exitStatus(for: .exitNotification) == 0)
        // After shutdown, a client that stops reading has ended the session as it asked.
        #expect(server.exitStatus(for: .outputFailed(32)) == 0)
        #expect(server.exitStatus(for: .inputFailed(5)) == 1)
    }

    @Test func protocolVersionsOfTheSameMajorAreCompatible() {
        #expect(ProtocolVersion.isCompatible("1.0"))
        #expect(ProtocolVersion.isCompatible("1.7"))
        #expect(ProtocolVersion.isCompatible("1"))
        #expect(!ProtocolVersion.isCompatible("2.0"))
        #expect(!ProtocolVersion.isCompatible("one"))
        #expect(!ProtocolVersion.isCompatible(""))
    }
}
