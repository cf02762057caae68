// StageRunner client: spawns `stagerunner serve` and speaks JSON-RPC 2.0 over its stdio.

import { spawn as spawnProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import path from "node:path";

import {
  AbortError, MethodNotFound, ProtocolError, RequestCancelled, RequestFailed, RpcError, ServerExitedError,
  TimeoutError, rpcErrorFromObject,
} from "./errors.js";
import { createFramer, encodeMessage } from "./framing.js";
import { StatusSubscription } from "./jobs.js";

export const CLIENT_NAME = "stagerunner-node";
export const CLIENT_VERSION = "0.1.0";
export const PROTOCOL_VERSION = "1.0";

const DEFAULT_STDERR_LIMIT = 64 * 1024;
// EventEmitter names the client uses itself; notifications with these method names are only
// delivered through the "notification" event and notifications().
const RESERVED_EVENTS = new Set([
  "notification", "request", "error", "exit", "close", "stderr", "protocolError", "newListener",
  "removeListener",
]);

/** Keeps the last `limit` bytes written to it (stderr of the server). */
class RingBuffer {
  constructor(limit) {
    this.limit = limit;
    this.chunks = [];
    this.size = 0;
    this.total = 0;
  }
  push(chunk) {
    this.total += chunk.length;
    if (chunk.length >= this.limit) {
      this.chunks = [chunk.subarray(chunk.length - this.limit)];
      this.size = this.limit;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.limit) {
      this.size -= this.chunks.shift().length;
    }
  }
  text() {
    let buf = Buffer.concat(this.chunks);
    if (buf.length > this.limit) buf = buf.subarray(buf.length - this.limit);
    // Skip UTF-8 continuation bytes cut at the start of the ring.
    let i = 0;
    while (i < buf.length && i < 4 && (buf[i] & 0xc0) === 0x80) i++;
    return buf.subarray(i).toString("utf8");
  }
}

function resolveExecutable(executable) {
  return executable || process.env.STAGERUNNER_BIN || "stagerunner";
}

/**
 * A connection to one `stagerunner serve` process.
 *
 * Events: "notification" ({method, params}), one event per notification method (params) unless
 * the name is reserved (e.g. "statusChanged", "$/progress"), "request" ({method, params, id}),
 * "stderr" (Buffer), "protocolError" (Error), "exit" ({exitCode, signal, stderrTail}).
 */
export class Client extends EventEmitter {
  /**
   * Spawn the server, then send `initialize` and `initialized`.
   * @param {object} [options]
   */
  static async spawn(options = {}) {
    const framing = options.framing ?? "ndjson";
    if (framing !== "ndjson" && framing !== "lsp") {
      throw new TypeError(`framing must be "ndjson" or "lsp", not ${JSON.stringify(framing)}`);
    }
    const executable = resolveExecutable(options.executable);
    const workspace = options.workspace != null ? path.resolve(options.workspace) : undefined;
    const args = ["serve", "--framing", framing];
    if (workspace !== undefined) args.push("--workspace", workspace);
    if (options.args) args.push(...options.args);
    const child = spawnProcess(executable, args, {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      shell: false,
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      windowsHide: true,
    });
    const client = new Client(child, { ...options, framing, executable, workspace });
    await new Promise((resolve, reject) => {
      const onError = (err) => { child.off("spawn", onSpawn); reject(err); };
      const onSpawn = () => { child.off("error", onError); resolve(); };
      child.once("error", onError);
      child.once("spawn", onSpawn);
    });
    if (options.initialize === false) return client;
    try {
      await client.initialize(options.initializeParams, { timeout: options.initializeTimeout ?? 30000 });
    } catch (err) {
      await client.kill().catch(() => {});
      throw err;
    }
    return client;
  }

  /**
   * Wrap an already spawned child process (stdio pipes). Most callers want Client.spawn().
   */
  constructor(child, options = {}) {
    super();
    this.child = child;
    this.pid = child.pid;
    this.framing = options.framing ?? "ndjson";
    this.executable = options.executable;
    this.initializeResult = undefined;
    this._nextId = 1;
    this._pending = new Map();
    this._handlers = new Map();
    this._stageHandlers = new Map();
    this._declaredStageHandlers = null; // the names sent in initialize, once sent
    this._serverRequests = new Map(); // id of a server request in progress -> AbortController
    this._progress = new Map(); // progress token of a runStage in flight -> its delivery
    this._nextProgress = 1;
    this.workspace = options.workspace;
    for (const [name, handler] of Object.entries(options.stageHandlers ?? {})) this.handleStage(name, handler);
    this._iterators = new Set();
    this._stderr = new RingBuffer(options.stderrLimit ?? DEFAULT_STDERR_LIMIT);
    this._writeQueue = [];
    this._waitingDrain = false;
    this._stdinClosed = false;
    this._exited = false; // process gone and stdio closed
    this._exitInfo = null;
    this._closing = null;
    this._exitWaiters = [];

    this._framer = createFramer(this.framing, {
      onMessage: (text) => this._onFrame(text),
      onError: (err) => this._protocolError(err),
      maxMessageSize: options.maxMessageSize,
    });

    child.stdout.on("data", (chunk) => this._framer.push(chunk));
    child.stdout.on("end", () => this._framer.end());
    child.stdout.on("error", () => {});
    // Always drain stderr into the ring buffer: a full stderr pipe would block the server.
    child.stderr.on("data", (chunk) => {
      this._stderr.push(chunk);
      if (this.listenerCount("stderr")) this.emit("stderr", chunk);
    });
    child.stderr.on("error", () => {});
    child.stdin.on("error", (err) => {
      // EPIPE and friends: the server is gone; exit handling rejects the pending calls.
      this._stdinClosed = true;
      this._stdinError = err;
      this._failWrites(err);
    });
    child.stdin.on("drain", () => {
      this._waitingDrain = false;
      this._flushWrites();
    });

    let exitTimer = null;
    child.on("exit", (code, signal) => {
      this._exitCode = code;
      this._exitSignal = signal;
      // Give stdout a moment to deliver its last frames; 'close' normally follows at once.
      exitTimer = setTimeout(() => this._finalize(code, signal), 1000);
      exitTimer.unref?.();
    });
    child.on("close", (code, signal) => {
      if (exitTimer) clearTimeout(exitTimer);
      this._finalize(code ?? this._exitCode ?? null, signal ?? this._exitSignal ?? null);
    });
    child.on("error", (err) => {
      // Spawn failure or kill failure; spawn() reports the former.
      this._spawnError = err;
      if (child.pid === undefined) this._finalize(null, null, err);
    });
  }

  // ---- public API ---------------------------------------------------------------------

  /** The `serverInfo` of the initialize result. */
  get serverInfo() { return this.initializeResult?.serverInfo; }
  /** The `capabilities` of the initialize result. */
  get capabilities() { return this.initializeResult?.capabilities; }
  /** Whether the process has exited. */
  get exited() { return this._exited; }
  /** Exit status once exited: {exitCode, signal, stderrTail}. */
  get exitInfo() { return this._exitInfo; }

  /** The last bytes (default 64 KiB) the server wrote to stderr, decoded as UTF-8. */
  stderrTail() { return this._stderr.text(); }

  /**
   * Send a request and resolve with its result; rejects with an RpcError subclass,
   * AbortError, TimeoutError or ServerExitedError.
   */
  request(method, params, options = {}) {
    const { signal, timeout } = options;
    if (typeof method !== "string") return Promise.reject(new TypeError("method must be a string"));
    if (this._exited || this._stdinClosed) return Promise.reject(this._exitedError(`cannot call ${method}`));
    if (signal?.aborted) {
      return Promise.reject(new AbortError(`${method} was aborted before it was sent`, { cause: signal.reason }));
    }
    const id = this._nextId++;
    const message = { jsonrpc: "2.0", id, method };
    if (params !== undefined) message.params = params;
    return new Promise((resolve, reject) => {
      let timer = null;
      const onAbort = () => {
        this._cancelPending(id, new AbortError(`${method} was aborted`, { cause: signal.reason }));
      };
      const entry = {
        method,
        resolve,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      this._pending.set(id, entry);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout != null && timeout !== Infinity) {
        timer = setTimeout(() => {
          this._cancelPending(id, new TimeoutError(`${method} timed out after ${timeout} ms`));
        }, timeout);
      }
      this._write(message).catch((err) => {
        const p = this._pending.get(id);
        if (!p) return;
        this._pending.delete(id);
        p.cleanup();
        p.reject(this._exitedError(`cannot send ${method}`, err));
      });
    });
  }

  /** Send a notification. Resolves once it has been handed to the pipe. */
  notify(method, params) {
    if (this._exited || this._stdinClosed) return Promise.reject(this._exitedError(`cannot send ${method}`));
    const message = { jsonrpc: "2.0", method };
    if (params !== undefined) message.params = params;
    return this._write(message);
  }

  /** Register a handler for a server-to-client request; returns a function that removes it. */
  handle(method, handler) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    this._handlers.set(method, handler);
    return () => { if (this._handlers.get(method) === handler) this._handlers.delete(method); };
  }

  /**
   * Run the task stages whose handler is `{client: name}`: `handler(stage, context, {signal})`
   * returns (or resolves to) `{output, flags}`. Names are declared in initialize
   * (capabilities.stageHandlers), so register them before it: pass `stageHandlers` to
   * Client.spawn, or call this on a client spawned with `initialize: false`, then
   * `initialize()`. Registering a new name after initialize throws; replacing a declared
   * one is allowed. Returns a function that removes the handler.
   */
  handleStage(name, handler) {
    if (typeof name !== "string" || name === "") throw new TypeError("a stage handler name must be a non-empty string");
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    if (this._declaredStageHandlers && !this._declaredStageHandlers.has(name)) {
      throw new Error(
        `stage handler '${name}' registered after initialize: pass it in Client.spawn({stageHandlers}) ` +
        "(or register it before initialize()) so that it is declared",
      );
    }
    this._stageHandlers.set(name, handler);
    if (!this._handlers.has("executeStage")) this._handlers.set("executeStage", (params, ctx) => this._executeStage(params, ctx));
    return () => { if (this._stageHandlers.get(name) === handler) this._stageHandlers.delete(name); };
  }

  /** The names of the registered stage handlers, sorted. */
  get stageHandlers() { return [...this._stageHandlers.keys()].sort(); }

  /**
   * Send `initialize` (declaring the stage handlers registered so far) and `initialized`.
   * Client.spawn calls it unless `initialize: false`.
   */
  async initialize(params = {}, options = {}) {
    const capabilities = this._stageHandlers.size ? { stageHandlers: this.stageHandlers } : {};
    const full = {
      processId: process.pid,
      clientInfo: { name: CLIENT_NAME, version: CLIENT_VERSION },
      protocolVersion: PROTOCOL_VERSION,
      capabilities,
      ...(this.workspace !== undefined ? { workspaceRoot: this.workspace } : {}),
      ...(params || {}),
    };
    this._declaredStageHandlers = new Set(
      Array.isArray(full.capabilities?.stageHandlers) ? full.capabilities.stageHandlers : [],
    );
    this.initializeResult = await this.request("initialize", full, options);
    await this.notify("initialized", {});
    return this.initializeResult;
  }

  /**
   * Async iterator over incoming notifications: of one method (yields params), or of all
   * when `method` is omitted (yields {method, params}). Ends when the server exits, the
   * loop breaks, or `options.signal` aborts.
   */
  notifications(method, options = {}) {
    const queue = [];
    const waiters = [];
    let done = false;
    const iters = this._iterators;
    const finish = () => {
      if (done) return;
      done = true;
      iters.delete(sub);
      options.signal?.removeEventListener("abort", finish);
      for (const w of waiters.splice(0)) w.resolve({ value: undefined, done: true });
    };
    const sub = {
      push: (msg) => {
        if (method !== undefined && msg.method !== method) return;
        const value = method !== undefined ? msg.params : msg;
        const w = waiters.shift();
        if (w) w.resolve({ value, done: false });
        else queue.push(value);
      },
      end: finish,
    };
    if (this._exited || options.signal?.aborted) done = true;
    else {
      iters.add(sub);
      options.signal?.addEventListener("abort", finish, { once: true });
    }
    return {
      next() {
        if (queue.length) return Promise.resolve({ value: queue.shift(), done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiters.push({ resolve }));
      },
      return() {
        finish();
        queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() { return this; },
    };
  }

  // ---- methods of protocol 1.0 ---------------------------------------------------------

  ping(params = {}, options) { return this.request("ping", params, options); }
  /**
   * Run a stage. `options.onProgress(value)` (sync or async) receives the run's $/progress values
   * in order: {kind: "begin", title}, {kind: "report", text} per piece of the model's answer (or
   * {kind: "report", restart: true}: drop the text so far), {kind: "end", message}. The client makes
   * a token unique to the call unless `params.progressToken` is given, and settles only after the
   * callback has had every value; a callback that throws rejects the call once the server answered.
   */
  runStage(params, options = {}) {
    const { onProgress, ...callOptions } = options ?? {};
    if (onProgress == null) return this.request("runStage", params, callOptions);
    if (typeof onProgress !== "function") return Promise.reject(new TypeError("onProgress must be a function"));
    return this._runStageWithProgress(params, onProgress, callOptions);
  }

  async _runStageWithProgress(params, onProgress, options) {
    const token = params?.progressToken ?? `${CLIENT_NAME}-${this._nextProgress++}`;
    if (this._progress.has(token)) throw new Error(`progress token ${JSON.stringify(token)} is in use by another runStage`);
    const route = { chain: Promise.resolve(), stopped: false, failed: false, error: undefined };
    route.deliver = (value) => {
      route.chain = route.chain.then(async () => {
        if (route.stopped || route.failed) return;
        try {
          await onProgress(value);
        } catch (err) {
          route.failed = true;
          route.error = err;
        }
      });
    };
    this._progress.set(token, route);
    try {
      let result;
      try {
        result = await this.request("runStage", { ...params, progressToken: token }, options);
      } catch (err) {
        if (err instanceof RpcError) await route.chain; // the end carries the error's message
        else route.stopped = true;
        throw err;
      }
      await route.chain;
      if (route.failed) throw route.error;
      return result;
    } finally {
      if (this._progress.get(token) === route) this._progress.delete(token);
    }
  }
  renderPrompt(params, options) { return this.request("renderPrompt", params, options); }
  listTemplates(params = {}, options) { return this.request("listTemplates", params, options); }
  validateWorkspace(options) { return this.request("validateWorkspace", {}, options); }
  shutdown(options) { return this.request("shutdown", undefined, options); }
  /**
   * Run a task: `{task, input?, modelConfig?, maxRefinements?, timeout?, runId?, dryRun?}`; `task` is
   * a task file's path relative to the workspace, or the task object. A failed task resolves with
   * `ok: false`; a task that cannot be loaded rejects with TaskError (-32015). With `dryRun: true`
   * nothing runs or is written: it resolves with `{dryRun: true, ok, task, stages: [{stage, handler,
   * problems}]}`.
   */
  runTask(params, options) { return this.request("runTask", params, options); }

  // ---- jobs (protocol/README.md sections 8.9 to 8.11) --------------------------------------

  /**
   * Start a pipeline as a job: `{pipeline, input?, name?, options?: {wait?}, dryRun?}`; `pipeline` is
   * a pipeline file's path relative to the workspace, or the pipeline object. Resolves with {jobId}
   * at once, or with `options.wait` once the job has ended, with its final `status` too. With
   * `dryRun: true` no job starts: it resolves with `{dryRun: true, ok, pipeline, tasks: [{name, file,
   * ok, stages?, error?}]}`.
   */
  runPipeline(params, options) { return this.request("runPipeline", params, options); }
  /** `{jobId}` → {status, taskStages}. */
  getStatus(params, options) { return this.request("getStatus", params, options); }
  /** `{state?}` → {jobs}: a summary of every job of the workspace, newest first. */
  listJobs(params = {}, options) { return this.request("listJobs", params, options); }
  /** `{jobId}` → {status}, once the job has stopped. */
  cancelJob(params, options) { return this.request("cancelJob", params, options); }
  /** `{jobId, task}` → {jobId}: the task and those after it run again. */
  retryTask(params, options) { return this.request("retryTask", params, options); }
  /** `{jobId}` → {jobId}: an interrupted or cancelled job continues from its first unfinished task. */
  resumeJob(params, options) { return this.request("resumeJob", params, options); }
  /** `{jobId, path}` → {path, size, text | base64}. */
  getArtifact(params, options) { return this.request("getArtifact", params, options); }
  /**
   * Follow one job (`{jobId}`) or every job (`{}`) as an async iterator of changes, each with the
   * job's document already up to date (`delivery: "patch"` asks for patches; the client applies
   * them on the rev it holds and calls getStatus on a gap). `options.signal` stops it,
   * `options.untilFinished` ends it once the job has finished; `break` or close() unsubscribes.
   * The request is sent on the first next() (or start()).
   */
  subscribeStatus(params = {}, options = {}) { return new StatusSubscription(this, params, options); }
  /** `{subscriptionId}` → {}. Prefer the subscription's close(). */
  unsubscribeStatus(params, options) { return this.request("unsubscribeStatus", params, options); }

  /**
   * Graceful stop: `shutdown` request, `exit` notification, end stdin, wait 2 s,
   * SIGTERM the process group, wait 2 s, SIGKILL. Resolves with {exitCode, signal, stderrTail}.
   */
  close(options = {}) {
    if (this._closing) return this._closing;
    const grace = options.grace ?? 2000;
    this._closing = (async () => {
      if (!this._exited) {
        if (!this._stdinClosed) {
          try { await this.shutdown({ timeout: options.shutdownTimeout ?? grace }); } catch { /* best effort */ }
        }
        if (!this._stdinClosed && !this._exited) {
          try { await this.notify("exit"); } catch { /* best effort */ }
        }
        this._endStdin();
        if (!(await this._waitExit(grace))) {
          this._killGroup("SIGTERM");
          if (!(await this._waitExit(grace))) {
            this._killGroup("SIGKILL");
            await this._waitExit(grace);
          }
        }
      }
      return this._exitInfo ?? { exitCode: null, signal: null, stderrTail: this.stderrTail() };
    })();
    return this._closing;
  }

  /** Stop at once: SIGKILL the process group. Resolves once it has exited. */
  async kill(signal = "SIGKILL") {
    if (!this._exited) {
      this._killGroup(signal);
      await this._waitExit(5000);
    }
    return this._exitInfo;
  }

  async [Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")]() { await this.close(); }

  // ---- internals ---------------------------------------------------------------------------

  _exitedError(what, cause) {
    const info = this._exitInfo;
    const status = info
      ? info.signal ? `was killed by ${info.signal}` : `exited with status ${info.exitCode}`
      : "is not accepting input";
    return new ServerExitedError(`${what}: the server ${status}`, {
      exitCode: info?.exitCode ?? null,
      signal: info?.signal ?? null,
      stderrTail: this.stderrTail(),
      cause: cause ?? this._spawnError,
    });
  }

  _cancelPending(id, error) {
    const p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id); // the late response is dropped quietly
    p.cleanup();
    if (!this._exited && !this._stdinClosed) {
      this.notify("$/cancelRequest", { id }).catch(() => {});
    }
    p.reject(error);
  }

  _write(message) {
    let bytes;
    try {
      bytes = encodeMessage(message, this.framing);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this._writeQueue.push({ bytes, resolve, reject });
      this._flushWrites();
    });
  }

  _flushWrites() {
    const stdin = this.child.stdin;
    while (!this._waitingDrain && this._writeQueue.length) {
      if (this._stdinClosed || stdin.destroyed || stdin.writableEnded) {
        this._failWrites(new Error("stdin is closed"));
        return;
      }
      const item = this._writeQueue.shift();
      const ok = stdin.write(item.bytes);
      item.resolve();
      if (!ok) this._waitingDrain = true; // honour back-pressure: wait for 'drain'
    }
  }

  _failWrites(err) {
    for (const item of this._writeQueue.splice(0)) item.reject(err);
  }

  _endStdin() {
    if (this._stdinClosed) return;
    this._stdinClosed = true;
    const stdin = this.child.stdin;
    // Let queued writes go first.
    const end = () => { try { stdin.end(); } catch { /* ignore */ } };
    if (this._writeQueue.length || this._waitingDrain) {
      const q = this._writeQueue.splice(0);
      for (const item of q) { stdin.write(item.bytes); item.resolve(); }
    }
    end();
  }

  _killGroup(signal) {
    if (this._exited || this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      try { this.child.kill(signal); } catch { /* already gone */ }
    }
  }

  _waitExit(ms) {
    if (this._exited) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._exitWaiters = this._exitWaiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = () => { clearTimeout(timer); resolve(true); };
      this._exitWaiters.push(done);
    });
  }

  _finalize(exitCode, signal, cause) {
    if (this._exited) return;
    this._exited = true;
    this._stdinClosed = true;
    this._exitInfo = { exitCode, signal, stderrTail: this.stderrTail() };
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      p.cleanup();
      p.reject(this._exitedError(`${p.method} got no answer`, cause));
    }
    this._failWrites(this._exitedError("cannot send", cause));
    for (const it of [...this._iterators]) it.end();
    for (const w of this._exitWaiters.splice(0)) w();
    this.emit("exit", this._exitInfo);
  }

  _protocolError(err) {
    if (this.listenerCount("protocolError")) this.emit("protocolError", err);
  }

  _onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      this._protocolError(new ProtocolError("frame is not valid JSON", { cause: e }));
      return;
    }
    if (Array.isArray(msg)) {
      for (const m of msg) this._dispatch(m);
    } else {
      this._dispatch(msg);
    }
  }

  _dispatch(msg) {
    if (msg === null || typeof msg !== "object" || msg.jsonrpc !== "2.0") {
      this._protocolError(new ProtocolError(`not a JSON-RPC 2.0 message: ${JSON.stringify(msg)?.slice(0, 200)}`));
      return;
    }
    if (typeof msg.method === "string") {
      if ("id" in msg) this._onServerRequest(msg);
      else this._onNotification(msg);
      return;
    }
    if ("result" in msg || "error" in msg) {
      const p = msg.id === null || msg.id === undefined ? undefined : this._pending.get(msg.id);
      if (!p) {
        // A late answer to a cancelled/timed-out call, or an error about an unreadable frame.
        if ("error" in msg && (msg.id === null || msg.id === undefined)) {
          this._protocolError(rpcErrorFromObject(msg.error));
        }
        return;
      }
      this._pending.delete(msg.id);
      p.cleanup();
      if ("error" in msg) p.reject(rpcErrorFromObject(msg.error, p.method));
      else p.resolve(msg.result);
      return;
    }
    this._protocolError(new ProtocolError(`unrecognised message: ${JSON.stringify(msg).slice(0, 200)}`));
  }

  _onNotification(msg) {
    if (msg.method === "$/cancelRequest") {
      // The server no longer waits for one of its requests (a stage timed out): stop its handler.
      const controller = this._serverRequests.get(msg.params?.id);
      if (controller) controller.abort(new RequestCancelled("cancelled by the server"));
    }
    if (msg.method === "$/progress") {
      const token = msg.params?.token;
      const route = typeof token === "string" || typeof token === "number" ? this._progress.get(token) : undefined;
      route?.deliver(msg.params.value);
    }
    const note = { method: msg.method, params: msg.params };
    for (const it of [...this._iterators]) it.push(note);
    this.emit("notification", note);
    if (!RESERVED_EVENTS.has(msg.method)) this.emit(msg.method, msg.params);
  }

  async _executeStage(params, { signal }) {
    const name = params?.handler;
    const handler = this._stageHandlers.get(name);
    if (!handler) {
      throw new MethodNotFound(`no stage handler named '${name}'`, {
        method: "executeStage",
        available: this.stageHandlers,
      });
    }
    try {
      return await handler(params.stage, params.context, { signal });
    } catch (err) {
      if (err instanceof RpcError) throw err;
      const type = err?.name ?? "Error";
      throw new RequestFailed(`${type}: ${err?.message ?? String(err)}`, {
        exception: type,
        handler: name,
        stage: params.stage,
      });
    }
  }

  async _onServerRequest(msg) {
    const { id, method, params } = msg;
    if (this.listenerCount("request")) this.emit("request", { id, method, params });
    const handler = this._handlers.get(method);
    let response;
    if (!handler) {
      const err = new MethodNotFound(`Method not found: '${method}'`, {
        method,
        available: [...this._handlers.keys()].sort(),
      });
      response = { jsonrpc: "2.0", id, error: err.toJSON() };
    } else {
      const controller = new AbortController();
      this._serverRequests.set(id, controller);
      try {
        const result = await handler(params, { id, method, signal: controller.signal });
        response = { jsonrpc: "2.0", id, result: result === undefined ? null : result };
      } catch (err) {
        const error = err instanceof RpcError
          ? err.toJSON()
          : { code: -32603, message: `Internal error: ${err?.message ?? String(err)}` };
        response = { jsonrpc: "2.0", id, error };
      } finally {
        this._serverRequests.delete(id);
      }
      if (controller.signal.aborted) response = { jsonrpc: "2.0", id, error: new RequestCancelled("Request cancelled").toJSON() };
    }
    if (!this._exited && !this._stdinClosed) this._write(response).catch(() => {});
  }
}
