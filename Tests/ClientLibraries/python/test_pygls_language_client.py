"""pygls 2's typed `LanguageClient` (lsprotocol types) against `stagerunner serve`.

An LSP client cannot send StageRunner's own `initialize` members: the workspace goes as
`root_uri`, `workspace_folders` or `initialization_options={"workspaceRoot": ...}`, the stage
handlers as `initialization_options={"stageHandlers": [...]}`, and the server's capabilities come
back under `capabilities.experimental["stagerunner"]`. The lifecycle is the typed one:
`initialize_async(types.InitializeParams(...))`, `initialized`, `shutdown_async(None)`,
`exit(None)`, `cancel_request(types.CancelParams(id=...))`. StageRunner's own methods go through
`client.protocol.send_request_async(method, params)`.
"""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcMethodNotFound, JsonRpcRequestCancelled
from pygls.lsp.client import LanguageClient

from clientlib_support import (
    ANSWER_TIMEOUT,
    CANCEL_TIMEOUT,
    EXIT_TIMEOUT,
    GRADED_PARAMS,
    PIPELINE_PARAMS,
    PIPELINE_TIMEOUT,
    QUALITY_ANSWER,
    RUN_STAGE_PARAMS,
    TEMPLATES,
    async_wait_until,
    check_draft,
    check_execute_stage_params,
    check_graded_result,
    check_research_stream,
    client_notifications,
    job_done,
    plain,
    process_ended,
    request_methods,
    run_sleepy_params,
    sleeper_pid_file,
    validate_workspace_result,
)
from pygls_support import RecordingLanguageServerProtocol, run, serving


class StageRunnerLanguageClient(LanguageClient):
    """A LanguageClient that keeps the server's exit status (pygls' `server_exit` hook)."""

    def __init__(self) -> None:
        super().__init__("stagerunner-tests", version("pygls"), protocol_cls=RecordingLanguageServerProtocol)
        self.returncode: int | None = None

    async def server_exit(self, server: asyncio.subprocess.Process) -> None:
        self.returncode = server.returncode


async def call(client: LanguageClient, method: str, params: Any = None, **kwargs: Any) -> Any:
    return await asyncio.wait_for(client.protocol.send_request_async(method, params, **kwargs), ANSWER_TIMEOUT)


def initialize_params(
    workspace: Path, how: str = "root_uri", handlers: list[str] | None = None
) -> types.InitializeParams:
    """InitializeParams naming `workspace` the way `how` says, as an LSP client can."""
    options: dict[str, Any] = {"stageHandlers": handlers} if handlers else {}
    root_uri = folders = None
    if how == "root_uri":
        root_uri = workspace.as_uri()
    elif how == "workspace_folders":
        folders = [types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)]
    elif how == "initialization_options":
        options["workspaceRoot"] = str(workspace)
    else:
        raise ValueError(how)
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        process_id=os.getpid(),
        client_info=types.ClientInfo(name="pygls LanguageClient", version=version("pygls")),
        root_uri=root_uri,
        workspace_folders=folders,
        initialization_options=options or None,
    )


async def initialize(
    client: LanguageClient, workspace: Path, how: str = "root_uri", handlers: list[str] | None = None
) -> types.InitializeResult:
    result = await asyncio.wait_for(
        client.initialize_async(initialize_params(workspace, how, handlers)), ANSWER_TIMEOUT
    )
    client.initialized(types.InitializedParams())
    return result


async def shutdown_and_exit(client: StageRunnerLanguageClient) -> None:
    assert await asyncio.wait_for(client.shutdown_async(None), ANSWER_TIMEOUT) is None
    client.exit(None)
    await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
    assert client.returncode == 0


@pytest.mark.parametrize("how", ["root_uri", "workspace_folders", "initialization_options"])
def test_initialize_typed(how: str, bin_path: str, spaced_daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerLanguageClient(), bin_path, tmp_path) as client:
            result = await initialize(client, spaced_daydream, how)
            assert isinstance(result, types.InitializeResult)
            assert result.server_info is not None and result.server_info.name == "stagerunner"
            assert result.server_info.version
            stagerunner = result.capabilities.experimental["stagerunner"]
            assert sorted(stagerunner["methods"]) == request_methods()
            assert sorted(stagerunner["notifications"]) == client_notifications()
            assert (stagerunner["framing"], stagerunner["batches"], stagerunner["cancellation"]) == ("lsp", True, True)
            # the workspace is the folder the URI names, percent-decoded
            workspace = plain(await call(client, "validateWorkspace"))
            assert workspace == validate_workspace_result(spaced_daydream)
            await shutdown_and_exit(client)

    run(scenario())


def test_parameterless_methods(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerLanguageClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream)
            assert plain(await call(client, "ping")) == {}
            assert plain(await call(client, "listTemplates")) == {"templates": TEMPLATES}
            assert plain(await call(client, "validateWorkspace")) == validate_workspace_result(daydream)
            assert plain(await call(client, "listJobs")) == {"jobs": []}
            assert await asyncio.wait_for(client.shutdown_async(None), ANSWER_TIMEOUT) is None
            client.exit(None)
            await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
            assert client.returncode == 0
            assert client.protocol.unsolicited_responses() == []

    run(scenario())


