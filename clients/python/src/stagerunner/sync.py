"""A blocking facade over :class:`~stagerunner.client.Client`, for scripts.

``SyncClient`` runs an asyncio event loop in a daemon thread and forwards each call
to it. Handlers and callbacks registered with :meth:`SyncClient.on_request` and
:meth:`SyncClient.on_notification` run on that background thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, cast

from ._common import F, P, R, T
from .client import Client
from .jobs import StatusSubscription, SyncStatusSubscription
from .types import InitializeResult

__all__ = ["SyncClient"]


def _blocking(
    method: Callable[Concatenate[Client, P], Coroutine[Any, Any, R]], doc: str | None = None
) -> Callable[Concatenate[SyncClient, P], R]:
    """The blocking form of a coroutine method of :class:`Client`, for :class:`SyncClient`'s class body.

    It takes ``method``'s parameters as they are (type checkers and :func:`inspect.signature`
    see them), calls the method of that name on the wrapped client, and waits for its result.
    """
    name = method.__name__

    def call(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound = cast(Callable[P, Coroutine[Any, Any, R]], getattr(self._client, name))
        return self._call(bound(*args, **kwargs))

    return _adopt(call, method, doc if doc is not None else f"Blocking :meth:`Client.{name}`.")


def _subscribing(
    method: Callable[Concatenate[Client, P], StatusSubscription], doc: str
) -> Callable[Concatenate[SyncClient, P], SyncStatusSubscription]:
    """The blocking form of a method of :class:`Client` that returns a :class:`StatusSubscription`."""
    name = method.__name__

    def call(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> SyncStatusSubscription:
        subscription = cast(Callable[P, StatusSubscription], getattr(self._client, name))(*args, **kwargs)
        return SyncStatusSubscription(self, subscription)

    return _adopt(call, method, doc, returns="SyncStatusSubscription")


def _spawning(spawn: Callable[P, Client], doc: str) -> classmethod[SyncClient, P, SyncClient]:
    """``SyncClient.spawn``: :meth:`Client.spawn`'s parameters; the client it makes, wrapped and started."""

    def build(cls: type[SyncClient], /, *args: P.args, **kwargs: P.kwargs) -> SyncClient:
        return cls(spawn(*args, **kwargs)).start()

    return classmethod(_adopt(build, spawn, doc, returns="SyncClient"))


def _adopt(wrapper: F, source: Callable[..., Any], doc: str, returns: str | None = None) -> F:
    """``wrapper`` named as ``source`` is in SyncClient, with its signature and annotations, and ``doc``.

    ``returns`` replaces the result's annotation (a name of this module). The annotations are
    evaluated here, so that :func:`typing.get_type_hints` needs none of the client's names.
    """
    function: Any = wrapper
    original = getattr(source, "__func__", source)  # a classmethod's function: its signature has cls
    signature = inspect.signature(original)
    annotations = typing.get_type_hints(original)
    if returns is not None:
        signature = signature.replace(return_annotation=returns)
        annotations["return"] = returns
    function.__name__ = original.__name__
    function.__qualname__ = f"SyncClient.{original.__name__}"
    function.__doc__ = doc
    function.__signature__ = signature
    function.__annotations__ = annotations
    return wrapper


class SyncClient:
    """The same methods as :class:`Client`, blocking; use it as a context manager.

    ::

        with SyncClient.spawn(workspace="examples/daydream") as c:
            print(c.ping(echo="hi"))
    """

    def __init__(self, client: Client) -> None:
        """Wrap a not-yet-started :class:`Client`; prefer :meth:`spawn`."""
        self._client = client
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="stagerunner-sync-loop", daemon=True)
        self._thread.start()
        self._started = False
        self._stopped = False

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    spawn = _spawning(
        Client.spawn,
        """Spawn and start the server (see :meth:`Client.spawn`); returns a started client.

        Stage handlers must be passed here (``stage_handlers={"name": handler}``): the
        client is started, and their names declared, before this returns.
        """,
    )

    def start(self) -> SyncClient:
        """Start the wrapped client (spawn and handshake); stops the loop thread on failure."""
        if self._started:
            return self
        try:
            self._call(self._client.start())
        except BaseException:
            self._stop_loop()
            raise
        self._started = True
        return self

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._stopped:
            coro.close()
            raise RuntimeError("the SyncClient is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "SyncClient methods cannot be called from its own loop thread (a handler or callback); "
                "use the async methods of SyncClient.client there"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> SyncClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Run the shutdown ladder (see :meth:`Client.close`) and stop the loop thread."""
        if self._stopped:
            return
        try:
            self._call(self._client.close())
        finally:
            self._stop_loop()

    # ------------------------------------------------------------------ properties

    @property
    def client(self) -> Client:
        """The underlying asynchronous client (its coroutines belong to the loop thread)."""
        return self._client

    @property
    def pid(self) -> int | None:
        """The server's process id."""
        return self._client.pid

    @property
    def returncode(self) -> int | None:
        """The server's exit status once it has ended."""
        return self._client.returncode

    @property
    def initialize_result(self) -> InitializeResult | None:
        """The ``initialize`` result."""
        return self._client.initialize_result

    def stderr_tail(self, lines: int | None = None) -> str:
        """The last lines of the server's stderr."""
        return self._client.stderr_tail(lines)

    # ------------------------------------------------------------------ generic

    request = _blocking(Client.request)
    notify = _blocking(Client.notify)

    def on_request(self, method: str) -> Callable[[F], F]:
        """See :meth:`Client.on_request`; the handler runs on the loop thread."""
        return self._client.on_request(method)

    def on_notification(self, method: str | None = None) -> Callable[[F], F]:
        """See :meth:`Client.on_notification`; the callback runs on the loop thread."""
        return self._client.on_notification(method)

    def stage_handler(self, name: str) -> Callable[[F], F]:
        """See :meth:`Client.stage_handler`; register before :meth:`start` (``SyncClient(Client.spawn(...))``).

        A plain function runs in a worker thread, and may call this client's methods; a
        coroutine function runs on the loop thread.
        """
        return self._client.stage_handler(name)

    # ------------------------------------------------------------------ protocol methods

    # Each is the coroutine method of Client, blocking: the same parameters (for type checkers
    # and inspect.signature too), written once, in Client; a new method is one line here.

    ping = _blocking(Client.ping)
    run_stage = _blocking(
        Client.run_stage,
        """Blocking :meth:`Client.run_stage`.

        ``on_progress`` runs on the loop thread, before this returns; it must not call this
        client's blocking methods.
        """,
    )
    render_prompt = _blocking(Client.render_prompt)
    list_templates = _blocking(Client.list_templates)
    validate_workspace = _blocking(Client.validate_workspace)
    run_task = _blocking(Client.run_task)
    dry_run_task = _blocking(Client.dry_run_task)
    run_pipeline = _blocking(Client.run_pipeline)
    dry_run_pipeline = _blocking(Client.dry_run_pipeline)
    get_status = _blocking(Client.get_status)
    list_jobs = _blocking(Client.list_jobs)
    cancel_job = _blocking(Client.cancel_job)
    retry_task = _blocking(Client.retry_task)
    resume_job = _blocking(Client.resume_job)
    get_artifact = _blocking(Client.get_artifact)
    subscribe_status = _subscribing(
        Client.subscribe_status,
        """:meth:`Client.subscribe_status` as a blocking iterator: ``for change in c.subscribe_status(job_id)``.

        Use it as a context manager (or call ``close()``) to send ``unsubscribeStatus``.
        """,
    )
    unsubscribe_status = _blocking(Client.unsubscribe_status)
    shutdown = _blocking(Client.shutdown)
