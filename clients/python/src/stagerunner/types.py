"""Typed shapes of the StageRunner protocol 1.0 results (hand-written from ``protocol/schema``).

Each TypedDict mirrors one object of ``protocol/schema/*.result.json`` (or
``metadata.json``): required members are plain keys, optional ones ``NotRequired``.
``tests/test_types.py`` fails when these drift from the schemas, in both directions.
Results are plain ``dict`` objects at run time; the server may add members in later
minor versions, and they are kept as they come.

(No ``from __future__ import annotations`` here: Python 3.11 cannot see ``NotRequired``
inside string annotations, and ``__required_keys__`` would be wrong.)
"""

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "Stage",
    "Mode",
    "CacheMode",
    "Status",
    "Severity",
    "ServerInfo",
    "ServerCapabilities",
    "WorkspaceInfo",
    "InitializeResult",
    "PingResult",
    "StageRunParams",
    "ProgressToken",
    "ProgressValue",
    "ProgressParams",
    "Usage",
    "GenerationMetadata",
    "StageDebug",
    "StageResult",
    "RenderPromptResult",
    "Template",
    "ListTemplatesResult",
    "Diagnostic",
    "ValidateWorkspaceResult",
    "TestSleepResult",
    "TestHeapResult",
    "Notification",
    "TaskStage",
    "TaskErrorName",
    "ModelConfig",
    "RunTaskParams",
    "TaskModelConfig",
    "TaskMeta",
    "TaskErrorInfo",
    "TaskLogEntry",
    "TaskContext",
    "LLMMetric",
    "TaskResult",
    "DryRunStage",
    "TaskDryRun",
    "PipelineDryRunTask",
    "PipelineDryRun",
    "DryRunResult",
    "ExecuteStageParams",
    "StageOutput",
    "JobState",
    "TaskState",
    "TokenUsage",
    "JobProgress",
    "JobFiles",
    "TaskFiles",
    "JobCancelled",
    "JobTask",
    "JobStatus",
    "RunPipelineOptions",
    "RunPipelineParams",
    "RunPipelineResult",
    "GetStatusResult",
    "JobSummary",
    "ListJobsResult",
    "CancelJobResult",
    "RetryTaskResult",
    "ResumeJobResult",
    "GetArtifactResult",
    "SubscribeStatusResult",
    "UnsubscribeStatusResult",
    "StatusEvent",
    "PatchOperation",
    "StatusChangedParams",
]

Stage = Literal["draft", "essay", "evaluation"]
Mode = Literal["llm", "copy"]
CacheMode = Literal["use", "refresh", "off"]
"""``runStage`` ``cache``: whether the model's answer may come from the response cache."""
Status = Literal["success", "json_parse_error", "parser_failure", "stub_fallback", "truncated"]
Severity = Literal["error", "warning", "information"]


class ServerInfo(TypedDict):
    """``initialize`` result ``serverInfo``."""

    name: str
    version: str


class ServerCapabilities(TypedDict):
    """``initialize`` result ``capabilities``."""

    methods: list[str]
    notifications: list[str]
    batches: bool
    cancellation: bool
    framing: Literal["lsp", "ndjson"]
    maxMessageSize: int
    #: The six members above again, under ``stagerunner``: where typed LSP clients look.
    experimental: dict[str, Any]
    #: To a client that sent LSP capabilities: the language features are served.
    hoverProvider: NotRequired[bool]
    #: To a client that sent LSP capabilities: ``{"commands": [...]}`` of workspace/executeCommand.
    executeCommandProvider: NotRequired[dict[str, Any]]


class WorkspaceInfo(TypedDict):
    """``initialize`` result ``workspace``."""

    root: str


class InitializeResult(TypedDict):
    """Result of ``initialize`` (schema/initialize.result.json)."""

    protocolVersion: str
    serverInfo: ServerInfo
    capabilities: ServerCapabilities
    workspace: WorkspaceInfo


class PingResult(TypedDict):
    """Result of ``ping``: ``{}`` or ``{"echo": value}`` (schema/ping.result.json)."""

    echo: NotRequired[Any]


