"""One long-lived ``stagerunner serve`` per workspace and process, shared by every step it runs.

A Dagster worker process (a celery worker's child, the in-process executor, a step process of
the multiprocess executor) may run many steps; spawning a server for each would be cheap (tens of
milliseconds), but a server that lives as long as the process keeps its engine, its open call log
and its connections to providers. :func:`shared_server` hands out that server, and the process
closes it when it exits.

A :class:`WorkspaceServer` owns an asyncio event loop on a daemon thread, on which the
asynchronous :class:`stagerunner.Client` runs, so that a step (plain blocking code) can either
wait for one ``runStage`` or keep hundreds in flight and take their results as they complete.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import multiprocessing.util
import os
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from stagerunner import Client, ListTemplatesResult, StageResult, ValidateWorkspaceResult
from stagerunner.types import Stage

__all__ = [
    "StageOutcome",
    "StageRequest",
    "WorkspaceServer",
    "close_shared_servers",
    "shared_server",
]

T = TypeVar("T")

#: How long closing a server may take before the process stops waiting for it (the client's
#: shutdown ladder itself ends in SIGKILL after about 6 s).
CLOSE_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class StageRequest:
    """One generation to run: its stage and gen id (the membership says the rest)."""

    stage: Stage
    gen_id: str


@dataclass(frozen=True)
class StageOutcome:
    """What became of a :class:`StageRequest`: the ``runStage`` result, or the error it raised."""

    request: StageRequest
    result: StageResult | None
    error: BaseException | None

    @property
    def ok(self) -> bool:
        """True when the server answered with a generation (whatever its status)."""
        return self.error is None


class WorkspaceServer:
    """A ``stagerunner serve`` process on one workspace, driven from blocking code.

    ``executable`` defaults to ``$STAGERUNNER_BIN``, then ``stagerunner`` on PATH (as
    :meth:`stagerunner.Client.spawn` does). The server inherits this process's environment, which
    is where provider keys come from.
    """

    def __init__(self, workspace: str, executable: str | None = None) -> None:
        self.workspace = workspace
        self.executable = executable
        #: The process that started the server; a forked child must not use its parent's.
        self.owner_pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="stagerunner-server-loop", daemon=True)
        self._client: Client | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WorkspaceServer:
        """Spawn the server and run the ``initialize`` handshake; idempotent."""
        with self._lock:
            if self._client is not None:
                return self
            if self._closed:
                raise RuntimeError(f"the server for {self.workspace} is closed")
            self._thread.start()
            client = Client.spawn(self.executable, workspace=self.workspace)
            try:
                self._submit(client.start()).result()
            except BaseException:
                self._stop_loop()
                self._closed = True
                raise
            self._client = client
        return self

    @property
    def pid(self) -> int | None:
        """The server's process id, once started."""
        return self._client.pid if self._client else None

    @property
    def running(self) -> bool:
        """True while the server process is up and this process may use it."""
        return (
            self._client is not None
            and not self._closed
            and self._client.returncode is None
            and not self._client.closed
            and self.owner_pid == os.getpid()
        )

    @property
    def usable(self) -> bool:
        """True when this process may call :meth:`start` and use the server: not closed, not
        inherited through ``fork``, and running if it was started."""
        return not self._closed and self.owner_pid == os.getpid() and (self._client is None or self.running)

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote on stderr (its log), for error messages."""
        return self._client.stderr_tail(lines) if self._client else ""

    def close(self) -> None:
        """Shut the server down (``shutdown``, ``exit``, then signals) and stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
        if self.owner_pid != os.getpid():
            return  # a forked copy: the parent owns the process and the thread
        try:
            if client is not None:
                self._submit(client.close()).result(timeout=CLOSE_TIMEOUT_SECONDS)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CLOSE_TIMEOUT_SECONDS)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    # ------------------------------------------------------------------ calls

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _started_client(self) -> Client:
        self.start()
        assert self._client is not None
        return self._client

    def call(self, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(client)`` on the server's loop and wait for its result.

        Interrupting the wait (a terminated step) cancels the call, which sends
        ``$/cancelRequest`` to the server.
        """
        future = self._submit(make(self._started_client()))
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def validate_workspace(self) -> ValidateWorkspaceResult:
        """``validateWorkspace``: every problem of the catalogs, membership and configuration."""
        return self.call(lambda client: client.validate_workspace())

    def list_templates(self) -> ListTemplatesResult:
        """``listTemplates`` of every stage, inactive templates included."""
        return self.call(lambda client: client.list_templates(include_inactive=True))

    def run_stage(self, request: StageRequest, *, run_id: str) -> StageResult:
        """``runStage`` of one generation of the membership; raises the server's error."""
        return self.call(lambda client: client.run_stage(request.stage, gen_id=request.gen_id, run_id=run_id))

    def run_stages(
        self, requests: Sequence[StageRequest], *, run_id: str, max_in_flight: int = 256
    ) -> Iterator[StageOutcome]:
        """Send every request (at most ``max_in_flight`` at a time) and yield outcomes as they complete.

        Requests are sent in the order given; send parents before their children, so that a
        child finds its parent under way and shares its execution. Every request yields exactly
        one outcome, errors included. Leaving the iteration early (an exception in the caller,
        a terminated step) cancels the requests still in flight.
        """
        client = self._started_client()
        outcomes: queue.SimpleQueue[StageOutcome] = queue.SimpleQueue()

        async def run_all() -> None:
            slots = asyncio.Semaphore(max(1, max_in_flight))

            async def run_one(request: StageRequest) -> None:
                async with slots:
                    try:
                        result = await client.run_stage(request.stage, gen_id=request.gen_id, run_id=run_id)
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # noqa: BLE001 - reported to the caller as the outcome
                        outcomes.put(StageOutcome(request, None, error))
                    else:
                        outcomes.put(StageOutcome(request, result, None))

            await asyncio.gather(*(run_one(request) for request in requests))

        future = self._submit(run_all())
        try:
            for _ in range(len(requests)):
                yield _next_outcome(outcomes, future)
        finally:
            if not future.done():
                future.cancel()


def _next_outcome(outcomes: queue.SimpleQueue[StageOutcome], future: concurrent.futures.Future[None]) -> StageOutcome:
    """The next outcome; waits in short slices so that a signal reaches the waiting thread."""
    while True:
        try:
            return outcomes.get(timeout=0.5)
        except queue.Empty:
            if future.done() and future.exception() is not None:
                raise RuntimeError("the requests stopped before every outcome was reported") from future.exception()


# ---------------------------------------------------------------------- the process's servers

_servers: dict[tuple[str, str | None], WorkspaceServer] = {}
_servers_lock = threading.Lock()
_exit_hooks_pid: int | None = None


def shared_server(workspace: str, executable: str | None = None) -> WorkspaceServer:
    """This process's server for ``workspace``, started on first use and reused until exit.

    A server that has died is replaced; a forked child never uses its parent's. The servers
    are closed when the process exits (``atexit``, and multiprocessing's finalizers for
    processes that leave through ``os._exit``).
    """
    key = (os.path.realpath(workspace), executable)
    with _servers_lock:
        _install_exit_hooks()
        server = _servers.get(key)
        if server is None or not server.usable:
            if server is not None and server.owner_pid == os.getpid():
                server.close()  # it died: reap it and stop its loop thread
            server = WorkspaceServer(key[0], executable)
            _servers[key] = server
    return server.start()


def close_shared_servers() -> None:
    """Close every server :func:`shared_server` started in this process."""
    with _servers_lock:
        servers = [server for server in _servers.values() if server.owner_pid == os.getpid()]
        _servers.clear()
    for server in servers:
        server.close()


def _install_exit_hooks() -> None:
    global _exit_hooks_pid
    if _exit_hooks_pid == os.getpid():
        return
    _exit_hooks_pid = os.getpid()
    atexit.register(close_shared_servers)
    multiprocessing.util.Finalize(None, close_shared_servers, exitpriority=100)
