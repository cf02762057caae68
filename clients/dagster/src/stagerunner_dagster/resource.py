"""The Dagster resource: a workspace, and this process's long-lived server on it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field
from stagerunner import StageResult

from .server import StageOutcome, StageRequest, WorkspaceServer, shared_server

__all__ = ["StageRunnerResource"]


class StageRunnerResource(ConfigurableResource):  # type: ignore[type-arg]  # its value is itself
    """A StageRunner workspace, reached through one ``stagerunner serve`` per worker process.

    The workspace travels in the resource's config, which Dagster stores with each run: a worker
    (a celery worker, a step process on another host) uses the run's workspace, never one from
    its own environment. The server is started by the first step that needs it and reused by
    every later step of the same process, whatever their run; it is closed when the process exits.
    """

    workspace: str = Field(
        description="Absolute path of the StageRunner workspace (on several hosts: one path, on a shared file system)."
    )
    executable: str | None = Field(
        default=None,
        description="The stagerunner binary; default $STAGERUNNER_BIN, then stagerunner on PATH.",
    )
    max_in_flight: int = Field(
        default=256,
        description="runStage requests a shard step keeps in flight on its server (at least 1).",
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Refuse a workspace path that another process could read differently, or that is missing."""
        self.check_workspace()

    def check_workspace(self) -> None:
        """Raise :class:`ValueError` unless ``workspace`` is an absolute path to a directory."""
        if not os.path.isabs(self.workspace):
            raise ValueError(
                f"StageRunnerResource.workspace must be an absolute path, not '{self.workspace}': "
                "steps run in other directories, and on other hosts"
            )
        if not os.path.isdir(self.workspace):
            raise ValueError(f"StageRunnerResource.workspace '{self.workspace}' is not a directory on this host")

    def server(self) -> WorkspaceServer:
        """This process's server on the workspace (started now if it is not yet)."""
        self.check_workspace()
        return shared_server(self.workspace, self.executable)

    def run_stage(self, request: StageRequest, *, run_id: str) -> StageResult:
        """``runStage`` of one membership generation; raises the server's error."""
        return self.server().run_stage(request, run_id=run_id)

    def run_stages(self, requests: Sequence[StageRequest], *, run_id: str) -> Iterator[StageOutcome]:
        """Every request in flight at once (up to ``max_in_flight``), outcomes as they complete."""
        if self.max_in_flight < 1:
            raise ValueError(f"StageRunnerResource.max_in_flight must be at least 1, not {self.max_in_flight}")
        return self.server().run_stages(requests, run_id=run_id, max_in_flight=self.max_in_flight)
