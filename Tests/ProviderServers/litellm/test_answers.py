"""Answers through the LiteLLM proxy: text, usage, cost, streaming, truncation, the call log.

What StageRunner reports is compared with what the proxy itself answers to the same request
(`openai_direct`, `anthropic_direct`), not with numbers written here: LiteLLM's mocks report
canned usage (10 prompt and 20 completion tokens on the chat-completions route, 2095 and 503 from
its canned Messages answer) when not streaming, and counts the tokens when it streams.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from litellm_support import (
    MOCK_TEXT,
    PRICES,
    TRUNCATED_TEXT,
    TRUNCATED_USAGE,
    LiteLLMProxy,
    StageRunnerServer,
)

PROMPT = "Name one way an idle mind finds new ideas."

# (provider, model): the OpenAI route; the Anthropic route with its own canned answer (whole,
# even when asked to stream); the Anthropic route streaming real server-sent events (the proxy
# translating its own chat-completions answer), each Anthropic one at both base URLs
# (http://127.0.0.1:PORT and http://127.0.0.1:PORT/v1).
ROUTES = [
    ("litellm-openai", "mock-gpt"),
    ("litellm-anthropic", "mock-claude"),
    ("litellm-anthropic-v1", "mock-claude"),
    ("litellm-anthropic", "stream-claude"),
    ("litellm-anthropic-v1", "stream-claude"),
]


def direct(proxy: LiteLLMProxy, provider: str, model: str, *, stream: bool, prompt: str = PROMPT) -> dict[str, Any]:
    if provider.startswith("litellm-openai"):
        answer = proxy.openai_direct(model, prompt, stream=stream)
    else:
        answer = proxy.anthropic_direct(model, prompt, stream=stream)
    assert answer["status"] == 200, f"the proxy itself fails {model}: {answer}"
    return answer


def expected_cost(provider: str, model: str, usage: dict[str, int]) -> float | None:
    price = PRICES.get(f"{provider}:{model}")
    if price is None:
        return None
    return (usage["prompt_tokens"] * price["input"] + usage["completion_tokens"] * price["output"]) / 1_000_000


def streamed_text(progress: list[dict[str, Any]]) -> str:
    """The reports' text after the last restart: what the protocol says equals `raw`."""
    text = ""
    for value in progress:
        if value.get("kind") == "report":
            text = "" if value.get("restart") else text + value.get("text", "")
    return text


def check_progress(progress: list[dict[str, Any]], raw: str, end: str) -> int:
    """begin first, end last with `end`, the text between equal to `raw`; returns the report count."""
    assert progress, "a request with a progressToken got no $/progress"
    assert progress[0] == {"kind": "begin", "title": "runStage"}
    assert progress[-1].get("kind") == "end" and progress[-1].get("message") == end, progress[-1]
    assert all(value.get("kind") == "report" for value in progress[1:-1]), progress
    assert streamed_text(progress) == raw
    return len(progress) - 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("provider", "model"), ROUTES, ids=[f"{p}:{m}" for p, m in ROUTES])