class StageRunParams(TypedDict):
    """Params of ``runStage`` and ``renderPrompt`` (schema/runStage.params.json), as the client sends them.

    :meth:`Client.run_stage` takes them as snake_case keywords (``gen_id``, ``budget_scope`` …).
    ``progressToken`` and ``maxTextLength`` are runStage's only.
    """

    stage: Stage
    genId: NotRequired[str | None]
    templateId: NotRequired[str | None]
    values: NotRequired[dict[str, Any] | None]
    mode: NotRequired[Mode | None]
    model: NotRequired[str | None]
    parserName: NotRequired[str | None]
    passThroughFrom: NotRequired[str | None]
    maxTokens: NotRequired[int | None]
    promptText: NotRequired[str | None]
    force: NotRequired[bool | None]
    stubFallback: NotRequired[bool | None]
    failOnTruncation: NotRequired[bool | None]
    runId: NotRequired[str | None]
    budgetScope: NotRequired[str | None]
    cache: NotRequired[CacheMode | None]
    progressToken: NotRequired[str | int | None]
    maxTextLength: NotRequired[int | None]


ProgressToken = str | int
"""A ``$/progress`` token: the ``progressToken`` of the runStage request."""


class ProgressValue(TypedDict):
    """``$/progress`` ``value``: what :meth:`Client.run_stage`'s ``on_progress`` callback receives.

    ``kind`` is ``begin`` (with ``title``, ``"runStage"``), ``report`` (with ``text``, the next
    piece of the model's answer, or ``restart: True``: the attempt that sent the text so far
    failed and is retried, drop that text) or ``end`` (with ``message``: the generation's status,
    ``reused``, or the error's message).
    """

    kind: Literal["begin", "report", "end"]
    title: NotRequired[str]
    text: NotRequired[str]
    restart: NotRequired[Literal[True]]
    message: NotRequired[str]


class ProgressParams(TypedDict):
    """Params of the server's ``$/progress`` notification (schema/progress.params.json)."""

    token: ProgressToken
    value: ProgressValue


class Usage(TypedDict):
    """Token counts of a model call (metadata ``usage``)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerationMetadata(TypedDict):
    """A generation's ``metadata.json`` (schema/metadata.json); keys are snake_case."""

    schema_version: Literal[1]
    stage: Stage
    gen_id: str
    template_id: str
    mode: Mode
    model: NotRequired[str]
    provider: NotRequired[str]
    parser: NotRequired[str]
    parent_gen_id: NotRequired[str]
    run_id: str
    created_at: str
    duration_ms: float
    finish_reason: NotRequired[Literal["stop", "length", "content_filter", "tool_calls", "other"]]
    truncated: bool
    #: ``None`` when the provider reported no usage: unknown, never 0.
    usage: NotRequired[Usage | None]
    #: When ``usage`` is ``None``: the tokens budgets counted instead, estimated from the text.
    usage_estimate: NotRequired[int]
    cost_usd: NotRequired[float | None]  # None: the model's price is unknown
    status: Status
    llm_error: NotRequired[str]
    files: list[str]
    template_sha256: NotRequired[str]
    raw_length: NotRequired[int]
    raw_lines: NotRequired[int]
    retries: NotRequired[int]
    cached: NotRequired[Literal[True]]  # served from the response cache


class StageDebug(TypedDict):
    """``runStage`` result ``debug``: empty, or what explains a parse failure."""

    llm_cleaned_json: NotRequired[str]
    llm_error: NotRequired[str]


class StageResult(TypedDict):
    """Result of ``runStage`` (schema/runStage.result.json)."""

    genId: str
    stage: Stage
    status: Status
    reused: bool
    files: list[str]
    raw: str | None
    parsed: str | None
    textTruncated: bool
    score: NotRequired[float]
    debug: StageDebug
    metadata: GenerationMetadata
    warnings: NotRequired[list[str]]


class RenderPromptResult(TypedDict):
    """Result of ``renderPrompt`` (schema/renderPrompt.result.json)."""

    prompt: str
    variables: dict[str, Any]
    templateId: str
    templateFile: str


class Template(TypedDict):
    """One catalog row of ``listTemplates``."""

    stage: Stage
    id: str
    name: str
    description: str
    generator: Mode
    parser: NotRequired[str]
    active: bool
    file: str


