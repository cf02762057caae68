"""Asynchronous client of ``stagerunner serve`` (JSON-RPC 2.0 over the server's stdio).

Typical use::

    async with Client.spawn(workspace="examples/daydream") as c:
        print(await c.ping(echo="hi"))
        result = await c.run_stage("draft", gen_id="d-creative")

The client spawns the server in its own process group, drains its stderr into a
bounded ring buffer, matches responses to requests by id (they may arrive out of
order), answers server-to-client requests, fans out notifications, and on close
walks the shutdown ladder: ``shutdown``, ``exit``, close stdin, SIGTERM, SIGKILL.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import json
import logging
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, cast

from ._common import MISSING, F, drop_none, stage_params
from .errors import (
    MethodNotFound,
    ProtocolError,
    RequestFailed,
    RpcError,
    ServerExited,
    StageRunnerError,
    error_from_response,
)
from .framing import Framing, encode_frame, make_decoder
from .jobs import StatusSubscription
from .types import (
    CacheMode,
    CancelJobResult,
    GetArtifactResult,
    GetStatusResult,
    InitializeResult,
    JobState,
    ListJobsResult,
    ListTemplatesResult,
    Mode,
    ModelConfig,
    Notification,
    PingResult,
    PipelineDryRun,
    ProgressToken,
    ProgressValue,
    RenderPromptResult,
    ResumeJobResult,
    RetryTaskResult,
    RunPipelineResult,
    ServerCapabilities,
    Stage,
    StageOutput,
    StageResult,
    TaskContext,
    TaskDryRun,
    TaskResult,
    TaskStage,
    ValidateWorkspaceResult,
)

__all__ = [
    "Client",
    "NotificationStream",
    "StageHandler",
    "ProgressCallback",
    "PROTOCOL_VERSION",
    "CLIENT_NAME",
    "__version__",
]

__version__ = "0.1.0"
PROTOCOL_VERSION = "1.0"
CLIENT_NAME = "stagerunner-python"

log = logging.getLogger("stagerunner")
server_log = logging.getLogger("stagerunner.server")

RequestHandler = Callable[[Any], Any]
"""A server-to-client request handler: takes ``params``, returns the result (or an awaitable)."""
NotificationCallback = Callable[[Any], Any]
"""A notification callback: takes ``params``; may be a plain function or a coroutine function."""
StageHandler = Callable[[TaskStage, TaskContext], "StageOutput | Awaitable[StageOutput]"]
"""A task stage run by the client: ``handler(stage, context)`` returns ``{"output", "flags"}``.

A coroutine function runs on the client's event loop; a plain function runs in a worker thread
(``asyncio.to_thread``), so that it cannot stall the connection."""
ProgressCallback = Callable[[ProgressValue], Any]
"""``run_stage``'s ``on_progress``: takes each ``$/progress`` value of the run, in order.

