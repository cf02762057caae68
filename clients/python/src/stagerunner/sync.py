"""A blocking facade over :class:`~stagerunner.client.Client`, for scripts.

``SyncClient`` runs an asyncio event loop in a daemon thread and forwards each call
to it. Handlers and callbacks registered with :meth:`SyncClient.on_request` and
:meth:`SyncClient.on_notification` run on that background thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .client import _MISSING, Client, F, ProgressCallback, StageHandler
from .framing import Framing
from .jobs import SyncStatusSubscription
from .types import (
    CacheMode,
    CancelJobResult,
    GetArtifactResult,
    GetStatusResult,
    InitializeResult,
    JobState,
    ListJobsResult,
    ResumeJobResult,
    RetryTaskResult,
    RunPipelineResult,
    ListTemplatesResult,
    Mode,
    ModelConfig,
    PingResult,
    ProgressToken,
    RenderPromptResult,
    Stage,
    StageResult,
    TaskResult,
    ValidateWorkspaceResult,
)

__all__ = ["SyncClient"]

T = TypeVar("T")


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
    ) -> SyncClient:
        """Spawn and start the server (see :meth:`Client.spawn`); returns a started client.

        Stage handlers must be passed here (``stage_handlers={"name": handler}``): the
        client is started, and their names declared, before this returns.
        """
        sync = cls(
            Client.spawn(
                executable,
                workspace,
                env,
                args,
                framing,
                cwd=cwd,
                initialize=initialize,
                stderr_lines=stderr_lines,
                stage_handlers=stage_handlers,
            )
        )
        return sync.start()

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

    def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Blocking :meth:`Client.request`."""
        return self._call(self._client.request(method, params, timeout=timeout))

    def notify(self, method: str, params: Any = None) -> None:
        """Blocking :meth:`Client.notify`."""
        self._call(self._client.notify(method, params))

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

    def ping(self, echo: Any = _MISSING, *, timeout: float | None = None) -> PingResult:
        """Blocking :meth:`Client.ping`."""
        return self._call(self._client.ping(echo, timeout=timeout))

    def run_stage(
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
        """Blocking :meth:`Client.run_stage`.

        ``on_progress`` runs on the loop thread, before this returns; it must not call this
        client's blocking methods.
        """
        return self._call(
            self._client.run_stage(
                stage,
                gen_id=gen_id,
                template_id=template_id,
                values=values,
                mode=mode,
                model=model,
                parser_name=parser_name,
                pass_through_from=pass_through_from,
                max_tokens=max_tokens,
                prompt_text=prompt_text,
                force=force,
                stub_fallback=stub_fallback,
                fail_on_truncation=fail_on_truncation,
                run_id=run_id,
                max_text_length=max_text_length,
                budget_scope=budget_scope,
                cache=cache,
                progress_token=progress_token,
                on_progress=on_progress,
                timeout=timeout,
            )
        )

    def render_prompt(
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
        """Blocking :meth:`Client.render_prompt`."""
        return self._call(
            self._client.render_prompt(
                stage,
                gen_id=gen_id,
                template_id=template_id,
                values=values,
                mode=mode,
                model=model,
                parser_name=parser_name,
                pass_through_from=pass_through_from,
                prompt_text=prompt_text,
                run_id=run_id,
                timeout=timeout,
            )
        )

    def list_templates(
        self,
        stage: Stage | None = None,
        include_inactive: bool | None = None,
        *,
        timeout: float | None = None,
    ) -> ListTemplatesResult:
        """Blocking :meth:`Client.list_templates`."""
        return self._call(self._client.list_templates(stage, include_inactive, timeout=timeout))

    def validate_workspace(self, *, timeout: float | None = None) -> ValidateWorkspaceResult:
        """Blocking :meth:`Client.validate_workspace`."""
        return self._call(self._client.validate_workspace(timeout=timeout))

    def run_task(
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
        """Blocking :meth:`Client.run_task`."""
        return self._call(
            self._client.run_task(
                task,
                input,
                model_config=model_config,
                max_refinements=max_refinements,
                task_timeout=task_timeout,
                run_id=run_id,
                timeout=timeout,
            )
        )

    def run_pipeline(
        self,
        pipeline: str | Mapping[str, Any],
        input: Any = None,
        *,
        name: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> RunPipelineResult:
        """Blocking :meth:`Client.run_pipeline`."""
        return self._call(self._client.run_pipeline(pipeline, input, name=name, wait=wait, timeout=timeout))

    def get_status(self, job_id: str, *, timeout: float | None = None) -> GetStatusResult:
        """Blocking :meth:`Client.get_status`."""
        return self._call(self._client.get_status(job_id, timeout=timeout))

    def list_jobs(self, state: JobState | None = None, *, timeout: float | None = None) -> ListJobsResult:
        """Blocking :meth:`Client.list_jobs`."""
        return self._call(self._client.list_jobs(state, timeout=timeout))

    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> CancelJobResult:
        """Blocking :meth:`Client.cancel_job`."""
        return self._call(self._client.cancel_job(job_id, timeout=timeout))

    def retry_task(self, job_id: str, task: str, *, timeout: float | None = None) -> RetryTaskResult:
        """Blocking :meth:`Client.retry_task`."""
        return self._call(self._client.retry_task(job_id, task, timeout=timeout))

    def resume_job(self, job_id: str, *, timeout: float | None = None) -> ResumeJobResult:
        """Blocking :meth:`Client.resume_job`."""
        return self._call(self._client.resume_job(job_id, timeout=timeout))

    def get_artifact(self, job_id: str, path: str, *, timeout: float | None = None) -> GetArtifactResult:
        """Blocking :meth:`Client.get_artifact`."""
        return self._call(self._client.get_artifact(job_id, path, timeout=timeout))

    def subscribe_status(
        self,
        job_id: str | None = None,
        delivery: str = "snapshot",
        *,
        until_finished: bool = False,
        timeout: float | None = None,
    ) -> SyncStatusSubscription:
        """:meth:`Client.subscribe_status` as a blocking iterator: ``for change in c.subscribe_status(job_id)``.

        Use it as a context manager (or call ``close()``) to send ``unsubscribeStatus``.
        """
        subscription = self._client.subscribe_status(
            job_id, delivery, until_finished=until_finished, timeout=timeout
        )
        return SyncStatusSubscription(self, subscription)

    def unsubscribe_status(self, subscription_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`Client.unsubscribe_status`."""
        return self._call(self._client.unsubscribe_status(subscription_id, timeout=timeout))

    def shutdown(self, *, timeout: float | None = None) -> None:
        """Blocking :meth:`Client.shutdown`."""
        self._call(self._client.shutdown(timeout=timeout))
