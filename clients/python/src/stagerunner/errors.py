"""Exceptions raised by the StageRunner client.

Every JSON-RPC error response becomes an :class:`RpcError`; known codes map to a
subclass (``MethodNotFound``, ``InvalidParams``, ``TemplateError`` …) so callers can
``except`` the ones they care about. Unknown codes stay plain :class:`RpcError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
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
    "JobError",
    "BudgetError",
    "ServerExited",
    "ProtocolError",
    "ERROR_CLASSES",
    "error_from_response",
]


class StageRunnerError(Exception):
    """Base class of every exception this package raises (except ``TimeoutError``)."""


class RpcError(StageRunnerError):
    """An error response from the server: ``code``, ``message`` and ``data``.

    ``data`` is the server's ``error.data`` object (``{}`` when absent); the helpers
    :attr:`field`, :attr:`hint`, :attr:`file`, :attr:`line`, :attr:`kind` and
    :attr:`problem` read its conventional members (protocol README section 7.2).
    """

    CODE: ClassVar[int | None] = None

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code: int = code
        self.message: str = message
        self.data: dict[str, Any] = dict(data) if isinstance(data, Mapping) else {}
        if data is not None and not isinstance(data, Mapping):
            self.data = {"value": data}

    def _str(self, key: str) -> str | None:
        value = self.data.get(key)
        return value if isinstance(value, str) else None

    @property
    def field(self) -> str | None:
        """Path of the offending parameter (``params.stage``), when given."""
        return self._str("field")

    @property
    def problem(self) -> str | None:
        """What is wrong with :attr:`field`, when given."""
        return self._str("problem")

    @property
    def hint(self) -> str | None:
        """How to fix the request, in words, when given."""
        return self._str("hint")

    @property
    def file(self) -> str | None:
        """The workspace file at fault (template errors), when given."""
        return self._str("file")

    @property
    def line(self) -> int | None:
        """The 1-based line of :attr:`file` at fault, when known."""
        value = self.data.get("line")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def path(self) -> str | None:
        """For :class:`TaskError`: where in the task document the problem is (``stages.parsing.parse``)."""
        return self._str("path")

    @property
    def kind(self) -> str | None:
        """For application errors: ``workspace``, ``template``, ``storage``, ``truncated``, ``task``,
        ``pipeline``, ``job`` or ``budget``; for :class:`ModelError`, how the call failed
        (``rate_limit``, ``timeout``, …)."""
        return self._str("kind")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, data={self.data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (error_from_response, ({"code": self.code, "message": self.message, "data": self.data},))


class ParseError(RpcError):
    """-32700: the frame was not valid JSON, or its framing was broken."""

    CODE = -32700


class InvalidRequest(RpcError):
    """-32600: not a valid request (also: any request after ``shutdown``)."""

    CODE = -32600


class MethodNotFound(RpcError):
    """-32601: no such method; ``data`` has ``method`` and ``available``."""

    CODE = -32601


class InvalidParams(RpcError):
    """-32602: a parameter is missing or wrong; ``data`` has ``field`` and ``problem``."""

    CODE = -32602


class InternalError(RpcError):
    """-32603: a bug or unexpected failure in the server."""

    CODE = -32603


class ServerNotInitialized(RpcError):
    """-32002: a request before ``initialize`` with ``--require-initialize``."""

    CODE = -32002


class RequestCancelled(RpcError):
    """-32800: cancelled by ``$/cancelRequest``, ``exit`` or SIGINT."""

    CODE = -32800


class ContentModified(RpcError):
    """-32801: the state the request depended on changed; retrying may succeed."""

    CODE = -32801


class RequestFailed(RpcError):
    """-32803: valid request that failed for a reason of the domain."""

    CODE = -32803


class WorkspaceError(RpcError):
    """-32010: the workspace lacks something the request needs (a parent generation …)."""

    CODE = -32010


class TemplateError(RpcError):
    """-32011: the template does not compile or render; ``data`` has ``file`` and ``line``."""

    CODE = -32011


class ModelError(RpcError):
    """-32012: the model cannot be used or did not answer.

    :attr:`kind` says how, in a word to branch on: ``unavailable``, ``authentication``,
    ``permission``, ``not_found``, ``rate_limit``, ``overloaded``, ``invalid_request``,
    ``context_length``, ``server``, ``timeout``, ``network``, ``too_large`` or ``malformed``.
    """

    CODE = -32012

    @property
    def provider(self) -> str | None:
        """The provider that failed."""
        return self._str("provider")

    @property
    def http_status(self) -> int | None:
        """The provider's HTTP status, when it answered."""
        value = self.data.get("httpStatus") if isinstance(self.data, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def retry_after(self) -> float | None:
        """Seconds the provider asked to wait before trying again, when it said."""
        value = self.data.get("retryAfter") if isinstance(self.data, dict) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def retries(self) -> int:
        """Attempts retried before giving up."""
        value = self.data.get("retries") if isinstance(self.data, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def url(self) -> str | None:
        """Where the request went: scheme, host, port and path."""
        return self._str("url")


class StorageError(RpcError):
    """-32013: a generation cannot be read or committed."""

    CODE = -32013


class TruncatedError(RpcError):
    """-32014: ``failOnTruncation`` was set and the answer was truncated."""

    CODE = -32014


class TaskError(RpcError):
    """-32015: ``runTask``'s task cannot be used; ``data`` has ``file``, and ``path``/``line`` when known.

    A task that loads but fails while it runs is not an error: its result has ``ok`` false.
    """

    CODE = -32015


class JobError(RpcError):
    """-32016: a job request cannot be done; ``data`` has ``reason`` and ``jobId``.

    ``reason`` is ``not_found`` (no such job, or task), ``invalid_state`` (the job's state does
    not allow it), ``invalid_path`` (getArtifact's path), ``storage``, or ``limit`` (the connection
    holds the most status subscriptions it may, ``data.limit``).
    """

    CODE = -32016

    @property
    def reason(self) -> str | None:
        """``data.reason``: not_found, invalid_state, invalid_path, storage or limit."""
        return self._str("reason")

    @property
    def job_id(self) -> str | None:
        """``data.jobId``: the job the request named."""
        return self._str("jobId")


class BudgetError(RpcError):
    """-32017: a budget cap (``budgets`` in ``stagerunner.yaml``) refused the model call before it was sent.

    Nothing was committed. ``data`` has ``scope`` (``request``, ``job``, ``process`` or ``workspace``),
    ``budgetScope`` (for ``job``), ``unit`` (``tokens`` or ``cost_usd``), ``cap``, ``spent``,
    ``reserved`` (held by calls in flight) and ``needed`` (what the refused call may use).
    """

    CODE = -32017

    def _number(self, key: str) -> float | None:
        value = self.data.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def scope(self) -> str | None:
        """``data.scope``: the cap that refused the call: ``request``, ``job``, ``process``, ``workspace``."""
        return self._str("scope")

    @property
    def budget_scope(self) -> str | None:
        """``data.budgetScope``: the job whose budget was spent (for ``scope`` ``job``)."""
        return self._str("budgetScope")

    @property
    def unit(self) -> str | None:
        """``data.unit``: ``tokens`` or ``cost_usd``."""
        return self._str("unit")

    @property
    def cap(self) -> float | None:
        """``data.cap``: the limit, in :attr:`unit`."""
        return self._number("cap")

    @property
    def spent(self) -> float | None:
        """``data.spent``: what finished calls spent of the cap."""
        return self._number("spent")

    @property
    def reserved(self) -> float | None:
        """``data.reserved``: what calls in flight hold."""
        return self._number("reserved")

    @property
    def needed(self) -> float | None:
        """``data.needed``: what the refused call may use."""
        return self._number("needed")


ERROR_CLASSES: dict[int, type[RpcError]] = {
    cls.CODE: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        ServerNotInitialized,
        RequestCancelled,
        ContentModified,
        RequestFailed,
        WorkspaceError,
        TemplateError,
        ModelError,
        StorageError,
        TruncatedError,
        TaskError,
        JobError,
        BudgetError,
    )
}


def error_from_response(error: Mapping[str, Any]) -> RpcError:
    """Build the :class:`RpcError` subclass matching a JSON-RPC ``error`` object."""
    code = error.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = -32603
    message = error.get("message")
    if not isinstance(message, str):
        message = str(message)
    cls = ERROR_CLASSES.get(code, RpcError)
    return cls(code, message, error.get("data"))


class ServerExited(StageRunnerError):
    """The server process ended (or its pipes closed) before answering.

    ``returncode`` is the exit status (negative for a signal, ``None`` if unknown);
    ``stderr_tail`` holds the last lines the server wrote to stderr.
    """

    def __init__(self, returncode: int | None, stderr_tail: str = "") -> None:
        detail = f"stagerunner server exited with status {returncode}"
        if stderr_tail:
            detail += "; last stderr lines:\n" + stderr_tail
        super().__init__(detail)
        self.returncode: int | None = returncode
        self.stderr_tail: str = stderr_tail

    def __reduce__(self) -> tuple[Any, ...]:
        return (ServerExited, (self.returncode, self.stderr_tail))


class ProtocolError(StageRunnerError):
    """The server sent something that is not a valid frame or JSON-RPC message."""
