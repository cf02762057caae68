// Types of the StageRunner Node client, written from protocol/schema/*.json (protocol 1.0).
// test/types.test.js checks that every interface mapped to a schema lists exactly the
// schema's `properties`, so a schema change that is not reflected here fails the tests.
// Result interfaces may gain members in later minor versions: ignore unknown members.

import { EventEmitter } from "node:events";
import { ChildProcess } from "node:child_process";

// ---------------------------------------------------------------- shared definitions

/** metadata.json#/$defs/stage */
export type Stage = "draft" | "essay" | "evaluation";
/** metadata.json#/$defs/status */
export type GenerationStatus = "success" | "json_parse_error" | "parser_failure" | "stub_fallback" | "truncated";
/** request.json#/$defs/id */
export type RequestId = string | number | null;
export type Framing = "ndjson" | "lsp";

// ---------------------------------------------------------------- initialize

/** schema/initialize.params.json */
export interface InitializeParams {
  processId?: number | null;
  clientInfo?: ClientInfo | null;
  protocolVersion?: string | null;
  capabilities?: ClientCapabilities | null;
  workspaceRoot?: string | null;
}

/** schema/initialize.params.json#/properties/capabilities/then (any other value is ignored) */
export interface ClientCapabilities {
  /** Names of the task stage handlers this client runs (executeStage). */
  stageHandlers?: string[];
}

/** schema/initialize.params.json#/properties/clientInfo/oneOf/0 */
export interface ClientInfo {
  name: string;
  version?: string | null;
}

/** schema/initialize.result.json */
export interface InitializeResult {
  protocolVersion: string;
  serverInfo: ServerInfo;
  capabilities: ServerCapabilities;
  workspace: WorkspaceInfo;
}

/** schema/initialize.result.json#/properties/serverInfo */
export interface ServerInfo {
  name: string;
  version: string;
}

/** schema/initialize.result.json#/properties/capabilities */
export interface ServerCapabilities {
  methods: string[];
  notifications: string[];
  batches: boolean;
  cancellation: boolean;
  framing: Framing;
  maxMessageSize: number;
}

/** schema/initialize.result.json#/properties/workspace */
export interface WorkspaceInfo {
  root: string;
}

// ---------------------------------------------------------------- ping

/** schema/ping.params.json */
export interface PingParams {
  echo?: unknown;
}

/** schema/ping.result.json */
export interface PingResult {
  echo?: unknown;
}

// ---------------------------------------------------------------- runStage / renderPrompt

/** schema/runStage.params.json (also the params of renderPrompt) */
export interface StageRunParams {
  stage: Stage;
  genId?: string | null;
  templateId?: string | null;
  values?: Record<string, unknown> | null;
  mode?: "llm" | "copy" | null;
  model?: string | null;
  parserName?: string | null;
  passThroughFrom?: string | null;
  maxTokens?: number | null;
  promptText?: string | null;
  force?: boolean | null;
  stubFallback?: boolean | null;
  failOnTruncation?: boolean | null;
  runId?: string | null;
  /** The job whose budget the calls spend (budgets.job in stagerunner.yaml). */
  budgetScope?: string | null;
  /** Whether the answer may come from the response cache. */
  cache?: "use" | "refresh" | "off" | null;
  /** runStage only: the server sends $/progress notifications with this token. */
  progressToken?: string | number | null;
  maxTextLength?: number | null;
}
export type RunStageParams = StageRunParams;
export type RenderPromptParams = StageRunParams;

/** schema/runStage.result.json */
export interface StageResult {
  genId: string;
  stage: Stage;
  status: GenerationStatus;
  reused: boolean;
  files: string[];
  raw: string | null;
  parsed: string | null;
  textTruncated: boolean;
  score?: number;
  debug: StageDebug;
  metadata: GenerationMetadata;
}
export type RunStageResult = StageResult;

/** schema/runStage.result.json#/properties/debug */
export interface StageDebug {
  llm_cleaned_json?: string;
  llm_error?: string;
}

