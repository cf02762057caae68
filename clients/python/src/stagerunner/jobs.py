"""Jobs: status subscriptions that keep each job's document up to date, JSON Patch, computeTaskStage.

:meth:`Client.subscribe_status <stagerunner.Client.subscribe_status>` returns a
:class:`StatusSubscription`; iterate it with ``async for`` to get one :class:`StatusChange` per
``statusChanged`` notification, with the job's document already brought up to date (snapshot
taken, patch applied, or, when a patch does not follow the revision held, the document fetched
again with ``getStatus``). See protocol/README.md section 8.10.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from ._protocol import BlockingRunner, NotificationSource, RequestClient
from .errors import ServerExited, StageRunnerError
from .types import JobStatus, StatusEvent

__all__ = [
    "TERMINAL_JOB_STATES",
    "PatchError",
    "StatusChange",
    "StatusSubscription",
    "SyncStatusSubscription",
    "apply_patch",
    "compute_task_stage",
]

TERMINAL_JOB_STATES = frozenset({"done", "failed", "cancelled", "interrupted"})
"""Job states in which a job does nothing until retryTask or resumeJob starts it again."""


class PatchError(StageRunnerError):
    """A JSON Patch operation does not apply to the document."""


def apply_patch(document: Any, operations: list[Mapping[str, Any]]) -> Any:
    """``document`` with the RFC 6902 ``operations`` applied (a new value; ``document`` is untouched).

    Supports what statusChanged patches use: ``add``, ``replace`` and ``remove`` of object
    members (and ``add`` to arrays by index or ``-``). Raises :class:`PatchError` when an
    operation does not apply.
    """
    result = copy.deepcopy(document)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise PatchError(f"bad path {path!r}")
        names = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]] if path else []
        if not names:
            if op not in ("add", "replace") or "value" not in operation:
                raise PatchError(f"{op} of the whole document")
            result = copy.deepcopy(operation["value"])
            continue
        parent = result
        try:
            for name in names[:-1]:
                parent = parent[int(name)] if isinstance(parent, list) else parent[name]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"no parent for {path!r}") from None
        last = names[-1]
        if isinstance(parent, dict):
            if op == "remove" or op == "replace":
                if last not in parent:
                    raise PatchError(f"{op} of {path!r}: no such member")
            if op == "remove":
                del parent[last]
            elif op in ("add", "replace") and "value" in operation:
                parent[last] = copy.deepcopy(operation["value"])
            else:
                raise PatchError(f"unsupported operation {operation!r}")
        elif isinstance(parent, list) and op == "add" and "value" in operation:
            index = len(parent) if last == "-" else int(last)
            parent.insert(index, copy.deepcopy(operation["value"]))
        else:
            raise PatchError(f"unsupported operation {operation!r} at {path!r}")
    return result


def compute_task_stage(status: Mapping[str, Any], task: str) -> str | None:
    """``computeTaskStage``: the stage to show for ``task`` in a status document.

    The task's ``currentStage``, else the job's ``currentStage`` when the task is the job's
    ``current`` one, else the task's ``failedStage``, else the stage of its ``error``. The same
    as ``getStatus``'s ``taskStages``.
    """
    entry = status.get("tasks", {}).get(task)
    if not isinstance(entry, Mapping):
        return None
    if isinstance(entry.get("currentStage"), str):
        return cast(str, entry["currentStage"])
    if status.get("current") == task and isinstance(status.get("currentStage"), str):
        return cast(str, status["currentStage"])
    if isinstance(entry.get("failedStage"), str):
        return cast(str, entry["failedStage"])
    error = entry.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("stage"), str):
        return cast(str, error["stage"])
    return None


@dataclass
class StatusChange:
    """One ``statusChanged``, with the job's document as it is after the change."""

    job_id: str
    rev: int
    """The document's revision after the change (``status["rev"]``; higher after a resync)."""
    event: StatusEvent
    """What changed last: ``{"type": "job" | "task" | "stage" | "usage", ...}``."""
    events: list[StatusEvent]
    """Every change this notification stands for, in order (one unless changes were coalesced)."""
    coalesced: int
    status: JobStatus
    """The job's whole status document, up to date (a copy: change it freely)."""
    resynced: bool = False
    """True when the notification's patch did not follow the revision held, so the document was fetched with getStatus."""
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    """The notification's params as the server sent them."""

    @property
    def state(self) -> str:
        """The job's state (``status["state"]``)."""
        return cast(str, self.status["state"])

    @property
    def finished(self) -> bool:
        """Whether the job is done, failed, cancelled or interrupted."""
        return self.state in TERMINAL_JOB_STATES

    def task_stage(self, task: str) -> str | None:
        """:func:`compute_task_stage` of ``task`` in this document."""
        return compute_task_stage(self.status, task)


