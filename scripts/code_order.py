#!/usr/bin/env python3
"""Writes Sources/stagerunner/serving.order, the order in which the release link lays out code.

The kernel maps a file's code 64 KB at a time around each page first run (fault-around), so a
server that runs a few hundred small functions scattered over 23 MB of code keeps megabytes of
it resident. `serve` drops the code start-up ran (sr_drop_startup_pages); this file puts
what serving runs next to each other, so that what comes back is the code itself and little
around it. The release build compiles every function into a section of its own
(-function-sections) and lld places the sections named here first, in this order.

How: the release binary runs under callgrind, which splits its profile where serving starts
(--dump-before=sr_drop_startup_pages). The functions run after that point while a client
sends initialize, initialized and ping come first; then those that renderPrompt, runStage,
runTask, validateWorkspace, listJobs and listTemplates add; names, not addresses, so a rebuild keeps the order.
A function renamed since is ignored by the link (--no-warn-symbol-ordering): run `make
code-order` after large changes, and commit the file.

usage: code_order.py [STAGERUNNER]   (default: .build/release/stagerunner)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Benchmarks/thresholds"))
from check import stripped_copy  # noqa: E402  (valgrind 3.19 cannot read Swift's DWARF 5)
TARGET = ROOT / "Sources/stagerunner/serving.order"
EXAMPLE = ROOT / "examples/daydream"
TASK = {"stages": {"promptTemplating": {"template": "task.j2"}, "inference": {"llm": "embedded:order"},
                   "parsing": {"parse": "json"}, "integration": {"write": "out.json"}}}


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read(stream) -> dict:
    length = None
    while True:
        line = stream.readline()
        if not line:
            raise SystemExit("code_order.py: the server closed its output")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length"):
            length = int(line.split(b":")[1])
    return json.loads(stream.read(length))


def serving_functions(binary: Path, requests: list) -> list:
    """The functions run after start-up while `requests` are served, in the order first seen."""
    base = Path(tempfile.mkdtemp(prefix="code-order-"))
    try:
        workspace = base / "ws"
        shutil.copytree(EXAMPLE, workspace)
        (workspace / "task.j2").write_text("Write a research summary about {{ input.topic }}.\n")
        stripped = stripped_copy(binary, base)
        environment = dict(os.environ)
        environment.pop("STAGERUNNER_DEFAULT_PROVIDER", None)
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no", "--compress-pos=no",
             "--dump-before=sr_drop_startup_pages", f"--callgrind-out-file={base}/profile",
             f"--log-file={base}/valgrind.log", str(stripped), "serve", "--workspace", str(workspace)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment)
        for number, (method, params) in enumerate(requests, start=1):
            message = {"jsonrpc": "2.0", "method": method}
            if params is not None:
                message["params"] = params
            if not method.startswith("initialized"):
                message["id"] = number
            server.stdin.write(frame(message))
            server.stdin.flush()
            if "id" in message:
                while "id" not in (response := read(server.stdout)):
                    pass
                if "error" in response:
                    raise SystemExit(f"code_order.py: {method} failed: {response['error']}")
        server.stdin.close()
        server.wait(timeout=300)
        # callgrind writes start-up, up to the drop, as profile.1 and the rest (serving, and the
        # exit) as profile at exit.
        serving = base / "profile"
        if not (base / "profile.1").exists() or not serving.exists():
            raise SystemExit(f"code_order.py: no profile after start-up in {sorted(p.name for p in base.iterdir())}; "
                             f"valgrind's log:\n{(base / 'valgrind.log').read_text()[-1500:]}")
        names = []
        seen = set()
        for line in serving.read_text(errors="replace").splitlines():
            if line.startswith(("fn=", "cfn=")):
                name = line.split("=", 1)[1]
                if name not in seen and not name.startswith("0x"):
                    seen.add(name)
                    names.append(name)
        return names
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".build/release/stagerunner").resolve()
    if not shutil.which("valgrind"):
        raise SystemExit("code_order.py: valgrind is not installed (make deps installs it)")
    opening = [("initialize", {"processId": None, "capabilities": {}}), ("initialized", {}), ("ping", None)]
    values = {"concepts": [{"name": "Default mode network"}]}
    draft = {"stage": "draft", "templateId": "systematic-analytical", "model": "embedded:order", "values": values}
    work = opening + [
        ("renderPrompt", draft),
        ("runStage", dict(draft, genId="code-order")),
        ("runTask", {"task": TASK, "input": {"topic": "Tide pools"}, "runId": "code-order"}),
        ("validateWorkspace", {}),
        ("listJobs", {}),
        ("listTemplates", {}),
        ("ping", None),
    ]
    idle = serving_functions(binary, opening)
    busy = serving_functions(binary, work)
    known = set(idle)
    order = idle + [name for name in busy if name not in known]
    # Symbols of the executable only: lld orders sections by the symbols it links.
    defined = set()
    for line in subprocess.run(["nm", "--defined-only", str(binary)], capture_output=True, text=True).stdout.splitlines():
        fields = line.split(maxsplit=2)
        if len(fields) == 3 and fields[1] in "tTwW":
            defined.add(fields[2])
    order = [name for name in order if name in defined and not re.search(r"\s", name)]
    TARGET.write_text("".join(name + "\n" for name in order))
    print(f"code_order.py: {len(order)} functions ({sum(1 for n in order if n in known)} run while idle) "
          f"written to {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
