// Error classes of the StageRunner client. Branch on `code`/class and read `data`;
// never parse `message` (protocol/README.md section 7).

export const ErrorCodes = Object.freeze({
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ServerNotInitialized: -32002,
  RequestCancelled: -32800,
  ContentModified: -32801,
  RequestFailed: -32803,
  WorkspaceError: -32010,
  TemplateError: -32011,
  ModelError: -32012,
  StorageError: -32013,
  TruncatedError: -32014,
  TaskError: -32015,
  JobError: -32016,
  BudgetError: -32017,
});

/** An error response from the server (or a local error with a JSON-RPC code). */
export class RpcError extends Error {
  constructor(message, code, data, options = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.data = data;
    if (options.method !== undefined) this.method = options.method;
  }
  toJSON() {
    const o = { code: this.code, message: this.message };
    if (this.data !== undefined) o.data = this.data;
    return o;
  }
}

function defineCode(name, code) {
  const cls = {
    [name]: class extends RpcError {
      constructor(message, data, options) { super(message, code, data, options); }
    },
  }[name];
  cls.code = code;
  return cls;
}

export const ParseError = defineCode("ParseError", -32700);
export const InvalidRequest = defineCode("InvalidRequest", -32600);
export const MethodNotFound = defineCode("MethodNotFound", -32601);
export const InvalidParams = defineCode("InvalidParams", -32602);
export const InternalError = defineCode("InternalError", -32603);
export const ServerNotInitialized = defineCode("ServerNotInitialized", -32002);
export const RequestCancelled = defineCode("RequestCancelled", -32800);
export const ContentModified = defineCode("ContentModified", -32801);
export const RequestFailed = defineCode("RequestFailed", -32803);
export const WorkspaceError = defineCode("WorkspaceError", -32010);
export const TemplateError = defineCode("TemplateError", -32011);
/**
 * The model cannot be used or did not answer. data.kind says how, in a word to branch on
 * (unavailable, authentication, permission, not_found, rate_limit, overloaded, invalid_request,
 * context_length, server, timeout, network, too_large, malformed); data.provider, data.httpStatus,
 * data.retryAfter (seconds), data.retries and data.url say where and what happened.
 */
export const ModelError = defineCode("ModelError", -32012);
for (const name of ["provider", "httpStatus", "retryAfter", "retries", "url"]) {
  Object.defineProperty(ModelError.prototype, name, { get() { return this.data?.[name]; } });
}
export const StorageError = defineCode("StorageError", -32013);
export const TruncatedError = defineCode("TruncatedError", -32014);
export const TaskError = defineCode("TaskError", -32015);
/** A job request cannot be done: data.reason is not_found, invalid_state, invalid_path, storage or limit. */
export const JobError = defineCode("JobError", -32016);
Object.defineProperty(JobError.prototype, "reason", { get() { return this.data?.reason; } });
Object.defineProperty(JobError.prototype, "jobId", { get() { return this.data?.jobId; } });

/**
 * A budget cap (budgets in stagerunner.yaml) refused the model call before it was sent: data.scope
 * (request, job or process), data.budgetScope (for job), data.unit (tokens or cost_usd), data.cap,
 * data.spent, data.reserved and data.needed.
 */
export const BudgetError = defineCode("BudgetError", -32017);
for (const name of ["scope", "budgetScope", "unit", "cap", "spent", "reserved", "needed"]) {
  Object.defineProperty(BudgetError.prototype, name, { get() { return this.data?.[name]; } });
}

const BY_CODE = new Map(
  [ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError, ServerNotInitialized,
    RequestCancelled, ContentModified, RequestFailed, WorkspaceError, TemplateError, ModelError,
    StorageError, TruncatedError, TaskError, JobError, BudgetError].map((c) => [c.code, c]),
);

/** Build the RpcError subclass for a JSON-RPC error object; unknown codes give a plain RpcError. */
export function rpcErrorFromObject(error, method) {
  const code = error && Number.isInteger(error.code) ? error.code : -32603;
  const message = error && typeof error.message === "string" && error.message ? error.message : `error ${code}`;
  const data = error ? error.data : undefined;
  const cls = BY_CODE.get(code);
  const opts = method !== undefined ? { method } : {};
  return cls ? new cls(message, data, opts) : new RpcError(message, code, data, opts);
}

/** The server process ended (or could not be talked to) while calls were pending. */
export class ServerExitedError extends Error {
  constructor(message, { exitCode = null, signal = null, stderrTail = "", cause } = {}) {
    super(message, cause !== undefined ? { cause } : undefined);
    this.name = "ServerExitedError";
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

/** A call was aborted through its AbortSignal; `$/cancelRequest` was sent. */
export class AbortError extends Error {
  constructor(message = "The request was aborted", options) {
    super(message, options);
    this.name = "AbortError";
    this.code = "ABORT_ERR";
  }
}

/** A call ran past its `timeout`; `$/cancelRequest` was sent. */
export class TimeoutError extends Error {
  constructor(message = "The request timed out", options) {
    super(message, options);
    this.name = "TimeoutError";
    this.code = "ETIMEDOUT";
  }
}

/** The server sent bytes the client could not read as a message (bad framing, bad UTF-8, bad JSON). */
export class ProtocolError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "ProtocolError";
  }
}