/** schema/metadata.json */
export interface GenerationMetadata {
  schema_version: 1;
  stage: Stage;
  gen_id: string;
  template_id: string;
  mode: "llm" | "copy";
  model?: string;
  provider?: string;
  parser?: string;
  parent_gen_id?: string;
  run_id: string;
  created_at: string;
  duration_ms: number;
  finish_reason?: "stop" | "length" | "content_filter" | "tool_calls" | "other";
  truncated: boolean;
  usage?: Usage;
  /** US dollars; null when the model's price is unknown. */
  cost_usd?: number | null;
  status: GenerationStatus;
  llm_error?: string;
  files: Array<"prompt.txt" | "raw.txt" | "parsed.txt" | "metadata.json">;
  template_sha256?: string;
  raw_length?: number;
  raw_lines?: number;
  /** Failed attempts retried before the answer; absent when the first attempt succeeded. */
  retries?: number;
  /** Served from the response cache. */
  cached?: true;
}

/** schema/metadata.json#/properties/usage */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** schema/renderPrompt.result.json */
export interface RenderPromptResult {
  prompt: string;
  variables: Record<string, unknown>;
  templateId: string;
  templateFile: string;
}

// ---------------------------------------------------------------- listTemplates

/** schema/listTemplates.params.json */
export interface ListTemplatesParams {
  stage?: Stage | null;
  includeInactive?: boolean | null;
}

/** schema/listTemplates.result.json */
export interface ListTemplatesResult {
  templates: Template[];
}

/** schema/listTemplates.result.json#/$defs/template */
export interface Template {
  stage: Stage;
  id: string;
  name: string;
  description: string;
  generator: "llm" | "copy";
  parser?: string;
  active: boolean;
  file: string;
}

// ---------------------------------------------------------------- validateWorkspace

/** schema/validateWorkspace.result.json */
export interface ValidateWorkspaceResult {
  root: string;
  valid: boolean;
  errors: number;
  warnings: number;
  templates: number;
  generations: number;
  diagnostics: Diagnostic[];
}

/** schema/validateWorkspace.result.json#/$defs/diagnostic */
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  severity: "error" | "warning" | "information";
  code: string;
  message: string;
}

// ---------------------------------------------------------------- shutdown, cancel, test methods

/** schema/shutdown.result.json */
export type ShutdownResult = null;

/** schema/cancelRequest.params.json */
export interface CancelParams {
  id: RequestId;
}

/** schema/test-sleep.params.json (test-only method test/sleep) */
export interface TestSleepParams {
  ms: number;
}

/** schema/test-sleep.result.json */
export interface TestSleepResult {
  slept: number;
}

/** schema/test-print.params.json (test-only method test/print) */
export interface TestPrintParams {
  text: string;
}

// ---------------------------------------------------------------- tasks

/** runTask.result.json#/$defs/stage: the eleven stages, in the order they run. */
export type TaskStage =
  | "ingestion" | "preProcessing" | "promptTemplating" | "inference" | "parsing" | "validateStructure"
  | "validateQuality" | "critique" | "refine" | "finalValidation" | "integration";
export type TaskErrorName =
  | "ContractError" | "FlagTypeError" | "StageTimeoutError" | "TaskTimeoutError" | "ValidationError"
  | "TemplateError" | "ModelError" | "ParseError" | "SchemaError" | "CommandError" | "ClientStageError"
  | "WriteError" | "CancelledError" | "StageError";
/** A task document (schema/task.json); see protocol/README.md section 8.7. */
export type TaskDocument = { stages: Partial<Record<TaskStage, Record<string, unknown>>>; [key: string]: unknown };

/** schema/runTask.params.json */
export interface RunTaskParams {
  /** A task file's path relative to the workspace, or the task document itself. */
  task: string | TaskDocument;
  input?: unknown;
  modelConfig?: ModelConfig | null;
  maxRefinements?: number | null;
  /** Seconds the whole task may take (server side). */
  timeout?: number | null;
  runId?: string | null;
}