class ListTemplatesResult(TypedDict):
    """Result of ``listTemplates`` (schema/listTemplates.result.json)."""

    templates: list[Template]


class Diagnostic(TypedDict):
    """One problem reported by ``validateWorkspace``."""

    file: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str


class ValidateWorkspaceResult(TypedDict):
    """Result of ``validateWorkspace`` (schema/validateWorkspace.result.json)."""

    root: str
    valid: bool
    errors: int
    warnings: int
    templates: int
    generations: int
    diagnostics: list[Diagnostic]
    #: Problems after the first 1,000, not listed in ``diagnostics``.
    diagnosticsOmitted: int


class TestSleepResult(TypedDict):
    """Result of the test-only ``test/sleep`` (schema/test-sleep.result.json)."""

    slept: int


class TestHeapResult(TypedDict):
    """Result of the test-only ``test/heap`` (schema/test-heap.result.json)."""

    inUse: int


TaskStage = Literal[
    "ingestion",
    "preProcessing",
    "promptTemplating",
    "inference",
    "parsing",
    "validateStructure",
    "validateQuality",
    "critique",
    "refine",
    "finalValidation",
    "integration",
]
"""The eleven stages of a task, in the order they run."""

TaskErrorName = Literal[
    "ContractError",
    "FlagTypeError",
    "StageTimeoutError",
    "TaskTimeoutError",
    "ValidationError",
    "TemplateError",
    "ModelError",
    "ParseError",
    "SchemaError",
    "CommandError",
    "ClientStageError",
    "WriteError",
    "CancelledError",
    "StageError",
]


class ModelConfig(TypedDict, total=False):
    """``runTask`` params ``modelConfig``: model routing of the run (every member optional)."""

    defaultProvider: str | None
    defaultModel: str | None
    models: list[str] | None


class RunTaskParams(TypedDict):
    """Params of ``runTask`` (schema/runTask.params.json), as :meth:`Client.run_task` sends them."""

    task: str | dict[str, Any]
    input: NotRequired[Any]
    modelConfig: NotRequired[ModelConfig | None]
    maxRefinements: NotRequired[int | None]
    timeout: NotRequired[float | None]
    runId: NotRequired[str | None]
    dryRun: NotRequired[bool | None]


class TaskModelConfig(TypedDict):
    """``context.meta.modelConfig``: the members of ``modelConfig`` that were given."""

    defaultProvider: NotRequired[str]
    defaultModel: NotRequired[str]
    models: NotRequired[list[str]]


class TaskMeta(TypedDict):
    """``context.meta``."""

    taskName: str
    runId: str
    workDir: str
    modelConfig: TaskModelConfig


class TaskErrorInfo(TypedDict):
    """Why a stage or a task failed: ``{name, message, data?}``."""

    name: TaskErrorName
    message: str
    data: NotRequired[Any]


class TaskLogEntry(TypedDict):
    """One entry of a task's log: a stage that ran, one that was skipped, or a refinement trigger."""

    stage: str
    refinementCycle: int
    ok: NotRequired[bool]
    ms: NotRequired[float]
    error: NotRequired[TaskErrorInfo]
    preRefinement: NotRequired[bool]
    skipped: NotRequired[bool]
    reason: NotRequired[str]


class TaskContext(TypedDict):
    """The context every stage handler sees, and that a task result carries."""

    meta: TaskMeta
    data: dict[str, Any]
    flags: dict[str, Any]
    logs: list[TaskLogEntry]
    currentStage: TaskStage | None
    output: Any
    refinementCount: int
    availableModels: list[str]
    currentModel: str


class LLMMetric(TypedDict):
    """One model call of a task run."""

    task: str
    stage: TaskStage
    provider: str
    model: str
    #: ``None`` when the provider reported no usage, or the call failed.
    promptTokens: int | None
    completionTokens: int | None
    totalTokens: int | None
    cost: float
    durationMs: float
    finishReason: NotRequired[Literal["stop", "length", "content_filter", "tool_calls", "other"]]
    cached: bool
    retries: int
    failed: NotRequired[bool]
    error: NotRequired[str]
    #: How the call failed (``rate_limit``, ``timeout``, …), when it failed.
    errorKind: NotRequired[str]