A plain function or a coroutine function (awaited before the next value is delivered)."""
_CLOSED: Any = object()
_READ_CHUNK = 1 << 16
_MAX_STDERR_LINE = 8192
_SHUTDOWN_TIMEOUT = 2.0
_EXIT_WAIT = 2.0
_TERM_WAIT = 2.0


def _resolve_executable(executable: str | os.PathLike[str] | None) -> str:
    """The server binary: the argument, else ``$STAGERUNNER_BIN``, else ``stagerunner`` on PATH."""
    if executable is not None:
        return os.fspath(executable)
    env_bin = os.environ.get("STAGERUNNER_BIN")
    if env_bin:
        return env_bin
    found = shutil.which("stagerunner")
    if found:
        return found
    raise FileNotFoundError(
        "stagerunner executable not found: pass executable=, set STAGERUNNER_BIN, or put stagerunner on PATH"
    )


class NotificationStream:
    """An async iterator over the server's notifications (optionally of one method).

    It is subscribed as soon as it is created, so nothing sent in between is lost, and
    it ends when the connection closes (after yielding what had arrived before). Use it
    with ``async for``; call :meth:`close` (or leave the ``async with`` block) to
    unsubscribe early.
    """

    def __init__(self, client: Client, method: str | None) -> None:
        self._client = client
        self.method: str | None = method
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._done = False
        client._subscribers.append(self)
        if client._connection_lost:
            self._queue.put_nowait(_CLOSED)

    def _offer(self, note: Notification) -> None:
        if not self._done and (self.method is None or self.method == note["method"]):
            self._queue.put_nowait(note)

    def _end(self) -> None:
        self._queue.put_nowait(_CLOSED)

    def close(self) -> None:
        """Unsubscribe; a pending or later ``__anext__`` ends the iteration."""
        if not self._done:
            self._done = True
            if self in self._client._subscribers:
                self._client._subscribers.remove(self)
            self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> NotificationStream:
        return self

    async def __anext__(self) -> Notification:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            self.close()
            raise StopAsyncIteration
        return cast(Notification, item)

    async def __aenter__(self) -> NotificationStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A connection to one ``stagerunner serve`` process.

    Create it with :meth:`spawn` and use it as an async context manager (or ``await``
    it, then :meth:`close` it yourself). Every protocol method has a coroutine method
    here; :meth:`request` and :meth:`notify` reach any other method.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        framing: Framing = "ndjson",
        workspace: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        initialize: bool = True,
        stderr_lines: int = 500,
        stage_handlers: Mapping[str, StageHandler] | None = None,
    ) -> None:
        """Prepare (but do not start) a client for the command line ``argv``.

        Prefer :meth:`spawn`, which builds ``argv`` from an executable and options.
        ``env`` is the server's whole environment (as with :mod:`subprocess`); ``None``
        inherits this process's. ``stage_handlers`` maps handler names to stage handlers
        (see :meth:`stage_handler`).
        """
        if framing not in ("ndjson", "lsp"):
            raise ValueError(f"framing must be 'ndjson' or 'lsp', not {framing!r}")
        self.argv: list[str] = list(argv)
        self.framing: Framing = framing
        self.workspace: str | None = workspace
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._do_initialize = initialize
        self._proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._write_lock = asyncio.Lock()
        self._reader_task: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=max(1, stderr_lines))
        self._request_handlers: dict[str, RequestHandler] = {}
        self._incoming: dict[Any, asyncio.Task[None]] = {}
        self._notification_callbacks: dict[str | None, list[NotificationCallback]] = {}
        self._subscribers: list[NotificationStream] = []
        self._progress_routes: dict[ProgressToken, asyncio.Queue[Any]] = {}
        self._progress_ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()
        self._exit_error: ServerExited | None = None
        self._connection_lost = False
        self._lost_event: asyncio.Event | None = None
        self._closing = False
        self._closed = False
        self.initialize_result: InitializeResult | None = None
        self._stage_handlers: dict[str, StageHandler] = {}
        self._declared_stage_handlers: frozenset[str] | None = None  # set once initialize is sent
        for name, handler in (stage_handlers or {}).items():
            self.stage_handler(name)(handler)

    # ------------------------------------------------------------------ construction

    @classmethod
    def spawn(
        cls,
        executable: str | os.PathLike[str] | None = None,
        workspace: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        framing: Framing = "ndjson",
        *,
        cwd: str | os.PathLike[str] | None = None,
        initialize: bool = True,
        stderr_lines: int = 500,
        stage_handlers: Mapping[str, StageHandler] | None = None,
    ) -> Self:
        """Return a client for ``<executable> serve --framing F [--workspace W] *args``.

        The process starts on ``async with`` (or ``await``). ``executable`` defaults to
        ``$STAGERUNNER_BIN``, then ``stagerunner`` on PATH. ``workspace`` is also sent
        as ``initialize``'s ``workspaceRoot``. ``args`` are extra ``serve`` options such
        as ``["--log-level", "debug"]``. ``stderr_lines`` bounds the stderr ring buffer.
        ``stage_handlers`` maps names to task stage handlers, declared in ``initialize``
        (the same as registering each with :meth:`stage_handler` before starting).
        """
        exe = _resolve_executable(executable)
        ws = os.path.abspath(os.fspath(workspace)) if workspace is not None else None
        argv = [exe, "serve", "--framing", framing]
        if ws is not None:
            argv += ["--workspace", ws]
        argv += list(args)
        return cls(
            argv,
            framing=framing,
            workspace=ws,
            env=env,
            cwd=cwd,
            initialize=initialize,
            stderr_lines=stderr_lines,
            stage_handlers=stage_handlers,
        )

    async def start(self) -> Self:
        """Start the process and (unless disabled) run ``initialize`` and ``initialized``."""
        if self._proc is not None:
            return self
        self._lost_event = asyncio.Event()
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="stagerunner-stderr")
        self._reader_task = asyncio.create_task(self._read_stdout(), name="stagerunner-reader")
        if self._do_initialize:
            try:
                await self.initialize()
            except BaseException:
                await self.close()
                raise
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self.start().__await__()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ properties

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id), once started."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The server's exit status once it has ended, else ``None``."""
        return self._proc.returncode if self._proc else None

    @property
    def capabilities(self) -> ServerCapabilities | None:
        """``capabilities`` from the ``initialize`` result, when initialized."""
        return self.initialize_result["capabilities"] if self.initialize_result else None

    @property
    def closed(self) -> bool:
        """True once the connection is lost or closed."""
        return self._connection_lost or self._closed

    def stderr_tail(self, lines: int | None = None) -> str:
        """The last ``lines`` (default: all kept) lines the server wrote to stderr."""
        kept = list(self._stderr)
        if lines is not None:
            kept = kept[-lines:] if lines > 0 else []
        return "\n".join(kept)

    # ------------------------------------------------------------------ I/O tasks

    async def _drain_stderr(self) -> None:
        """Read stderr continuously into the ring buffer, so the pipe never fills up."""
        assert self._proc is not None and self._proc.stderr is not None
        stream = self._proc.stderr
        partial = bytearray()
        try:
            while True:
                chunk = await stream.read(_READ_CHUNK)
                if not chunk:
                    break
                partial += chunk
                *lines, rest = bytes(partial).split(b"\n")
                for line in lines:
                    self._keep_stderr_line(line)
                partial = bytearray(rest)
                if len(partial) > _MAX_STDERR_LINE:
                    self._keep_stderr_line(bytes(partial))
                    partial.clear()
        except (asyncio.CancelledError, ConnectionError):  # pragma: no cover - close path
            pass
        finally:
            if partial:
                self._keep_stderr_line(bytes(partial))

    def _keep_stderr_line(self, raw: bytes) -> None:
        text = raw[:_MAX_STDERR_LINE].rstrip(b"\r").decode("utf-8", "replace")
        self._stderr.append(text)
        if server_log.isEnabledFor(logging.DEBUG):
            server_log.debug("%s", text)

    async def _read_stdout(self) -> None:
        """Read frames from stdout and dispatch them until end of file."""
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        decoder = make_decoder(self.framing)
        try:
            while True:
                chunk = await stream.read(_READ_CHUNK)
                if not chunk:
                    for body in decoder.finish():
                        self._handle_frame(body)
                    break
                try:
                    frames = decoder.feed(chunk)
                except ProtocolError as exc:
                    log.error("stagerunner: unreadable frame from the server (%s); resynchronising", exc)
                    decoder = make_decoder(self.framing)
                    continue
                for body in frames:
                    self._handle_frame(body)
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - defensive: never die silently
            log.exception("stagerunner: reader failed")
        finally:
            await self._on_connection_lost()

    async def _on_connection_lost(self) -> None:
        """stdout ended: reap the process and fail everything still waiting."""
        proc = self._proc
        assert proc is not None
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), _EXIT_WAIT + _TERM_WAIT)
            except TimeoutError:
                self._kill_group(signal.SIGKILL)
                await proc.wait()
        if self._stderr_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        self._exit_error = ServerExited(proc.returncode, self.stderr_tail(20))
        self._connection_lost = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(self._exit_error)
        self._pending.clear()
        for task in list(self._incoming.values()):
            task.cancel()
        for sub in list(self._subscribers):
            sub._end()
        if self._lost_event is not None:
            self._lost_event.set()

    def _handle_frame(self, body: bytes) -> None:
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            log.warning("stagerunner: server sent a frame that is not JSON (%s): %.200r", exc, body)
            return
        if isinstance(message, list):
            for item in message:
                self._dispatch(item)
        else:
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            log.warning("stagerunner: ignoring a message that is not an object: %.200r", message)
            return
        method = message.get("method")
        if isinstance(method, str):
            if "id" in message:
                self._start_incoming_request(message["id"], method, message.get("params"))
            else:
                self._handle_notification(method, message.get("params"))
            return
        if "result" in message or "error" in message:
            self._handle_response(message)
            return
        log.warning("stagerunner: ignoring a message of unknown shape: %.200r", message)

    def _handle_response(self, message: dict[str, Any]) -> None:
        rid = message.get("id")
        fut = self._pending.pop(rid, None) if isinstance(rid, int) and not isinstance(rid, bool) else None
        if fut is None:
            if rid is None and "error" in message:
                log.warning("stagerunner: server reported an error without id: %r", message.get("error"))
            else:
                log.debug("stagerunner: dropping a response nobody waits for (id %r)", rid)
            return
        if fut.done():
            return
        if "error" in message:
            error = message["error"]
            fut.set_exception(error_from_response(error) if isinstance(error, dict) else RpcError(-32603, str(error)))
        else:
            fut.set_result(message.get("result"))

    def _handle_notification(self, method: str, params: Any) -> None:
        if method == "$/cancelRequest":
            target = params.get("id") if isinstance(params, dict) else None
            task = self._incoming.get(target)
            if task is not None:
                task.cancel()
            return
        if method == "$/progress" and isinstance(params, dict):
            token = params.get("token")
            route = self._progress_routes.get(token) if isinstance(token, str | int) else None
            if route is not None and not isinstance(token, bool):
                route.put_nowait(params.get("value"))
        note: Notification = {"method": method, "params": params}
        calls: list[tuple[NotificationCallback, Any]] = [
            (cb, params) for cb in self._notification_callbacks.get(method, [])
        ] + [(cb, note) for cb in self._notification_callbacks.get(None, [])]
        for callback, argument in calls:
            try:
                outcome = callback(argument)
                if inspect.isawaitable(outcome):
                    self._in_background(outcome)
            except Exception:
                log.exception("stagerunner: notification callback for %s failed", method)
        for sub in list(self._subscribers):
            sub._offer(note)

    def _start_incoming_request(self, rid: Any, method: str, params: Any) -> None:
        """Run the handler of a server request in its own task (so ``$/cancelRequest`` can stop it)."""
        handler = self._request_handlers.get(method)
        if handler is None:
            error = {
                "code": MethodNotFound.CODE,
                "message": f"Method not found: '{method}'",
                "data": {"method": method, "available": sorted(self._request_handlers)},
            }
            self._in_background(self._reply(rid, {"error": error}))
            return
        inner = asyncio.ensure_future(self._invoke(handler, params))
        self._incoming[rid] = inner

        def forget(_task: asyncio.Future[Any]) -> None:
            if self._incoming.get(rid) is inner:
                del self._incoming[rid]

        inner.add_done_callback(forget)
        self._in_background(self._answer_when_done(rid, method, inner))

    @staticmethod
    async def _invoke(handler: RequestHandler, params: Any) -> Any:
        outcome = handler(params)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return outcome

    async def _answer_when_done(self, rid: Any, method: str, inner: asyncio.Future[Any]) -> None:
        member: dict[str, Any]
        try:
            member = {"result": await inner}
        except RpcError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.data:
                error["data"] = exc.data
            member = {"error": error}
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the client itself is closing
            member = {"error": {"code": -32800, "message": "Request cancelled"}}
        except Exception as exc:
            log.exception("stagerunner: handler for server request %s failed", method)
            member = {"error": {"code": -32603, "message": f"Internal error: {exc}"}}
        await self._reply(rid, member)

    async def _reply(self, rid: Any, member: dict[str, Any]) -> None:
        """Send the response to a server request, unless the connection is gone."""
        if self._connection_lost:
            return
        try:
            await self._send({"jsonrpc": "2.0", "id": rid, **member})
        except StageRunnerError:
            pass

    def _in_background(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("stagerunner: background callback failed")

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ sending

    def _check_usable(self) -> None:
        if self._proc is None:
            raise StageRunnerError("the client is not started; use 'async with Client.spawn(...)'")
        if self._exit_error is not None:
            raise self._exit_error
        if self._closed:
            raise StageRunnerError("the client is closed")

    async def _send(self, message: Mapping[str, Any]) -> None:
        """Encode and write one message; raise :class:`ServerExited` if the pipe is gone."""
        assert self._proc is not None and self._proc.stdin is not None
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        frame = encode_frame(body, self.framing)
        async with self._write_lock:
            stdin = self._proc.stdin
            if stdin.is_closing():
                raise await self._exited_error()
            try:
                stdin.write(frame)
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError, RuntimeError):
                raise await self._exited_error() from None

    async def _exited_error(self) -> ServerExited:
        """Wait (briefly) for the reader to notice the exit; return the ServerExited to raise."""
        if self._lost_event is not None and not self._lost_event.is_set():
            try:
                await asyncio.wait_for(self._lost_event.wait(), _EXIT_WAIT + _TERM_WAIT + 1.0)
            except TimeoutError:
                pass
        if self._exit_error is not None:
            return self._exit_error
        return ServerExited(self.returncode, self.stderr_tail(20))

    async def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Send a request and return its ``result``.

        Raises the :class:`RpcError` subclass of an error response, :class:`ServerExited`
        if the process ends first, and ``TimeoutError`` after ``timeout`` seconds, in
        which case ``$/cancelRequest`` is sent and a late response is dropped. Cancelling
        the awaiting task also sends ``$/cancelRequest``.
        """
        self._check_usable()
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self._send(message)
        except BaseException:
            self._pending.pop(rid, None)
            raise
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._pending.pop(rid, None)
            await self._cancel_quietly(rid)
            raise TimeoutError(f"{method} (id {rid}) got no response within {timeout} s; cancel sent") from None
        except asyncio.CancelledError:
            if self._pending.pop(rid, None) is not None:
                self._in_background(self._cancel_quietly(rid))
            raise

    async def _cancel_quietly(self, rid: int) -> None:
        if self._connection_lost:
            return
        try:
            await self._send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": rid}})
        except StageRunnerError:
            pass

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no response comes back)."""
        self._check_usable()
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._send(message)

    # ------------------------------------------------------------------ server → client

    def on_request(self, method: str) -> Callable[[F], F]:
        """Decorator: register ``handler(params)`` (sync or async) for a server request.

        Its return value is the result; raising :class:`RpcError` answers that error.
        Server requests without a handler are answered -32601.
        """

        def register(handler: F) -> F:
            self._request_handlers[method] = handler
            return handler

        return register

    def on_notification(self, method: str | None = None) -> Callable[[F], F]:
        """Decorator: call ``callback(params)`` (sync or async) for each ``method`` notification.

        With ``method=None`` the callback gets every notification as a
        :class:`~stagerunner.types.Notification` dict instead.
        """

        def register(callback: F) -> F:
            self._notification_callbacks.setdefault(method, []).append(callback)
            return callback

        return register

    def notifications(self, method: str | None = None) -> NotificationStream:
        """An async iterator over notifications (of ``method``, or all); ends on close."""
        return NotificationStream(self, method)

    def stage_handler(self, name: str) -> Callable[[F], F]:
        """Decorator: run the task stages whose handler is ``{client: name}`` with ``handler(stage, context)``.

        ::

            c = Client.spawn(workspace="examples/research-task")

            @c.stage_handler("quality")
            async def grade(stage, context):
                return {"output": {"grade": "A"}, "flags": {"validationFailed": False}}

        Register handlers before the client starts: their names are declared in
        ``initialize`` (``capabilities.stageHandlers``), and the server sends ``executeStage``
        only for declared names. Registering a new name afterwards raises ``RuntimeError``;
        replacing the function of a declared name is allowed.

        The handler gets the stage's name and the context (``context["output"]`` is its input)
        and returns ``{"output": ..., "flags": {...}}``. A coroutine function runs on the
        event loop; a plain function in a worker thread. Raising :class:`RpcError` answers
        that error; any other exception answers -32803 with the exception's type and text,
        and the stage fails with ``ClientStageError``. A ``$/cancelRequest`` from the server
        (the stage timed out) cancels a coroutine handler.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("a stage handler name must be a non-empty string")

        def register(handler: F) -> F:
            declared = self._declared_stage_handlers
            if declared is not None and name not in declared:
                raise RuntimeError(
                    f"stage handler {name!r} registered after initialize: register stage handlers "
                    "before the client starts (or pass stage_handlers= to spawn), so that they are declared"
                )
            self._stage_handlers[name] = handler
            self._request_handlers["executeStage"] = self._execute_stage
            return handler

        return register

    @property
    def stage_handlers(self) -> list[str]:
        """The names of the registered stage handlers, sorted."""
        return sorted(self._stage_handlers)

    async def _execute_stage(self, params: Any) -> StageOutput:
        """Serve the server's ``executeStage`` with the registered stage handler."""
        if not isinstance(params, dict) or not isinstance(params.get("handler"), str):
            raise RpcError(
                -32602,
                "Invalid params: executeStage needs handler, stage and context",
                {"field": "params.handler", "problem": "is required but missing"},
            )
        name = params["handler"]
        handler = self._stage_handlers.get(name)
        if handler is None:
            raise MethodNotFound(
                MethodNotFound.CODE,
                f"no stage handler named {name!r}",
                {"method": "executeStage", "available": sorted(self._stage_handlers)},
            )
        stage = cast(TaskStage, params.get("stage"))
        context = cast(TaskContext, params.get("context"))
        try:
            if inspect.iscoroutinefunction(handler):
                outcome = await handler(stage, context)
            else:
                outcome = await asyncio.to_thread(handler, stage, context)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
        except RpcError:
            raise
        except Exception as exc:
            log.debug("stagerunner: stage handler %r failed", name, exc_info=True)
            raise RequestFailed(
                RequestFailed.CODE,
                f"{type(exc).__name__}: {exc}",
                {"exception": type(exc).__name__, "handler": name, "stage": stage},
            ) from exc
        return cast(StageOutput, outcome)

    # ------------------------------------------------------------------ protocol methods

    async def initialize(self, *, timeout: float | None = 30.0) -> InitializeResult:
        """Send ``initialize`` (and then ``initialized``); called by :meth:`start`."""
        capabilities: dict[str, Any] = {}
        if self._stage_handlers:
            capabilities["stageHandlers"] = sorted(self._stage_handlers)
        params: dict[str, Any] = {
            "processId": os.getpid(),
            "clientInfo": {"name": CLIENT_NAME, "version": __version__},
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
        }
        if self.workspace is not None:
            params["workspaceRoot"] = self.workspace
        self._declared_stage_handlers = frozenset(self._stage_handlers)
        result = cast(InitializeResult, await self.request("initialize", params, timeout=timeout))
        self.initialize_result = result
        await self.notify("initialized", {})
        return result

    async def ping(self, echo: Any = MISSING, *, timeout: float | None = None) -> PingResult:
        """``ping``: ``{}``, or ``{"echo": echo}`` when ``echo`` is given (``None`` included)."""
        params = {} if echo is MISSING else {"echo": echo}
        return cast(PingResult, await self.request("ping", params, timeout=timeout))

    async def run_stage(
        self,
        stage: Stage,
        *,
        gen_id: str | None = None,
        template_id: str | None = None,
        values: Mapping[str, Any] | None = None,
        mode: Mode | None = None,
        model: str | None = None,
        parser_name: str | None = None,
        pass_through_from: str | None = None,
        max_tokens: int | None = None,
        prompt_text: str | None = None,
        force: bool = False,
        stub_fallback: bool = False,
        fail_on_truncation: bool = False,
        run_id: str | None = None,
        max_text_length: int | None = None,
        budget_scope: str | None = None,
        cache: CacheMode | None = None,
        progress_token: ProgressToken | None = None,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> StageResult:
        """``runStage``: produce (or reuse) one generation and return it.

        ``budget_scope`` names the job whose budget the model calls spend (``budgets.job``);
        a call a cap refuses raises :class:`~stagerunner.errors.BudgetError` (-32017).
        ``cache`` is ``"use"``, ``"refresh"`` or ``"off"`` (the response cache).

        ``on_progress(value)`` (a plain or a coroutine function) receives the run's
        ``$/progress`` values in order: ``{"kind": "begin", "title": "runStage"}``, then
        ``{"kind": "report", "text": delta}`` for each piece of the model's answer (or
        ``{"kind": "report", "restart": True}``: a retried attempt, drop the text so far), then
        ``{"kind": "end", "message": status}``. The client makes a token unique to this call
        (or uses ``progress_token``), routes the matching notifications to the callback, and
        returns (or raises the server's error) only once the callback has had every value. An
        exception from the callback stops the delivery and is raised once the server has answered.
        ``progress_token`` alone asks for the notifications without a callback (see
        :meth:`notifications`).
        """
        params = stage_params(
            stage,
            values,
            gen_id=gen_id,
            template_id=template_id,
            mode=mode,
            model=model,
            parser_name=parser_name,
            pass_through_from=pass_through_from,
            max_tokens=max_tokens,
            prompt_text=prompt_text,
            force=force or None,
            stub_fallback=stub_fallback or None,
            fail_on_truncation=fail_on_truncation or None,
            run_id=run_id,
            max_text_length=max_text_length,
            budget_scope=budget_scope,
            cache=cache,
            progress_token=progress_token,
        )
        if on_progress is None:
            return cast(StageResult, await self.request("runStage", params, timeout=timeout))
        return cast(StageResult, await self._run_with_progress(params, on_progress, timeout))

    async def _run_with_progress(
        self, params: dict[str, Any], callback: ProgressCallback, timeout: float | None
    ) -> Any:
        """Send ``runStage`` with a progress token and feed its ``$/progress`` values to ``callback``."""
        token: ProgressToken | None = params.get("progressToken")
        if token is None:
            token = f"{CLIENT_NAME}-{next(self._progress_ids)}"
            params["progressToken"] = token
        if token in self._progress_routes:
            raise ValueError(f"progress token {token!r} is in use by another run_stage call")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._progress_routes[token] = queue
        delivery = asyncio.ensure_future(self._deliver_progress(queue, callback))
        try:
            try:
                result = await self.request("runStage", params, timeout=timeout)
            except RpcError:
                queue.put_nowait(_CLOSED)  # the end carries the error's message: deliver it first
                await asyncio.gather(delivery, return_exceptions=True)
                raise
            except BaseException:
                delivery.cancel()
                await asyncio.gather(delivery, return_exceptions=True)
                raise
            queue.put_nowait(_CLOSED)
            await delivery  # raises the callback's exception, if any
            return result
        finally:
            if self._progress_routes.get(token) is queue:
                del self._progress_routes[token]

    @staticmethod
    async def _deliver_progress(queue: asyncio.Queue[Any], callback: ProgressCallback) -> None:
        while True:
            value = await queue.get()
            if value is _CLOSED:
                return
            outcome = callback(value)
            if inspect.isawaitable(outcome):
                await outcome

    async def render_prompt(
        self,
        stage: Stage,
        *,
        gen_id: str | None = None,
        template_id: str | None = None,
        values: Mapping[str, Any] | None = None,
        mode: Mode | None = None,
        model: str | None = None,
        parser_name: str | None = None,
        pass_through_from: str | None = None,
        prompt_text: str | None = None,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> RenderPromptResult:
        """``renderPrompt``: the prompt :meth:`run_stage` would send, without sending it."""
        params = stage_params(
            stage,
            values,
            gen_id=gen_id,
            template_id=template_id,
            mode=mode,
            model=model,
            parser_name=parser_name,
            pass_through_from=pass_through_from,
            prompt_text=prompt_text,
            run_id=run_id,
        )
        return cast(RenderPromptResult, await self.request("renderPrompt", params, timeout=timeout))

    async def list_templates(
        self,
        stage: Stage | None = None,
        include_inactive: bool | None = None,
        *,
        timeout: float | None = None,
    ) -> ListTemplatesResult:
        """``listTemplates``: the catalog rows (of one ``stage``, or all)."""
        params = drop_none({"stage": stage, "includeInactive": include_inactive})
        return cast(ListTemplatesResult, await self.request("listTemplates", params, timeout=timeout))

    async def validate_workspace(self, *, timeout: float | None = None) -> ValidateWorkspaceResult:
        """``validateWorkspace``: every problem of the workspace, as diagnostics."""
        return cast(ValidateWorkspaceResult, await self.request("validateWorkspace", {}, timeout=timeout))

    async def run_task(
        self,
        task: str | Mapping[str, Any],
        input: Any = None,
        *,
        model_config: ModelConfig | None = None,
        max_refinements: int | None = None,
        task_timeout: float | None = None,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> TaskResult:
        """``runTask``: run a task (a task file's path relative to the workspace, or the task itself).

        ``input`` is the seed (default ``{}``). ``task_timeout`` is the server-side limit of
        the whole run in seconds (the stage then running fails with TaskTimeoutError);
        ``timeout`` is this call's own, as for every method. A task that fails is a result
        with ``ok`` false (``failedStage`` and ``error`` say why); a task that cannot be
        loaded raises :class:`~stagerunner.errors.TaskError` (-32015). Stages whose handler
        is ``client`` are run by the handlers registered with :meth:`stage_handler`.
        """
        params = drop_none(
            {
                "task": dict(task) if isinstance(task, Mapping) else task,
                "input": input,
                "modelConfig": dict(model_config) if model_config is not None else None,
                "maxRefinements": max_refinements,
                "timeout": task_timeout,
                "runId": run_id,
            }
        )
        return cast(TaskResult, await self.request("runTask", params, timeout=timeout))

    async def dry_run_task(
        self,
        task: str | Mapping[str, Any],
        input: Any = None,
        *,
        model_config: ModelConfig | None = None,
        timeout: float | None = None,
    ) -> TaskDryRun:
        """``runTask`` with ``dryRun``: check a task as :meth:`run_task` would run it, running nothing.

        The server loads the task (a task that cannot be loaded raises
        :class:`~stagerunner.errors.TaskError`, as for a run) and asks each stage's handler what
        would stop it: ``{"dryRun": True, "ok", "task", "stages": [{"stage", "handler", "problems"}]}``.
        """
        params = drop_none(
            {
                "task": dict(task) if isinstance(task, Mapping) else task,
                "input": input,
                "modelConfig": dict(model_config) if model_config is not None else None,
                "dryRun": True,
            }
        )
        return cast(TaskDryRun, await self.request("runTask", params, timeout=timeout))

    # ------------------------------------------------------------------ jobs

    async def run_pipeline(
        self,
        pipeline: str | Mapping[str, Any],
        input: Any = None,
        *,
        name: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> RunPipelineResult:
        """``runPipeline``: start a pipeline (a pipeline file's path relative to the workspace, or the pipeline itself) as a job.

        Returns ``{"jobId"}`` at once; with ``wait=True``, once the job has ended, with its
        final ``status`` too (cancelling the call then cancels the job). ``input`` is the job's
        input (default ``{}``). A pipeline that cannot be used raises
        :class:`~stagerunner.errors.TaskError` (-32015, ``kind`` ``"pipeline"``).
        """
        params = drop_none(
            {
                "pipeline": dict(pipeline) if isinstance(pipeline, Mapping) else pipeline,
                "input": input,
                "name": name,
                "options": {"wait": True} if wait else None,
            }
        )
        return cast(RunPipelineResult, await self.request("runPipeline", params, timeout=timeout))

    async def dry_run_pipeline(
        self, pipeline: str | Mapping[str, Any], input: Any = None, *, timeout: float | None = None
    ) -> PipelineDryRun:
        """``runPipeline`` with ``dryRun``: check a pipeline and every task of it as its job would
        run them, starting no job: ``{"dryRun": True, "ok", "pipeline", "tasks": [{"name", "file",
        "ok", "stages"?, "error"?}]}`` (a task file that cannot be loaded is a task with its ``error``).
        """
        params = drop_none(
            {
                "pipeline": dict(pipeline) if isinstance(pipeline, Mapping) else pipeline,
                "input": input,
                "dryRun": True,
            }
        )
        return cast(PipelineDryRun, await self.request("runPipeline", params, timeout=timeout))

    async def get_status(self, job_id: str, *, timeout: float | None = None) -> GetStatusResult:
        """``getStatus``: the job's status document and ``taskStages`` (computeTaskStage per task)."""
        return cast(GetStatusResult, await self.request("getStatus", {"jobId": job_id}, timeout=timeout))

    async def list_jobs(self, state: JobState | None = None, *, timeout: float | None = None) -> ListJobsResult:
        """``listJobs``: a summary of every job of the workspace (or those in ``state``), newest first."""
        return cast(ListJobsResult, await self.request("listJobs", drop_none({"state": state}), timeout=timeout))

    async def cancel_job(self, job_id: str, *, timeout: float | None = None) -> CancelJobResult:
        """``cancelJob``: stop a running or pending job; returns its status once it has stopped."""
        return cast(CancelJobResult, await self.request("cancelJob", {"jobId": job_id}, timeout=timeout))

    async def retry_task(self, job_id: str, task: str, *, timeout: float | None = None) -> RetryTaskResult:
        """``retryTask``: run a failed (or cancelled) task again, and the tasks after it."""
        params = {"jobId": job_id, "task": task}
        return cast(RetryTaskResult, await self.request("retryTask", params, timeout=timeout))

    async def resume_job(self, job_id: str, *, timeout: float | None = None) -> ResumeJobResult:
        """``resumeJob``: continue an interrupted or cancelled job from its first unfinished task."""
        return cast(ResumeJobResult, await self.request("resumeJob", {"jobId": job_id}, timeout=timeout))

    async def get_artifact(self, job_id: str, path: str, *, timeout: float | None = None) -> GetArtifactResult:
        """``getArtifact``: a file of the job's folder (``text``, or ``base64`` when it is not UTF-8)."""
        params = {"jobId": job_id, "path": path}
        return cast(GetArtifactResult, await self.request("getArtifact", params, timeout=timeout))

    def subscribe_status(
        self,
        job_id: str | None = None,
        delivery: str = "snapshot",
        *,
        until_finished: bool = False,
        timeout: float | None = None,
    ) -> StatusSubscription:
        """``subscribeStatus``: follow one job (or every job), as an async iterator of changes.

        ::

            async for change in c.subscribe_status(job_id, delivery="patch"):
                print(change.rev, change.event, change.status["state"])

        Each :class:`~stagerunner.jobs.StatusChange` carries the job's document already up to
        date: the client keeps one per job, applies a patch only when its ``baseRev`` is the
        revision it holds, and calls ``getStatus`` otherwise. The request is sent on the first
        iteration (or ``await sub.start()``, or ``async with``); leaving ``async with`` or
        :meth:`~stagerunner.jobs.StatusSubscription.close` sends ``unsubscribeStatus``. With
        ``until_finished`` (and a ``job_id``) the iteration ends once the job is done, failed,
        cancelled or interrupted.
        """
        return StatusSubscription(self, job_id, delivery, until_finished=until_finished, timeout=timeout)

    async def unsubscribe_status(self, subscription_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """``unsubscribeStatus``: stop a subscription by id (prefer the subscription's ``close()``)."""
        params = {"subscriptionId": subscription_id}
        return cast(dict[str, Any], await self.request("unsubscribeStatus", params, timeout=timeout))

    async def shutdown(self, *, timeout: float | None = None) -> None:
        """``shutdown``: the server answers once in-flight requests are done; later requests fail -32600."""
        await self.request("shutdown", None, timeout=timeout)

    async def exit(self) -> None:
        """Send the ``exit`` notification (the server stops reading and exits)."""
        await self.notify("exit")

    # ------------------------------------------------------------------ closing

    def _kill_group(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass

    async def _wait_exit(self, seconds: float) -> bool:
        assert self._proc is not None
        try:
            await asyncio.wait_for(self._proc.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Stop the server politely, then less so; idempotent.

        Ladder: ``shutdown`` request (2 s), ``exit`` notification, close stdin, wait 2 s,
        SIGTERM the process group, wait 2 s, SIGKILL. The process is always reaped and
        every pending call fails with :class:`ServerExited`.
        """
        if self._closed or self._closing:
            if self._lost_event is not None:
                await self._lost_event.wait()
            return
        self._closing = True
        proc = self._proc
        try:
            if proc is None:
                return
            if proc.returncode is None and not self._connection_lost:
                try:
                    await self.request("shutdown", None, timeout=_SHUTDOWN_TIMEOUT)
                except (StageRunnerError, TimeoutError):
                    pass
                try:
                    await self.notify("exit")
                except StageRunnerError:
                    pass
            if proc.stdin is not None and not proc.stdin.is_closing():
                try:
                    proc.stdin.close()
                except (BrokenPipeError, ConnectionResetError, RuntimeError):  # pragma: no cover
                    pass
            if not await self._wait_exit(_EXIT_WAIT):
                self._kill_group(signal.SIGTERM)
                if not await self._wait_exit(_TERM_WAIT):
                    self._kill_group(signal.SIGKILL)
                    await proc.wait()
            if self._reader_task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._reader_task), _EXIT_WAIT + _TERM_WAIT + 2.0)
                except TimeoutError:  # pragma: no cover - stdout held open by a grandchild
                    self._reader_task.cancel()
                    await asyncio.gather(self._reader_task, return_exceptions=True)
            if self._stderr_task is not None and not self._stderr_task.done():
                self._stderr_task.cancel()
                await asyncio.gather(self._stderr_task, return_exceptions=True)
            if proc.stdin is not None:
                try:
                    await proc.stdin.wait_closed()
                except (BrokenPipeError, ConnectionResetError, RuntimeError):
                    pass
            for task in list(self._background):
                task.cancel()
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
        finally:
            self._closed = True
            self._closing = False