/** schema/runTask.params.json#/properties/modelConfig/oneOf/0 */
export interface ModelConfig {
  defaultProvider?: string | null;
  defaultModel?: string | null;
  models?: string[] | null;
}

/** schema/runTask.result.json: a failed task has ok false, failedStage and error. */
export interface TaskResult {
  ok: boolean;
  logs: TaskLogEntry[];
  context: TaskContext;
  refinementAttempts: number;
  llmMetrics: LLMMetric[];
  failedStage?: TaskStage | "final-validation";
  error?: TaskErrorInfo;
}

/** schema/runTask.result.json#/$defs/context: what every stage handler sees. */
export interface TaskContext {
  meta: TaskMeta;
  data: { seed: unknown; [stage: string]: unknown };
  flags: Record<string, unknown>;
  logs: TaskLogEntry[];
  currentStage: TaskStage | null;
  /** The stage's input. */
  output: unknown;
  refinementCount: number;
  availableModels: string[];
  currentModel: string;
}

/** schema/runTask.result.json#/$defs/context/properties/meta */
export interface TaskMeta {
  taskName: string;
  runId: string;
  workDir: string;
  modelConfig: TaskModelConfig;
}

/** schema/runTask.result.json#/$defs/context/properties/meta/properties/modelConfig */
export interface TaskModelConfig {
  defaultProvider?: string;
  defaultModel?: string;
  models?: string[];
}

/** schema/runTask.result.json#/$defs/logEntry */
export interface TaskLogEntry {
  stage: TaskStage | "refinement-trigger";
  refinementCycle: number;
  ok?: boolean;
  ms?: number;
  error?: TaskErrorInfo;
  preRefinement?: true;
  skipped?: true;
  reason?:
    | "no-handler" | "refinement-cycle" | "already-pre-refined" | "validation-passed"
    | "validation-error" | "validation-failed-flag";
}

/** schema/runTask.result.json#/$defs/error */
export interface TaskErrorInfo {
  name: TaskErrorName;
  message: string;
  data?: unknown;
}

/** schema/runTask.result.json#/$defs/llmMetric */
export interface LLMMetric {
  task: string;
  stage: TaskStage;
  provider: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  cost: number;
  durationMs: number;
  finishReason?: "stop" | "length" | "content_filter" | "tool_calls" | "other";
  cached: boolean;
  retries: number;
  failed?: true;
  error?: string;
}

/** schema/executeStage.params.json: sent by the server. */
export interface ExecuteStageParams {
  handler: string;
  stage: TaskStage;
  context: TaskContext;
}

/** schema/executeStage.result.json: what a stage handler returns. */
export interface StageOutput {
  output: unknown;
  flags: Record<string, unknown>;
}

/** A stage run by the client; `signal` aborts when the server cancels (the stage timed out). */
export type StageHandler = (
  stage: TaskStage,
  context: TaskContext,
  options: { signal: AbortSignal },
) => StageOutput | Promise<StageOutput>;

// ---------------------------------------------------------------- errors

/** schema/error.json#/$defs/data */
export interface ErrorData {
  hint?: string;
  field?: string;
  problem?: string;
  offset?: number;
  limit?: number;
  size?: number;
  method?: string;
  available?: string[];
  kind?: "workspace" | "template" | "model" | "storage" | "truncated" | "task" | "pipeline" | "job" | "budget";
  file?: string;
  path?: string;
  line?: number;
  /** -32017: the budget that refused the call. */
  scope?: "request" | "job" | "process";
  budgetScope?: string;
  unit?: "tokens" | "cost_usd";
  cap?: number;
  spent?: number;
  reserved?: number;
  needed?: number;
}

/** schema/error.json */
export interface ErrorObject {
  code: number;
  message: string;
  data?: ErrorData;
}

