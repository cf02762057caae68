"""pygls 2's untyped `JsonRPCClient` against `stagerunner serve`, written as pygls users write it.

`await client.start_io(cmd, *args)` starts the server; requests go through
`client.protocol.send_request_async(method, params)` (no params: the argument left out, which pygls
sends as `"params": null`); notifications through `client.protocol.notify`; a cancel is pygls'
`$/cancelRequest` notification; `@client.feature(...)` handles what the server sends; results arrive
as namedtuples, read by attribute.
"""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from pygls.client import JsonRPCClient
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcRequestCancelled

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
from pygls_support import RecordingJsonRPCProtocol, run, serving


class StageRunnerClient(JsonRPCClient):
    """A JsonRPCClient that keeps the server's exit status (pygls' `server_exit` hook)."""

    def __init__(self) -> None:
        super().__init__(protocol_cls=RecordingJsonRPCProtocol)
        self.returncode: int | None = None

    async def server_exit(self, server: asyncio.subprocess.Process) -> None:
        self.returncode = server.returncode


async def call(client: JsonRPCClient, method: str, params: Any = None, **kwargs: Any) -> Any:
    return await asyncio.wait_for(client.protocol.send_request_async(method, params, **kwargs), ANSWER_TIMEOUT)


async def initialize(client: JsonRPCClient, workspace: Path, handlers: list[str] | None = None) -> Any:
    params: dict[str, Any] = {
        "processId": os.getpid(),
        "clientInfo": {"name": "pygls JsonRPCClient", "version": version("pygls")},
        "protocolVersion": "1.0",
        "workspaceRoot": str(workspace),
        "capabilities": {"stageHandlers": handlers} if handlers else {},
    }
    result = await call(client, "initialize", params)
    client.protocol.notify("initialized")
    return result


async def shutdown_and_exit(client: StageRunnerClient) -> None:
    assert await call(client, "shutdown") is None
    client.protocol.notify("exit")
    await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)  # returns once the server process has ended
    assert client.returncode == 0


def test_initialize_reports_capabilities(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerClient(), bin_path, tmp_path) as client:
            result = await initialize(client, daydream)
            assert result.protocolVersion == "1.0"
            assert result.serverInfo.name == "stagerunner"
            assert result.workspace.root == str(daydream)
            capabilities = result.capabilities
            assert sorted(capabilities.methods) == request_methods()
            assert sorted(capabilities.notifications) == client_notifications()
            assert (capabilities.framing, capabilities.batches, capabilities.cancellation) == ("lsp", True, True)
            stagerunner = capabilities.experimental.stagerunner
            assert sorted(stagerunner.methods) == request_methods()
            assert sorted(stagerunner.notifications) == client_notifications()
            assert stagerunner.framing == "lsp"
            # initialized is a notification: nothing comes back for it
            assert plain(await call(client, "ping")) == {}
            assert client.protocol.unsolicited_responses() == []

    run(scenario())


#: How a pygls user leaves params out (the natural way: pygls sends null), and the other spellings.
NO_PARAMS = {"omitted": None, "object": {}, "array": []}


@pytest.mark.parametrize("spelling", list(NO_PARAMS))
def test_parameterless_methods(spelling: str, bin_path: str, daydream: Path, tmp_path: Path) -> None:
    no_params = NO_PARAMS[spelling]

    async def scenario() -> None:
        async with serving(StageRunnerClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream)
            assert plain(await call(client, "ping", no_params)) == {}
            assert plain(await call(client, "listTemplates", no_params)) == {"templates": TEMPLATES}
            assert plain(await call(client, "validateWorkspace", no_params)) == validate_workspace_result(daydream)
            assert plain(await call(client, "listJobs", no_params)) == {"jobs": []}
            assert await call(client, "shutdown", no_params) is None
            client.protocol.notify("exit", no_params)
            await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
            assert client.returncode == 0
            assert client.protocol.unsolicited_responses() == []

    run(scenario())


def test_run_stage(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerClient(), bin_path, tmp_path) as client:
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
        client = StageRunnerClient()
        notifications: list[dict[str, Any]] = []
        finished = asyncio.Event()

        @client.feature("statusChanged")
        def status_changed(params: Any) -> None:
            notifications.append(plain(params))
            if job_done(notifications[-1]):
                finished.set()

        async with serving(client, bin_path, tmp_path):
            await initialize(client, research)
            baseline = plain(await call(client, "subscribeStatus"))  # every job: no params
            job_id = (await call(client, "runPipeline", PIPELINE_PARAMS)).jobId
            await asyncio.wait_for(finished.wait(), PIPELINE_TIMEOUT)
            document = check_research_stream(notifications, baseline, job_id)
            status = plain(await call(client, "getStatus", {"jobId": job_id}))
            assert status == {"status": document, "taskStages": {"summary": None, "review": None}}
            # listJobs reads the documents on disk, which may be a write or two behind: wait for it
            listed: list[Any] = []

            async def listed_done() -> bool:
                listed[:] = plain(await call(client, "listJobs"))["jobs"]
                return [(j["id"], j["state"], j["rev"]) for j in listed] == [(job_id, "done", document["rev"])]

            deadline = time.monotonic() + ANSWER_TIMEOUT
            while not await listed_done():
                assert time.monotonic() < deadline, f"listJobs still says {listed}"
                await asyncio.sleep(0.1)
            assert listed[0]["progress"] == document["progress"]
            await shutdown_and_exit(client)

    run(scenario())


