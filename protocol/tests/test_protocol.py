"""Checks that protocol/ is self-consistent and that the real server speaks it.

Run from the repository root:

    python -m pytest protocol/tests -q

Needs pytest, jsonschema and PyYAML (see requirements.txt); `$ref`s are resolved from the local
files only, never over the network. The tests that drive the server use the binary named by
the environment variable STAGERUNNER_BIN (default: .build/debug/stagerunner, built with
`swift build`) and are skipped when it does not exist. The workspace methods run in temporary
copies of examples/daydream and runTask in copies of examples/research-task (skipped when they are
missing); the examples themselves are never written.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urldefrag, urljoin

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

PROTOCOL = Path(__file__).resolve().parent.parent
REPO = PROTOCOL.parent
SCHEMA_DIR = PROTOCOL / "schema"
EXAMPLES_DIR = PROTOCOL / "examples"
INVALID_DIR = PROTOCOL / "examples-invalid"
TRANSCRIPTS_DIR = REPO / ".build" / "transcripts"
DAYDREAM = REPO / "examples" / "daydream"
RESEARCH = REPO / "examples" / "research-task"

#: Where the protocol files live on the web; `$id`s and `$ref`s are relative to it.
BASE = "https://stagerunner.dev/protocol/1.0/"
OPENRPC_URI = BASE + "openrpc.json"
META_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
#: x-direction: who sends the method ("both" for $/cancelRequest, which either peer may send).
DIRECTIONS = {"clientToServer", "serverToClient", "both"}
TIMEOUT = 10.0
#: The methods that work on a workspace; their params examples are tried in a copy of DAYDREAM.
WORKSPACE_METHODS = {"runStage", "renderPrompt", "listTemplates", "validateWorkspace"}
#: The task methods; their params examples are tried in a copy of RESEARCH.
TASK_METHODS = {"runTask"}
#: The job methods; their params examples are tried in a copy of RESEARCH that already holds a job.
JOB_METHODS = {
    "runPipeline", "getStatus", "listJobs", "cancelJob", "retryTask", "resumeJob", "getArtifact", "subscribeStatus",
    "unsubscribeStatus",
}
#: Invalid params examples whose problem the server reports with another code than -32602: a task
#: object given inline is a task file, and its problems are -32015 like those of a task file.
EXPECTED_ERROR_CODES: dict[tuple[str, str], int] = {
    ("runTask", "task-unknown-key"): -32015,
    ("runTask", "task-unknown-parser"): -32015,
    ("runPipeline", "pipeline-no-tasks"): -32015,
    ("runPipeline", "pipeline-unknown-key"): -32015,
    ("runPipeline", "pipeline-retries-zero"): -32015,
}
#: (method, invalid example) pairs the server accepts although the protocol says it must not.
#: Each is a server bug: the test is an expected failure until it is fixed, then remove the entry.
KNOWN_SERVER_BUGS: dict[tuple[str, str], str] = {}


# ---------------------------------------------------------------------------------------------
# Loading the protocol files


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def schema_uri(name: str) -> str:
    return f"{BASE}schema/{name}.json"


SCHEMAS: dict[str, Any] = {path.stem: load_json(path) for path in sorted(SCHEMA_DIR.glob("*.json"))}
OPENRPC: dict[str, Any] = load_json(PROTOCOL / "openrpc.json")
REGISTRY: Registry = Registry().with_resources(
    (schema_uri(name), DRAFT202012.create_resource(contents)) for name, contents in SCHEMAS.items()
)
METHODS: dict[str, dict[str, Any]] = {method["name"]: method for method in OPENRPC["methods"]}


def validator(uri: str) -> Draft202012Validator:
    """A validator for the schema at `uri` (a file URI, optionally with a JSON pointer)."""
    return Draft202012Validator({"$ref": uri}, registry=REGISTRY)


def schema_validator(name: str) -> Draft202012Validator:
    return validator(schema_uri(name))


def problems(check: Draft202012Validator, instance: Any) -> list[str]:
    """Every way `instance` fails the schema, as short readable lines."""
    found = []
    for error in sorted(check.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        found.append(f"{where}: {error.message}")
    return found


def openrpc_ref_uri(ref: str) -> str:
    return urljoin(OPENRPC_URI, ref)


def pointer(document: Any, fragment: str) -> Any:
    """Follows a JSON pointer such as /components/errors/InvalidParams."""
    node = document
    for token in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def resolve_openrpc(node: Any) -> Any:
    """Resolves one level of OpenRPC reference object (`{"$ref": "#/components/..."}`)."""
    if isinstance(node, dict) and set(node) == {"$ref"} and node["$ref"].startswith("#"):
        return pointer(OPENRPC, node["$ref"][1:])
    return node


def is_notification(method: dict[str, Any]) -> bool:
    return "result" not in method


def result_uri(method: dict[str, Any]) -> str:
    return openrpc_ref_uri(method["result"]["schema"]["$ref"])


def params_uri(method: dict[str, Any]) -> str | None:
    ref = method.get("x-paramsSchema", {}).get("$ref")
    return openrpc_ref_uri(ref) if ref else None


def sent_by(method: dict[str, Any], direction: str) -> bool:
    """Whether `method` goes in `direction` (clientToServer or serverToClient)."""
    return method["x-direction"] in (direction, "both")


def method_names(*, notifications: bool, direction: str = "clientToServer", test_only: bool = True) -> set[str]:
    return {
        name
        for name, method in METHODS.items()
        if is_notification(method) == notifications
        and sent_by(method, direction)
        and (test_only or not method.get("x-testOnly", False))
    }


def refs(node: Any) -> Iterator[str]:
    """Every `$ref` string anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def example_files(root: Path) -> list[tuple[str, Path]]:
    return [(path.parent.name, path) for path in sorted(root.glob("*/*.json"))]


def example_id(case: tuple[str, Path]) -> str:
    return f"{case[0]}/{case[1].stem}"


# ---------------------------------------------------------------------------------------------
# Validating what the server sends (used by the live tests and by the transcript check)


def validate_server_message(method: Any, message: Any) -> list[str]:
    """Checks one message the server sent.

    `method` is the method the message answers (a response) or carries (a notification or
    request), or None for an error response whose request could not be read; for a batch
    answer it is a list with one such entry per element, in the same order.
    """
    if isinstance(message, list):
        found = problems(schema_validator("message"), message)
        if found:
            return [f"batch: {line}" for line in found]
        if not isinstance(method, list) or len(method) != len(message):
            return ["batch: 'method' must be a list with one entry per element of the batch"]
        if not all("id" in element and "method" not in element for element in message):
            return ["batch: the server may only send batches of responses"]
        return [
            f"batch[{index}]: {line}"
            for index, (element_method, element) in enumerate(zip(method, message))
            for line in validate_server_message(element_method, element)
        ]
    if isinstance(message, dict) and "method" in message:
        kind = "request" if "id" in message else "notification"
        found = problems(schema_validator(kind), message)
        if found:
            return found
        name = message["method"]
        if method is not None and method != name:
            return [f"'method' says {method!r} but the {kind} is {name!r}"]
        spec = METHODS.get(name)
        if spec is None:
            return [f"the server sent the {kind} {name!r}, which the protocol does not define"]
        if not sent_by(spec, "serverToClient") or is_notification(spec) != (kind == "notification"):
            return [f"{name!r} is not a server-to-client {kind}"]
        uri = params_uri(spec)
        if uri is None:
            return []
        return [f"params: {line}" for line in problems(validator(uri), message.get("params", {}))]
    found = problems(schema_validator("response"), message)
    if found:
        return found
    if "error" in message:
        return []
    if not isinstance(method, str):
        return ["a success response needs the name of the method it answers"]
    spec = METHODS.get(method)
    if spec is None or is_notification(spec):
        return [f"{method!r} is not a request method of the protocol, so it cannot have a result"]
    if not sent_by(spec, "clientToServer"):
        return [f"{method!r} is a server-to-client request: the server sends it, it never answers it"]
    return [f"result: {line}" for line in problems(validator(result_uri(spec)), message["result"])]


def validate_transcript(path: Path) -> list[str]:
    """Checks every line of a transcript: `{"method": …, "message": {…}}` per line."""
    found = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                found.append(f"{where}: not JSON ({error})")
                continue
            if not isinstance(record, dict) or "message" not in record:
                found.append(f"{where}: expected an object with 'method' and 'message'")
                continue
            found.extend(f"{where}: {line}" for line in validate_server_message(record.get("method"), record["message"]))
    return found


def validate_transcripts(directory: Path) -> tuple[int, list[str]]:
    """Checks every `*.jsonl` file in `directory`; returns (files checked, problems)."""
    files = sorted(directory.glob("*.jsonl"))
    found = []
    for path in files:
        found.extend(validate_transcript(path))
    return len(files), found


# ---------------------------------------------------------------------------------------------
# Driving the server


def research_copy(directory: Path) -> Path:
    """A fresh copy of the research-task example workspace in `directory`."""
    if not (RESEARCH / "tasks" / "summary.task.yaml").is_file():
        pytest.skip(f"no example workspace at {RESEARCH}")
    workspace = directory / "research-task"
    shutil.copytree(RESEARCH, workspace)
    return workspace


def task_files() -> list[Path]:
    """Every task file of the repository's examples (`*.task.yaml`, `*.task.yml`, `*.task.json`)."""
    examples = REPO / "examples"
    return sorted(
        path for pattern in ("*.task.yaml", "*.task.yml", "*.task.json") for path in examples.rglob(pattern)
    )