export declare const ErrorCodes: Readonly<{
  ParseError: -32700; InvalidRequest: -32600; MethodNotFound: -32601; InvalidParams: -32602;
  InternalError: -32603; ServerNotInitialized: -32002; RequestCancelled: -32800;
  ContentModified: -32801; RequestFailed: -32803; WorkspaceError: -32010; TemplateError: -32011;
  ModelError: -32012; StorageError: -32013; TruncatedError: -32014; TaskError: -32017;
}>;

export declare class RpcError extends Error {
  constructor(message: string, code: number, data?: ErrorData, options?: { method?: string; cause?: unknown });
  code: number;
  data: ErrorData | undefined;
  /** The method of the request that failed, when known. */
  method?: string;
  toJSON(): ErrorObject;
}
declare class CodedRpcError<C extends number> extends RpcError {
  constructor(message: string, data?: ErrorData, options?: { method?: string; cause?: unknown });
  code: C;
  static readonly code: number;
}
export declare class ParseError extends CodedRpcError<-32700> {}
export declare class InvalidRequest extends CodedRpcError<-32600> {}
export declare class MethodNotFound extends CodedRpcError<-32601> {}
export declare class InvalidParams extends CodedRpcError<-32602> {}
export declare class InternalError extends CodedRpcError<-32603> {}
export declare class ServerNotInitialized extends CodedRpcError<-32002> {}
export declare class RequestCancelled extends CodedRpcError<-32800> {}
export declare class ContentModified extends CodedRpcError<-32801> {}
export declare class RequestFailed extends CodedRpcError<-32803> {}
export declare class WorkspaceError extends CodedRpcError<-32010> {}
export declare class TemplateError extends CodedRpcError<-32011> {}
export declare class ModelError extends CodedRpcError<-32012> {}
export declare class StorageError extends CodedRpcError<-32013> {}
export declare class TruncatedError extends CodedRpcError<-32014> {}
/** runTask's task cannot be used (data.file, data.path, data.line); a task that fails is a result. */
export declare class TaskError extends CodedRpcError<-32017> {}
export declare function rpcErrorFromObject(error: ErrorObject, method?: string): RpcError;

export declare class ServerExitedError extends Error {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The last bytes the server wrote to stderr. */
  stderrTail: string;
}
export declare class AbortError extends Error { code: "ABORT_ERR"; }
export declare class TimeoutError extends Error { code: "ETIMEDOUT"; }
export declare class ProtocolError extends Error {}

// ---------------------------------------------------------------- framing

export interface FramerOptions {
  onMessage: (text: string) => void;
  onError?: (error: ProtocolError) => void;
  maxMessageSize?: number;
}
export declare class NdjsonFramer {
  constructor(options: FramerOptions);
  push(chunk: Buffer | Uint8Array): void;
  end(): void;
}
export declare class LspFramer {
  constructor(options: FramerOptions);
  push(chunk: Buffer | Uint8Array): void;
  end(): void;
}
export declare function createFramer(framing: Framing, options: FramerOptions): NdjsonFramer | LspFramer;
export declare function encodeMessage(message: unknown, framing: Framing): Buffer;

// ---------------------------------------------------------------- client

export declare const CLIENT_NAME: "stagerunner-node";
export declare const CLIENT_VERSION: string;

export interface SpawnOptions {
  /** Default: process.env.STAGERUNNER_BIN, then `stagerunner` on PATH. */
  executable?: string;
  /** Passed as --workspace and as initialize's workspaceRoot (resolved to an absolute path). */
  workspace?: string;
  /** Merged over process.env. */
  env?: Record<string, string | undefined>;
  /** Extra arguments after `serve --framing F [--workspace W]`. */
  args?: string[];
  /** Default "ndjson". Also passed to the server as --framing. */
  framing?: Framing;
  cwd?: string;
  /** Bytes of stderr kept for stderrTail() and ServerExitedError (default 65536). */
  stderrLimit?: number;
  /** Largest frame the client accepts (default 256 MiB). */
  maxMessageSize?: number;
  /** Set false to skip initialize/initialized. Default true. */
  initialize?: boolean;
  /** Members merged into the initialize params. */
  initializeParams?: InitializeParams;
  /** Default 30000 ms. */
  initializeTimeout?: number;
  /** Task stage handlers by name, declared in initialize (capabilities.stageHandlers). */
  stageHandlers?: Record<string, StageHandler>;
}

