import JSON
import Logging
import Synchronization
import Threads

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A JSON-RPC 2.0 connection over a pair of file descriptors (stdin/stdout, or pipes in tests).
///
/// One reader thread is the serial intake: it reads with `read(2)`, splits frames, decodes
/// envelopes and dispatches in arrival order. Immediate handlers answer inline; the others run as
/// Swift tasks (ordered ones one at a time). Every request gets exactly one response, a cancelled
/// one included. When more than `maximumConcurrentRequests` handlers are running, or too much
/// output is waiting for the peer to read it, the reader stops reading, so a flooding peer is
/// slowed down instead of growing memory.
public final class Connection: Sendable {
    /// Settings of a connection.
    public struct Configuration: Sendable {
        public var framing: FramingMode = .auto
        /// Frames larger than this are answered with an error and skipped.
        public var maximumMessageSize: Int = 64 << 20
        /// Handlers running at once before the reader pauses.
        public var maximumConcurrentRequests: Int = 256
        /// Bytes of unwritten output before the reader pauses.
        public var maximumPendingOutput: Int = 16 << 20
        /// How long a server-to-client request waits for its answer, unless the caller says otherwise.
        public var clientRequestTimeout: Duration = .seconds(60)
        /// Runs on the intake before each request is dispatched, in arrival order; an error
        /// answers the request instead. Lifecycle rules (shutdown, initialize-first) live here.
        public var admission: (@Sendable (_ method: String) -> ResponseError?)?

        public init() {}
    }

    /// Why a connection ended.
    public enum CloseReason: Sendable, Hashable, CustomStringConvertible {
        /// The peer closed its end of the input.
        case endOfInput
        /// The peer sent the `exit` notification.
        case exitNotification
        /// The process received this signal (`SIGTERM`, `SIGINT`).
        case signal(Int32)
        /// The peer stopped reading: writing failed with this errno.
        case outputFailed(Int32)
        /// Reading failed with this errno.
        case inputFailed(Int32)

        /// For logs: `end of input`, `signal 15 (Terminated)`, `write failed: Broken pipe`.
        public var description: String {
            switch self {
            case .endOfInput: return "end of input"
            case .exitNotification: return "exit notification"
            case .signal(let number): return "signal \(number) (\(String(cString: strsignal(number))))"
            case .outputFailed(let code): return "write failed: \(String(cString: strerror(code)))"
            case .inputFailed(let code): return "read failed: \(String(cString: strerror(code)))"
            }
        }
    }

    public let configuration: Configuration
    public let logger: Logger
    /// The methods this connection serves.
    public let methods: MethodTable
    let input: Int32
    private let writer: OutputWriter
    private let state: ConditionLock<State>
    private let orderedQueue: AsyncStream<@Sendable () async -> Void>.Continuation
    private let orderedStream: AsyncStream<@Sendable () async -> Void>

    /// Everything about the connection that changes, owned by its lock.
    private struct State {
        var inFlight: [RequestID: InFlight] = [:]
        var nextRequestSerial = 0
        /// Handlers running, and those of them waiting for an answer from the peer (which do not
        /// count against the concurrency limit).
        var running = 0
        var awaitingClient = 0
        var outstanding: [RequestID: CheckedContinuation<RawJSON, any Error>] = [:]
        var nextOutgoingID = 0
        var outputFraming: Framing?
        var stopped = false
        var closeReason: CloseReason?
        var idleWaiters: [(threshold: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var closeWaiters: [Int: CheckedContinuation<CloseReason?, Never>] = [:]
        var nextCloseWaiter = 0
        var closeHooks: [@Sendable (CloseReason) async -> Void] = []
        var cancelHooks: [@Sendable () async -> Void] = []
        /// A close that cancels has begun (SIGINT, `exit`): a later one has nothing to add.
        var cancelling = false
    }

    /// A request being handled, so `$/cancelRequest` can find it; `serial` tells it from a later
    /// request that reuses its id.
    private struct InFlight {
        let serial: Int
        var task: Task<Void, Never>?
        var cancelled = false
    }

    /// Creates a connection; call ``start()`` to begin reading.
    public init(
        input: Int32,
        output: Int32,
        methods: MethodTable,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "jsonrpc")
    ) {
        self.input = input
        self.methods = methods
        self.configuration = configuration
        self.logger = logger
        var initial = State()
        if configuration.framing != .auto { initial.outputFraming = Framing(rawValue: configuration.framing.rawValue) }
        state = ConditionLock(initial)
        (orderedStream, orderedQueue) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        let brokenHandler = BrokenOutputHandler()
        writer = OutputWriter(descriptor: output, onBroken: { code in brokenHandler.connection?.outputFailed(code) })
        brokenHandler.connection = self
    }

