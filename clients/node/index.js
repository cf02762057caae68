export { Client, CLIENT_NAME, CLIENT_VERSION } from "./src/client.js";
export {
  RpcError, ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
  ServerNotInitialized, RequestCancelled, ContentModified, RequestFailed,
  WorkspaceError, TemplateError, ModelError, StorageError, TruncatedError, TaskError, JobError, BudgetError,
  ServerExitedError, AbortError, TimeoutError, ProtocolError, ErrorCodes, rpcErrorFromObject,
} from "./src/errors.js";
export { StatusSubscription, PatchError, applyPatch, computeTaskStage, TERMINAL_JOB_STATES } from "./src/jobs.js";
export { NdjsonFramer, LspFramer, createFramer, encodeMessage } from "./src/framing.js";