export interface CallOptions {
  /** Aborting sends $/cancelRequest and rejects with AbortError. */
  signal?: AbortSignal;
  /** Milliseconds; when it runs out, $/cancelRequest is sent and the call rejects with TimeoutError. */
  timeout?: number;
}

export interface ExitInfo {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stderrTail: string;
}

export interface Notification<P = unknown> {
  method: string;
  params: P;
}

export interface ClientEvents {
  notification: [Notification];
  request: [{ id: RequestId; method: string; params: unknown }];
  stderr: [Buffer];
  protocolError: [Error];
  exit: [ExitInfo];
  /** Future server notification (not sent by protocol 1.0 servers). */
  statusChanged: [unknown];
  [method: string]: unknown[];
}

export declare class Client extends EventEmitter {
  static spawn(options?: SpawnOptions): Promise<Client>;
  constructor(child: ChildProcess, options?: SpawnOptions);

  readonly child: ChildProcess;
  readonly pid: number | undefined;
  readonly framing: Framing;
  initializeResult: InitializeResult | undefined;
  readonly serverInfo: ServerInfo | undefined;
  readonly capabilities: ServerCapabilities | undefined;
  readonly exited: boolean;
  readonly exitInfo: ExitInfo | null;
  stderrTail(): string;

  request<R = unknown>(method: string, params?: unknown, options?: CallOptions): Promise<R>;
  notify(method: string, params?: unknown): Promise<void>;
  /** Answer server-to-client requests of `method`; returns a function that unregisters it. */
  handle<P = unknown, R = unknown>(
    method: string,
    handler: (params: P, context: { id: RequestId; method: string; signal: AbortSignal }) => R | Promise<R>,
  ): () => void;
  /**
   * Run the stages whose handler is {client: name}. Register before initialize (or pass
   * SpawnOptions.stageHandlers): a new name after initialize throws. Returns an unregister function.
   */
  handleStage(name: string, handler: StageHandler): () => void;
  readonly stageHandlers: string[];
  /** initialize (declaring the stage handlers) and initialized; spawn calls it unless initialize: false. */
  initialize(params?: InitializeParams, options?: CallOptions): Promise<InitializeResult>;
  readonly workspace: string | undefined;
  notifications(): AsyncIterableIterator<Notification>;
  notifications<P = unknown>(method: string, options?: { signal?: AbortSignal }): AsyncIterableIterator<P>;
  notifications(method: undefined, options?: { signal?: AbortSignal }): AsyncIterableIterator<Notification>;

  ping(params?: PingParams, options?: CallOptions): Promise<PingResult>;
  runStage(params: StageRunParams, options?: CallOptions): Promise<StageResult>;
  renderPrompt(params: StageRunParams, options?: CallOptions): Promise<RenderPromptResult>;
  listTemplates(params?: ListTemplatesParams, options?: CallOptions): Promise<ListTemplatesResult>;
  validateWorkspace(options?: CallOptions): Promise<ValidateWorkspaceResult>;
  shutdown(options?: CallOptions): Promise<ShutdownResult>;
  runTask(params: RunTaskParams, options?: CallOptions): Promise<TaskResult>;

  /** shutdown, exit, end stdin, wait 2 s, SIGTERM the group, wait 2 s, SIGKILL. */
  close(options?: { grace?: number; shutdownTimeout?: number }): Promise<ExitInfo>;
  /** SIGKILL (or `signal`) the process group and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo | null>;
  [Symbol.asyncDispose](): Promise<void>;

  on<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  once<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  off<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
}
