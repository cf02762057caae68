"""Failures through the LiteLLM proxy: -32012 and its data (kind, provider, httpStatus, retryAfter,
retries, url, hint, field), and the call log's record of them.

Every provider retries twice in all (RETRIES: attempts 2, a Retry-After over 5 s ends the
retries), so a retryable failure reports `retries: 1` and one entry in the call log's
`retryErrors`, and one that is never retried reports 0.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from litellm_support import (
    COOLDOWN,
    CUSTOM_AUTH_KEY,
    MASTER_KEY,
    MOCK_TEXT,
    RETRIES,
    SHORT_COOLDOWN,
    WRONG_KEY,
    LiteLLMProxy,
    Reply,
    StageRunnerServer,
    make_workspace,
)

ALL_PROVIDERS = ["litellm-openai", "litellm-anthropic", "litellm-anthropic-v1"]


def endpoint(base: str, provider: str) -> str:
    return f"{base}/v1/chat/completions" if "openai" in provider else f"{base}/v1/messages"


def model_error(reply: Reply, provider: str, base: str, kind: str) -> dict[str, Any]:
    """The -32012 data, checked for what every provider failure carries."""
    error = reply.error
    assert error["code"] == -32012, error
    data = error["data"]
    assert data["kind"] == kind, f"{kind} expected: {json.dumps(error)[:1500]}"
    assert data["provider"] == provider
    assert data["url"] == endpoint(base, provider)
    assert isinstance(data["hint"], str) and data["hint"]
    assert isinstance(data["retries"], int)
    return data


def logged_failure(server: StageRunnerServer, gen_id: str, kind: str, retries: int) -> dict[str, Any]:
    """The call log's one row for a failed call, and that nothing was committed."""
    rows = server.calls(gen_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["status"] == "error"
    assert row["errorKind"] == kind
    assert row["promptTokens"] is None and row["completionTokens"] is None, "a failed call used no tokens we know of"
    assert row["costUsd"] is None
    assert row["retries"] == retries
    reasons = json.loads(row["retryErrors"]) if row["retryErrors"] else []
    assert len(reasons) == retries, reasons
    assert not (server.workspace / "data" / "gens" / "draft" / gen_id).exists()
    return row


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_rate_limit(server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str) -> None:
    """`mock_response: litellm.RateLimitError`: 429 without Retry-After, retried, still 429."""
    gen_id = f"rl-{provider}"
    data = model_error(server.run_stage(f"{provider}:ratelimited", gen_id), provider, proxy.base, "rate_limit")
    assert data["httpStatus"] == 429
    assert "retryAfter" not in data, "the mock's 429 carries no Retry-After"
    assert data["retries"] == 1
    assert "field" not in data
    row = logged_failure(server, gen_id, "rate_limit", 1)
    assert json.loads(row["retryErrors"])[0].startswith("rate_limit: ")
    observe(
        f"rate limit {provider}",
        kind=data["kind"],
        httpStatus=data["httpStatus"],
        retries=data["retries"],
        url=data["url"],
    )


def prime_cooldown(proxy: LiteLLMProxy, model: str) -> dict[str, str | None]:
    """Fail the deployment once, so that it cools down; what the proxy says then, itself.

    LiteLLM sets the cooldown in a failure callback, so the next request is repeated until the
    proxy answers it with Retry-After (at once, in practice)."""
    first = proxy.openai_direct(model, "prime", stream=False)
    assert first["status"] == 429, first
    deadline = time.monotonic() + 5
    while True:
        again = proxy.openai_direct(model, "prime", stream=False)
        assert again["status"] == 429, again
        if again["headers"].get("retry-after") or time.monotonic() > deadline:
            return {"first": first["headers"].get("retry-after"), "cooling": again["headers"].get("retry-after")}
        time.sleep(0.05)


def test_rate_limit_with_retry_after(server: StageRunnerServer, proxy: LiteLLMProxy, observe) -> None:
    """A cooling deployment: the proxy's 429 says Retry-After: COOLDOWN, over maxRetryAfter, so
    StageRunner reports it and does not retry. The provider's next call waits it out."""
    said = prime_cooldown(proxy, "cooling-openai")
    assert said == {"first": None, "cooling": str(COOLDOWN)}

    started = time.monotonic()
    reply = server.run_stage("litellm-openai:cooling-openai", "ra-openai")
    data = model_error(reply, "litellm-openai", proxy.base, "rate_limit")
    failed_after = time.monotonic() - started
    assert data["httpStatus"] == 429
    assert data["retryAfter"] == COOLDOWN
    assert data["retries"] == 0, "a Retry-After over maxRetryAfter ends the retries"
    logged_failure(server, "ra-openai", "rate_limit", 0)

    # Another model on the same provider. A 429's Retry-After holds back its own model only
    # (protocol 8.12), as LiteLLM cools down one model group only: this call goes at once, not
    # after the COOLDOWN seconds a provider-wide pause would cost (a generous bound below it).
    started = time.monotonic()
    answered = server.run_stage("litellm-openai:mock-gpt", "after-ra", timeout=COOLDOWN + 60)
    waited = time.monotonic() - started
    assert answered.result["status"] == "success"
    assert waited < COOLDOWN * 0.8, f"another model waited {waited:.1f} s for this model's Retry-After"
    observe(
        "rate limit with Retry-After (chat completions)",
        proxy_retry_after=said,
        retryAfter=data["retryAfter"],
        retries=data["retries"],
        failed_after_s=round(failed_after, 2),
        next_call_other_model_waited_s=round(waited, 2),
        maxRetryAfter=RETRIES["maxRetryAfter"],
    )


def test_rate_limit_retry_after_on_messages_route(server: StageRunnerServer, proxy: LiteLLMProxy, observe) -> None:
    """The same cooldown seen through /v1/messages: LiteLLM answers 429 there without Retry-After
    (its message still says "Try again in N seconds"), so StageRunner has none to report."""
    prime_cooldown(proxy, "cooling-anthropic")
    reply = server.run_stage("litellm-anthropic:cooling-anthropic", "ra-anthropic")
    data = model_error(reply, "litellm-anthropic", proxy.base, "rate_limit")
    assert data["httpStatus"] == 429
    assert "retryAfter" not in data
    assert data["retries"] == 1
    assert f"Try again in {COOLDOWN} seconds" in reply.error["message"]
    logged_failure(server, "ra-anthropic", "rate_limit", 1)
    observe("rate limit with cooldown (/v1/messages)", retryAfter=data.get("retryAfter"), retries=data["retries"])


def test_retry_after_within_max_is_waited_for_and_retried(
    server: StageRunnerServer, proxy: LiteLLMProxy, observe
) -> None:
    """Retry-After: SHORT_COOLDOWN is under maxRetryAfter: StageRunner waits and tries again (the
    deployment, cooled down by then, fails with the mock's plain 429). Streamed, so the retry is
    announced as a restart."""
    said = prime_cooldown(proxy, "cooling-short")
    started = time.monotonic()
    reply = server.run_stage("litellm-openai:cooling-short", "ra-short", stream=True)
    elapsed = time.monotonic() - started
    data = model_error(reply, "litellm-openai", proxy.base, "rate_limit")
    assert data["httpStatus"] == 429
    assert data["retries"] == 1
    assert {"kind": "report", "restart": True} in reply.progress("ra-short")
    row = logged_failure(server, "ra-short", "rate_limit", 1)
    first_attempt = json.loads(row["retryErrors"])[0]
    # On a slow machine the first attempt may come after the cooldown: then the retry meets it.
    assert f"(retry after {SHORT_COOLDOWN} s)" in first_attempt + reply.error["message"]
    assert elapsed < 60
    observe(
        "Retry-After under maxRetryAfter",
        proxy_retry_after=said,
        first_attempt_had_retry_after=f"(retry after {SHORT_COOLDOWN} s)" in first_attempt,
        final_retryAfter=data.get("retryAfter"),
        retries=data["retries"],
        elapsed_s=round(elapsed, 2),
    )


@pytest.mark.parametrize("provider", ["litellm-openai-badkey", "litellm-anthropic-badkey"])
def test_wrong_key_with_master_key_and_no_database(
    server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str
) -> None:
    """A proxy with only a master key compares the key, then looks for a database of virtual
    keys and, having none, answers HTTP 400 "No connected db." — not 401. StageRunner reports
    what it was sent: invalid_request, not retried."""
    gen_id = f"badkey-{provider}"
    reply = server.run_stage(f"{provider}:mock-gpt", gen_id)
    data = model_error(reply, provider, proxy.base, "invalid_request")
    assert data["httpStatus"] == 400
    assert data["retries"] == 0
    assert "No connected db" in reply.error["message"]
    logged_failure(server, gen_id, "invalid_request", 0)
    observe(
        f"wrong key, master_key only {provider}", kind=data["kind"], httpStatus=data["httpStatus"], hint=data["hint"]
    )


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_wrong_key_refused_with_401(
    start_server: Callable[..., StageRunnerServer], auth_proxy: LiteLLMProxy, tmp_path: Path, observe, kind: str
) -> None:
    """The second proxy's custom auth refuses every key but one with 401: authentication, not
    retried, the message naming the variable the key came from (and never the key)."""
    provider = f"auth-{kind}"
    base = f"{auth_proxy.base}/v1" if kind == "openai" else auth_proxy.base
    providers = {provider: {"kind": kind, "baseURL": base, "apiKeyEnv": "LITELLM_WRONG_KEY", "retries": RETRIES}}
    server = start_server(make_workspace(tmp_path / "auth", providers))
    reply = server.run_stage(f"{provider}:mock-gpt", "auth-wrong")
    data = model_error(reply, provider, auth_proxy.base, "authentication")
    assert data["httpStatus"] == 401
    assert data["retries"] == 0
    assert "LITELLM_WRONG_KEY" in reply.error["message"]
    assert WRONG_KEY not in json.dumps(reply.message)
    logged_failure(server, "auth-wrong", "authentication", 0)
    observe(f"wrong key, 401 ({kind})", kind=data["kind"], httpStatus=data["httpStatus"], hint=data["hint"])


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_right_key_passes_custom_auth(
    start_server: Callable[..., StageRunnerServer], auth_proxy: LiteLLMProxy, tmp_path: Path, kind: str
) -> None:
    """The control for the 401 test: the key the custom auth accepts gets the answer."""
    base = f"{auth_proxy.base}/v1" if kind == "openai" else auth_proxy.base
    providers = {"auth-right": {"kind": kind, "baseURL": base, "apiKeyEnv": "LITELLM_CUSTOM_KEY"}}
    server = start_server(make_workspace(tmp_path / "auth", providers), {"LITELLM_CUSTOM_KEY": CUSTOM_AUTH_KEY})
    reply = server.run_stage("auth-right:mock-gpt", "auth-right")
    assert reply.result["status"] == "success"
    assert reply.result["raw"] == MOCK_TEXT


def test_no_key_at_all(server: StageRunnerServer, proxy: LiteLLMProxy, observe) -> None:
    """No Authorization header: LiteLLM's auth error handler imports prisma, which litellm[proxy]
    does not install, and the proxy answers a plain-text 500. StageRunner sees a server fault."""
    reply = server.run_stage("litellm-openai-nokey:mock-gpt", "nokey")
    data = model_error(reply, "litellm-openai-nokey", proxy.base, "server")
    assert data["httpStatus"] == 500
    assert data["retries"] == 1
    logged_failure(server, "nokey", "server", 1)
    observe("no key", kind=data["kind"], httpStatus=data["httpStatus"], message=reply.error["message"][:120])


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_unknown_model(server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str) -> None:
    """LiteLLM answers a model name it does not serve with HTTP 400 invalid_request_error (OpenAI
    itself says 404), so StageRunner reports invalid_request, without `field: params.model`."""
    gen_id = f"unknown-{provider}"
    reply = server.run_stage(f"{provider}:no-such-model", gen_id)
    data = model_error(reply, provider, proxy.base, "invalid_request")
    assert data["httpStatus"] == 400
    assert data["retries"] == 0
    assert "Invalid model name" in reply.error["message"]
    logged_failure(server, gen_id, "invalid_request", 0)
    observe(
        f"unknown model {provider}",
        kind=data["kind"],
        httpStatus=data["httpStatus"],
        field=data.get("field"),
        hint=data["hint"],
    )


def test_wrong_base_url_path(server: StageRunnerServer, proxy: LiteLLMProxy, observe) -> None:
    """A baseURL with a path the proxy has no route for: 404, not_found, pointing at the model."""
    reply = server.run_stage("litellm-openai-wrongpath:mock-gpt", "wrongpath")
    error = reply.error
    data = error["data"]
    assert error["code"] == -32012
    assert data["kind"] == "not_found"
    assert data["httpStatus"] == 404
    assert data["url"] == f"{proxy.base}/nope/chat/completions"
    assert data["field"] == "params.model"
    assert data["retries"] == 0
    logged_failure(server, "wrongpath", "not_found", 0)
    observe("wrong baseURL path", kind=data["kind"], httpStatus=data["httpStatus"], field=data["field"])


@pytest.mark.parametrize("provider", ["litellm-openai", "litellm-anthropic"])
def test_context_window_exceeded(server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str) -> None:
    """`mock_response: litellm.ContextWindowExceededError`: 400 whose message says context window."""
    gen_id = f"context-{provider}"
    data = model_error(server.run_stage(f"{provider}:context-window", gen_id), provider, proxy.base, "context_length")
    assert data["httpStatus"] == 400
    assert data["retries"] == 0
    logged_failure(server, gen_id, "context_length", 0)
    observe(f"context window {provider}", kind=data["kind"], httpStatus=data["httpStatus"])


@pytest.mark.parametrize("provider", ["litellm-openai", "litellm-anthropic"])
def test_internal_server_error(server: StageRunnerServer, proxy: LiteLLMProxy, observe, provider: str) -> None:
    """`mock_response: litellm.InternalServerError`: 500, retried once, then reported."""
    gen_id = f"server-{provider}"
    data = model_error(server.run_stage(f"{provider}:server-error", gen_id), provider, proxy.base, "server")
    assert data["httpStatus"] == 500
    assert data["retries"] == 1
    logged_failure(server, gen_id, "server", 1)
    observe(
        f"internal server error {provider}", kind=data["kind"], httpStatus=data["httpStatus"], retries=data["retries"]
    )


def test_keys_stay_out_of_results_files_and_log(server: StageRunnerServer) -> None:
    """The keys (the proxy's master key, the wrong one) appear in no result, file or log line."""
    replies = [
        server.run_stage("litellm-openai:mock-gpt", "leak-ok", stream=True),
        server.run_stage("litellm-anthropic:stream-claude", "leak-sse", stream=True),
        server.run_stage("litellm-openai-badkey:mock-gpt", "leak-bad"),
        server.run_stage("litellm-anthropic-badkey:mock-claude", "leak-bad-a"),
    ]
    wire = json.dumps([r.message for r in replies] + [r.notifications for r in replies])
    server.close()
    written = [server.log_path.read_bytes()] + [
        path.read_bytes() for path in server.workspace.rglob("*") if path.is_file()
    ]
    for key in (MASTER_KEY, WRONG_KEY):
        assert key not in wire
        assert not any(key.encode() in blob for blob in written), f"{key[:12]}… was written somewhere"
