"""The LiteLLM proxy and `stagerunner serve` as the tests drive them.

LiteLLM (`litellm --config`) is started on a free loopback port with a config written here, in
which every model answers with a mock (`mock_response` in its `litellm_params`): LiteLLM's own
canned answers, dict answers (a whole chat completion, used for finish reason `length`) and its
canned exceptions (`"litellm.RateLimitError"` and friends). Every deployment's `api_base` is a
closed loopback port, so nothing LiteLLM does on a path that ignores the mock can leave the
machine (it pre-opens connections to every api_base at start-up, and without
`use_chat_completions_url_for_anthropic_messages` it sends a /v1/messages request with a dict mock
upstream, to the Responses API); `LITELLM_LOCAL_MODEL_COST_MAP` keeps it from downloading its
price list.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLES = REPO / "examples"
SCHEMA_DIR = REPO / "protocol" / "schema"
SCHEMA_BASE = "https://stagerunner.dev/protocol/1.0/schema/"

MASTER_KEY = "sk-litellm-test-master-7d1c"
WRONG_KEY = "sk-litellm-test-wrong-0000"
# Accepted by the second proxy's custom auth; every other key gets its 401.
CUSTOM_AUTH_KEY = "sk-litellm-test-custom-5a2f"

MOCK_TEXT = "Idle minds replay stored notes in new pairs; a critic keeps the links worth having."
TRUNCATED_TEXT = "Idle minds replay stored notes in"
# The usage the `truncated` dict mock reports: nothing computes it, so StageRunner must pass it on.
TRUNCATED_USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}

# Seconds a `cooling-*` deployment cools down after one 429 (the proxy's Retry-After meanwhile):
# COOLDOWN is over the providers' maxRetryAfter (RETRIES below), SHORT_COOLDOWN under it.
COOLDOWN = 10
#: How long slow-gpt takes to answer: far longer than a cancel may take.
SLOW_SECONDS = 60
SHORT_COOLDOWN = 2

# A loopback port nothing listens on: the api_base of every mocked deployment.
DEAD_PORT = 9


_VALIDATORS: dict[str, Any] = {}


def schema_errors(name: str, instance: Any) -> list[str]:
    """What is wrong with `instance` against protocol/schema/<name>.json (empty when it is valid)."""
    if not _VALIDATORS:
        from jsonschema import Draft202012Validator
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        registry = Registry().with_resources(
            (SCHEMA_BASE + path.name, DRAFT202012.create_resource(json.loads(path.read_text(encoding="utf-8"))))
            for path in sorted(SCHEMA_DIR.glob("*.json"))
        )
        for path in SCHEMA_DIR.glob("*.json"):
            _VALIDATORS[path.stem] = Draft202012Validator({"$ref": SCHEMA_BASE + path.name}, registry=registry)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in _VALIDATORS[name].iter_errors(instance)
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: its own process group, and SIGKILL when the test process dies."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def proxy_config(port: int, custom_auth: str | None = None) -> dict[str, Any]:
    """The proxy's config: the models the tests ask for, by name."""
    dead_v1 = f"http://127.0.0.1:{DEAD_PORT}/v1"

    def mocked(name: str, model: str, mock: Any, **extra: Any) -> dict[str, Any]:
        params = {"model": model, "api_key": "sk-upstream-unused", "api_base": dead_v1, "mock_response": mock}
        params.update(extra.pop("litellm_params", {}))
        return {"model_name": name, "litellm_params": params, **extra}

    truncated = {
        "model": "truncated",
        "choices": [
            {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": TRUNCATED_TEXT}}
        ],
        "usage": TRUNCATED_USAGE,
    }
    # One 429 puts the deployment in cooldown (a single deployment is never cooled down unless
    # an allowed_fails_policy names the exception); while it cools, the proxy answers 429 with
    # Retry-After: <cooldown_time> itself, without calling the mock.
    def cooling(name: str, seconds: int) -> dict[str, Any]:
        return mocked(
            name,
            f"openai/{name}",
            "litellm.RateLimitError",
            litellm_params={"cooldown_time": seconds},
            model_info={"allowed_fails_policy": {"RateLimitErrorAllowedFails": 0}},
        )

    models = [
        # The OpenAI route answers the mock text; the Anthropic route (/v1/messages) answers it
        # from its own canned Messages response, whole even when asked to stream.
        mocked("mock-gpt", "openai/mock-gpt", MOCK_TEXT),
        # Answers after a long wait: a request to cancel while the proxy holds it.
        mocked("slow-gpt", "openai/slow-gpt", MOCK_TEXT, litellm_params={"mock_delay": SLOW_SECONDS}),
        mocked("unpriced-gpt", "openai/unpriced-gpt", MOCK_TEXT),
        mocked(
            "mock-claude",
            "anthropic/mock-claude",
            MOCK_TEXT,
            litellm_params={"api_base": f"http://127.0.0.1:{DEAD_PORT}"},
        ),
        # No mock: the proxy calls itself (mock-gpt over chat completions) and translates the
        # answer, so /v1/messages streams real Anthropic server-sent events.
        {
            "model_name": "stream-claude",
            "litellm_params": {
                "model": "hosted_vllm/mock-gpt",
                "api_key": MASTER_KEY,
                "api_base": f"http://127.0.0.1:{port}/v1",
            },
        },
        mocked("truncated", "openai/truncated", truncated),
        # LiteLLM's canned exceptions: 429, 400 (context window), 500.
        mocked("ratelimited", "openai/ratelimited", "litellm.RateLimitError"),
        cooling("cooling-openai", COOLDOWN),
        cooling("cooling-anthropic", COOLDOWN),
        cooling("cooling-short", SHORT_COOLDOWN),
        mocked("context-window", "openai/context-window", "litellm.ContextWindowExceededError"),
        mocked("server-error", "openai/server-error", "litellm.InternalServerError"),
    ]
    general: dict[str, Any] = {"master_key": MASTER_KEY}
    if custom_auth:
        general["custom_auth"] = custom_auth
    return {
        "model_list": models,
        # /v1/messages for an OpenAI-format deployment goes through chat completions (where the
        # dict mock works) instead of the Responses API.
        "litellm_settings": {"use_chat_completions_url_for_anthropic_messages": True},
        "router_settings": {"num_retries": 0},
        "general_settings": general,
    }


CUSTOM_AUTH_MODULE = f'''"""Custom auth of the second proxy: one key passes, every other one is refused with 401."""
from fastapi import HTTPException
from litellm.proxy._types import UserAPIKeyAuth


async def check_key(request, api_key):
    if api_key == "{CUSTOM_AUTH_KEY}":
        return UserAPIKeyAuth(api_key=api_key)
    # An HTTPException: any other exception here becomes a 500, because LiteLLM's auth error
    # handler imports prisma, which litellm[proxy] does not install.
    raise HTTPException(status_code=401, detail="this key is not accepted by the test proxy")
'''


class LiteLLMProxy:
    """One `litellm` proxy process on loopback, in its own process group."""

    def __init__(self, binary: str, directory: Path, *, custom_auth: bool = False) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "litellm.log"
        directory.mkdir(parents=True, exist_ok=True)
        config = proxy_config(self.port, "key_check.check_key" if custom_auth else None)
        if custom_auth:
            (directory / "key_check.py").write_text(CUSTOM_AUTH_MODULE, encoding="utf-8")
        # JSON is YAML: LiteLLM reads it with yaml.safe_load.
        self.config_path = directory / "config.yaml"
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_after: float | None = None

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not (
                key.upper().endswith("_API_KEY")
                or key.upper().endswith("_PROXY")
                or key.upper().startswith(("LITELLM_", "DATABASE_", "REDIS_", "OPENAI_", "ANTHROPIC_"))
            )
        }
        env.update(
            {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "HOME": str(self.directory),
            }
        )
        return env

    def start(self) -> None:
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--config",
                    str(self.config_path),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--num_workers",
                    "1",
                ],
                cwd=self.directory,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        self.started_at = time.monotonic()

    def wait_ready(self, timeout: float) -> None:
        """Until /health/liveliness answers 200 (the app has finished its start-up)."""
        assert self.process is not None
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"litellm exited with status {self.process.returncode} before it was ready:\n{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(f"{self.base}/health/liveliness", timeout=2) as response:
                    if response.status == 200:
                        self.ready_after = time.monotonic() - self.started_at
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"litellm was not ready after {timeout:.0f} s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s."""
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    # Direct requests, to learn what the proxy itself says for the request StageRunner makes.

    def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str], timeout: float = 60
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

    def openai_direct(self, model: str, prompt: str, *, stream: bool, key: str = MASTER_KEY) -> dict[str, Any]:
        """What the chat-completions route answers: text, finish reason, usage (as StageRunner asks)."""
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        if stream:
            body.update({"stream": True, "stream_options": {"include_usage": True}})
        status, headers, data = self.post("/v1/chat/completions", body, {"authorization": f"Bearer {key}"})
        result: dict[str, Any] = {"status": status, "headers": headers}
        if status != 200:
            result["body"] = data.decode(errors="replace")
            return result
        if not stream:
            answer = json.loads(data)
            choice = answer["choices"][0]
            usage = answer.get("usage") or {}
            result.update(
                text=choice["message"]["content"],
                finish=choice["finish_reason"],
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
            )
            return result
        text, finish, usage = "", None, {}
        for payload in _sse_data(data):
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            for choice in chunk.get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
            usage = chunk.get("usage") or usage
        result.update(
            text=text,
            finish=finish,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
        return result

    def anthropic_direct(self, model: str, prompt: str, *, stream: bool, max_tokens: int = 4096) -> dict[str, Any]:
        """What /v1/messages answers. Streamed usage: message_start's, then message_delta's counts."""
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if stream:
            body["stream"] = True
        status, headers, data = self.post(
            "/v1/messages", body, {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
        )
        result: dict[str, Any] = {"status": status, "headers": headers}
        if status != 200:
            result["body"] = data.decode(errors="replace")
            return result
        if not headers.get("content-type", "").startswith("text/event-stream"):
            answer = json.loads(data)
            usage = answer.get("usage") or {}
            result.update(
                sse=False,
                text="".join(block.get("text", "") for block in answer["content"] if block.get("type") == "text"),
                finish=answer.get("stop_reason"),
                prompt_tokens=usage.get("input_tokens"),
                completion_tokens=usage.get("output_tokens"),
            )
            return result
        text, finish, prompt_tokens, completion_tokens = "", None, None, None
        for payload in _sse_data(data):
            event = json.loads(payload)
            if event.get("type") == "message_start":
                usage = event["message"].get("usage") or {}
                prompt_tokens = usage.get("input_tokens")
                completion_tokens = usage.get("output_tokens")
            elif event.get("type") == "content_block_delta":
                text += (event.get("delta") or {}).get("text") or ""
            elif event.get("type") == "message_delta":
                finish = (event.get("delta") or {}).get("stop_reason") or finish
                usage = event.get("usage") or {}
                if usage.get("input_tokens"):
                    prompt_tokens = usage["input_tokens"]
                if usage.get("output_tokens") is not None:
                    completion_tokens = usage["output_tokens"]
        result.update(
            sse=True, text=text, finish=finish, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return result


def _sse_data(data: bytes) -> list[str]:
    return [line[5:].strip() for line in data.decode().splitlines() if line.startswith("data:")]


# The workspace and the server.


def providers_for(proxy: LiteLLMProxy, *, retries: dict[str, Any]) -> dict[str, Any]:
    """The stagerunner.yaml providers that point at `proxy`."""
    base = proxy.base

    def entry(kind: str, url: str, key_env: str | None, **extra: Any) -> dict[str, Any]:
        settings: dict[str, Any] = {"kind": kind, "baseURL": url, "timeout": 60, "retries": retries}
        if key_env:
            settings["apiKeyEnv"] = key_env
        settings.update(extra)
        return settings

    return {
        "litellm-openai": entry("openai", f"{base}/v1", "LITELLM_PROXY_KEY"),
        "litellm-anthropic": entry("anthropic", base, "LITELLM_PROXY_KEY"),
        "litellm-anthropic-v1": entry("anthropic", f"{base}/v1", "LITELLM_PROXY_KEY"),
        "litellm-openai-badkey": entry("openai", f"{base}/v1", "LITELLM_WRONG_KEY"),
        "litellm-anthropic-badkey": entry("anthropic", base, "LITELLM_WRONG_KEY"),
        "litellm-openai-nokey": entry("openai", f"{base}/v1", None),
        "litellm-openai-wrongpath": entry("openai", f"{base}/nope", "LITELLM_PROXY_KEY"),
    }


# USD per million prompt / completion tokens.
PRICES = {
    "litellm-openai:mock-gpt": {"input": 2.5, "output": 10},
    "litellm-openai:truncated": {"input": 1, "output": 4},
    "litellm-anthropic:mock-claude": {"input": 3, "output": 15},
    "litellm-anthropic:stream-claude": {"input": 3, "output": 15},
    "litellm-anthropic:truncated": {"input": 1, "output": 4},
    "litellm-anthropic-v1:mock-claude": {"input": 3, "output": 15},
    "litellm-anthropic-v1:stream-claude": {"input": 3, "output": 15},
    "litellm-anthropic-v1:truncated": {"input": 1, "output": 4},
}

# Quick retries: a retried failure costs tens of milliseconds, and a Retry-After over 5 s ends them.
RETRIES = {"attempts": 2, "baseDelay": 0.05, "maxDelay": 0.2, "maxRetryAfter": 5}
assert SHORT_COOLDOWN < RETRIES["maxRetryAfter"] < COOLDOWN


def make_workspace(dest: Path, providers: dict[str, Any], prices: dict[str, Any] | None = None) -> Path:
    """examples/daydream copied to `dest`, its stagerunner.yaml extended with `providers` and `prices`."""
    shutil.copytree(EXAMPLES / "daydream", dest)
    config = dest / "stagerunner.yaml"
    extra = "\n# Added by Tests/ProviderServers/litellm: the LiteLLM proxy as providers.\n"
    extra += f"providers: {json.dumps(providers)}\n"
    if prices:
        extra += f"prices: {json.dumps(prices)}\n"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return dest.resolve()


@dataclass
class Reply:
    """A response and the notifications that came before it."""

    message: dict[str, Any]
    notifications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def result(self) -> dict[str, Any]:
        assert "result" in self.message, f"expected a result, got {self.message}"
        return self.message["result"]

    @property
    def error(self) -> dict[str, Any]:
        assert "error" in self.message, f"expected an error, got {json.dumps(self.message)[:2000]}"
        return self.message["error"]

    def progress(self, token: Any) -> list[dict[str, Any]]:
        return [
            n["params"]["value"]
            for n in self.notifications
            if n.get("method") == "$/progress" and n["params"].get("token") == token
        ]


class StageRunnerServer:
    """`stagerunner serve` on pipes, newline-delimited JSON-RPC."""

    def __init__(self, binary: str, workspace: Path, env: dict[str, str], log_path: Path) -> None:
        self.workspace = workspace
        self.log_path = log_path
        self._log = open(log_path, "wb")
        base_env = {
            key: value
            for key, value in os.environ.items()
            if not (key.upper().endswith("_PROXY") or key.upper().endswith("_API_KEY"))
        }
        base_env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
        base_env.update(env)
        self.process = subprocess.Popen(
            [binary, "serve", "--workspace", str(workspace), "--framing", "ndjson", "--log-level", "debug"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=base_env,
            cwd=workspace,
            preexec_fn=_die_with_parent,
        )
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self._messages.put(json.loads(line))
        self._messages.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: Any = None, timeout: float = 120) -> Reply:
        return self.wait(self.start(method, params), method, timeout)

    def start(self, method: str, params: Any = None) -> int:
        """Sends a request without waiting for its answer; returns its id."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return ident

    def wait(self, ident: int, method: str, timeout: float = 120) -> Reply:
        """The answer to request `ident`, and the notifications that came before it."""
        notifications: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no answer to {method} #{ident} within {timeout} s; log:\n{self.log_tail()}")
            try:
                received = self._messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if received is None:
                raise AssertionError(f"the server's output ended before answering {method}; log:\n{self.log_tail()}")
            if received.get("id") == ident and "method" not in received:
                return Reply(received, notifications)
            notifications.append(received)

    def run_stage(
        self,
        model: str,
        gen_id: str,
        *,
        stream: bool = False,
        prompt: str = "Name one way an idle mind finds new ideas.",
        timeout: float = 120,
        **extra: Any,
    ) -> Reply:
        params: dict[str, Any] = {
            "stage": "draft",
            "templateId": "systematic-analytical",
            "genId": gen_id,
            "model": model,
            "cache": "off",
            "promptText": prompt,
        }
        if stream:
            params["progressToken"] = gen_id
        params.update(extra)
        reply = self.request("runStage", params, timeout=timeout)
        # Whatever the proxy did, what the client gets keeps to the protocol's schemas.
        problems = schema_errors("response", reply.message)
        if "result" in reply.message:
            problems += schema_errors("runStage.result", reply.message["result"])
        for notification in reply.notifications:
            if notification.get("method") == "$/progress":
                problems += schema_errors("progress.params", notification["params"])
        assert not problems, (
            f"runStage {gen_id} breaks the protocol schemas: {problems}\n{json.dumps(reply.message)[:2000]}"
        )
        return reply

    def calls(self, gen_id: str) -> list[dict[str, Any]]:
        """The call log's rows for `gen_id`, oldest first."""
        database = sqlite3.connect(f"file:{self.workspace / '.stagerunner' / 'calls.sqlite'}?mode=ro", uri=True)
        try:
            database.row_factory = sqlite3.Row
            rows = database.execute(
                "SELECT genId, provider, model, status, errorKind, error, promptTokens, completionTokens, "
                "costUsd, retries, retryErrors FROM llm_calls WHERE genId = ? ORDER BY id",
                (gen_id,),
            ).fetchall()
            return [dict(row) for row in rows]
        finally:
            database.close()

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return _tail(self.log_path, lines)

    def close(self) -> int | None:
        """shutdown and exit; kill after 10 s. Returns the exit status."""
        if self.process.poll() is None:
            try:
                self.request("shutdown", timeout=10)
                self.send({"jsonrpc": "2.0", "method": "exit"})
                self.process.stdin.close()  # type: ignore[union-attr]
            except (AssertionError, OSError, ValueError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode
