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
    "Status",
    "Severity",
    "ServerInfo",
    "ServerCapabilities",
    "WorkspaceInfo",
    "InitializeResult",
    "PingResult",
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
    "Notification",
]

Stage = Literal["draft", "essay", "evaluation"]
Mode = Literal["llm", "copy"]
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
    usage: NotRequired[Usage]
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


class TestSleepResult(TypedDict):
    """Result of the test-only ``test/sleep`` (schema/test-sleep.result.json)."""

    slept: int


class Notification(TypedDict):
    """A notification the server sent: its ``method`` and ``params`` (``None`` when absent)."""

    method: str
    params: Any