class StatusSubscription:
    """A ``subscribeStatus`` subscription: ``async for change in subscription``.

    The subscription starts on first iteration (or ``await subscription.start()``, or
    ``async with``). It keeps one document per job in :attr:`documents`: a snapshot replaces
    it, a patch is applied when its ``baseRev`` equals the revision held, and otherwise (a gap,
    or a patch that does not apply) the document is fetched again with ``getStatus``.
    Notifications for revisions already held are skipped. Iteration ends when the connection
    closes, after :meth:`close`, or, with ``until_finished``, once the followed job (``job_id``
    given) has finished. Leaving ``async with`` (or :meth:`close`) sends ``unsubscribeStatus``.
    """

    def __init__(
        self,
        client: RequestClient,
        job_id: str | None = None,
        delivery: str = "snapshot",
        *,
        until_finished: bool = False,
        timeout: float | None = None,
    ) -> None:
        if delivery not in ("snapshot", "patch"):
            raise ValueError(f"delivery must be 'snapshot' or 'patch', not {delivery!r}")
        if until_finished and job_id is None:
            raise ValueError("until_finished needs a job_id")
        self._client = client
        self.job_id = job_id
        self.delivery = delivery
        self.until_finished = until_finished
        self._timeout = timeout
        self.subscription_id: str | None = None
        self.baseline_rev: int | None = None
        self.documents: dict[str, JobStatus] = {}
        self._stream: NotificationSource | None = None
        self._started: asyncio.Future[None] | None = None
        self._done = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> StatusSubscription:
        """Send ``subscribeStatus`` (once) and take its baseline."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            # Listen first: a statusChanged may arrive before the answer that names the subscription.
            self._stream = self._client.notifications("statusChanged")
            params: dict[str, Any] = {"delivery": self.delivery}
            if self.job_id is not None:
                params["jobId"] = self.job_id
            try:
                result = await self._client.request("subscribeStatus", params, timeout=self._timeout)
            except BaseException as exc:
                self._stream.close()
                self._done = True
                self._started.set_exception(exc)
                self._started.exception()  # retrieved: raised below, not logged as unhandled
                raise
            self.subscription_id = result["subscriptionId"]
            self.baseline_rev = result["rev"]
            snapshot = result["snapshot"]
            if self.job_id is not None:
                self.documents[self.job_id] = snapshot
            else:
                self.documents.update(snapshot.get("jobs", {}))
            self._started.set_result(None)
        await self._started
        return self

    async def close(self) -> None:
        """Stop the subscription (``unsubscribeStatus``) and end the iteration; idempotent."""
        if self._done:
            return
        self._done = True
        if self._stream is not None:
            self._stream.close()
        if self.subscription_id is not None and not self._client.closed:
            try:
                await self._client.request("unsubscribeStatus", {"subscriptionId": self.subscription_id})
            except StageRunnerError:
                pass  # the connection went away, or the server already dropped it

    async def __aenter__(self) -> StatusSubscription:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ iteration

    def __aiter__(self) -> StatusSubscription:
        return self

    async def __anext__(self) -> StatusChange:
        await self.start()
        assert self._stream is not None
        while True:
            if self._done:
                raise StopAsyncIteration
            try:
                note = await self._stream.__anext__()
            except StopAsyncIteration:
                self._done = True
                raise
            change = await self._apply(note["params"])
            if change is None:
                continue
            if self.until_finished and change.job_id == self.job_id and change.finished:
                await self.close()
            return change

    async def _apply(self, params: Any) -> StatusChange | None:
        """Bring the job's document up to date with one notification; None when it is not ours or old."""
        if not isinstance(params, dict) or params.get("subscriptionId") != self.subscription_id:
            return None
        job_id, rev = params["jobId"], params["rev"]
        held = self.documents.get(job_id)
        if held is not None and rev <= held["rev"]:
            return None  # already held (sent before the baseline, or passed by a resync)
        resynced = False
        if "snapshot" in params:
            document = params["snapshot"]
        else:
            document = None
            if held is not None and params.get("baseRev") == held["rev"]:
                try:
                    document = apply_patch(held, params["patch"])
                except PatchError:
                    document = None
            if document is None or document.get("rev") != rev:
                document = await self._resync(job_id)
                resynced = True
        self.documents[job_id] = document
        events = params.get("events") if params.get("coalesced", 1) > 1 else None
        return StatusChange(
            job_id=job_id,
            rev=document["rev"],
            event=params["event"],
            events=list(events or [params["event"]]),
            coalesced=params.get("coalesced", 1),
            status=copy.deepcopy(document),
            resynced=resynced,
            params=params,
        )

    async def _resync(self, job_id: str) -> JobStatus:
        result = await self._client.request("getStatus", {"jobId": job_id}, timeout=self._timeout)
        return cast(JobStatus, result["status"])


class SyncStatusSubscription:
    """The blocking form of :class:`StatusSubscription`: ``for change in subscription``."""

    def __init__(self, sync: BlockingRunner, subscription: StatusSubscription) -> None:
        self._sync = sync
        self._subscription = subscription

    @property
    def subscription_id(self) -> str | None:
        return self._subscription.subscription_id

    @property
    def documents(self) -> dict[str, JobStatus]:
        """Each followed job's document, up to date with the changes iterated so far."""
        return self._subscription.documents

    def start(self) -> SyncStatusSubscription:
        self._sync._call(self._subscription.start())
        return self

    def close(self) -> None:
        """Stop the subscription (``unsubscribeStatus``)."""
        try:
            self._sync._call(self._subscription.close())
        except (RuntimeError, ServerExited):
            pass

    def __enter__(self) -> SyncStatusSubscription:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[StatusChange]:
        return self

    def __next__(self) -> StatusChange:
        try:
            return self._sync._call(self._subscription.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None
