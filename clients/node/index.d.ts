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
  /** For LSP clients: workspaceRoot and stageHandlers, used when the members above are absent. */
  initializationOptions?: { workspaceRoot?: string | null; stageHandlers?: string[] | null } | null;
  /** LSP: the workspace as a file: URI. */
  rootUri?: string | null;
  /** LSP: the workspace as a path. */
  rootPath?: string | null;
  /** LSP: the first folder's uri is the workspace. */
  workspaceFolders?: { uri: string; name?: string }[] | null;
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
  /** The six members above again, where typed LSP clients look for them. */
  experimental: { stagerunner: Omit<ServerCapabilities, "experimental" | "hoverProvider" | "executeCommandProvider"> };
  /** To a client that sent LSP capabilities: the language features are served. */
  hoverProvider?: boolean;
  /** To a client that sent LSP capabilities: the commands of workspace/executeCommand. */
  executeCommandProvider?: { commands: string[] };
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

/** A $/progress token: the progressToken of the runStage request. */
export type ProgressToken = string | number;

/**
 * schema/progress.params.json#/properties/value: one begin, reports carrying the model's answer as
 * text deltas (restart: the attempt that sent the text so far failed and is retried, drop that
 * text), then one end whose message is the status, "reused", or the error's message.
 */
export type ProgressValue =
  | { kind: "begin"; title: string }
  | { kind: "report"; text: string; restart?: undefined }
  | { kind: "report"; restart: true; text?: undefined }
  | { kind: "end"; message: string };

/** schema/progress.params.json: the params of the server's $/progress notification */
export interface ProgressParams {
  token: ProgressToken;
  value: ProgressValue;
}

/** runStage's options: CallOptions and the progress callback. */
export interface RunStageOptions extends CallOptions {
  /**
   * Called with each $/progress value of this run, in order (an async callback is awaited before
   * the next value). The client makes a token unique to the call (params.progressToken picks one);
   * runStage settles only after the callback has had every value, and rejects with the callback's
   * error if it threw.
   */
  onProgress?: (value: ProgressValue) => void | Promise<void>;
}

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
  /** What to know though the run went ahead: the template is not active in its catalog. */
  warnings?: string[];
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
  /** null when the provider reported no usage: unknown, never 0. */
  usage?: Usage | null;
  /** When usage is null: the tokens budgets counted instead, estimated from the text. */
  usage_estimate?: number;
  /** US dollars; null when the model's price is unknown or the provider reported no usage. */
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
  /** The first 1,000 problems; `diagnosticsOmitted` counts the rest. */
  diagnostics: Diagnostic[];
  diagnosticsOmitted: number;
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

/** schema/test-heap.result.json (test-only method test/heap) */
export interface TestHeapResult {
  inUse: number;
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
  /** Check the task and run no stage, write nothing: the result is a TaskDryRun. */
  dryRun?: boolean | null;
}

/** schema/runTask.params.json#/properties/modelConfig/oneOf/0 */
export interface ModelConfig {
  defaultProvider?: string | null;
  defaultModel?: string | null;
  models?: string[] | null;
}

/** schema/runTask.result.json: a failed task has ok false, failedStage and error. (With dryRun: a TaskDryRun.) */
export interface TaskResult {
  ok: boolean;
  logs: TaskLogEntry[];
  context: TaskContext;
  refinementAttempts: number;
  llmMetrics: LLMMetric[];
  failedStage?: TaskStage | "final-validation";
  error?: TaskErrorInfo;
}

/** schema/dryRun.result.json#/$defs/stage: one stage of a dry run. */
export interface DryRunStage {
  /** The task stage (ingestion … integration). */
  stage: string;
  /** The handler as logs name it: "command python3 stages/ingest.py", "llm", … */
  handler: string;
  /** What would stop the stage; empty when nothing would. */
  problems: string[];
}

/** schema/dryRun.result.json#/$defs/task: runTask's answer with dryRun true; nothing ran. */
export interface TaskDryRun {
  dryRun: true;
  /** No stage has a problem. */
  ok: boolean;
  /** The task's name. */
  task: string;
  /** The stages that have a handler, in run order. */
  stages: DryRunStage[];
}