class TaskResult(TypedDict):
    """Result of ``runTask`` (schema/runTask.result.json); ``failedStage`` and ``error`` when ``ok`` is false.

    With ``dryRun`` the answer is a :class:`TaskDryRun` instead.
    """

    ok: bool
    logs: list[TaskLogEntry]
    context: TaskContext
    refinementAttempts: int
    llmMetrics: list[LLMMetric]
    failedStage: NotRequired[str]
    error: NotRequired[TaskErrorInfo]


class DryRunStage(TypedDict):
    """One stage of a dry run (schema/dryRun.result.json#/$defs/stage)."""

    #: The task stage (``ingestion`` … ``integration``).
    stage: str
    #: The handler as the logs name it: ``"command python3 stages/ingest.py"``, ``"llm"``, …
    handler: str
    #: What would stop the stage; empty when nothing would.
    problems: list[str]


class TaskDryRun(TypedDict):
    """Result of ``runTask`` with ``dryRun`` (schema/dryRun.result.json#/$defs/task): nothing ran.

    ``ok`` is true when no stage has a problem; ``stages`` are the stages that have a handler, in
    run order.
    """

    dryRun: Literal[True]
    ok: bool
    task: str
    stages: list[DryRunStage]


class PipelineDryRunTask(TypedDict):
    """One task of a pipeline's dry run: its ``stages``, or the ``error`` that stops its task file loading."""

    name: str
    #: The task file, relative to the workspace.
    file: str
    ok: bool
    stages: NotRequired[list[DryRunStage]]
    #: Why the task file cannot be used (``file:line: path: message``).
    error: NotRequired[str]


class PipelineDryRun(TypedDict):
    """Result of ``runPipeline`` with ``dryRun`` (schema/dryRun.result.json#/$defs/pipeline): no job started.

    ``ok`` is true when every task file loads and no stage has a problem.
    """

    dryRun: Literal[True]
    ok: bool
    pipeline: str
    tasks: list[PipelineDryRunTask]


DryRunResult = TaskDryRun | PipelineDryRun
"""schema/dryRun.result.json: the answer of ``runTask`` or ``runPipeline`` with ``dryRun``."""


class ExecuteStageParams(TypedDict):
    """Params of the server's ``executeStage`` request (schema/executeStage.params.json)."""

    handler: str
    stage: TaskStage
    context: TaskContext


class StageOutput(TypedDict):
    """What a stage handler returns (schema/executeStage.result.json): a missing ``output`` is
    ``None``, missing or ``None`` ``flags`` are ``{}``."""

    output: NotRequired[Any]
    flags: NotRequired[dict[str, Any] | None]


class Notification(TypedDict):
    """A notification the server sent: its ``method`` and ``params`` (``None`` when absent)."""

    method: str
    params: Any


JobState = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]
"""A job's state (schema/status.json)."""
TaskState = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]
"""A task's state in a job."""


class TokenUsage(TypedDict):
    """Tokens of a job's or a task's model calls (status ``tokenUsage``)."""

    promptTokens: int
    completionTokens: int
    totalTokens: int
    #: Calls whose provider reported no usage: not in the sums. Absent when there are none.
    unreportedCalls: NotRequired[int]


class JobProgress(TypedDict):
    """Status ``progress``."""

    tasksDone: int
    tasksTotal: int
    percent: int


class JobFiles(TypedDict):
    """Status ``files``: the job's own files, relative to its folder."""

    input: str
    job: str


class TaskFiles(TypedDict):
    """A task's ``files`` once it is done: its result and its log."""

    output: NotRequired[str]
    logs: NotRequired[str]


class JobCancelled(TypedDict):
    """Status ``cancelled``: where the job stopped."""

    task: str | None
    stage: str | None
    at: str


