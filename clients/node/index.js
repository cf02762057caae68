export { Client, CLIENT_NAME, CLIENT_VERSION } from "./src/client.js";
export {
  RpcError, ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
  ServerNotInitialized, RequestCancelled, ContentModified, RequestFailed,
  WorkspaceError, TemplateError, ModelError, StorageError, TruncatedError, TaskError,
  ServerExitedError, AbortError, TimeoutError, ProtocolError, ErrorCodes, rpcErrorFromObject,
} from "./src/errors.js";
export { NdjsonFramer, LspFramer, createFramer, encodeMessage } from "./src/framing.js";