/** schema/dryRun.result.json#/$defs/pipeline: runPipeline's answer with dryRun true; no job started. */
export interface PipelineDryRun {
  dryRun: true;
  /** Every task file loads and no stage has a problem. */
  ok: boolean;
  /** The pipeline's name. */
  pipeline: string;
  tasks: PipelineDryRunTask[];
}

/** schema/dryRun.result.json#/$defs/pipeline/properties/tasks/items: one task of a pipeline's dry run. */
export interface PipelineDryRunTask {
  name: string;
  /** The task file, relative to the workspace. */
  file: string;
  ok: boolean;
  /** The task's stages, when its file loads. */
  stages?: DryRunStage[];
  /** Why the task file cannot be used (file:line: path: message). */
  error?: string;
}

/** schema/dryRun.result.json: the answer of runTask or runPipeline with dryRun true. */
export type DryRunResult = TaskDryRun | PipelineDryRun;

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
  /** null when the provider reported no usage, or the call failed. */
  promptTokens: number | null;
  completionTokens: number | null;
  totalTokens: number | null;
  cost: number;
  durationMs: number;
  finishReason?: "stop" | "length" | "content_filter" | "tool_calls" | "other";
  cached: boolean;
  retries: number;
  failed?: true;
  error?: string;
  /** How the call failed (ModelFailureKind), when it failed. */
  errorKind?: ModelFailureKind;
}

/** schema/executeStage.params.json: sent by the server. */
export interface ExecuteStageParams {
  handler: string;
  stage: TaskStage;
  context: TaskContext;
}

/** schema/executeStage.result.json: what a stage handler returns. */
export interface StageOutput {
  /** Missing means null. */
  output?: unknown;
  /** Missing, null and [] mean {}. */
  flags?: Record<string, unknown> | null | [];
}

/** A stage run by the client; `signal` aborts when the server cancels (the stage timed out). */
export type StageHandler = (
  stage: TaskStage,
  context: TaskContext,
  options: { signal: AbortSignal },
) => StageOutput | Promise<StageOutput>;

// ---------------------------------------------------------------- jobs

/** status.json#/$defs/jobState */
export type JobState = "pending" | "running" | "done" | "failed" | "cancelled" | "interrupted";
/** status.json#/$defs/taskState */
export type TaskState = JobState;

/** schema/status.json: a job's jobs/<jobId>/tasks-status.json. */
export interface JobStatus {
  schemaVersion: 1;
  id: string;
  name: string;
  pipeline: string | null;
  state: JobState;
  current: string | null;
  currentStage: string | null;
  createdAt: string;
  startedAt?: string;
  endedAt?: string | null;
  lastUpdated: string;
  rev: number;
  progress: JobProgress;
  tokenUsage: TokenUsage;
  cost: number;
  files: JobFiles;
  taskOrder: string[];
  tasks: Record<string, JobTask>;
  cancelled?: JobCancelled | null;
  error?: (TaskErrorInfo & { stage: string; task: string }) | null;
}

/** status.json#/$defs/progress */
export interface JobProgress {
  tasksDone: number;
  tasksTotal: number;
  percent: number;
}

/** status.json#/$defs/tokenUsage */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Calls whose provider reported no usage: not in the sums. Absent when there are none. */
  unreportedCalls?: number;
}

/** status.json#/properties/files */
export interface JobFiles {
  input: string;
  job: string;
}

/** status.json#/$defs/task/properties/files */
export interface TaskFiles {
  output?: string;
  logs?: string;
}

/** status.json#/properties/cancelled/oneOf/0 */
export interface JobCancelled {
  task: string | null;
  stage: string | null;
  at: string;
}

/** status.json#/$defs/task: one task's entry. */
export interface JobTask {
  state: TaskState;
  currentStage: string | null;
  failedStage: string | null;
  attempts: number;
  refinementAttempts: number;
  startedAt?: string;
  endedAt?: string | null;
  executionTime?: number;
  artifacts: string[];
  files: TaskFiles;
  tokenUsage: TokenUsage;
  cost: number;
  modelCalls: number;
  retrying: boolean;
  nextRetryAt?: string;
  lastRetryError?: TaskErrorInfo;
  error?: (TaskErrorInfo & { stage: string }) | null;
}