def test_cancel_request_on_long_run_task(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerClient(), bin_path, tmp_path) as client:
            await initialize(client, research)
            request_id = "run-sleepy"
            task = client.protocol.send_request_async("runTask", run_sleepy_params(), msg_id=request_id)
            pid_file = sleeper_pid_file(research)
            await async_wait_until(pid_file.exists, ANSWER_TIMEOUT, "the sleeping command to start")
            pid = int(pid_file.read_text())
            assert not task.done()

            started = time.monotonic()
            client.protocol.notify("$/cancelRequest", {"id": request_id})
            with pytest.raises(JsonRpcRequestCancelled) as cancelled:
                await asyncio.wait_for(task, CANCEL_TIMEOUT)
            assert cancelled.value.code == -32800
            assert time.monotonic() - started < CANCEL_TIMEOUT
            # the stage's command was stopped too (SIGTERM, then SIGKILL 2 s later)
            await async_wait_until(lambda: process_ended(pid), CANCEL_TIMEOUT, "the sleeping command to end")
            assert plain(await call(client, "ping", {"echo": "still here"})) == {"echo": "still here"}
            assert [m.id for m in client.protocol.responses()].count(request_id) == 1
            await shutdown_and_exit(client)

    run(scenario())


def test_execute_stage_answered_by_client(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = StageRunnerClient()
        asked: list[tuple[Any, dict[str, Any]]] = []

        @client.feature("executeStage")
        def execute_stage(params: Any) -> dict[str, Any]:
            asked.append((client.protocol.msg_id, plain(params)))
            return QUALITY_ANSWER

        async with serving(client, bin_path, tmp_path):
            await initialize(client, research, handlers=["quality"])
            result = plain(await call(client, "runTask", GRADED_PARAMS))
            check_graded_result(result)
            assert len(asked) == 1
            request_id, params = asked[0]
            assert type(request_id) is int, f"executeStage id {request_id!r} is not an integer"
            check_execute_stage_params(params)
            await shutdown_and_exit(client)

    run(scenario())


#: executeStage answers in shapes Python handlers produce, and what the server makes of them.
ANSWER_SHAPES = {
    "flags-null": ({"output": {"grade": "B"}, "flags": None}, {"grade": "B"}),
    "flags-array": ({"output": {"grade": "C"}, "flags": []}, {"grade": "C"}),
    "output-missing": ({"flags": {}}, None),
}


@pytest.mark.parametrize("shape", list(ANSWER_SHAPES))
def test_execute_stage_answer_shapes(shape: str, bin_path: str, research: Path, tmp_path: Path) -> None:
    answer, output = ANSWER_SHAPES[shape]

    async def scenario() -> None:
        client = StageRunnerClient()

        @client.feature("executeStage")
        def execute_stage(params: Any) -> dict[str, Any]:
            return answer

        async with serving(client, bin_path, tmp_path):
            await initialize(client, research, handlers=["quality"])
            result = plain(await call(client, "runTask", GRADED_PARAMS))
            check_graded_result(result, output=output, flags={})
            await shutdown_and_exit(client)

    run(scenario())


def test_shutdown_then_exit(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(StageRunnerClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream)
            # a request in progress when shutdown arrives is answered first
            stage = client.protocol.send_request_async("runStage", RUN_STAGE_PARAMS, msg_id="stage")
            shutdown = client.protocol.send_request_async("shutdown", msg_id="shutdown")
            late = client.protocol.send_request_async("ping", msg_id="late")
            assert await asyncio.wait_for(shutdown, ANSWER_TIMEOUT) is None
            check_draft(plain(await asyncio.wait_for(stage, ANSWER_TIMEOUT)), daydream, reused=False)
            with pytest.raises(JsonRpcInvalidRequest) as refused:
                await asyncio.wait_for(late, ANSWER_TIMEOUT)
            assert refused.value.code == -32600
            order = [m.id for m in client.protocol.responses()]
            assert order.index("stage") < order.index("shutdown")

            client.protocol.notify("exit")
            await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
            assert client.returncode == 0
            assert client.protocol.unsolicited_responses() == []

    run(scenario())


def test_errors_reach_the_caller(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    """A JSON-RPC error is raised from the awaited future with the server's code and data."""

    async def scenario() -> None:
        async with serving(StageRunnerClient(), bin_path, tmp_path) as client:
            await initialize(client, daydream)
            with pytest.raises(JsonRpcException) as bad:
                await call(client, "runStage", {"stage": "poem", "genId": "d-creative"})
            assert bad.value.code == -32602
            assert plain(bad.value.data) == {
                "field": "params.stage",
                "problem": "must be one of draft, essay, evaluation, not 'poem'",
            }
            await shutdown_and_exit(client)

    run(scenario())