class JobTask(TypedDict):
    """One task's entry in a status document (``tasks[name]``)."""

    state: TaskState
    currentStage: str | None
    failedStage: str | None
    attempts: int
    refinementAttempts: int
    startedAt: NotRequired[str]
    endedAt: NotRequired[str | None]
    executionTime: NotRequired[float]
    artifacts: list[str]
    files: TaskFiles
    tokenUsage: TokenUsage
    cost: float
    modelCalls: int
    retrying: bool
    nextRetryAt: NotRequired[str]
    lastRetryError: NotRequired[TaskErrorInfo]
    error: NotRequired[dict[str, Any] | None]


class JobStatus(TypedDict):
    """A job's status document, ``jobs/<jobId>/tasks-status.json`` (schema/status.json)."""

    schemaVersion: Literal[1]
    id: str
    name: str
    pipeline: str | None
    state: JobState
    current: str | None
    currentStage: str | None
    createdAt: str
    startedAt: NotRequired[str]
    endedAt: NotRequired[str | None]
    lastUpdated: str
    rev: int
    progress: JobProgress
    tokenUsage: TokenUsage
    cost: float
    files: JobFiles
    taskOrder: list[str]
    tasks: dict[str, JobTask]
    cancelled: NotRequired[JobCancelled | None]
    error: NotRequired[dict[str, Any] | None]


class RunPipelineOptions(TypedDict, total=False):
    """``runPipeline`` params ``options``."""

    wait: bool | None


class RunPipelineParams(TypedDict):
    """Params of ``runPipeline`` (schema/runPipeline.params.json), as :meth:`Client.run_pipeline` sends them."""

    pipeline: str | dict[str, Any]
    input: NotRequired[Any]
    name: NotRequired[str | None]
    options: NotRequired[RunPipelineOptions | None]
    dryRun: NotRequired[bool | None]


class RunPipelineResult(TypedDict):
    """Result of ``runPipeline``: the job's id, and with ``wait`` its final status.

    With ``dryRun`` the answer is a :class:`PipelineDryRun` instead.
    """

    jobId: str
    status: NotRequired[JobStatus]


class GetStatusResult(TypedDict):
    """Result of ``getStatus``: the document and computeTaskStage of each task."""

    status: JobStatus
    taskStages: dict[str, str | None]


class JobSummary(TypedDict):
    """One job of ``listJobs``."""

    id: str
    name: str
    state: JobState
    current: str | None
    currentStage: str | None
    createdAt: str
    lastUpdated: str
    rev: int
    progress: JobProgress
    cost: float


class ListJobsResult(TypedDict):
    """Result of ``listJobs``, newest first."""

    jobs: list[JobSummary]


class CancelJobResult(TypedDict):
    """Result of ``cancelJob``: the document once the job has stopped."""

    status: JobStatus


class RetryTaskResult(TypedDict):
    """Result of ``retryTask``."""

    jobId: str


class ResumeJobResult(TypedDict):
    """Result of ``resumeJob``."""

    jobId: str


class GetArtifactResult(TypedDict):
    """Result of ``getArtifact``: ``text`` when the file is UTF-8, else ``base64``."""

    path: str
    size: int
    text: NotRequired[str]
    base64: NotRequired[str]


class SubscribeStatusResult(TypedDict):
    """Result of ``subscribeStatus``: the baseline (a document, or ``{"jobs": {...}}`` for every job)."""

    subscriptionId: str
    rev: int
    snapshot: dict[str, Any]


class UnsubscribeStatusResult(TypedDict):
    """Result of ``unsubscribeStatus``: ``{}``."""


StatusEvent = dict[str, Any]
"""What changed: ``{"type": "job" | "task" | "stage" | "usage", ...}`` (statusChanged ``event``)."""


class PatchOperation(TypedDict):
    """One RFC 6902 operation of a statusChanged ``patch``."""

    op: Literal["add", "replace", "remove"]
    path: str
    value: NotRequired[Any]


class StatusChangedParams(TypedDict):
    """Params of the ``statusChanged`` notification (schema/statusChanged.params.json)."""

    subscriptionId: str
    jobId: str
    rev: int
    event: StatusEvent
    coalesced: int
    events: NotRequired[list[StatusEvent]]
    snapshot: NotRequired[JobStatus]
    baseRev: NotRequired[int]
    patch: NotRequired[list[PatchOperation]]