/** schema/pipeline.json (the inline form of runPipeline's pipeline). */
export type PipelineDocument = {
  name?: string;
  description?: string;
  tasks: { name?: string; task: string; input?: "previous" | "seed" | { task: string } }[];
  defaults?: Record<string, unknown>;
};

/** schema/runPipeline.params.json */
export interface RunPipelineParams {
  pipeline: string | PipelineDocument;
  input?: unknown;
  name?: string | null;
  options?: RunPipelineOptions | null;
  /** Check the pipeline and every task of it, start no job, write nothing: the result is a PipelineDryRun. */
  dryRun?: boolean | null;
}

/** schema/runPipeline.params.json#/properties/options/oneOf/0 */
export interface RunPipelineOptions {
  wait?: boolean | null;
}

/** schema/runPipeline.result.json (with dryRun: a PipelineDryRun). */
export interface RunPipelineResult {
  jobId: string;
  status?: JobStatus;
}

/** schema/getStatus.params.json */
export interface JobIdParams {
  jobId: string;
}

/** schema/getStatus.result.json */
export interface GetStatusResult {
  status: JobStatus;
  taskStages: Record<string, string | null>;
}

/** schema/listJobs.params.json */
export interface ListJobsParams {
  state?: JobState | null;
}

/** schema/listJobs.result.json */
export interface ListJobsResult {
  jobs: JobSummary[];
}

/** schema/listJobs.result.json#/$defs/summary */
export interface JobSummary {
  id: string;
  name: string;
  state: JobState;
  current: string | null;
  currentStage: string | null;
  createdAt: string;
  lastUpdated: string;
  rev: number;
  progress: JobProgress;
  cost: number;
}

/** schema/cancelJob.result.json */
export interface CancelJobResult {
  status: JobStatus;
}

/** schema/retryTask.params.json */
export interface RetryTaskParams {
  jobId: string;
  task: string;
}

/** schema/retryTask.result.json */
export interface RetryTaskResult {
  jobId: string;
}

/** schema/resumeJob.result.json */
export interface ResumeJobResult {
  jobId: string;
}

/** schema/getArtifact.params.json */
export interface GetArtifactParams {
  jobId: string;
  path: string;
}

/** schema/getArtifact.result.json: text when the file is UTF-8, else base64. */
export interface GetArtifactResult {
  path: string;
  size: number;
  text?: string;
  base64?: string;
}

/** schema/subscribeStatus.params.json */
export interface SubscribeStatusParams {
  jobId?: string | null;
  delivery?: "snapshot" | "patch" | null;
}

/** schema/subscribeStatus.result.json */
export interface SubscribeStatusResult {
  subscriptionId: string;
  rev: number;
  snapshot: JobStatus | { jobs: Record<string, JobStatus> };
}

/** schema/unsubscribeStatus.params.json */
export interface UnsubscribeStatusParams {
  subscriptionId: string;
}

/** schema/unsubscribeStatus.result.json */
export interface UnsubscribeStatusResult {
  // {}: no members
}

/** statusChanged.params.json#/$defs/event: what changed. */
export type StatusEvent =
  | { type: "job"; state: JobState; task?: string; retryFrom?: string }
  | { type: "task"; task: string; state: "running" | "done" | "failed" | "retrying" | "refining"; [key: string]: unknown }
  | { type: "stage"; task: string; stage: string; state: "started" | "completed" | "failed"; refinementCycle: number; [key: string]: unknown }
  | { type: "usage"; task: string; stage: string };

/** statusChanged.params.json#/$defs/operation */
export interface PatchOperation {
  op: "add" | "replace" | "remove";
  path: string;
  value?: unknown;
}

/** schema/statusChanged.params.json */
export interface StatusChangedParams {
  subscriptionId: string;
  jobId: string;
  rev: number;
  event: StatusEvent;
  coalesced: number;
  events?: StatusEvent[];
  snapshot?: JobStatus;
  baseRev?: number;
  patch?: PatchOperation[];
}

