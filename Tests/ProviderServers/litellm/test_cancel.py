"""Cancelling a runStage whose model call the LiteLLM proxy is still holding (a mock that answers
after a minute): the client gets -32800 at once, nothing is committed, the call log says why."""

from __future__ import annotations

import time

import pytest

from litellm_support import SLOW_SECONDS, StageRunnerServer


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_cancel_reaches_the_call_held_by_the_proxy(server: StageRunnerServer, observe, stream: bool) -> None:
    gen_id = f"cancel-{'stream' if stream else 'plain'}"
    params = {
        "stage": "draft",
        "templateId": "systematic-analytical",
        "genId": gen_id,
        "model": "litellm-openai:slow-gpt",
        "cache": "off",
        "promptText": "Take your time.",
    }
    if stream:
        params["progressToken"] = gen_id
    ident = server.start("runStage", params)
    # Long enough for the call to reach the proxy, which then holds it for a minute.
    time.sleep(2)
    sent = time.monotonic()
    server.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": ident}})
    reply = server.wait(ident, "runStage", timeout=SLOW_SECONDS / 2)
    latency = time.monotonic() - sent
    assert reply.message["error"]["code"] == -32800, reply.message
    assert latency < SLOW_SECONDS / 4, f"the cancel took {latency:.1f} s"
    assert not (server.workspace / "data" / "gens" / "draft" / gen_id).exists()
    calls = server.calls(gen_id)
    assert [(c["status"], c["promptTokens"], c["costUsd"]) for c in calls] == [("cancelled", None, None)]
    # The connection goes on.
    assert server.request("ping", {"echo": 1}).message["result"] == {"echo": 1}
    observe(f"cancel through LiteLLM ({'streamed' if stream else 'plain'})", answered_after_s=round(latency, 3))
