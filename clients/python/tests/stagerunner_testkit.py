"""Test helpers: paths, the fake server, and schema validation of every message (draft 2020-12).

(A module with a unique name rather than ``conftest``, so that test modules can import it
even when pytest collects other suites' ``conftest.py`` files in the same run.)

``ValidatingClient`` is a :class:`stagerunner.Client` that checks each outgoing request
and notification (envelope and params) and each incoming response (envelope, and the
result against ``protocol/schema/<method>.result.json``). Failures are collected in
``schema_failures`` because the reader task must not raise; the test fixtures assert
the list is empty when a test ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from stagerunner import Client

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = REPO_ROOT / "protocol" / "schema"
EXAMPLE = REPO_ROOT / "examples" / "daydream"
HERE = Path(__file__).resolve().parent


def server_bin() -> str | None:
    """STAGERUNNER_BIN, else the debug build, else None."""
    env = os.environ.get("STAGERUNNER_BIN")
    if env:
        return env
    path = REPO_ROOT / ".build" / "debug" / "stagerunner"
    return str(path) if path.exists() else None


def fake_server(directory: Path) -> str:
    """An executable wrapper around fake_server.py (the client runs ``<exe> serve ...``)."""
    script = directory / "fake-stagerunner"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_server.py"}" "$@"\n')
    script.chmod(0o755)
    return str(script)


def _load_registry() -> tuple[Registry, dict[str, str]]:
    registry: Registry = Registry()
    ids: dict[str, str] = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(
            schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)
        )
        ids[path.name] = schema["$id"]
    return registry.crawl(), ids


REGISTRY, SCHEMA_IDS = _load_registry()
_VALIDATORS: dict[str, Draft202012Validator] = {}


def schema_file_for(method: str, kind: str) -> str | None:
    """The schema file name of a method's ``params`` or ``result`` (``None`` when none exists)."""
    if kind == "params" and method == "renderPrompt":
        method = "runStage"
    if method.startswith("$/"):
        method = method[2:]  # $/cancelRequest, $/progress
    name = f"{method.replace('/', '-')}.{kind}.json"
    return name if name in SCHEMA_IDS else None


def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema file ``protocol/schema/<name>``."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


def validator(name: str) -> Draft202012Validator:
    """A cached validator for ``protocol/schema/<name>`` with offline ``$ref`` resolution."""
    if name not in _VALIDATORS:
        schema = load_schema(name)
        _VALIDATORS[name] = Draft202012Validator(schema, registry=REGISTRY)
    return _VALIDATORS[name]


def errors_for(name: str, value: Any) -> list[str]:
    """Every validation error of ``value`` against schema ``name``, as text."""
    return [
        f"{name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator(name).iter_errors(value)
    ]


def validate_result(method: str, result: Any) -> None:
    """Assert ``result`` validates against ``protocol/schema/<method>.result.json``."""
    name = schema_file_for(method, "result")
    assert name is not None, f"no result schema for {method}"
    problems = errors_for(name, result)
    assert not problems, "\n".join(problems)


class ValidatingClient(Client):
    """A Client that validates every message it sends and receives against the schemas."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema_failures: list[str] = []
        self.validated_results: dict[str, int] = {}
        self.validated_notifications: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # requests and notifications sent, by method
        self.received: dict[str, int] = {}  # server requests and notifications received, by method
        self.requests: list[tuple[str, Any]] = []  # (method, params) of every request sent, in order
        self._sent_methods: dict[Any, str] = {}
        self._received_requests: dict[Any, str] = {}  # server request id -> method, until answered
        self.check_params = True  # tests that send bad params on purpose turn this off

    async def _send(self, message: Mapping[str, Any]) -> None:
        method = message.get("method")
        if isinstance(method, str):
            self.sent[method] = self.sent.get(method, 0) + 1
            envelope = "request.json" if "id" in message else "notification.json"
            self.schema_failures += errors_for(envelope, dict(message))
            params_schema = schema_file_for(method, "params")
            if self.check_params and params_schema is not None and "params" in message:
                self.schema_failures += errors_for(params_schema, message["params"])
            if "id" in message:
                self._sent_methods[message["id"]] = method
                self.requests.append((method, message.get("params")))
        else:
            self.schema_failures += errors_for("response.json", dict(message))
            answered = self._received_requests.pop(message.get("id"), None)
            result_schema = schema_file_for(answered, "result") if answered else None
            if result_schema is not None and "result" in message:
                self.schema_failures += errors_for(result_schema, message["result"])
                self.validated_results[answered] = self.validated_results.get(answered, 0) + 1
            if "error" in message:
                self.schema_failures += errors_for("error.json", message["error"])
        await super()._send(message)

    def _start_incoming_request(self, rid: Any, method: str, params: Any) -> None:
        self.received[method] = self.received.get(method, 0) + 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            request["params"] = params
        self.schema_failures += errors_for("request.json", request)
        params_schema = schema_file_for(method, "params")
        if params_schema is not None:
            self.schema_failures += errors_for(params_schema, params)
        self._received_requests[rid] = method
        super()._start_incoming_request(rid, method, params)

    def _handle_notification(self, method: str, params: Any) -> None:
        self.received[method] = self.received.get(method, 0) + 1
        note: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            note["params"] = params
        self.schema_failures += errors_for("notification.json", note)
        params_schema = schema_file_for(method, "params")
        if params_schema is not None and params is not None:
            self.schema_failures += errors_for(params_schema, params)
            self.validated_notifications[method] = self.validated_notifications.get(method, 0) + 1
        super()._handle_notification(method, params)

    def _handle_response(self, message: dict[str, Any]) -> None:
        self.schema_failures += errors_for("response.json", message)
        method = self._sent_methods.pop(message.get("id"), None)
        if method is not None and "result" in message:
            name = schema_file_for(method, "result")
            if name is None:
                self.schema_failures.append(f"no result schema for {method}")
            else:
                self.schema_failures += errors_for(name, message["result"])
                self.validated_results[method] = self.validated_results.get(method, 0) + 1
        if "error" in message:
            self.schema_failures += errors_for("error.json", message["error"])
        super()._handle_response(message)


Spawner = Callable[..., ValidatingClient]
"""The type of the ``spawn`` fixture: ``spawn(**Client.spawn kwargs)`` returns a ValidatingClient."""