    /// Lets the writer report a broken pipe without a strong reference cycle.
    private final class BrokenOutputHandler: Sendable {
        private let reference = Mutex<Connection?>(nil)
        var connection: Connection? {
            get { reference.withLock { $0 } }
            set { reference.withLock { $0 = newValue } }
        }
    }

    /// Starts the reader thread and the ordered-execution queue.
    public func start() {
        let stream = orderedStream
        Task {
            for await job in stream { await job() }
        }
        startThread { [self] in readLoop() }
    }

    /// Waits until the connection has closed and returns why. A waiting task that is cancelled
    /// stops waiting (throwing `CancellationError`), so that a task which waits for either the
    /// close or something else can end without leaving a waiter behind for the connection's life.
    public func waitUntilClosed() async throws(CancellationError) -> CloseReason {
        let token = state.withLock { state in
            state.nextCloseWaiter += 1
            return state.nextCloseWaiter
        }
        let reason: CloseReason? = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let answer: CloseReason?? = state.withLock { state in
                    if let closeReason = state.closeReason { return .some(closeReason) }
                    if Task.isCancelled { return .some(nil) }
                    state.closeWaiters[token] = continuation
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            state.withLock { $0.closeWaiters.removeValue(forKey: token) }?.resume(returning: nil)
        }
        guard let reason else { throw CancellationError() }
        return reason
    }

    /// The framing in use (nil until the peer's first byte when detecting).
    public var framing: Framing? { state.withLock { $0.outputFraming } }

    // MARK: - Reading