def test_run_stage(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerLanguageClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream)
            first = plain(await call(client, "runStage", RUN_STAGE_PARAMS))
            check_draft(first, daydream, reused=False)
            again = plain(await call(client, "runStage", RUN_STAGE_PARAMS))
            check_draft(again, daydream, reused=True)
            assert again["metadata"] == first["metadata"]
            await shutdown_and_exit(client)

    run(scenario())


def test_subscribe_status_and_run_pipeline(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = StageRunnerLanguageClient()
        notifications: list[dict[str, Any]] = []
        finished = asyncio.Event()

        @client.feature("statusChanged")
        def status_changed(params: Any) -> None:
            notifications.append(plain(params))
            if job_done(notifications[-1]):
                finished.set()

        async with serving(client, bin_path, tmp_path):
            await initialize(client, research)
            baseline = plain(await call(client, "subscribeStatus"))
            job_id = (await call(client, "runPipeline", PIPELINE_PARAMS)).jobId
            await asyncio.wait_for(finished.wait(), PIPELINE_TIMEOUT)
            document = check_research_stream(notifications, baseline, job_id)
            status = plain(await call(client, "getStatus", {"jobId": job_id}))
            assert status == {"status": document, "taskStages": {"summary": None, "review": None}}
            await shutdown_and_exit(client)

    run(scenario())


def test_cancel_request_on_long_run_task(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerLanguageClient(), bin_path, tmp_path) as client:
            await initialize(client, research)
            request_id = 7  # an integer id this time; the server answers it as sent
            task = client.protocol.send_request_async("runTask", run_sleepy_params(), msg_id=request_id)
            pid_file = sleeper_pid_file(research)
            await async_wait_until(pid_file.exists, ANSWER_TIMEOUT, "the sleeping command to start")
            pid = int(pid_file.read_text())
            assert not task.done()

            started = time.monotonic()
            client.cancel_request(types.CancelParams(id=request_id))
            with pytest.raises(JsonRpcRequestCancelled) as cancelled:
                await asyncio.wait_for(task, CANCEL_TIMEOUT)
            assert cancelled.value.code == -32800
            assert time.monotonic() - started < CANCEL_TIMEOUT
            await async_wait_until(lambda: process_ended(pid), CANCEL_TIMEOUT, "the sleeping command to end")
            assert [m.id for m in client.protocol.responses()].count(request_id) == 1
            await shutdown_and_exit(client)

    run(scenario())


def test_execute_stage_answered_by_client(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = StageRunnerLanguageClient()
        asked: list[tuple[Any, dict[str, Any]]] = []

        @client.feature("executeStage")
        async def execute_stage(params: Any) -> dict[str, Any]:
            asked.append((client.protocol.msg_id, plain(params)))
            await asyncio.sleep(0)  # an async handler, answered later
            return QUALITY_ANSWER

        async with serving(client, bin_path, tmp_path):
            await initialize(client, research, handlers=["quality"])
            result = plain(await call(client, "runTask", GRADED_PARAMS))
            check_graded_result(result)
            assert len(asked) == 1
            request_id, params = asked[0]
            assert type(request_id) is int, f"executeStage id {request_id!r} is not an integer"
            check_execute_stage_params(params)
            assert [m.id for m in client.protocol.server_requests("executeStage")] == [request_id]
            await shutdown_and_exit(client)

    run(scenario())


def test_shutdown_then_exit(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerLanguageClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream, "initialization_options")
            stage = client.protocol.send_request_async("runStage", RUN_STAGE_PARAMS)
            assert await asyncio.wait_for(client.shutdown_async(None), ANSWER_TIMEOUT) is None
            check_draft(plain(await asyncio.wait_for(stage, ANSWER_TIMEOUT)), daydream, reused=False)
            client.exit(None)
            await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
            assert client.returncode == 0
            responses = client.protocol.responses()
            assert len(responses) == 3  # initialize, runStage, shutdown: in that order
            assert isinstance(responses[2], types.ShutdownResponse)
            assert client.protocol.unsolicited_responses() == []

    run(scenario())


def test_lsp_notifications_ignored_and_lsp_requests_refused(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    """What an editor's LSP client sends on its own: notifications ignored, requests -32601."""

    async def scenario() -> None:
        async with serving(StageRunnerLanguageClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream)
            uri = (daydream / "stagerunner.yaml").as_uri()
            client.set_trace(types.SetTraceParams(value=types.TraceValue.Verbose))
            client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"stagerunner": {}}))
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text="values: {}\n")
                )
            )
            client.text_document_did_close(
                types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
            )
            assert plain(await call(client, "ping", {"echo": "after the notifications"})) == {
                "echo": "after the notifications"
            }
            with pytest.raises(JsonRpcMethodNotFound) as refused:
                await asyncio.wait_for(
                    client.text_document_hover_async(
                        types.HoverParams(
                            text_document=types.TextDocumentIdentifier(uri=uri),
                            position=types.Position(line=0, character=0),
                        )
                    ),
                    ANSWER_TIMEOUT,
                )
            assert refused.value.code == -32601
            assert refused.value.data["method"] == "textDocument/hover"
            assert refused.value.data["available"] == request_methods()
            await shutdown_and_exit(client)
            assert client.protocol.unsolicited_responses() == []

    run(scenario())
