"""Python client of StageRunner's JSON-RPC 2.0 server (``stagerunner serve``).

* :class:`Client` — asyncio client: ``async with Client.spawn(workspace=...) as c``.
* :class:`SyncClient` — the same methods, blocking, for scripts.
* :mod:`stagerunner.errors` — :class:`RpcError` and one subclass per error code,
  :class:`ServerExited`.
* :mod:`stagerunner.types` — TypedDicts of the results.

Standard library only.
"""

from __future__ import annotations

from .client import CLIENT_NAME, PROTOCOL_VERSION, Client, NotificationStream, StageHandler, __version__
from .errors import (
    ERROR_CLASSES,
    ContentModified,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ModelError,
    ParseError,
    ProtocolError,
    RequestCancelled,
    RequestFailed,
    RpcError,
    ServerExited,
    ServerNotInitialized,
    StageRunnerError,
    StorageError,
    TaskError,
    TemplateError,
    TruncatedError,
    WorkspaceError,
    error_from_response,
)
from .sync import SyncClient
from .types import (
    Diagnostic,
    ExecuteStageParams,
    GenerationMetadata,
    InitializeResult,
    ListTemplatesResult,
    LLMMetric,
    ModelConfig,
    Notification,
    PingResult,
    RenderPromptResult,
    StageOutput,
    StageResult,
    TaskContext,
    TaskErrorInfo,
    TaskLogEntry,
    TaskResult,
    TaskStage,
    Template,
    ValidateWorkspaceResult,
)

__all__ = [
    "CLIENT_NAME",
    "PROTOCOL_VERSION",
    "Client",
    "NotificationStream",
    "StageHandler",
    "SyncClient",
    "__version__",
    "ERROR_CLASSES",
    "error_from_response",
    "StageRunnerError",
    "RpcError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "ServerNotInitialized",
    "RequestCancelled",
    "ContentModified",
    "RequestFailed",
    "WorkspaceError",
    "TemplateError",
    "ModelError",
    "StorageError",
    "TruncatedError",
    "TaskError",
    "ServerExited",
    "ProtocolError",
    "Diagnostic",
    "GenerationMetadata",
    "InitializeResult",
    "ListTemplatesResult",
    "Notification",
    "PingResult",
    "RenderPromptResult",
    "StageResult",
    "Template",
    "ValidateWorkspaceResult",
    "ExecuteStageParams",
    "LLMMetric",
    "ModelConfig",
    "StageOutput",
    "TaskContext",
    "TaskErrorInfo",
    "TaskLogEntry",
    "TaskResult",
    "TaskStage",
]