    private func readLoop() {
        let capacity = 64 * 1024
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var decoder = FrameDecoder(mode: configuration.framing, maximumMessageSize: configuration.maximumMessageSize)
        var output: [UInt8] = []
        output.reserveCapacity(capacity)
        var failure: Int32?
        while true {
            writer.waitWhilePending(moreThan: configuration.maximumPendingOutput)
            let count = read(input, buffer.baseAddress, capacity)
            if count < 0 {
                if errno == EINTR { continue }
                failure = errno
                logger.error("reading the input failed", metadata: ["errno": "\(errno)"])
                break
            }
            if count == 0 { break }
            decoder.feed(UnsafeBufferPointer(rebasing: buffer[0..<count])) { event in
                handle(event, output: &output)
            }
            flush(&output)
            if isStopped { break }
        }
        decoder.finish { event in handle(event, output: &output) }
        flush(&output)
        let reason: CloseReason = failure.map { .inputFailed($0) } ?? .endOfInput
        logger.debug("input ended", metadata: ["reason": "\(reason)"])
        Task { await self.close(cancelInFlight: false, reason: reason) }
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func flush(_ output: inout [UInt8]) {
        guard !output.isEmpty else { return }
        writer.writeInline(&output)
        output.removeAll(keepingCapacity: true)
    }

    private func handle(_ event: FrameDecoder.Event, output: inout [UInt8]) {
        switch event {
        case .detected(let framing):
            logger.debug("framing detected", metadata: ["framing": "\(framing.rawValue)"])
            state.withLock { $0.outputFraming = framing }
        case .error(let error):
            logger.warning("rejected a frame", metadata: ["error": "\(error.message)"])
            send(id: .null, .failure(error), batch: nil, inline: &output)
        case .frame(let bytes):
            guard accepting({ String(decoding: bytes, as: UTF8.self) }, output: &output) else { return }
            received(MessageDecoder.decode(bytes), output: &output)
        case .assembled(let frame):
            guard accepting({ String(decoding: frame.bytes, as: UTF8.self) }, output: &output) else { return }
            var bytes = frame.take()
            received(MessageDecoder.decode(owning: &bytes), output: &output)
        }
    }

    /// Whether a frame that just arrived is taken: once closing has begun nothing new is
    /// started (an `exit` or a signal means stop). Waits while too many handlers run.
    private func accepting(_ text: () -> String, output: inout [UInt8]) -> Bool {
        if isStopped {
            logger.debug("ignored a message that arrived while closing")
            return false
        }
        if logger.logLevel <= .trace {
            logger.trace("received", metadata: ["message": "\(text())"])
        }
        waitForCapacity(flushing: &output)
        return true
    }

    private func received(_ content: FrameContent, output: inout [UInt8]) {
        switch content {
        case .single(.success(let message)):
            dispatch(message, batch: nil, output: &output)
        case .single(.failure(let rejected)):
            reject(rejected, batch: nil, output: &output)
        case .batch(let elements):
            let slots = elements.filter { element in
                switch element {
                case .success(.request): return true
                case .failure(let rejected): return !rejected.isNotification
                case .success(.notification), .success(.response): return false
                }
            }.count
            let batch = slots > 0 ? Batch(slots: slots) : nil
            for element in elements {
                switch element {
                case .success(let message): dispatch(message, batch: batch, output: &output)
                case .failure(let rejected): reject(rejected, batch: batch, output: &output)
                }
            }
        }
    }

    /// Answers a message that was not accepted, unless it was a notification: those are never
    /// answered, so the problem goes to the log for whoever debugs the client.
    private func reject(_ rejected: RejectedMessage, batch: Batch?, output: inout [UInt8]) {
        if rejected.isNotification {
            logger.warning("ignored a malformed notification", metadata: ["error": "\(rejected.error.message)"])
            return
        }
        send(id: rejected.id, .failure(rejected.error), batch: batch, inline: &output)
    }

    /// Pauses the reader while too many handlers run.
    private func waitForCapacity(flushing output: inout [UInt8]) {
        let limit = configuration.maximumConcurrentRequests
        guard state.withLock({ $0.running - $0.awaitingClient >= limit }) else { return }
        flush(&output)
        state.wait(until: { $0.running - $0.awaitingClient < limit || $0.stopped }) { _ in }
    }

    // MARK: - Dispatch

    private func dispatch(_ message: Message, batch: Batch?, output: inout [UInt8]) {
        switch message {
        case .request(let request):
            dispatch(request, batch: batch, output: &output)
        case .notification(let notification):
            // A notification may end the connection (`exit`): answers already made go out first.
            flush(&output)
            handle(notification)
        case .response(let response):
            deliver(response)
        }
    }

    private func dispatch(_ request: Request, batch: Batch?, output: inout [UInt8]) {
        if let error = configuration.admission?(request.method) {
            send(id: request.id, .failure(error), batch: batch, inline: &output)
            return
        }
        guard let entry = methods.requests[request.method] else {
            send(
                id: request.id,
                .failure(.methodNotFound(request.method, available: methods.requestMethods)),
                batch: batch,
                inline: &output
            )
            return
        }
        let context = RequestContext(id: request.id, method: request.method, params: request.params, connection: self)
        switch entry.body {
        case .synchronous(let handler):
            let outcome: Result<RawJSON, ResponseError>
            do throws(ResponseError) {
                outcome = .success(try handler(context))
            } catch {
                outcome = .failure(error)
            }
            send(id: request.id, outcome, batch: batch, inline: &output)
            context.afterResponseActions.run()
        case .asynchronous(let handler):
            let serial: Int? = state.withLock { state in
                guard state.inFlight[request.id] == nil else { return nil }
                state.nextRequestSerial += 1
                state.inFlight[request.id] = InFlight(serial: state.nextRequestSerial)
                state.running += 1
                return state.nextRequestSerial
            }
            guard let serial else {
                send(
                    id: request.id,
                    .failure(.invalidRequest("id \(request.id) is already used by a request in progress")),
                    batch: batch,
                    inline: &output
                )
                return
            }
            // Captures the id alone, not the request: its params are released once decoded.
            let id = request.id
            let run: @Sendable () async -> Void = { [self] in
                let outcome = await execute(handler, context, id, serial)
                finish(id, serial, outcome, batch)
                context.afterResponseActions.run()
            }
            // Answers made on the intake so far go out before this task can answer, so a task
            // (`shutdown`, say) never overtakes an immediate answer to an earlier request.
            flush(&output)
            if entry.execution == .ordered {
                // The queue runs jobs one at a time; each job is its own task so it can be cancelled alone.
                orderedQueue.yield { [self] in
                    let task = Task(operation: run)
                    attach(task, to: id, serial)
                    await task.value
                }
            } else {
                attach(Task(operation: run), to: request.id, serial)
            }
        }
    }

    private func attach(_ task: Task<Void, Never>, to id: RequestID, _ serial: Int) {
        let cancelled: Bool = state.withLock { state in
            guard state.inFlight[id]?.serial == serial else { return false }
            state.inFlight[id]?.task = task
            return state.inFlight[id]?.cancelled ?? false
        }
        if cancelled { task.cancel() }
    }

    private func isCancelled(_ id: RequestID, _ serial: Int) -> Bool {
        state.withLock { $0.inFlight[id].map { $0.serial == serial && $0.cancelled } ?? false }
    }

    private func execute(
        _ handler: @Sendable (RequestContext) async throws -> RawJSON,
        _ context: RequestContext,
        _ id: RequestID,
        _ serial: Int
    ) async -> Result<RawJSON, ResponseError> {
        if isCancelled(id, serial) { return .failure(.requestCancelled()) }
        do {
            return .success(try await handler(context))
        } catch let error as ResponseError {
            return .failure(error)
        } catch is CancellationError {
            return .failure(.requestCancelled())
        } catch {
            logger.error("handler failed", metadata: ["method": "\(context.method)", "error": "\(error)"])
            return .failure(.internalError(String(describing: error)))
        }
    }

    private func finish(_ id: RequestID, _ serial: Int, _ outcome: Result<RawJSON, ResponseError>, _ batch: Batch?) {
        // Answer first, so that whoever waits for idleness sees the answer already queued.
        if let body = responseBody(id: id, outcome, batch: batch) { enqueue(body) }
        let ready: [CheckedContinuation<Void, Never>] = state.withLock(notifying: true) { state in
            if state.inFlight[id]?.serial == serial { state.inFlight[id] = nil }
            state.running -= 1
            var ready: [CheckedContinuation<Void, Never>] = []
            let running = state.running
            state.idleWaiters.removeAll { waiter in
                guard running <= waiter.threshold else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for waiter in ready { waiter.resume() }
    }

    private func handle(_ notification: Notification) {
        if notification.method == "$/cancelRequest" {
            cancelRequest(notification.params)
            return
        }
        guard let handler = methods.notifications[notification.method] else {
            // Unknown notifications are ignored, as JSON-RPC and LSP require ($/ ones silently).
            if !notification.method.hasPrefix("$/") {
                logger.debug("ignored unknown notification", metadata: ["method": "\(notification.method)"])
            }
            return
        }
        handler(NotificationContext(method: notification.method, params: notification.params, connection: self))
    }

    private func cancelRequest(_ params: RawJSON?) {
        guard let params, let id = params.value()["id"].flatMap(RequestID.init(json:)) else {
            logger.warning("ignored $/cancelRequest without a valid id")
            return
        }
        let task: Task<Void, Never>? = state.withLock { state in
            guard state.inFlight[id] != nil else { return nil }
            state.inFlight[id]?.cancelled = true
            return state.inFlight[id]?.task
        }
        logger.debug("cancel", metadata: ["id": "\(id)", "running": "\(task != nil)"])
        task?.cancel()
    }

    // MARK: - Writing

    /// Answers a request on the reader thread, into the reader's output buffer.
    private func send(id: RequestID, _ outcome: Result<RawJSON, ResponseError>, batch: Batch?, inline: inout [UInt8]) {
        if let body = responseBody(id: id, outcome, batch: batch) { frame(body, into: &inline) }
    }

    /// The frame body answering a request: the response itself, or the whole batch when this
    /// response completes one; nil while the batch waits for its other members.
    private func responseBody(id: RequestID, _ outcome: Result<RawJSON, ResponseError>, batch: Batch?) -> [UInt8]? {
        if let batch { return batch.complete(id: id, outcome) }
        var body: [UInt8] = []
        body.reserveCapacity(64)
        MessageEncoder.response(id: id, outcome, into: &body)
        return body
    }

    /// Appends `body` in the connection's framing.
    private func frame(_ body: [UInt8], into output: inout [UInt8]) {
        if logger.logLevel <= .trace {
            logger.trace("sent", metadata: ["message": "\(String(decoding: body, as: UTF8.self))"])
        }
        let framing = state.withLock { $0.outputFraming } ?? .lsp
        framing.frame(body, into: &output)
    }

    /// Queues `body` for the writer thread (from tasks, which must not block).
    private func enqueue(_ body: [UInt8]) {
        var framed: [UInt8] = []
        framed.reserveCapacity(body.count + 32)
        frame(body, into: &framed)
        writer.enqueue(framed)
    }

    /// Returns once everything queued for the peer so far is written (or never can be); at once
    /// when no more than `limit` bytes wait: a sender of many notifications waits on it to go at
    /// the pace the peer reads.
    public func drainOutput(above limit: Int = 0) async {
        await writer.drain(above: limit)
    }

    /// Bytes queued for the peer and not yet written.
    public var pendingOutputBytes: Int { writer.pendingBytes }

    /// Runs `hook` when the connection closes, after the last request is answered and before the
    /// output closes (unless the peer stopped reading): the place to end work that outlives its
    /// requests and send its last notifications.
    public func onClose(_ hook: @escaping @Sendable (CloseReason) async -> Void) {
        state.withLock { $0.closeHooks.append(hook) }
    }

    /// Runs `hook` when a close that lets work finish is escalated to one that cancels it (a
    /// SIGINT after SIGTERM): the place to cancel work that outlives its requests.
    public func onCancel(_ hook: @escaping @Sendable () async -> Void) {
        state.withLock { $0.cancelHooks.append(hook) }
    }

    /// Sends a notification to the peer.
    public func notify(_ method: String, params: RawJSON? = nil) {
        var body: [UInt8] = []
        MessageEncoder.notification(method: method, params: params, into: &body)
        enqueue(body)
    }

    // MARK: - Requests to the peer

    /// Sends a request to the peer and waits for its answer.
    ///
    /// While waiting, the calling handler does not count against the concurrency limit: the
    /// reader must keep reading to receive the answer. Cancelling the calling task, or the timeout
    /// passing, sends `$/cancelRequest` to the peer and throws.
    public func request(_ method: String, params: RawJSON? = nil, timeout: Duration? = nil) async throws -> RawJSON {
        let (id, closed): (RequestID, Bool) = state.withLock { state in
            state.nextOutgoingID += 1
            // Integers: some client libraries answer only requests whose id is a number.
            return (.number(Int64(state.nextOutgoingID)), state.stopped)
        }
        if closed { throw ResponseError.requestFailed("the connection is closed") }
        let limit = timeout ?? configuration.clientRequestTimeout
        // On the process's timer thread: a sleeping task would keep its timer until the deadline
        // after the answer came, for every request.
        let alarm = DeadlineTimer.shared.schedule(after: limit) { [self] in
            if abandon(id, ResponseError.requestFailed("'\(method)' got no answer within \(limit)")) {
                notify("$/cancelRequest", params: RawJSON(["id": id.json]))
            }
        }
        defer { DeadlineTimer.shared.cancel(alarm) }
        state.withLock { $0.awaitingClient += 1 }
        defer { state.withLock(notifying: true) { $0.awaitingClient -= 1 } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                state.withLock { $0.outstanding[id] = continuation }
                var body: [UInt8] = []
                MessageEncoder.request(id: id, method: method, params: params, into: &body)
                enqueue(body)
            }
        } onCancel: {
            if abandon(id, CancellationError()) { notify("$/cancelRequest", params: RawJSON(["id": id.json])) }
        }
    }

    /// Fails an outstanding request; returns false when it already finished.
    private func abandon(_ id: RequestID, _ error: any Error) -> Bool {
        let continuation = state.withLock { $0.outstanding.removeValue(forKey: id) }
        continuation?.resume(throwing: error)
        return continuation != nil
    }

    private func deliver(_ response: Response) {
        guard let continuation = state.withLock({ $0.outstanding.removeValue(forKey: response.id) }) else {
            logger.warning("ignored a response to an unknown request", metadata: ["id": "\(response.id)"])
            return
        }
        switch response.outcome {
        case .success(let value): continuation.resume(returning: value)
        case .failure(let error): continuation.resume(throwing: error)
        }
    }

    // MARK: - Closing

    /// Waits until at most `ignoring` request handlers are running (a handler that waits for
    /// the others passes 1 to leave itself out).
    public func waitUntilIdle(ignoring: Int = 0) async {
        await withCheckedContinuation { continuation in
            let idle: Bool = state.withLock { state in
                if state.running <= ignoring { return true }
                state.idleWaiters.append((ignoring, continuation))
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Stops reading new messages, lets running handlers finish (or cancels them), answers them,
    /// fails requests still waiting for the peer, writes everything out, and closes.
    /// Later calls wait for the first one to finish; one that cancels while the first lets work
    /// finish escalates it (a SIGINT after SIGTERM): what runs is cancelled, and the hooks given to
    /// ``onCancel(_:)`` run.
    public func close(cancelInFlight: Bool, reason: CloseReason) async {
        let (first, escalate, tasks): (Bool, Bool, [Task<Void, Never>]) = state.withLock(notifying: true) { state in
            let first = !state.stopped
            state.stopped = true
            let escalate = !first && cancelInFlight && !state.cancelling
            if cancelInFlight { state.cancelling = true }
            return (first, escalate, cancelInFlight ? state.inFlight.values.compactMap(\.task) : [])
        }
        guard first else {
            if escalate {
                logger.notice("cancelling the work still under way", metadata: ["reason": "\(reason)"])
                for task in tasks { task.cancel() }
                for hook in state.withLock({ $0.cancelHooks }) { await hook() }
            }
            _ = try? await waitUntilClosed()
            return
        }
        for task in tasks { task.cancel() }
        orderedQueue.finish()
        // Answers to our own requests can no longer arrive once reading has stopped.
        let pending = state.withLock { state in
            defer { state.outstanding = [:] }
            return state.outstanding
        }
        for continuation in pending.values {
            continuation.resume(
                throwing: ResponseError.requestFailed("the connection closed before the peer answered")
            )
        }
        await waitUntilIdle()
        // Work that outlives its requests (a server's jobs) ends here, and may still tell the
        // peer, before the output closes. A peer that stopped reading is told nothing more, but
        // what it started still ends as it would have: its finished work is kept.
        for hook in state.withLock({ $0.closeHooks }) { await hook(reason) }
        await writer.drain()
        writer.close()
        let waiters = state.withLock { state in
            state.closeReason = reason
            defer { state.closeWaiters = [:] }
            return state.closeWaiters.values
        }
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    private func outputFailed(_ code: Int32) {
        logger.notice(
            "the peer stopped reading: no more messages are read; work under way finishes first",
            metadata: ["errno": "\(code)"]
        )
        // Not cancelled: what is under way (a generation, a task) is kept when it ends, though its
        // answer can no longer be sent. A SIGINT still cancels it.
        Task { await close(cancelInFlight: false, reason: .outputFailed(code)) }
    }
}

/// Collects the responses of one batch and releases them as one array when the last arrives.
final class Batch: Sendable {
    private struct State {
        var remaining: Int
        var body: [UInt8] = [UInt8(ascii: "[")]
    }

    private let state: Mutex<State>

    init(slots: Int) {
        state = Mutex(State(remaining: slots))
    }

    /// Adds one response; returns the whole batch's body when this was the last.
    func complete(id: RequestID, _ outcome: Result<RawJSON, ResponseError>) -> [UInt8]? {
        state.withLock { state in
            if state.body.count > 1 { state.body.append(UInt8(ascii: ",")) }
            MessageEncoder.response(id: id, outcome, into: &state.body)
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            state.body.append(UInt8(ascii: "]"))
            return state.body
        }
    }
}