/** One change of a StatusSubscription: the job's document already up to date. */
export interface StatusChange {
  jobId: string;
  rev: number;
  event: StatusEvent;
  /** Every change a coalesced notification stands for, in order. */
  events: StatusEvent[];
  coalesced: number;
  /** The job's whole document after the change (a copy). */
  status: JobStatus;
  /** True when the patch did not follow the rev held, so the document was fetched with getStatus. */
  resynced: boolean;
  params: StatusChangedParams;
}

export interface SubscribeOptions {
  /** Aborting ends the iteration and sends unsubscribeStatus. */
  signal?: AbortSignal;
  /** With a jobId: end the iteration once the job is done, failed, cancelled or interrupted. */
  untilFinished?: boolean;
  /** Milliseconds for the subscribeStatus and getStatus calls. */
  timeout?: number;
}

export declare class StatusSubscription implements AsyncIterableIterator<StatusChange> {
  readonly jobId: string | undefined;
  readonly delivery: "snapshot" | "patch";
  readonly subscriptionId: string | undefined;
  readonly baselineRev: number | undefined;
  /** Each followed job's document, up to date with the changes iterated so far. */
  readonly documents: Map<string, JobStatus>;
  start(): Promise<SubscribeStatusResult>;
  close(): Promise<void>;
  next(): Promise<IteratorResult<StatusChange>>;
  return(): Promise<IteratorResult<StatusChange>>;
  [Symbol.asyncIterator](): StatusSubscription;
  [Symbol.asyncDispose](): Promise<void>;
}

export declare const TERMINAL_JOB_STATES: readonly JobState[];
export declare class PatchError extends Error {}
/** RFC 6902 add, replace and remove; returns a new value. */
export declare function applyPatch<T>(document: T, operations: PatchOperation[]): T;
/** The stage to show for a task (computeTaskStage), as getStatus's taskStages. */
export declare function computeTaskStage(status: JobStatus, task: string): string | null;

// ---------------------------------------------------------------- errors