def server_binary() -> Path:
    path = Path(os.environ.get("STAGERUNNER_BIN", REPO / ".build" / "debug" / "stagerunner"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"no server binary at {path}: run `swift build` or set STAGERUNNER_BIN")
    return path


def daydream_copy(directory: Path) -> Path:
    """A fresh copy of the daydream example workspace in `directory`."""
    if not (DAYDREAM / "stagerunner.yaml").is_file():
        pytest.skip(f"no example workspace at {DAYDREAM}")
    workspace = directory / "daydream"
    shutil.copytree(DAYDREAM, workspace)
    return workspace


class Server:
    """`stagerunner serve` on pipes, spoken to in one framing; stderr goes to a file."""

    def __init__(self, framing: str, *arguments: str, cwd: Path | None = None) -> None:
        self.framing = framing
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [str(server_binary()), "serve", *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=cwd,
        )
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.framing_problems: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # Writing

    def send_bytes(self, body: bytes) -> None:
        if self.framing == "lsp":
            frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
        else:
            frame = body + b"\n"
        assert self.process.stdin is not None
        self.process.stdin.write(frame)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    def request(self, id: Any, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def close_input(self) -> None:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()

    # Reading

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while True:
                body = self._read_lsp(stream) if self.framing == "lsp" else self._read_line(stream)
                if body is None:
                    break
                try:
                    self.inbox.put(json.loads(body.decode("utf-8")))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    self.framing_problems.append(f"unreadable message {body[:200]!r}: {error}")
        finally:
            self.inbox.put(EOFError())

    def _read_line(self, stream: Any) -> bytes | None:
        line = stream.readline()
        if not line:
            return None
        if not line.endswith(b"\n"):
            self.framing_problems.append(f"NDJSON line without a final newline: {line[:200]!r}")
        return line.rstrip(b"\r\n")

    def _read_lsp(self, stream: Any) -> bytes | None:
        headers = []
        while True:
            line = stream.readline()
            if not line:
                if headers:
                    self.framing_problems.append(f"output ended inside headers {headers!r}")
                return None
            if line == b"\r\n":
                break
            if not line.endswith(b"\r\n"):
                self.framing_problems.append(f"header line not ended by CRLF: {line!r}")
            headers.append(line.rstrip(b"\r\n"))
        lengths = [h.split(b":", 1)[1].strip() for h in headers if h.lower().startswith(b"content-length:")]
        if len(lengths) != 1 or not lengths[0].isdigit():
            self.framing_problems.append(f"bad header block {headers!r}")
            return None
        length = int(lengths[0])
        body = stream.read(length)
        if len(body) != length:
            self.framing_problems.append(f"body of {len(body)} bytes, Content-Length said {length}")
            return None
        return body

    def next_message(self, timeout: float = TIMEOUT) -> Any:
        item = self.inbox.get(timeout=timeout)
        if isinstance(item, EOFError):
            self.inbox.put(item)  # stays at the end for later readers
            raise item
        return item

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", errors="replace")

    def stop(self) -> None:
        self.close_input()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.reader.join(timeout=TIMEOUT)
        self.stderr.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


class Exchange:
    """Tracks the requests sent on a Server and the messages received, for validation."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pending: dict[Any, str] = {}  # request id -> method, for requests not yet answered
        self.answered: dict[Any, Any] = {}  # request id -> its response
        self.records: list[dict[str, Any]] = []  # transcript: {"method", "message"}
        self.observers: list[Any] = []  # called with every message received

    @staticmethod
    def key(id: Any) -> str:
        return json.dumps(id)  # 1 and "1" stay distinct

    def request(self, id: Any, method: str, params: Any = None) -> None:
        assert self.key(id) not in self.pending, f"id {id!r} reused while in flight"
        self.pending[self.key(id)] = method
        self.server.request(id, method, params)

    def batch(self, elements: list[Any]) -> None:
        for element in elements:
            if isinstance(element, dict) and "id" in element and "method" in element:
                self.pending[self.key(element["id"])] = element["method"]
        self.server.send(elements)

    def receive(self) -> Any:
        message = self.server.next_message()
        elements = message if isinstance(message, list) else [message]
        methods = []
        for element in elements:
            if isinstance(element, dict) and "id" in element and "method" not in element:
                key = self.key(element["id"])
                if element["id"] is not None:
                    assert key in self.pending, f"response to an id that is not pending: {element}"
                    assert key not in self.answered, f"second response for id {element['id']!r}"
                    self.answered[key] = element
                methods.append(self.pending.pop(key, None))
            else:
                methods.append(element.get("method") if isinstance(element, dict) else None)
        self.records.append({"method": methods if isinstance(message, list) else methods[0], "message": message})
        for observe in self.observers:
            observe(message)
        return message

    def response(self, id: Any) -> dict[str, Any]:
        """Waits for the response to `id` (others that arrive first are kept)."""
        key = self.key(id)
        deadline = time.monotonic() + TIMEOUT
        while key not in self.answered:
            assert time.monotonic() < deadline, f"no response to {id!r}"
            self.receive()
        return self.answered[key]

    def result(self, id: Any) -> Any:
        response = self.response(id)
        assert "result" in response, f"expected a result for {id!r}, got {response}"
        return response["result"]

    def error(self, id: Any, code: int) -> dict[str, Any]:
        response = self.response(id)
        assert "error" in response, f"expected error {code} for {id!r}, got {response}"
        assert response["error"]["code"] == code, response
        return response["error"]


def initialize(server: Server) -> dict[str, Any]:
    server.request(1, "initialize", {"clientInfo": {"name": "test_protocol.py"}, "protocolVersion": "1.0"})
    response = server.next_message()
    assert response.get("id") == 1 and "result" in response, response
    assert validate_server_message("initialize", response) == []
    return response["result"]


# ---------------------------------------------------------------------------------------------
# The OpenRPC document and the schemas


def test_schema_files_are_valid_2020_12_with_matching_ids() -> None:
    assert SCHEMAS, "no schema files found"
    for name, contents in SCHEMAS.items():
        assert contents.get("$schema") == META_SCHEMA, f"{name}.json: $schema must be {META_SCHEMA}"
        assert contents.get("$id") == schema_uri(name), f"{name}.json: $id must be {schema_uri(name)}"
        Draft202012Validator.check_schema(contents)


def test_every_ref_in_the_schemas_resolves() -> None:
    resolver = REGISTRY.resolver()
    for name, contents in SCHEMAS.items():
        for ref in refs(contents):
            assert not ref.startswith(("http:", "https:")), f"{name}.json: use relative $refs, not {ref}"
            try:
                resolver.lookup(urljoin(schema_uri(name), ref))
            except Unresolvable as error:
                pytest.fail(f"{name}.json: $ref {ref!r} does not resolve: {error}")


def test_openrpc_document_header() -> None:
    assert OPENRPC["openrpc"] == "1.3.2"
    assert OPENRPC["info"]["title"]
    assert OPENRPC["info"]["version"] == "1.0"
    allowed = {"openrpc", "info", "servers", "methods", "components", "externalDocs"}
    assert {key for key in OPENRPC if not key.startswith("x-")} <= allowed


def test_every_ref_in_the_openrpc_document_resolves() -> None:
    resolver = REGISTRY.resolver()
    seen = 0
    for ref in refs(OPENRPC):
        seen += 1
        if ref.startswith("#"):
            try:
                pointer(OPENRPC, ref[1:])
            except (KeyError, IndexError, ValueError):
                pytest.fail(f"openrpc.json: $ref {ref!r} does not resolve")
            continue
        uri = openrpc_ref_uri(ref)
        document, _ = urldefrag(uri)
        assert document.startswith(BASE + "schema/"), f"openrpc.json: $ref {ref!r} points outside schema/"
        try:
            resolved = resolver.lookup(uri)
        except Unresolvable as error:
            pytest.fail(f"openrpc.json: $ref {ref!r} does not resolve: {error}")
        # The target is a schema in its own right.
        Draft202012Validator.check_schema(resolved.contents if isinstance(resolved.contents, dict) else {})
    assert seen > 0


@pytest.mark.parametrize("name", list(METHODS))
def test_openrpc_method_is_well_formed(name: str) -> None:
    method = METHODS[name]
    assert [m["name"] for m in OPENRPC["methods"]].count(name) == 1, "method names must be unique"
    assert method.get("x-direction") in DIRECTIONS, "x-direction must be clientToServer, serverToClient or both"
    assert method.get("paramStructure") == "by-name"
    assert isinstance(method.get("x-testOnly", False), bool)
    assert method.get("summary"), "give a summary"
    allowed = {"name", "summary", "description", "params", "result", "errors", "examples", "paramStructure",
               "deprecated", "tags", "links", "servers", "externalDocs"}
    assert {key for key in method if not key.startswith("x-")} <= allowed

    params = method["params"]
    assert isinstance(params, list)
    required_flags = [bool(p.get("required", False)) for p in params]
    assert required_flags == sorted(required_flags, reverse=True), "required params must come before optional ones"
    for descriptor in params:
        assert descriptor.get("name") and "schema" in descriptor
    uri = params_uri(method)
    if params:
        assert uri is not None, "a method with params needs x-paramsSchema (the whole params object)"
    if uri is not None:
        whole = REGISTRY.resolver().lookup(uri).contents
        assert whole.get("type") == "object", "by-name params are an object"
        properties = whole.get("properties", {})
        assert [p["name"] for p in params] == list(properties), "params must list the schema's properties in order"
        assert {p["name"] for p in params if p.get("required")} == set(whole.get("required", []))
        for descriptor in params:
            assert descriptor["schema"] == {"$ref": f"{method['x-paramsSchema']['$ref']}#/properties/{descriptor['name']}"}

    if is_notification(method):
        assert "errors" not in method and "examples" not in method, "notifications get no response"
    else:
        assert method["result"].get("name")
        assert set(method["result"]["schema"]) == {"$ref"}, "results are described by a schema file"
        codes = []
        for entry in method.get("errors", []):
            error = resolve_openrpc(entry)
            assert isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
            assert set(error) <= {"code", "message", "data"}
            codes.append(error["code"])
            code_schema = validator(schema_uri("error") + "#/properties/code")
            assert problems(code_schema, error["code"]) == [], f"undocumented error code {error['code']}"
        assert len(codes) == len(set(codes)), "error codes must be unique per method"


def test_openrpc_examples_validate() -> None:
    checked = 0
    for method in METHODS.values():
        for pairing in method.get("examples", []):
            pairing = resolve_openrpc(pairing)
            assert pairing.get("name") and isinstance(pairing.get("params"), list) and "result" in pairing
            params = {example["name"]: example["value"] for example in map(resolve_openrpc, pairing["params"])}
            uri = params_uri(method)
            if uri is not None:
                assert problems(validator(uri), params) == [], f"{method['name']} example {pairing['name']} params"
            else:
                assert params == {}, f"{method['name']} takes no params"
            result = resolve_openrpc(pairing["result"])["value"]
            assert problems(validator(result_uri(method)), result) == [], f"{method['name']} example {pairing['name']} result"
            checked += 1
    assert {"initialize", "ping"} <= {name for name, m in METHODS.items() if m.get("examples")}
    assert checked > 0


def test_every_params_and_result_schema_has_valid_and_invalid_examples() -> None:
    valid = {schema for schema, _ in example_files(EXAMPLES_DIR)}
    invalid = {schema for schema, _ in example_files(INVALID_DIR)}
    assert valid | invalid <= set(SCHEMAS), f"example folders without a schema: {(valid | invalid) - set(SCHEMAS)}"
    wanted = {name for name in SCHEMAS if name.endswith((".params", ".result"))}
    assert wanted - valid == set(), f"schemas without valid examples: {wanted - valid}"
    assert wanted - invalid == set(), f"schemas without invalid examples: {wanted - invalid}"


@pytest.mark.parametrize("case", example_files(EXAMPLES_DIR), ids=example_id)
def test_example_validates(case: tuple[str, Path]) -> None:
    schema, path = case
    assert problems(schema_validator(schema), load_json(path)) == []


@pytest.mark.parametrize("case", example_files(INVALID_DIR), ids=example_id)
def test_invalid_example_fails(case: tuple[str, Path]) -> None:
    schema, path = case
    assert problems(schema_validator(schema), load_json(path)) != [], f"{path} should fail {schema}.json"


def test_every_example_task_file_validates() -> None:
    files = task_files()
    assert files, "no task files under examples/"
    check = schema_validator("task")
    for path in files:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        assert problems(check, document) == [], f"{path.relative_to(REPO)} does not match schema/task.json"


def test_the_research_task_example_is_its_task_file_converted() -> None:
    source = RESEARCH / "tasks" / "summary.task.yaml"
    converted = load_json(EXAMPLES_DIR / "task" / "research-summary.json")
    assert yaml.safe_load(source.read_text(encoding="utf-8")) == converted


def pipeline_files() -> list[Path]:
    """Every pipeline file of the repository's examples (`*.pipeline.yaml`, `.yml`, `.json`)."""
    examples = REPO / "examples"
    return sorted(
        path
        for pattern in ("*.pipeline.yaml", "*.pipeline.yml", "*.pipeline.json")
        for path in examples.rglob(pattern)
    )


def test_every_example_pipeline_file_validates() -> None:
    files = pipeline_files()
    assert files, "no pipeline files under examples/"
    check = schema_validator("pipeline")
    for path in files:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        assert problems(check, document) == [], f"{path.relative_to(REPO)} does not match schema/pipeline.json"


def test_the_research_pipeline_example_is_its_pipeline_file_converted() -> None:
    source = RESEARCH / "pipelines" / "research.pipeline.yaml"
    converted = load_json(EXAMPLES_DIR / "pipeline" / "research.json")
    assert yaml.safe_load(source.read_text(encoding="utf-8")) == converted


def test_every_status_example_is_consistent() -> None:
    """The status documents of examples/ agree with themselves: taskOrder names the tasks, progress counts them."""
    for path in sorted((EXAMPLES_DIR / "status").glob("*.json")):
        document = load_json(path)
        assert document["taskOrder"] == sorted(document["tasks"], key=document["taskOrder"].index), path.name
        assert set(document["taskOrder"]) == set(document["tasks"]), path.name
        done = sum(1 for task in document["tasks"].values() if task["state"] == "done")
        assert document["progress"]["tasksDone"] == done and document["progress"]["tasksTotal"] == len(document["tasks"])
        assert_relative_paths(document, path.name)


def assert_relative_paths(document: Any, where: str) -> None:
    """No absolute path anywhere in a status document's files and artifacts: they are relative to
    the job's folder, so that a document reveals nothing of the server's file system."""
    for task in document["tasks"].values():
        for value in [*task["artifacts"], *task["files"].values()]:
            assert not value.startswith("/") and ".." not in value.split("/"), f"{where}: {value}"
    for value in document["files"].values():
        assert not value.startswith("/"), f"{where}: {value}"
    if document["pipeline"] is not None:
        assert not document["pipeline"].startswith("/"), where


# ---------------------------------------------------------------------------------------------
# Transcripts


def write_jsonl(path: Path, records: list[Any]) -> None:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


#: The smallest context a stage can see (schema runTask.result.json#/$defs/context).
MINIMAL_CONTEXT = {
    "meta": {"taskName": "t", "runId": "r", "workDir": "data/tasks/t/r", "modelConfig": {}},
    "data": {"seed": {}}, "flags": {}, "logs": [], "currentStage": "critique", "output": {},
    "refinementCount": 0, "availableModels": ["default"], "currentModel": "default",
}


def test_transcript_validator_accepts_good_lines(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "good.jsonl", [
        {"method": "executeStage", "message": {"jsonrpc": "2.0", "id": 1, "method": "executeStage", "params": {
            "handler": "quality", "stage": "critique", "context": MINIMAL_CONTEXT}}},
        {"method": "$/cancelRequest", "message": {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "s1"}}},
        {"method": "ping", "message": {"jsonrpc": "2.0", "id": 1, "result": {"echo": "é"}}},
        {"method": "shutdown", "message": {"jsonrpc": "2.0", "id": "s", "result": None}},
        {"method": "test/sleep", "message": {"jsonrpc": "2.0", "id": 2, "error": {"code": -32800, "message": "Request cancelled"}}},
        {"method": None, "message": {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error", "data": {"hint": "h", "offset": 0}}}},
        {"method": ["ping", None], "message": [
            {"jsonrpc": "2.0", "id": "a", "result": {}},
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request", "data": {"hint": "h"}}},
        ]},
    ])
    (tmp_path / "blank-lines.jsonl").write_text("\n" + json.dumps({"method": "ping", "message": {"jsonrpc": "2.0", "id": 3, "result": {}}}) + "\n\n")
    (tmp_path / "not-a-transcript.txt").write_text("ignored")
    assert validate_transcripts(tmp_path) == (2, [])


def test_transcript_validator_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [
        {"method": "ping", "message": {"jsonrpc": "2.0", "id": 1, "result": "pong"}},
        {"method": "test/sleep", "message": {"jsonrpc": "2.0", "id": 2, "result": {}}},
        {"method": "initialize", "message": {"jsonrpc": "2.0", "id": 3, "result": {"protocolVersion": "1.0"}}},
        {"method": "noSuchMethod", "message": {"jsonrpc": "2.0", "id": 4, "result": {}}},
        {"method": "ping", "message": {"jsonrpc": "2.0", "id": 5, "error": {"code": -32602, "message": "Invalid params"}}},
        {"method": "ping", "message": {"jsonrpc": "2.0", "id": 6, "error": {"code": 17, "message": "odd"}}},
        {"method": "ping", "message": {"jsonrpc": "1.0", "id": 7, "result": {}}},
        {"method": "statusChanged", "message": {"jsonrpc": "2.0", "method": "statusChanged", "params": {}}},
        {"method": ["ping"], "message": [{"jsonrpc": "2.0", "id": "a", "result": {}}, {"jsonrpc": "2.0", "id": "b", "result": {}}]},
        {"message": {"jsonrpc": "2.0", "id": 8, "result": {}}},
        {"no": "message"},
        {"method": "executeStage", "message": {"jsonrpc": "2.0", "id": 9, "method": "executeStage", "params": {
            "handler": "quality", "stage": "critique"}}},
        {"method": "executeStage", "message": {"jsonrpc": "2.0", "id": 10, "result": {"output": 1, "flags": {}}}},
        {"method": "runTask", "message": {"jsonrpc": "2.0", "id": 11, "method": "runTask", "params": {"task": "t.yaml"}}},
    ])
    with path.open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    found = validate_transcript(path)
    lines = sorted({int(problem.split(":")[1]) for problem in found})
    assert lines == list(range(1, 16)), "\n".join(found)


def test_recorded_transcripts_validate() -> None:
    if not TRANSCRIPTS_DIR.is_dir():
        pytest.skip(f"{TRANSCRIPTS_DIR} does not exist (no transcripts recorded yet)")
    count, found = validate_transcripts(TRANSCRIPTS_DIR)
    if count == 0:
        pytest.skip(f"no *.jsonl files in {TRANSCRIPTS_DIR}")
    assert found == [], "\n".join(found[:50])


# ---------------------------------------------------------------------------------------------
# The server's method table


def test_method_table_matches_the_server_with_test_methods() -> None:
    with Server("ndjson", "--enable-test-methods") as server:
        capabilities = initialize(server)["capabilities"]
    adding = "the served methods and openrpc.json differ: see CONTRIBUTING.md, 'Adding a method'"
    assert set(capabilities["methods"]) == method_names(notifications=False), adding
    assert set(capabilities["notifications"]) == method_names(notifications=True), adding
    assert WORKSPACE_METHODS <= set(capabilities["methods"]) and WORKSPACE_METHODS <= set(METHODS)
    assert capabilities["methods"] == sorted(capabilities["methods"])


def test_method_table_matches_the_server_without_test_methods() -> None:
    with Server("ndjson") as server:
        capabilities = initialize(server)["capabilities"]
    assert set(capabilities["methods"]) == method_names(notifications=False, test_only=False)
    assert WORKSPACE_METHODS <= set(capabilities["methods"])
    assert set(capabilities["notifications"]) == method_names(notifications=True, test_only=False)
    assert not {name for name in capabilities["methods"] if METHODS.get(name, {}).get("x-testOnly")}


# ---------------------------------------------------------------------------------------------
# Params examples against the server: the schemas accept exactly what the server accepts


def params_cases() -> list[tuple[str, str, Path, bool]]:
    cases = []
    for name, method in METHODS.items():
        uri = params_uri(method)
        if uri is None or is_notification(method) or not sent_by(method, "clientToServer"):
            continue
        schema = uri.rsplit("/", 1)[1].removesuffix(".json")
        for valid, root in ((True, EXAMPLES_DIR), (False, INVALID_DIR)):
            for path in sorted((root / schema).glob("*.json")):
                cases.append((name, schema, path, valid))
    return cases


@pytest.mark.parametrize(
    "case", params_cases(), ids=lambda c: f"{c[0]}:{'valid' if c[3] else 'invalid'}:{c[2].stem}"
)
def test_params_examples_agree_with_the_server(
    case: tuple[str, str, Path, bool], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    method, _, path, valid = case
    bug = KNOWN_SERVER_BUGS.get((method, path.stem))
    if bug is not None:
        request.applymarker(pytest.mark.xfail(reason=bug, strict=True))
    params = load_json(path)
    if method in WORKSPACE_METHODS:
        cwd = daydream_copy(tmp_path)
    elif method in TASK_METHODS or method in JOB_METHODS:
        cwd = research_copy(tmp_path)
    else:
        cwd = tmp_path
    with Server("ndjson", "--enable-test-methods", cwd=cwd) as server:
        if method in JOB_METHODS:
            # A job that is done, and two subscriptions (sub-1, sub-2), for the examples to name:
            # the examples' job ids come from other runs, so they are replaced by this job's.
            exchange = Exchange(server)
            exchange.request("setup-1", "runPipeline", {
                "pipeline": "pipelines/research.pipeline.yaml", "input": {"topic": "kelp"}, "options": {"wait": True},
            })
            job_id = exchange.result("setup-1")["jobId"]
            exchange.request("setup-2", "subscribeStatus", {"jobId": job_id})
            exchange.request("setup-3", "subscribeStatus", {"jobId": job_id})
            assert {exchange.result(f"setup-{n}")["subscriptionId"] for n in (2, 3)} == {"sub-1", "sub-2"}
            if isinstance(params, dict) and isinstance(params.get("jobId"), str):
                params = {**params, "jobId": job_id}
        server.request(1, method, params)
        while (response := server.next_message()).get("id") != 1:
            # a progressToken's notifications, and status changes, may come first
            assert response.get("method") in ("$/progress", "statusChanged"), response
            assert validate_server_message(response["method"], response) == []
    assert validate_server_message(method, response) == []
    if valid and method == "renderPrompt" and response.get("error", {}).get("code") == -32010:
        # renderPrompt is a dry run and never generates a missing parent: a valid request whose
        # parent is not generated yet in this fresh workspace gets -32010, and nothing else.
        assert "has not been generated yet" in response["error"]["message"], response
    elif valid and method in JOB_METHODS and response.get("error", {}).get("code") == -32016:
        # Valid params about a job in the wrong state (cancelling or resuming a job that is done, a
        # task the job does not have): the job answers, never the params check.
        assert response["error"]["data"]["reason"] in {"invalid_state", "not_found"}, response
    elif valid:
        assert "result" in response, f"the server rejected a valid example: {response}"
    else:
        code = EXPECTED_ERROR_CODES.get((method, path.stem), -32602)
        assert response.get("error", {}).get("code") == code, f"expected {code} for {path.name}: {response}"


# ---------------------------------------------------------------------------------------------
# Live conformance in both framings

NON_ASCII = "héllo wörld — 世界 ✓ 😀 \u0000 \"quoted\" \\ \n"


@pytest.mark.parametrize("framing", ["lsp", "ndjson"])
def test_live_exchange_conforms(framing: str, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with Server(framing, "--enable-test-methods", cwd=workspace) as server:
        exchange = Exchange(server)

        exchange.request(1, "initialize", {
            "processId": os.getpid(),
            "clientInfo": {"name": "test_protocol.py", "version": "1"},
            "protocolVersion": "1.0",
            "capabilities": {},
        })
        init = exchange.result(1)
        assert init["protocolVersion"] == "1.0"
        assert init["capabilities"]["framing"] == framing
        assert init["workspace"]["root"] == str(workspace.resolve())
        exchange.server.notify("initialized", {})

        # ping with and without echo
        exchange.request(2, "ping")
        exchange.request("p-3", "ping", {})
        exchange.request(4, "ping", {"echo": NON_ASCII})
        structure = {"list": [1, 2.5, True, None, "ü"], "nested": {"b": {}, "a": []}}
        exchange.request(5, "ping", {"echo": structure})
        exchange.request(6, "ping", {"echo": None})
        assert exchange.result(2) == {}
        assert exchange.result("p-3") == {}
        assert exchange.result(4) == {"echo": NON_ASCII}
        assert exchange.result(5) == {"echo": structure}
        assert exchange.result(6) == {"echo": None}

        # bad params
        exchange.request(7, "test/sleep", {"ms": "soon"})
        data = exchange.error(7, -32602)["data"]
        assert data["field"] == "params.ms" and data["problem"]
        exchange.request(8, "ping", ["hello"])
        assert exchange.error(8, -32602)["data"]["field"] == "params"
        # "no params" as client libraries spell it: [] (Lua) and null (Emacs Lisp) mean {}
        exchange.request(81, "ping", [])
        exchange.pending[exchange.key(82)] = "ping"
        exchange.server.send({"jsonrpc": "2.0", "id": 82, "method": "ping", "params": None})
        assert exchange.result(81) == exchange.result(82) == {}

        # unknown method
        exchange.request(9, "noSuchMethod", {})
        data = exchange.error(9, -32601)["data"]
        assert data["method"] == "noSuchMethod"
        assert data["available"] == init["capabilities"]["methods"]

        # stray output on fd 1 must not reach the protocol stream
        exchange.request(10, "test/print", {"text": "stray text on fd 1"})
        assert exchange.result(10) == {}

        # a batch: requests, a notification, an unknown method and an invalid element
        exchange.batch([
            {"jsonrpc": "2.0", "id": "b1", "method": "ping", "params": {"echo": "x"}},
            {"jsonrpc": "2.0", "method": "initialized"},
            {"jsonrpc": "2.0", "id": "b2", "method": "nope"},
            {"jsonrpc": "2.0", "id": "b3", "method": "test/sleep", "params": {"ms": 20}},
            5,
        ])
        batch = exchange.receive()
        assert isinstance(batch, list) and len(batch) == 4, batch
        assert {json.dumps(element["id"]) for element in batch} == {'"b1"', '"b2"', '"b3"', "null"}
        assert exchange.result("b1") == {"echo": "x"}
        exchange.error("b2", -32601)
        assert exchange.result("b3") == {"slept": 20}
        assert [element["error"]["code"] for element in batch if element["id"] is None] == [-32600]

        # a notification-only batch gets no reply: the next message is ping 12's answer
        exchange.batch([{"jsonrpc": "2.0", "method": "initialized"}])

        # cancellation: exactly one response, -32800
        exchange.request(11, "test/sleep", {"ms": 60_000})
        exchange.request(12, "ping")
        assert exchange.result(12) == {}
        exchange.server.notify("$/cancelRequest", {"id": 11})
        started = time.monotonic()
        exchange.error(11, -32800)
        assert time.monotonic() - started < 5
        exchange.server.notify("$/cancelRequest", {"id": 11})  # late cancel: ignored, no answer
        exchange.request(13, "test/sleep", {"ms": 10})
        assert exchange.result(13) == {"slept": 10}

        # shutdown, then every request is refused, then exit
        exchange.request(14, "shutdown")
        assert exchange.result(14) is None
        exchange.request(15, "ping")
        assert "hint" in exchange.error(15, -32600)["data"]
        exchange.server.notify("exit")
        assert server.wait_exit() == 0
        with pytest.raises(EOFError):
            while True:
                exchange.receive()

        assert server.framing_problems == []
        unmatched = [
            element
            for record in exchange.records
            for element in (record["message"] if isinstance(record["message"], list) else [record["message"]])
            if element.get("id") is None
        ]
        assert len(unmatched) == 1, f"only the batch's invalid element may be answered with id null: {unmatched}"
        assert exchange.pending == {}, f"requests never answered: {exchange.pending}"
        assert "stray text on fd 1" in server.stderr_text()

        transcript = tmp_path / f"live-{framing}.jsonl"
        write_jsonl(transcript, exchange.records)
        assert validate_transcript(transcript) == []


# ---------------------------------------------------------------------------------------------
# Live conformance of the workspace methods, in a copy of the daydream example


def metadata_problems(workspace: Path) -> tuple[int, list[str]]:
    """Checks every data/gens/<stage>/<gen_id>/metadata.json of `workspace` against metadata.json."""
    check = schema_validator("metadata")
    files = sorted(workspace.glob("data/gens/*/*/metadata.json"))
    found = []
    for path in files:
        metadata = load_json(path)
        relative = path.relative_to(workspace)
        found.extend(f"{relative}: {line}" for line in problems(check, metadata))
        stage, gen_id = relative.parts[2], relative.parts[3]
        if (metadata.get("stage"), metadata.get("gen_id")) != (stage, gen_id):
            found.append(f"{relative}: stage and gen_id must name the file's directory")
        for name in metadata.get("files", []):
            if not (path.parent / name).is_file():
                found.append(f"{relative}: lists {name}, which does not exist")
        extra = {child.name for child in path.parent.iterdir()} - set(metadata.get("files", []))
        if extra:
            found.append(f"{relative}: files not listed in metadata.files: {sorted(extra)}")
    return len(files), found


def check_committed(workspace: Path, result: dict[str, Any]) -> None:
    """A runStage result agrees with what it committed under data/gens."""
    directory = workspace / "data" / "gens" / result["stage"] / result["genId"]
    prefix = f"data/gens/{result['stage']}/{result['genId']}/"
    assert result["files"] == [prefix + name for name in result["metadata"]["files"]]
    assert all((workspace / file).is_file() for file in result["files"])
    assert load_json(directory / "metadata.json") == result["metadata"]
    assert problems(schema_validator("metadata"), result["metadata"]) == []
    for key, name in (("raw", "raw.txt"), ("parsed", "parsed.txt")):
        path = directory / name
        if result[key] is None:
            assert not path.exists(), f"{name} exists but the result's {key} is null"
        elif not result["textTruncated"]:
            assert path.read_text(encoding="utf-8") == result[key]


@pytest.mark.parametrize("framing", ["lsp", "ndjson"])
def test_live_workspace_methods_conform(framing: str, tmp_path: Path) -> None:
    workspace = daydream_copy(tmp_path)
    gens = workspace / "data" / "gens"
    with Server(framing, "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange = Exchange(server)
        exchange.request(1, "initialize", {"clientInfo": {"name": "test_protocol.py"}, "protocolVersion": "1.0"})
        init = exchange.result(1)
        assert init["protocolVersion"] == "1.0"
        assert WORKSPACE_METHODS <= set(init["capabilities"]["methods"])
        assert init["workspace"]["root"] == str(workspace.resolve())

        # validateWorkspace: the example is clean
        exchange.request(2, "validateWorkspace", {})
        report = exchange.result(2)
        assert report["root"] == str(workspace.resolve())
        assert (report["valid"], report["errors"], report["warnings"], report["diagnostics"]) == (True, 0, 0, [])
        assert (report["templates"], report["generations"]) == (6, 10)

        # listTemplates: stage order, then id; parsers of drafts and evaluations only
        exchange.request(3, "listTemplates")
        templates = exchange.result(3)["templates"]
        assert [(t["stage"], t["id"]) for t in templates] == [
            ("draft", "creative-synthesis"), ("draft", "systematic-analytical"),
            ("essay", "parsed-from-draft"), ("essay", "synthesis-plain"),
            ("evaluation", "novelty"), ("evaluation", "scientific-rigor"),
        ]
        assert {t["id"]: t.get("parser") for t in templates if t["stage"] != "draft"} == {
            "parsed-from-draft": None, "synthesis-plain": None, "novelty": "in_last_line", "scientific-rigor": "complex",
        }
        assert [t["generator"] for t in templates if t["stage"] == "essay"] == ["copy", "llm"]
        exchange.request(4, "listTemplates", {"stage": "evaluation", "includeInactive": False})
        assert [t["id"] for t in exchange.result(4)["templates"]] == ["novelty", "scientific-rigor"]
        exchange.request(5, "listTemplates", {"stage": "poem"})
        assert exchange.error(5, -32602)["data"]["field"] == "params.stage"

        # renderPrompt: membership first, combo values and workspace values, request values win
        exchange.request(6, "renderPrompt", {"stage": "draft", "genId": "d-creative"})
        rendered = exchange.result(6)
        assert (rendered["templateId"], rendered["templateFile"]) == (
            "creative-synthesis", "data/1_raw/templates/draft/creative-synthesis.txt"
        )
        assert rendered["variables"]["idea_count"] == 3 and len(rendered["variables"]["concepts"]) == 3
        assert "1. Default mode network: " in rendered["prompt"] and "Brainstorm 3 ways" in rendered["prompt"]
        exchange.request(7, "renderPrompt", {"stage": "draft", "genId": "d-creative", "values": {"idea_count": 5}})
        assert "Brainstorm 5 ways" in exchange.result(7)["prompt"]
        # -32011: a template variable nobody provides
        exchange.request(8, "renderPrompt", {
            "stage": "draft", "templateId": "systematic-analytical", "model": "sonnet-4",
        })
        error = exchange.error(8, -32011)
        assert error["data"]["kind"] == "template" and error["data"]["hint"]
        assert error["data"]["file"] == "data/1_raw/templates/draft/systematic-analytical.txt"
        assert error["data"]["line"] == 1
        assert not gens.exists(), "rendering a draft's prompt must not commit anything"

        # runStage: a draft from the membership, with the embedded provider
        exchange.request(9, "runStage", {"stage": "draft", "genId": "d-creative", "runId": "live"})
        draft = exchange.result(9)
        check_committed(workspace, draft)
        assert (draft["status"], draft["reused"], draft["textTruncated"]) == ("success", False, False)
        metadata = draft["metadata"]
        assert (metadata["provider"], metadata["cost_usd"], metadata["model"], metadata["parser"]) == (
            "embedded", 0, "sonnet-4", "essay_idea_last"
        )
        assert metadata["run_id"] == "live"
        assert metadata["files"] == ["prompt.txt", "raw.txt", "parsed.txt", "metadata.json"]
        assert (gens / "draft" / "d-creative" / "prompt.txt").read_text(encoding="utf-8") == rendered["prompt"]
        # ... and again: reused as it is
        exchange.request(10, "runStage", {"stage": "draft", "genId": "d-creative"})
        again = exchange.result(10)
        assert again["reused"] is True and again["metadata"] == metadata and again["parsed"] == draft["parsed"]

        # a copy essay passes the draft's parsed text through
        exchange.request(11, "runStage", {"stage": "essay", "genId": "e-creative-copy", "runId": "live"})
        copy = exchange.result(11)
        check_committed(workspace, copy)
        assert (copy["raw"], copy["parsed"], copy["status"]) == (None, draft["parsed"], "success")
        assert copy["metadata"]["mode"] == "copy" and copy["metadata"]["parent_gen_id"] == "d-creative"
        assert not {"model", "provider", "usage"} & set(copy["metadata"])

        # an evaluation whose essay is in the membership but not generated: the essay comes first
        assert not (gens / "essay" / "e-creative-llm").exists()
        exchange.request(12, "runStage", {"stage": "evaluation", "genId": "v-creative-llm-novelty", "runId": "live"})
        evaluation = exchange.result(12)
        check_committed(workspace, evaluation)
        assert (evaluation["status"], evaluation["score"], evaluation["parsed"]) == ("success", 8.5, "8.5")
        assert evaluation["metadata"]["parser"] == "in_last_line"
        assert evaluation["metadata"]["parent_gen_id"] == "e-creative-llm"
        essay = load_json(gens / "essay" / "e-creative-llm" / "metadata.json")
        assert essay["run_id"] == "live" and essay["parent_gen_id"] == "d-creative"
        essay_text = (gens / "essay" / "e-creative-llm" / "parsed.txt").read_text(encoding="utf-8")
        prompt = (gens / "evaluation" / "v-creative-llm-novelty" / "prompt.txt").read_text(encoding="utf-8")
        assert essay_text in prompt, "an evaluation sees its essay's parsed text as `response`"

        # maxTextLength clips the inline texts, never the files
        exchange.request(13, "runStage", {"stage": "evaluation", "genId": "v-creative-llm-rigor", "maxTextLength": 10})
        rigor = exchange.result(13)
        check_committed(workspace, rigor)
        assert rigor["textTruncated"] is True and len(rigor["raw"].encode("utf-8")) <= 10
        assert (rigor["score"], rigor["metadata"]["parser"]) == (7.0, "complex")

        # errors
        exchange.request(14, "runStage", {"stage": "poem", "genId": "d-creative"})
        assert exchange.error(14, -32602)["data"]["field"] == "params.stage"
        exchange.request(15, "runStage", {"stage": "essay", "genId": "d-creative"})
        assert exchange.error(15, -32602)["data"]["field"] == "params.stage"
        exchange.request(16, "runStage", {
            "stage": "evaluation", "templateId": "novelty", "model": "m", "passThroughFrom": "no-such-essay",
        })
        data = exchange.error(16, -32010)["data"]
        assert (data["kind"], data["field"]) == ("workspace", "params.passThroughFrom") and data["hint"]
        exchange.request(17, "runStage", {
            "stage": "draft", "templateId": "systematic-analytical", "model": "elsewhere:m", "values": {"concepts": []},
        })
        data = exchange.error(17, -32012)["data"]
        assert (data["kind"], data["field"], data["provider"]) == ("unavailable", "params.model", "elsewhere") and data["hint"]
        truncating = {"stage": "draft", "genId": "t-1", "templateId": "systematic-analytical", "model": "m",
                      "promptText": "Write at length about idle minds.", "maxTokens": 2}
        exchange.request(18, "runStage", {**truncating, "failOnTruncation": True})
        data = exchange.error(18, -32014)["data"]
        assert (data["kind"], data["field"]) == ("truncated", "params.maxTokens") and data["hint"]
        exchange.request(19, "runStage", truncating)
        truncated = exchange.result(19)
        check_committed(workspace, truncated)
        assert truncated["reused"] is True, "a truncated generation is committed even when failOnTruncation refuses it"
        assert (truncated["status"], truncated["metadata"]["truncated"], truncated["metadata"]["finish_reason"]) == (
            "truncated", True, "length"
        )
        assert "template_sha256" not in truncated["metadata"], "promptText renders no template"

        # progress: $/progress notifications carry the answer before the response, which is unchanged
        streaming = {"stage": "draft", "templateId": "systematic-analytical", "model": "m",
                     "promptText": "Stream this answer, please."}
        exchange.request(30, "runStage", {**streaming, "genId": "p-1", "progressToken": "tok"})
        streamed = exchange.result(30)
        values = [
            record["message"]["params"]["value"] for record in exchange.records
            if record["method"] == "$/progress" and record["message"]["params"]["token"] == "tok"
        ]
        assert values[0] == {"kind": "begin", "title": "runStage"}
        assert values[-1] == {"kind": "end", "message": "success"}
        assert "".join(value.get("text", "") for value in values[1:-1]) == streamed["raw"]
        exchange.request(31, "runStage", {**streaming, "genId": "p-2"})
        plain = exchange.result(31)
        assert (plain["raw"], plain["parsed"], plain["status"]) == (streamed["raw"], streamed["parsed"], streamed["status"])
        exchange.request(32, "runStage", {**streaming, "genId": "p-1", "progressToken": 32})
        assert exchange.result(32)["reused"] is True
        assert [r["message"]["params"]["value"]["kind"] for r in exchange.records if r["method"] == "$/progress"
                and r["message"]["params"]["token"] == 32] == ["begin", "end"]

        # a catalog change is picked up: an inactive template is listed unless includeInactive is false
        catalog = workspace / "data" / "1_raw" / "draft_templates.csv"
        catalog.write_text(catalog.read_text(encoding="utf-8").replace(",,llm,true", ",,llm,false"), encoding="utf-8")
        exchange.request(20, "listTemplates", {"stage": "draft", "includeInactive": False})
        assert [t["id"] for t in exchange.result(20)["templates"]] == ["creative-synthesis"]
        exchange.request(21, "listTemplates", {"stage": "draft", "includeInactive": True})
        assert [t["active"] for t in exchange.result(21)["templates"]] == [True, False]
        exchange.request(22, "validateWorkspace")
        report = exchange.result(22)
        assert (report["valid"], report["errors"], report["warnings"]) == (True, 0, 1)
        assert [d["code"] for d in report["diagnostics"]] == ["membership.inactive-template"]

        exchange.request(23, "shutdown")
        assert exchange.result(23) is None
        exchange.server.notify("exit")
        assert server.wait_exit() == 0

    assert server.framing_problems == []
    assert exchange.pending == {}, f"requests never answered: {exchange.pending}"
    transcript = tmp_path / f"workspace-{framing}.jsonl"
    write_jsonl(transcript, exchange.records)
    assert validate_transcript(transcript) == []

    count, found = metadata_problems(workspace)
    assert count == 8, sorted(str(p.relative_to(workspace)) for p in gens.glob("*/*"))
    assert found == [], "\n".join(found)
    assert not list(gens.glob("*/.tmp-*")), "temporary directories left behind"


def test_storage_error_when_the_call_log_cannot_be_opened(tmp_path: Path) -> None:
    workspace = daydream_copy(tmp_path)
    (workspace / ".stagerunner").write_text("not a directory")
    with Server("ndjson", "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange = Exchange(server)
        exchange.request(1, "listTemplates", {})
        error = exchange.error(1, -32013)
        assert error["data"]["hint"]
        exchange.request(2, "runStage", {"stage": "draft", "genId": "d-creative"})
        exchange.error(2, -32013)
        server.close_input()
        assert server.wait_exit() == 0
    assert all(validate_server_message(r["method"], r["message"]) == [] for r in exchange.records)
    assert not (workspace / "data" / "gens").exists()


# ---------------------------------------------------------------------------------------------
# Live conformance of runTask and executeStage, in a copy of the research-task example


def next_server_request(exchange: Exchange, method: str) -> dict[str, Any]:
    """Reads messages until the server sends a request of `method`; returns it."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"the server sent no {method} request"
        message = exchange.receive()
        if isinstance(message, dict) and message.get("method") == method and "id" in message:
            return message


def next_server_message(exchange: Exchange, method: str) -> dict[str, Any]:
    """Reads messages until the server sends a request or notification of `method`; returns it."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"the server sent no {method}"
        message = exchange.receive()
        if isinstance(message, dict) and message.get("method") == method:
            return message


def answer(exchange: Exchange, request: dict[str, Any], member: dict[str, Any]) -> None:
    """Answers a server-to-client request, after checking the answer against the protocol."""
    response = {"jsonrpc": "2.0", "id": request["id"], **member}
    assert problems(schema_validator("response"), response) == []
    if "result" in response:
        spec = METHODS[request["method"]]
        assert problems(validator(result_uri(spec)), response["result"]) == []
    exchange.server.send(response)


@pytest.mark.parametrize("framing", ["lsp", "ndjson"])
def test_live_task_methods_conform(framing: str, tmp_path: Path) -> None:
    workspace = research_copy(tmp_path)
    run_dir = workspace / "data" / "tasks" / "research-summary" / "live"
    with Server(framing, "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange = Exchange(server)
        exchange.request(1, "initialize", {
            "clientInfo": {"name": "test_protocol.py"}, "protocolVersion": "1.0",
            "capabilities": {"stageHandlers": ["quality", "grader"]},
        })
        assert {"runTask"} <= set(exchange.result(1)["capabilities"]["methods"])

        # the research example: the first draft fails its schema, one refinement cycle fixes it
        exchange.request(2, "runTask", {
            "task": "tasks/summary.task.yaml", "input": {"topic": "Tide pools of the Atlantic"}, "runId": "live",
        })
        result = exchange.result(2)
        assert (result["ok"], result["refinementAttempts"]) == (True, 1)
        assert "failedStage" not in result and "error" not in result
        context = result["context"]
        assert context["meta"] == {
            "taskName": "research-summary", "runId": "live", "workDir": "data/tasks/research-summary/live",
            "modelConfig": {},
        }
        assert context["data"]["ingestion"] == {"topic": "Tide pools of the Atlantic", "keywords": ["tide", "pools", "atlantic"]}
        assert context["flags"]["validationFailed"] is False and context["flags"]["keywordCount"] == 3
        assert (context["availableModels"], context["currentModel"]) == (["default"], "default")
        logs = [(e["stage"], e["refinementCycle"], e.get("ok"), e.get("reason")) for e in result["logs"]]
        assert ("refinement-trigger", 1, None, "validation-failed-flag") in logs
        assert ("preProcessing", 0, None, "no-handler") in logs
        assert ("ingestion", 1, None, "refinement-cycle") in logs
        assert ("critique", 0, None, "validation-passed") not in logs
        assert [e["stage"] for e in result["logs"] if e.get("preRefinement")] == ["critique", "refine"]
        assert all(e["ok"] for e in result["logs"] if "ok" in e)
        assert [m["stage"] for m in result["llmMetrics"]] == ["inference", "inference", "critique", "refine"]
        assert {m["provider"] for m in result["llmMetrics"]} == {"embedded"}
        assert load_json(run_dir / "summary.json")["confidence"] == 0.72
        assert "ingested topic" in (run_dir / "logs" / "stage-ingestion.log").read_text(encoding="utf-8")

        # a stage the client handles: executeStage goes out, its answer comes back in
        graded = {"name": "graded", "stages": {
            "ingestion": {"template": {"text": "draft about {{ input.topic }}"}},
            "validateQuality": {"client": "quality"},
        }}
        exchange.request(3, "runTask", {"task": graded, "input": {"topic": "kelp"}, "runId": "graded-1"})
        request = next_server_request(exchange, "executeStage")
        params = request["params"]
        assert (params["handler"], params["stage"]) == ("quality", "validateQuality")
        assert params["context"]["output"] == "draft about kelp"
        assert params["context"]["currentStage"] == "validateQuality"
        assert params["context"]["data"] == {"seed": {"topic": "kelp"}, "ingestion": "draft about kelp"}
        answer(exchange, request, {"result": {"output": {"grade": "A"}, "flags": {"validationFailed": False}}})
        result = exchange.result(3)
        assert result["ok"] is True
        assert result["context"]["data"]["validateQuality"] == {"grade": "A"}
        assert result["context"]["output"] == "draft about kelp", "a validation stage's output is not chained"

        # the client answers with an error: the stage fails with ClientStageError
        exchange.request(4, "runTask", {"task": {"stages": {"critique": {"client": "grader"}}}})
        request = next_server_request(exchange, "executeStage")
        answer(exchange, request, {"error": {"code": -32803, "message": "grader crashed", "data": {"why": "test"}}})
        result = exchange.result(4)
        assert (result["ok"], result["failedStage"]) == (False, "critique")
        assert result["error"] == {
            "name": "ClientStageError",
            "message": "the client's handler 'grader' answered executeStage with error -32803: grader crashed",
            "data": {"why": "test"},
        }

        # a handler the client did not declare: the stage fails without asking the client
        exchange.request(5, "runTask", {"task": {"stages": {"refine": {"client": "nobody"}}}})
        result = exchange.result(5)
        assert (result["ok"], result["failedStage"], result["error"]["name"]) == (False, "refine", "ClientStageError")

        # an answer that breaks the {output, flags} contract
        exchange.request(6, "runTask", {"task": {"stages": {"integration": {"client": "quality"}}}})
        request = next_server_request(exchange, "executeStage")
        exchange.server.send({"jsonrpc": "2.0", "id": request["id"], "result": {"output": 1, "flags": ["x"]}})
        result = exchange.result(6)
        assert (result["failedStage"], result["error"]["name"]) == ("integration", "ContractError")

        # a task file that cannot be used: -32015, naming the file and the place
        exchange.request(7, "runTask", {"task": "tasks/missing.yaml"})
        data = exchange.error(7, -32015)["data"]
        assert (data["kind"], data["file"]) == ("task", "tasks/missing.yaml")
        exchange.request(8, "runTask", {"task": {"stages": {"inference": {"llm": {"temperature": 3}}}}})
        data = exchange.error(8, -32015)["data"]
        assert (data["file"], data["path"]) == ("<inline>", "stages.inference.llm.temperature")
        exchange.request(9, "runTask", {"task": {"stages": {}}, "maxRefinements": 101})
        assert exchange.error(9, -32602)["data"]["field"] == "params.maxRefinements"

        # a client stage past its timeout: the server cancels executeStage and ignores a late answer
        exchange.request(11, "runTask", {
            "task": {"stages": {"validateQuality": {"client": "quality", "timeout": 0.3}}}, "maxRefinements": 0,
        })
        request = next_server_request(exchange, "executeStage")
        cancel = next_server_message(exchange, "$/cancelRequest")
        assert cancel["params"] == {"id": request["id"]} and "id" not in cancel
        answer(exchange, request, {"error": {"code": -32800, "message": "Request cancelled"}})
        result = exchange.result(11)
        assert (result["ok"], result["failedStage"], result["error"]["name"]) == (
            False, "validateQuality", "StageTimeoutError"
        )

        exchange.request(10, "shutdown")
        assert exchange.result(10) is None
        exchange.server.notify("exit")
        assert server.wait_exit() == 0

    assert server.framing_problems == []
    assert exchange.pending == {}, f"requests never answered: {exchange.pending}"
    transcript = tmp_path / f"task-{framing}.jsonl"
    write_jsonl(transcript, exchange.records)
    assert validate_transcript(transcript) == []
    assert sum(1 for r in exchange.records if r["method"] == "executeStage") == 4
    assert sum(1 for r in exchange.records if r["method"] == "$/cancelRequest") == 1


def test_initialize_rejects_bad_stage_handlers() -> None:
    with Server("ndjson") as server:
        exchange = Exchange(server)
        exchange.request(1, "initialize", {"capabilities": {"stageHandlers": ["quality", ""]}})
        assert exchange.error(1, -32602)["data"]["field"] == "params.capabilities.stageHandlers[1]"
        exchange.request(2, "initialize", {"capabilities": {"stageHandlers": "quality"}})
        assert exchange.error(2, -32602)["data"]["field"] == "params.capabilities.stageHandlers"
        exchange.request(3, "initialize", {"capabilities": {"stageHandlers": ["quality"]}})
        exchange.result(3)
    assert all(validate_server_message(r["method"], r["message"]) == [] for r in exchange.records)


# ---------------------------------------------------------------------------------------------
# Live conformance of the job methods, in a copy of the research-task example

#: A task whose command fails until `ok.flag` exists in the task's folder.
FLAKY_TASK = """name: flaky
stages:
  ingestion:
    command: [python3, -c, "import json, os, sys; sys.stdin.read(); os.path.exists('ok.flag') or sys.exit('no ok.flag yet'); print(json.dumps({'output': 'fixed', 'flags': {}}))"]
"""
#: A task whose command sleeps 30 s, unless `fast.flag` exists in the task's folder.
SLOW_TASK = """name: slow
stages:
  ingestion:
    command: [python3, -c, "import json, os, sys, time; sys.stdin.read(); os.path.exists('fast.flag') or time.sleep(30); print(json.dumps({'output': 'slept', 'flags': {}}))"]
"""
#: A task whose command takes one second.
NAP_TASK = """name: nap
stages:
  ingestion:
    command: [python3, -c, "import json, sys, time; sys.stdin.read(); time.sleep(1); print(json.dumps({'output': 'rested', 'flags': {}}))"]
"""


def job_workspace(directory: Path) -> Path:
    """A copy of the research-task example with the flaky, slow and nap tasks added."""
    workspace = research_copy(directory)
    for name, text in (("flaky", FLAKY_TASK), ("slow", SLOW_TASK), ("nap", NAP_TASK)):
        (workspace / "tasks" / f"{name}.task.yaml").write_text(text, encoding="utf-8")
    return workspace


def apply_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902 add, replace and remove on object members: what statusChanged patches use."""
    result = json.loads(json.dumps(document))
    for operation in operations:
        names = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
        if not names:
            result = operation["value"]
            continue
        parent = result
        for name in names[:-1]:
            parent = parent[name]
        if operation["op"] == "remove":
            del parent[names[-1]]
        else:
            assert operation["op"] == "add" or names[-1] in parent, f"replace of a missing member: {operation}"
            parent[names[-1]] = operation["value"]
    return result


class StatusFollower:
    """What a client of subscribeStatus holds: per subscription and job, the document and its rev.

    Every statusChanged is checked: its rev only grows per job, a patch applies only to the
    document at exactly baseRev (a client would call getStatus otherwise; the server never sends
    a patch the client cannot apply, so here that is a failure), and the events are kept in order.
    """

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], Any] = {}
        self.events: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.notifications = 0

    def baseline(self, subscription: str, result: dict[str, Any], job_id: str | None = None) -> None:
        if job_id is not None:
            self.documents[(subscription, job_id)] = result["snapshot"]
        else:
            for key, document in result["snapshot"]["jobs"].items():
                self.documents[(subscription, key)] = document

    def see(self, message: Any) -> None:
        if not isinstance(message, dict) or message.get("method") != "statusChanged":
            return
        self.notifications += 1
        params = message["params"]
        key = (params["subscriptionId"], params["jobId"])
        held = self.documents.get(key)
        if held is not None:
            assert params["rev"] > held["rev"], f"rev went from {held['rev']} to {params['rev']}"
            assert params["rev"] == held["rev"] + params["coalesced"], "coalesced counts the revisions since the last"
        if "snapshot" in params:
            document = params["snapshot"]
        else:
            assert held is not None and params["baseRev"] == held["rev"], (
                f"a patch from rev {params['baseRev']} for a client holding {held and held['rev']}"
            )
            document = apply_patch(held, params["patch"])
        assert document["rev"] == params["rev"] and document["id"] == params["jobId"]
        self.documents[key] = document
        events = params["events"] if params["coalesced"] > 1 else [params["event"]]
        assert events[-1] == params["event"]
        if params["coalesced"] > 1:
            assert len(events) == params["coalesced"], "no stage event is dropped below 2,000"
        self.events.setdefault(key, []).extend(events)

    def transitions(self, subscription: str, job_id: str) -> list[tuple[str, ...]]:
        """The job and task events of a job, as (type, state) or (type, task, state)."""
        return [
            (e["type"], e["state"]) if e["type"] == "job" else (e["type"], e["task"], e["state"])
            for e in self.events.get((subscription, job_id), [])
            if e["type"] in ("job", "task")
        ]


def follow(exchange: Exchange, until: Any, what: str) -> dict[str, Any]:
    """The first message received so far, or read from now on, for which `until(message)` holds."""
    for record in exchange.records:
        if until(record["message"]):
            return record["message"]
    deadline = time.monotonic() + 3 * TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        message = exchange.receive()
        if until(message):
            return message


def job_event(subscription: str, job_id: str, **event: Any) -> Any:
    """A predicate: a statusChanged of `subscription` for `job_id` whose events include `event`."""

    def matches(message: Any) -> bool:
        if not isinstance(message, dict) or message.get("method") != "statusChanged":
            return False
        params = message["params"]
        events = params["events"] if params["coalesced"] > 1 else [params["event"]]
        return (params["subscriptionId"], params["jobId"]) == (subscription, job_id) and any(
            all(e.get(k) == v for k, v in event.items()) for e in events
        )

    return matches


def check_job_folders(workspace: Path, expected: int) -> list[Any]:
    """Every jobs/*/tasks-status.json validates against status.json and matches its folder."""
    check = schema_validator("status")
    documents = []
    paths = sorted(workspace.glob("jobs/*/tasks-status.json"))
    assert len(paths) == expected, [str(p) for p in paths]
    for path in paths:
        document = load_json(path)
        relative = path.relative_to(workspace)
        assert problems(check, document) == [], f"{relative}: {problems(check, document)}"
        assert document["id"] == path.parent.name
        assert (path.parent / "input.json").is_file() and (path.parent / "job.json").is_file()
        assert_relative_paths(document, str(relative))
        for name, task in document["tasks"].items():
            for artifact in task["artifacts"]:
                assert (path.parent / artifact).is_file(), f"{relative}: {name} lists {artifact}"
            if task["state"] == "done":
                assert (path.parent / "tasks" / name / "output.json").is_file()
                assert (path.parent / "tasks" / name / "execution-logs.json").is_file()
        assert not list(path.parent.glob(".*tmp*")), f"{relative}: temporary files left behind"
        documents.append(document)
    return documents


@pytest.mark.parametrize("framing", ["lsp", "ndjson"])
def test_live_job_methods_conform(framing: str, tmp_path: Path) -> None:
    workspace = job_workspace(tmp_path)
    tasks_dir = workspace / "tasks"
    follower = StatusFollower()
    with Server(framing, "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange = Exchange(server)
        exchange.observers.append(follower.see)
        exchange.request(1, "initialize", {"clientInfo": {"name": "test_protocol.py"}, "protocolVersion": "1.0"})
        assert JOB_METHODS <= set(exchange.result(1)["capabilities"]["methods"])

        # every job, as patches: nothing runs yet
        exchange.request(2, "subscribeStatus", {"delivery": "patch"})
        every = exchange.result(2)
        assert (every["rev"], every["snapshot"]) == (0, {"jobs": {}})
        follower.baseline(every["subscriptionId"], every)
        all_jobs = every["subscriptionId"]

        # the research pipeline: answered at once, then followed as snapshots too
        exchange.request(3, "runPipeline", {
            "pipeline": "pipelines/research.pipeline.yaml", "input": {"topic": "Tide pools of the Atlantic"},
        })
        research = exchange.result(3)["jobId"]
        exchange.request(4, "subscribeStatus", {"jobId": research})
        one = exchange.result(4)
        assert one["rev"] == one["snapshot"]["rev"] and one["snapshot"]["id"] == research
        follower.baseline(one["subscriptionId"], one, research)
        for subscription in (all_jobs, one["subscriptionId"]):
            follow(exchange, job_event(subscription, research, type="job", state="done"), "the research job")

        # the lifecycle of README section 8.10: pending, running, each task running then done, done
        assert follower.transitions(all_jobs, research) == [
            ("job", "pending"), ("job", "running"),
            ("task", "summary", "running"), ("task", "summary", "refining"), ("task", "summary", "done"),
            ("task", "review", "running"), ("task", "review", "done"),
            ("job", "done"),
        ]
        stages = [(e["task"], e["stage"], e["state"]) for e in follower.events[(all_jobs, research)] if e["type"] == "stage"]
        assert stages[:2] == [("summary", "ingestion", "started"), ("summary", "ingestion", "completed")]
        assert stages[-2:] == [("review", "integration", "started"), ("review", "integration", "completed")]

        # getStatus: the document the patches and the snapshots built, and computeTaskStage
        exchange.request(5, "getStatus", {"jobId": research})
        status = exchange.result(5)
        document = status["status"]
        assert follower.documents[(all_jobs, research)] == document, "the patches do not reproduce getStatus"
        assert follower.documents[(one["subscriptionId"], research)] == document
        assert status["taskStages"] == {"summary": None, "review": None}
        assert (document["state"], document["current"], document["currentStage"]) == ("done", None, None)
        assert document["progress"] == {"tasksDone": 2, "tasksTotal": 2, "percent": 100}
        assert document["tasks"]["summary"]["refinementAttempts"] == 1
        assert document["tasks"]["summary"]["modelCalls"] == 4 and document["tasks"]["review"]["modelCalls"] == 1
        assert document["tokenUsage"]["totalTokens"] == sum(t["tokenUsage"]["totalTokens"] for t in document["tasks"].values())
        assert "tasks/review/review.md" in document["tasks"]["review"]["artifacts"]

        # getArtifact: a file of the job, and only of the job
        exchange.request(6, "getArtifact", {"jobId": research, "path": "tasks/review/review.md"})
        artifact = exchange.result(6)
        review = (workspace / "jobs" / research / "tasks" / "review" / "review.md").read_bytes()
        assert (artifact["text"].encode("utf-8"), artifact["size"]) == (review, len(review))
        exchange.request(7, "getArtifact", {"jobId": research, "path": "../../stagerunner.yaml"})
        assert exchange.error(7, -32016)["data"] == {"kind": "job", "reason": "invalid_path", "jobId": research}
        exchange.request(8, "getArtifact", {"jobId": "20990101T000000Z-0000", "path": "tasks-status.json"})
        assert exchange.error(8, -32016)["data"]["reason"] == "not_found"

        # listJobs
        exchange.request(9, "listJobs", {"state": "done"})
        assert [job["id"] for job in exchange.result(9)["jobs"]] == [research]
        exchange.request(10, "listJobs", {"state": "finished"})
        assert exchange.error(10, -32602)["data"]["field"] == "params.state"

        # a task that fails: the job fails where it did; retryTask reruns it once it can succeed
        flaky_pipeline = {"name": "flaky", "tasks": [
            {"task": "tasks/flaky.task.yaml"}, {"name": "review", "task": "tasks/review.task.yaml", "input": "seed"},
        ]}
        exchange.request(11, "runPipeline", {
            "pipeline": flaky_pipeline, "input": {"title": "Kelp", "findings": ["a", "b"], "confidence": 0.5},
            "options": {"wait": True},
        })
        waited = exchange.result(11)
        flaky, failed = waited["jobId"], waited["status"]
        assert (failed["state"], failed["current"], failed["currentStage"]) == ("failed", "flaky", "ingestion")
        assert failed["tasks"]["flaky"]["failedStage"] == "ingestion" and failed["tasks"]["review"]["state"] == "pending"
        assert (failed["error"]["name"], failed["error"]["task"], failed["error"]["stage"]) == ("CommandError", "flaky", "ingestion")
        exchange.request(12, "getStatus", {"jobId": flaky})
        assert exchange.result(12)["taskStages"] == {"flaky": "ingestion", "review": None}
        (tasks_dir / "ok.flag").write_text("", encoding="utf-8")
        exchange.request(13, "retryTask", {"jobId": flaky, "task": "flaky"})
        assert exchange.result(13) == {"jobId": flaky}
        follow(exchange, job_event(all_jobs, flaky, type="job", state="done"), "the retried job")
        retried = follower.documents[(all_jobs, flaky)]
        assert (retried["state"], retried["tasks"]["flaky"]["attempts"], retried["tasks"]["flaky"]["failedStage"]) == ("done", 2, None)
        assert follower.transitions(all_jobs, flaky) == [
            ("job", "pending"), ("job", "running"), ("task", "flaky", "running"), ("task", "flaky", "failed"),
            ("job", "failed"),
            ("job", "pending"), ("job", "running"), ("task", "flaky", "running"), ("task", "flaky", "done"),
            ("task", "review", "running"), ("task", "review", "done"), ("job", "done"),
        ]

        # cancel mid-stage: the job shows where; resumeJob continues it
        exchange.request(14, "runPipeline", {"pipeline": {"name": "slow", "tasks": [{"task": "tasks/slow.task.yaml"}]}})
        slow = exchange.result(14)["jobId"]
        follow(exchange, job_event(all_jobs, slow, type="stage", stage="ingestion", state="started"), "the slow stage")
        started = time.monotonic()
        exchange.request(15, "cancelJob", {"jobId": slow})
        cancelled = exchange.result(15)["status"]
        assert time.monotonic() - started < 5, "cancelling stops the command at once"
        assert cancelled["state"] == "cancelled" and cancelled["tasks"]["slow"]["state"] == "cancelled"
        assert (cancelled["cancelled"]["task"], cancelled["cancelled"]["stage"]) == ("slow", "ingestion")
        (tasks_dir / "fast.flag").write_text("", encoding="utf-8")
        exchange.request(16, "resumeJob", {"jobId": slow})
        assert exchange.result(16) == {"jobId": slow}
        follow(exchange, job_event(all_jobs, slow, type="job", state="done"), "the resumed job")

        # errors
        exchange.request(17, "cancelJob", {"jobId": research})
        assert exchange.error(17, -32016)["data"]["reason"] == "invalid_state"
        exchange.request(18, "resumeJob", {"jobId": research})
        assert exchange.error(18, -32016)["data"]["reason"] == "invalid_state"
        exchange.request(19, "retryTask", {"jobId": research, "task": "nope"})
        assert exchange.error(19, -32016)["data"]["reason"] == "not_found"
        exchange.request(20, "runPipeline", {"pipeline": {"tasks": [{"task": "tasks/summary.task.yaml", "input": {"task": "later"}}]}})
        data = exchange.error(20, -32015)["data"]
        assert (data["kind"], data["file"], data["path"]) == ("pipeline", "<inline>", "tasks[0].input.task")
        exchange.request(21, "runPipeline", {"pipeline": "pipelines/missing.pipeline.yaml"})
        assert exchange.error(21, -32015)["data"] == {"kind": "pipeline", "file": "pipelines/missing.pipeline.yaml"}
        exchange.request(22, "runPipeline", {"pipeline": 5})
        assert exchange.error(22, -32602)["data"]["field"] == "params.pipeline"
        exchange.request(23, "unsubscribeStatus", {"subscriptionId": one["subscriptionId"]})
        assert exchange.result(23) == {}
        exchange.request(24, "unsubscribeStatus", {"subscriptionId": one["subscriptionId"]})
        assert exchange.error(24, -32602)["data"]["field"] == "params.subscriptionId"

        exchange.request(25, "shutdown")
        assert exchange.result(25) is None
        exchange.server.notify("exit")
        assert server.wait_exit() == 0
        with pytest.raises(EOFError):
            while True:
                exchange.receive()

    assert server.framing_problems == []
    assert exchange.pending == {}, f"requests never answered: {exchange.pending}"
    transcript = tmp_path / f"jobs-{framing}.jsonl"
    write_jsonl(transcript, exchange.records)
    assert validate_transcript(transcript) == []
    assert follower.notifications > 40
    documents = {document["id"]: document for document in check_job_folders(workspace, 3)}
    assert documents[research] == document, "the file on disk is the document getStatus answered"
    assert {d["state"] for d in documents.values()} == {"done"}


def start_job(server: Server, pipeline: dict[str, Any]) -> tuple[Exchange, StatusFollower, str]:
    """Subscribes to every job, starts `pipeline` and waits until its first stage runs."""
    exchange = Exchange(server)
    follower = StatusFollower()
    exchange.observers.append(follower.see)
    exchange.request("sub", "subscribeStatus", {})
    follower.baseline("sub-1", exchange.result("sub"))
    exchange.request("run", "runPipeline", {"pipeline": pipeline})
    job_id = exchange.result("run")["jobId"]
    follow(exchange, job_event("sub-1", job_id, type="stage", state="started"), "the first stage")
    return exchange, follower, job_id


NAP = {"name": "nap", "tasks": [{"task": "tasks/nap.task.yaml"}]}
SLOW = {"name": "slow", "tasks": [{"task": "tasks/nap.task.yaml"}, {"task": "tasks/slow.task.yaml"}]}


@pytest.mark.parametrize("ending", ["end-of-input", "SIGTERM"])
def test_running_jobs_finish_at_end_of_input_and_sigterm(ending: str, tmp_path: Path) -> None:
    workspace = job_workspace(tmp_path)
    with Server("ndjson", "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange, follower, job_id = start_job(server, NAP)
        if ending == "SIGTERM":
            server.process.send_signal(signal.SIGTERM)
        else:
            server.close_input()
        assert server.wait_exit(timeout=3 * TIMEOUT) == 0
        with pytest.raises(EOFError):
            while True:
                exchange.receive()
    assert all(validate_server_message(r["method"], r["message"]) == [] for r in exchange.records)
    (document,) = check_job_folders(workspace, 1)
    assert (document["state"], document["tasks"]["nap"]["state"]) == ("done", "done")
    # The connection stays open until the job has finished: its subscriber saw the end.
    assert follower.documents[("sub-1", job_id)]["rev"] == document["rev"]
    assert follower.documents[("sub-1", job_id)]["state"] == "done"


@pytest.mark.parametrize("ending", ["SIGINT", "exit", "kill"])
def test_running_jobs_are_cancelled_or_interrupted_and_resume(ending: str, tmp_path: Path) -> None:
    workspace = job_workspace(tmp_path)
    with Server("ndjson", "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange, follower, job_id = start_job(server, SLOW)
        follow(exchange, job_event("sub-1", job_id, type="task", task="slow", state="running"), "the slow task")
        started = time.monotonic()
        if ending == "SIGINT":
            server.process.send_signal(signal.SIGINT)
        elif ending == "exit":
            server.notify("exit")
        else:
            time.sleep(0.5)  # the document's writes catch up with the notifications
            server.process.kill()
        status = server.wait_exit()
        assert time.monotonic() - started < 5, "running jobs are cancelled, not waited for"
        assert status == {"SIGINT": 0, "exit": 1, "kill": -signal.SIGKILL}[ending]
    (document,) = check_job_folders(workspace, 1)
    if ending == "kill":
        assert document["state"] == "running" and document["tasks"]["slow"]["state"] == "running"
    else:
        assert document["state"] == "cancelled" and document["tasks"]["slow"]["state"] == "cancelled"
        assert (document["cancelled"]["task"], document["cancelled"]["stage"]) == ("slow", "ingestion")
    assert document["tasks"]["nap"]["state"] == "done"

    # A new session: a job left running is interrupted; either way resumeJob finishes it without
    # running the finished task again.
    (workspace / "tasks" / "fast.flag").write_text("", encoding="utf-8")
    with Server("ndjson", "--workspace", str(workspace), cwd=tmp_path) as server:
        exchange = Exchange(server)
        follower = StatusFollower()
        exchange.observers.append(follower.see)
        exchange.request(1, "getStatus", {"jobId": job_id})
        before = exchange.result(1)["status"]
        assert before["state"] == ("interrupted" if ending == "kill" else "cancelled")
        exchange.request(2, "subscribeStatus", {"jobId": job_id, "delivery": "patch"})
        follower.baseline("sub-1", exchange.result(2), job_id)
        exchange.request(3, "resumeJob", {"jobId": job_id})
        assert exchange.result(3) == {"jobId": job_id}
        follow(exchange, job_event("sub-1", job_id, type="job", state="done"), "the resumed job")
        assert ("task", "nap", "running") not in follower.transitions("sub-1", job_id)
        server.close_input()
        assert server.wait_exit() == 0
    assert all(validate_server_message(r["method"], r["message"]) == [] for r in exchange.records)
    (document,) = check_job_folders(workspace, 1)
    assert document["state"] == "done"
    assert (document["tasks"]["nap"]["attempts"], document["tasks"]["slow"]["attempts"]) == (1, 2)


def test_a_slow_subscriber_gets_coalesced_changes_ending_with_the_final_state(tmp_path: Path) -> None:
    """A client that does not read for a while never slows the job and still ends with its final state."""
    workspace = job_workspace(tmp_path)
    process = subprocess.Popen(
        [str(server_binary()), "serve", "--workspace", str(workspace)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        # Three jobs: more snapshots than the pipe and the server's output queue (64 KiB) hold.
        requests = [{"jsonrpc": "2.0", "id": 1, "method": "subscribeStatus", "params": {}}] + [
            {"jsonrpc": "2.0", "id": 2 + n, "method": "runPipeline", "params": {
                "pipeline": "pipelines/research.pipeline.yaml", "input": {"topic": f"Tide pools {n}"}}}
            for n in range(3)
        ]
        process.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
        process.stdin.flush()
        # Not reading: the snapshots fill the pipe while the job runs on.
        deadline = time.monotonic() + 3 * TIMEOUT
        while len(list(workspace.glob("jobs/*/tasks/review/output.json"))) < 3:
            assert time.monotonic() < deadline, "the job does not go on while its subscriber does not read"
            time.sleep(0.05)
        time.sleep(0.3)
        process.stdin.close()
        messages = [json.loads(line) for line in process.stdout]
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    names = {1: "subscribeStatus", 2: "runPipeline", 3: "runPipeline", 4: "runPipeline"}
    for message in messages:
        method = message.get("method") or names[message["id"]]
        assert validate_server_message(method, message) == [], message
    notes = [m["params"] for m in messages if m.get("method") == "statusChanged"]
    assert any(note["coalesced"] > 1 for note in notes), "changes were merged while the client did not read"
    documents = {document["id"]: document for document in check_job_folders(workspace, 3)}
    for job_id, document in documents.items():
        mine = [note for note in notes if note["jobId"] == job_id]
        revs = [note["rev"] for note in mine]
        assert revs == sorted(set(revs))
        assert mine[-1]["snapshot"]["state"] == "done" and mine[-1]["snapshot"] == document
        assert sum(note["coalesced"] for note in mine) == document["rev"], "coalesced counts every change"