def test_answer_text_usage_cost_and_call_log(
    server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str, model: str, stream: bool
) -> None:
    expected = direct(proxy, provider, model, stream=stream)
    gen_id = f"ok-{provider}-{model}-{'s' if stream else 'p'}"
    reply = server.run_stage(f"{provider}:{model}", gen_id, stream=stream, prompt=PROMPT)
    result = reply.result
    metadata = result["metadata"]

    assert expected["text"] == MOCK_TEXT
    assert result["raw"] == MOCK_TEXT
    assert result["parsed"] == MOCK_TEXT
    assert result["status"] == "success" and metadata["status"] == "success"
    assert metadata["provider"] == provider
    assert metadata["model"] == f"{provider}:{model}"
    assert metadata["finish_reason"] == "stop"
    assert metadata["truncated"] is False
    assert "retries" not in metadata

    usage = metadata["usage"]
    observe(
        f"usage {provider}:{model} {'streamed' if stream else 'plain'}",
        proxy_says=[expected["prompt_tokens"], expected["completion_tokens"]],
        stagerunner_says=[usage["prompt_tokens"], usage["completion_tokens"]],
        proxy_streamed_sse=expected.get("sse", stream),
        cost_usd=metadata.get("cost_usd"),
    )
    assert expected["prompt_tokens"] and expected["completion_tokens"], f"the proxy reports no usage: {expected}"
    assert usage["prompt_tokens"] == expected["prompt_tokens"]
    assert usage["completion_tokens"] == expected["completion_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    cost = expected_cost(provider, model, usage)
    assert cost is not None, "every model of ROUTES has a price in stagerunner.yaml"
    assert metadata["cost_usd"] == pytest.approx(cost, rel=1e-9, abs=1e-12)

    if stream:
        reports = check_progress(reply.progress(gen_id), MOCK_TEXT, "success")
        observe(f"progress {provider}:{model}", text_reports=reports)
    else:
        assert reply.progress(gen_id) == []

    rows = server.calls(gen_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["provider"] == provider
    assert row["status"] == "success"
    assert row["errorKind"] is None and row["error"] is None
    assert (row["promptTokens"], row["completionTokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert row["costUsd"] == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert row["retries"] == 0 and row["retryErrors"] is None

    files = server.workspace / "data" / "gens" / "draft" / gen_id
    assert (files / "raw.txt").read_text(encoding="utf-8") == MOCK_TEXT
    assert json.loads((files / "metadata.json").read_text(encoding="utf-8")) == metadata


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_unpriced_model_costs_null_not_zero(server: StageRunnerServer, observe, stream: bool) -> None:
    gen_id = f"unpriced-{stream}"
    metadata = server.run_stage("litellm-openai:unpriced-gpt", gen_id, stream=stream).result["metadata"]
    assert metadata["status"] == "success"
    assert metadata["usage"]["completion_tokens"] > 0
    assert metadata["cost_usd"] is None
    row = server.calls(gen_id)[0]
    assert row["costUsd"] is None
    observe("unpriced model", streamed=stream, cost_usd=metadata["cost_usd"], row_costUsd=row["costUsd"])


TRUNCATION_PROVIDERS = ["litellm-openai", "litellm-anthropic", "litellm-anthropic-v1"]


@pytest.mark.parametrize("provider", TRUNCATION_PROVIDERS)
def test_finish_reason_length_is_truncation(server: StageRunnerServer, observe, provider: str) -> None:
    """A whole chat completion as the mock, finish reason length (max_tokens on /v1/messages)."""
    reply = server.run_stage(f"{provider}:truncated", f"trunc-{provider}")
    metadata = reply.result["metadata"]
    assert reply.result["raw"] == TRUNCATED_TEXT
    assert metadata["finish_reason"] == "length"
    assert metadata["truncated"] is True
    assert metadata["status"] == "truncated" and reply.result["status"] == "truncated"
    assert metadata["usage"]["prompt_tokens"] == TRUNCATED_USAGE["prompt_tokens"]
    assert metadata["usage"]["completion_tokens"] == TRUNCATED_USAGE["completion_tokens"]
    assert metadata["cost_usd"] == pytest.approx(expected_cost(provider, "truncated", metadata["usage"]))
    row = server.calls(f"trunc-{provider}")[0]
    assert (row["status"], row["errorKind"]) == ("truncated", None)
    assert row["promptTokens"] == TRUNCATED_USAGE["prompt_tokens"]
    assert row["completionTokens"] == TRUNCATED_USAGE["completion_tokens"]
    observe(
        f"truncation {provider}",
        finish_reason=metadata["finish_reason"],
        status=metadata["status"],
        usage=[row["promptTokens"], row["completionTokens"]],
    )

    # failOnTruncation: -32014, and the generation is committed all the same.
    failed = server.run_stage(f"{provider}:truncated", f"trunc-fail-{provider}", failOnTruncation=True)
    assert failed.error["code"] == -32014
    assert failed.error["data"]["kind"] == "truncated"
    assert failed.error["data"]["field"] == "params.maxTokens"
    committed = server.workspace / "data" / "gens" / "draft" / f"trunc-fail-{provider}" / "metadata.json"
    assert json.loads(committed.read_text(encoding="utf-8"))["truncated"] is True


@pytest.mark.parametrize("provider", ["litellm-openai", "litellm-anthropic"])
def test_streamed_dict_mock_fails_in_litellm(server: StageRunnerServer, observe, provider: str) -> None:
    """LiteLLM cannot stream a dict mock ('ModelResponse' object has no attribute '__aiter__'):
    the chat-completions route answers 500, /v1/messages a 200 event stream whose second event is
    an error. Either way StageRunner says `server`, retries once, and commits nothing."""
    gen_id = f"trunc-stream-{provider}"
    reply = server.run_stage(f"{provider}:truncated", gen_id, stream=True)
    error = reply.error
    data = error["data"]
    assert error["code"] == -32012
    assert data["kind"] == "server"
    assert data["provider"] == provider
    assert data["retries"] == 1
    assert "__aiter__" in error["message"]
    if provider == "litellm-openai":
        assert data["httpStatus"] == 500
    else:
        assert "httpStatus" not in data, "the stream's head said 200; the error came as an event"
    progress = reply.progress(gen_id)
    assert progress[0]["kind"] == "begin" and progress[-1]["kind"] == "end"
    assert {"kind": "report", "restart": True} in progress
    assert not (server.workspace / "data" / "gens" / "draft" / gen_id).exists()
    rows = server.calls(gen_id)
    assert [(r["status"], r["errorKind"], r["retries"]) for r in rows] == [("error", "server", 1)]
    assert rows[0]["promptTokens"] is None and rows[0]["completionTokens"] is None
    observe(
        f"streamed dict mock {provider}",
        kind=data["kind"],
        httpStatus=data.get("httpStatus"),
        retries=data["retries"],
        row=[rows[0]["status"], rows[0]["errorKind"]],
    )


@pytest.mark.parametrize(
    ("provider", "model"), [("litellm-openai", "mock-gpt"), ("litellm-anthropic", "stream-claude")]
)
def test_streamed_answer_using_all_of_max_tokens_is_truncation(
    server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str, model: str
) -> None:
    """LiteLLM's streamed mocks always finish with `stop` and ignore max_tokens, but report the
    completion tokens they counted: with maxTokens set to that count the answer used all of it."""
    counted = direct(proxy, provider, model, stream=True)["completion_tokens"]
    gen_id = f"budget-{provider}"
    reply = server.run_stage(f"{provider}:{model}", gen_id, stream=True, maxTokens=counted)
    metadata = reply.result["metadata"]
    assert metadata["usage"]["completion_tokens"] == counted
    assert metadata["finish_reason"] == "stop"
    assert metadata["truncated"] is True
    assert metadata["status"] == "truncated"
    check_progress(reply.progress(gen_id), MOCK_TEXT, "truncated")
    assert server.calls(gen_id)[0]["status"] == "truncated"
    observe(f"all of maxTokens {provider}:{model}", maxTokens=counted, status=metadata["status"])


def test_cache_replays_a_streamed_answer_with_its_usage(server: StageRunnerServer, observe) -> None:
    first = server.run_stage("litellm-openai:mock-gpt", "cache-1", stream=True, cache="use").result["metadata"]
    second_reply = server.run_stage("litellm-openai:mock-gpt", "cache-2", stream=True, cache="use")
    second = second_reply.result["metadata"]
    assert "cached" not in first and second["cached"] is True
    assert second["usage"] == first["usage"]
    assert first["cost_usd"] > 0 and second["cost_usd"] == 0
    check_progress(second_reply.progress("cache-2"), MOCK_TEXT, "success")
    rows = server.calls("cache-1") + server.calls("cache-2")
    assert [row["costUsd"] for row in rows] == [pytest.approx(first["cost_usd"]), 0]
    assert rows[0]["completionTokens"] == rows[1]["completionTokens"] == first["usage"]["completion_tokens"]
    observe("cache hit", usage=second["usage"], cost_usd=second["cost_usd"])