/** How a model call failed: data.kind of a -32012 error. */
export type ModelFailureKind =
  | "unavailable" | "authentication" | "permission" | "not_found" | "rate_limit" | "overloaded"
  | "invalid_request" | "context_length" | "server" | "timeout" | "network" | "too_large" | "malformed"
  | "cancelled" | "budget_exceeded";

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
  kind?: "workspace" | "template" | "model" | "storage" | "truncated" | "task" | "pipeline" | "job" | "budget"
    | ModelFailureKind;
  /** -32012: the provider that failed, its HTTP status, the seconds it asked to wait, the retries made, the URL. */
  provider?: string;
  httpStatus?: number;
  retryAfter?: number;
  retries?: number;
  url?: string;
  file?: string;
  path?: string;
  line?: number;
  /** For -32016: not_found, invalid_state, invalid_path, storage or limit (data.limit: the most subscriptions). */
  reason?: "not_found" | "invalid_state" | "invalid_path" | "storage" | "limit";
  /** For -32016: the job the request named. */
  jobId?: string;
  /** -32017: the budget that refused the call. */
  scope?: "request" | "job" | "process" | "workspace";
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
  ModelError: -32012; StorageError: -32013; TruncatedError: -32014; TaskError: -32015; JobError: -32016;
  BudgetError: -32017;
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
/** The model cannot be used or did not answer: data.kind says how (ModelFailureKind). */
export declare class ModelError extends CodedRpcError<-32012> {
  /** data.provider */
  readonly provider: string | undefined;
  /** data.httpStatus */
  readonly httpStatus: number | undefined;
  /** data.retryAfter, in seconds */
  readonly retryAfter: number | undefined;
  /** data.retries */
  readonly retries: number | undefined;
  /** data.url */
  readonly url: string | undefined;
}
export declare class StorageError extends CodedRpcError<-32013> {}
export declare class TruncatedError extends CodedRpcError<-32014> {}
/** runTask's task cannot be used (data.file, data.path, data.line); a task that fails is a result. */
export declare class TaskError extends CodedRpcError<-32015> {}
/** A job request cannot be done. */
export declare class JobError extends CodedRpcError<-32016> {
  /** data.reason */
  readonly reason: "not_found" | "invalid_state" | "invalid_path" | "storage" | "limit" | undefined;
  /** data.jobId */
  readonly jobId: string | undefined;
}
/** A budget cap refused the model call before anything was sent; nothing was committed. */
export declare class BudgetError extends CodedRpcError<-32017> {
  /** data.scope: the cap that refused the call. */
  readonly scope: "request" | "job" | "process" | "workspace" | undefined;
  /** data.budgetScope: the job whose budget it is (scope job). */
  readonly budgetScope: string | undefined;
  /** data.unit */
  readonly unit: "tokens" | "cost_usd" | undefined;
  /** data.cap: the limit, in unit. */
  readonly cap: number | undefined;
  /** data.spent: what finished calls spent. */
  readonly spent: number | undefined;
  /** data.reserved: what calls in flight hold. */
  readonly reserved: number | undefined;
  /** data.needed: what the refused call may use. */
  readonly needed: number | undefined;
}
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
  /** A followed job's status document changed (subscribeStatus). */
  statusChanged: [StatusChangedParams];
  /** A runStage that gave a progressToken made progress. */
  "$/progress": [ProgressParams];
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
  /** runStage; `onProgress` receives the run's $/progress values (begin, report text deltas, end). */
  runStage(params: StageRunParams, options?: RunStageOptions): Promise<StageResult>;
  renderPrompt(params: StageRunParams, options?: CallOptions): Promise<RenderPromptResult>;
  listTemplates(params?: ListTemplatesParams, options?: CallOptions): Promise<ListTemplatesResult>;
  validateWorkspace(options?: CallOptions): Promise<ValidateWorkspaceResult>;
  shutdown(options?: CallOptions): Promise<ShutdownResult>;
  /** runTask; with `dryRun: true` nothing runs and the answer is a TaskDryRun. */
  runTask(params: RunTaskParams & { dryRun: true }, options?: CallOptions): Promise<TaskDryRun>;
  runTask(params: RunTaskParams & { dryRun?: false | null }, options?: CallOptions): Promise<TaskResult>;
  runTask(params: RunTaskParams, options?: CallOptions): Promise<TaskResult | TaskDryRun>;
  /** runPipeline; with `dryRun: true` no job starts and the answer is a PipelineDryRun. */
  runPipeline(params: RunPipelineParams & { dryRun: true }, options?: CallOptions): Promise<PipelineDryRun>;
  runPipeline(params: RunPipelineParams & { dryRun?: false | null }, options?: CallOptions): Promise<RunPipelineResult>;
  runPipeline(params: RunPipelineParams, options?: CallOptions): Promise<RunPipelineResult | PipelineDryRun>;
  getStatus(params: JobIdParams, options?: CallOptions): Promise<GetStatusResult>;
  listJobs(params?: ListJobsParams, options?: CallOptions): Promise<ListJobsResult>;
  cancelJob(params: JobIdParams, options?: CallOptions): Promise<CancelJobResult>;
  retryTask(params: RetryTaskParams, options?: CallOptions): Promise<RetryTaskResult>;
  resumeJob(params: JobIdParams, options?: CallOptions): Promise<ResumeJobResult>;
  getArtifact(params: GetArtifactParams, options?: CallOptions): Promise<GetArtifactResult>;
  /** Follow one job or every job: `for await (const change of client.subscribeStatus({jobId}))`. */
  subscribeStatus(params?: SubscribeStatusParams, options?: SubscribeOptions): StatusSubscription;
  unsubscribeStatus(params: UnsubscribeStatusParams, options?: CallOptions): Promise<UnsubscribeStatusResult>;

  /** shutdown, exit, end stdin, wait 2 s, SIGTERM the group, wait 2 s, SIGKILL. */
  close(options?: { grace?: number; shutdownTimeout?: number }): Promise<ExitInfo>;
  /** SIGKILL (or `signal`) the process group and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo | null>;
  [Symbol.asyncDispose](): Promise<void>;

  on<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  once<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  off<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
}
