"""python-lsp-jsonrpc (`pylsp_jsonrpc`) against `stagerunner serve`, written as its users write it.

The process's pipes are wrapped in `JsonRpcStreamReader` / `JsonRpcStreamWriter`; an
`Endpoint(dispatcher, writer.write)` sends requests (`endpoint.request(method)` leaves params out
when there are none, and returns a `concurrent.futures.Future`) and notifications
(`endpoint.notify`); `future.cancel()` is the library's own `$/cancelRequest`; what the server
sends goes to a `MethodDispatcher` subclass (`m_execute_stage`, `m_status_changed`), and the
reader thread runs `reader.listen(consume)`, where `consume` hands each message to the endpoint,
as python-lsp-server's does.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from pylsp_jsonrpc.dispatchers import MethodDispatcher
from pylsp_jsonrpc.endpoint import Endpoint
from pylsp_jsonrpc.exceptions import JsonRpcException
from pylsp_jsonrpc.streams import JsonRpcStreamReader, JsonRpcStreamWriter

from clientlib_support import (
    ANSWER_TIMEOUT,
    CANCEL_TIMEOUT,
    EXIT_TIMEOUT,
    GRADED_PARAMS,
    PIPELINE_PARAMS,
    PIPELINE_TIMEOUT,
    QUALITY_ANSWER,
    RUN_STAGE_PARAMS,
    SERVE_ARGS,
    TEMPLATES,
    check_draft,
    check_execute_stage_params,
    check_graded_result,
    check_research_stream,
    client_notifications,
    job_done,
    process_ended,
    request_methods,
    run_sleepy_params,
    sleeper_pid_file,
    validate_workspace_result,
    wait_until,
)

log = logging.getLogger(__name__)


class StageRunnerDispatcher(MethodDispatcher):
    """What the server sends the client: statusChanged notifications and executeStage requests."""

    def __init__(self, stage_answer: dict[str, Any] | None = None) -> None:
        self.stage_answer = QUALITY_ANSWER if stage_answer is None else stage_answer
        self.status: list[dict[str, Any]] = []
        self.stage_requests: list[dict[str, Any]] = []
        self.job_finished = threading.Event()

    def m_status_changed(self, **params: Any) -> None:
        self.status.append(params)
        if job_done(params):
            self.job_finished.set()

    def m_execute_stage(self, handler: str, stage: str, context: dict[str, Any], **rest: Any) -> dict[str, Any]:
        self.stage_requests.append({"handler": handler, "stage": stage, "context": context, **rest})
        return self.stage_answer


class Connection:
    """The server process with an Endpoint over its pipes, and every message read from it."""

    def __init__(self, bin_path: str, cwd: Path, dispatcher: StageRunnerDispatcher) -> None:
        self.stderr = open(cwd / "stagerunner.stderr", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [bin_path, *SERVE_ARGS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, cwd=cwd
        )
        self.dispatcher = dispatcher
        self.reader = JsonRpcStreamReader(self.process.stdout)
        self.writer = JsonRpcStreamWriter(self.process.stdin)
        self.endpoint = Endpoint(dispatcher, self.writer.write, id_generator=self._new_id)
        self.sent_ids: list[str] = []
        self.received: list[dict[str, Any]] = []
        self.consume_errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.reader.listen, args=(self.consume,), daemon=True)
        self.thread.start()

    def consume(self, message: dict[str, Any]) -> None:
        self.received.append(message)
        try:
            self.endpoint.consume(message)
        except concurrent.futures.InvalidStateError as error:
            # pylsp_jsonrpc 1.1 cancels a request's future itself and then sets the server's answer
            # (-32800) on it when it comes, which raises here; uncaught, it would end the reader
            # thread. The answer is in self.received all the same.
            self.consume_errors.append(error)

    def _new_id(self) -> str:
        msg_id = str(uuid.uuid4())  # the library's default ids, kept so that the tests know them
        self.sent_ids.append(msg_id)
        return msg_id

    def request(self, method: str, params: Any = None) -> tuple[str, concurrent.futures.Future[Any]]:
        """endpoint.request, and the id it gave the request."""
        future = self.endpoint.request(method, params)
        return self.sent_ids[-1], future

    def call(self, method: str, params: Any = None) -> Any:
        return self.endpoint.request(method, params).result(timeout=ANSWER_TIMEOUT)

    def responses(self) -> list[dict[str, Any]]:
        return [m for m in self.received if "method" not in m]

    def initialize(self, workspace: Path, handlers: list[str] | None = None) -> dict[str, Any]:
        result = self.call(
            "initialize",
            {
                "processId": os.getpid(),
                "clientInfo": {"name": "pylsp_jsonrpc Endpoint", "version": version("python-lsp-jsonrpc")},
                "protocolVersion": "1.0",
                "workspaceRoot": str(workspace),
                "capabilities": {"stageHandlers": handlers} if handlers else {},
            },
        )
        self.endpoint.notify("initialized")
        return result

    def shutdown_and_exit(self) -> int:
        assert self.call("shutdown") is None
        self.endpoint.notify("exit")
        status = self.process.wait(timeout=EXIT_TIMEOUT)
        self.thread.join(timeout=EXIT_TIMEOUT)
        assert not self.thread.is_alive(), "the reader did not see the end of the server's output"
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the server finishes what runs, then exits
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.thread.join(timeout=EXIT_TIMEOUT)
        self.endpoint.shutdown()
        self.stderr.close()


@contextmanager
def connect(bin_path: str, cwd: Path, dispatcher: StageRunnerDispatcher | None = None) -> Iterator[Connection]:
    connection = Connection(bin_path, cwd, dispatcher or StageRunnerDispatcher())
    try:
        yield connection
    finally:
        connection.close()


def test_initialize_reports_capabilities(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    with connect(bin_path, tmp_path) as server:
        result = server.initialize(daydream)
        assert result["protocolVersion"] == "1.0"
        assert result["serverInfo"]["name"] == "stagerunner"
        assert result["workspace"] == {"root": str(daydream)}
        capabilities = result["capabilities"]
        assert sorted(capabilities["methods"]) == request_methods()
        assert sorted(capabilities["notifications"]) == client_notifications()
        assert (capabilities["framing"], capabilities["batches"], capabilities["cancellation"]) == ("lsp", True, True)
        stagerunner = capabilities["experimental"]["stagerunner"]
        assert sorted(stagerunner["methods"]) == request_methods()
        assert sorted(stagerunner["notifications"]) == client_notifications()
        assert stagerunner["framing"] == "lsp"
        assert server.call("ping") == {}
        assert server.shutdown_and_exit() == 0
        assert len(server.responses()) == 3  # initialize, ping, shutdown: nothing for initialized and exit


#: How a pylsp_jsonrpc user leaves params out (the natural way: no params member), and the others.
NO_PARAMS = {"omitted": None, "object": {}, "array": []}


@pytest.mark.parametrize("spelling", list(NO_PARAMS))
def test_parameterless_methods(spelling: str, bin_path: str, daydream: Path, tmp_path: Path) -> None:
    no_params = NO_PARAMS[spelling]
    with connect(bin_path, tmp_path) as server:
        server.initialize(daydream)
        assert server.call("ping", no_params) == {}
        assert server.call("listTemplates", no_params) == {"templates": TEMPLATES}
        assert server.call("validateWorkspace", no_params) == validate_workspace_result(daydream)
        assert server.call("listJobs", no_params) == {"jobs": []}
        assert server.call("shutdown", no_params) is None
        server.endpoint.notify("exit", no_params)
        assert server.process.wait(timeout=EXIT_TIMEOUT) == 0
        server.thread.join(timeout=EXIT_TIMEOUT)
        # initialize, four methods and shutdown: one answer each, nothing for the notifications
        assert len(server.responses()) == 6


def test_run_stage(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    with connect(bin_path, tmp_path) as server:
        server.initialize(daydream)
        first = server.call("runStage", RUN_STAGE_PARAMS)
        check_draft(first, daydream, reused=False)
        again = server.call("runStage", RUN_STAGE_PARAMS)
        check_draft(again, daydream, reused=True)
        assert again["metadata"] == first["metadata"]
        assert server.shutdown_and_exit() == 0


def test_subscribe_status_and_run_pipeline(bin_path: str, research: Path, tmp_path: Path) -> None:
    dispatcher = StageRunnerDispatcher()
    with connect(bin_path, tmp_path, dispatcher) as server:
        server.initialize(research)
        baseline = server.call("subscribeStatus")
        job_id = server.call("runPipeline", PIPELINE_PARAMS)["jobId"]
        assert dispatcher.job_finished.wait(PIPELINE_TIMEOUT), "the job did not finish"
        document = check_research_stream(dispatcher.status, baseline, job_id)
        status = server.call("getStatus", {"jobId": job_id})
        assert status == {"status": document, "taskStages": {"summary": None, "review": None}}
        artifact = server.call("getArtifact", {"jobId": job_id, "path": "tasks/review/review.md"})
        review = (research / "jobs" / job_id / "tasks" / "review" / "review.md").read_bytes()
        assert (artifact["text"].encode("utf-8"), artifact["size"]) == (review, len(review))
        assert server.shutdown_and_exit() == 0


def test_cancel_request_on_long_run_task(bin_path: str, research: Path, tmp_path: Path) -> None:
    with connect(bin_path, tmp_path) as server:
        server.initialize(research)
        request_id, task = server.request("runTask", run_sleepy_params())
        pid_file = sleeper_pid_file(research)
        wait_until(pid_file.exists, ANSWER_TIMEOUT, "the sleeping command to start")
        pid = int(pid_file.read_text())
        assert not task.done()

        started = time.monotonic()
        assert task.cancel()  # pylsp_jsonrpc sends $/cancelRequest with the request's id
        assert task.cancelled()

        def answered() -> bool:
            return any(m.get("id") == request_id for m in server.responses())

        wait_until(answered, CANCEL_TIMEOUT, "the answer to the cancelled runTask")
        assert time.monotonic() - started < CANCEL_TIMEOUT
        answer = next(m for m in server.responses() if m.get("id") == request_id)
        assert "result" not in answer
        assert answer["error"]["code"] == -32800
        wait_until(lambda: process_ended(pid), CANCEL_TIMEOUT, "the sleeping command to end")
        assert server.call("ping", {"echo": "still here"}) == {"echo": "still here"}
        assert [m.get("id") for m in server.responses()].count(request_id) == 1
        assert server.shutdown_and_exit() == 0


def test_execute_stage_answered_by_client(bin_path: str, research: Path, tmp_path: Path) -> None:
    dispatcher = StageRunnerDispatcher()
    with connect(bin_path, tmp_path, dispatcher) as server:
        server.initialize(research, handlers=["quality"])
        result = server.call("runTask", GRADED_PARAMS)
        check_graded_result(result)
        assert len(dispatcher.stage_requests) == 1
        check_execute_stage_params(dispatcher.stage_requests[0])
        requests = [m for m in server.received if m.get("method") == "executeStage"]
        assert len(requests) == 1 and type(requests[0]["id"]) is int, requests[0]["id"]
        assert server.shutdown_and_exit() == 0


#: executeStage answers in shapes Python handlers produce, and what the server makes of them.
ANSWER_SHAPES = {
    "flags-null": ({"output": ["a", "list"], "flags": None}, ["a", "list"]),
    "flags-array": ({"output": "text", "flags": []}, "text"),
    "output-missing": ({"flags": None}, None),
}


@pytest.mark.parametrize("shape", list(ANSWER_SHAPES))
def test_execute_stage_answer_shapes(shape: str, bin_path: str, research: Path, tmp_path: Path) -> None:
    answer, output = ANSWER_SHAPES[shape]
    with connect(bin_path, tmp_path, StageRunnerDispatcher(answer)) as server:
        server.initialize(research, handlers=["quality"])
        check_graded_result(server.call("runTask", GRADED_PARAMS), output=output, flags={})
        assert server.shutdown_and_exit() == 0


def test_shutdown_then_exit(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    with connect(bin_path, tmp_path) as server:
        server.initialize(daydream)
        stage_id, stage = server.request("runStage", RUN_STAGE_PARAMS)
        shutdown_id, shutdown = server.request("shutdown")
        late = server.endpoint.request("ping")
        assert shutdown.result(timeout=ANSWER_TIMEOUT) is None
        check_draft(stage.result(timeout=ANSWER_TIMEOUT), daydream, reused=False)
        with pytest.raises(JsonRpcException) as refused:
            late.result(timeout=ANSWER_TIMEOUT)
        assert refused.value.code == -32600
        order = [m["id"] for m in server.responses()]
        assert order.index(stage_id) < order.index(shutdown_id)

        server.endpoint.notify("exit")
        assert server.process.wait(timeout=EXIT_TIMEOUT) == 0
        server.thread.join(timeout=EXIT_TIMEOUT)
        assert not server.thread.is_alive()
        assert len(server.responses()) == 4  # initialize, runStage, shutdown, the late ping
        assert server.consume_errors == []
