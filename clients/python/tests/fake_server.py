"""A scripted stand-in for ``stagerunner serve`` (NDJSON only), for what the real server cannot do yet.

Usage: fake_server.py serve --framing ndjson [--workspace W] --mode=<mode>

Modes:
  chatty    answers initialize; after ``initialized`` sends notifications and server-to-client
            requests; ``ping`` returns the responses the client gave so far as ``{"responses": [...]}``.
  stubborn  ignores SIGTERM and stdin EOF, never answers; starts a ``sleep`` child in its group and
            writes the child's pid to the file named by --pidfile=.
  sigterm   never answers and ignores stdin EOF, but dies on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()


def send(message: Any) -> None:
    with _lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def option(name: str, default: str = "") -> str:
    for arg in sys.argv[1:]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


INIT_RESULT = {
    "protocolVersion": "1.0",
    "serverInfo": {"name": "fake", "version": "0"},
    "capabilities": {
        "methods": ["initialize", "ping", "shutdown"],
        "notifications": ["exit", "initialized", "$/cancelRequest"],
        "batches": True,
        "cancellation": True,
        "framing": "ndjson",
        "maxMessageSize": 67108864,
    },
    "workspace": {"root": "/"},
}


def chatty() -> None:
    responses: list[Any] = []
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        method = msg.get("method")
        if method is None:
            responses.append(msg)
            continue
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": msg["id"], "result": INIT_RESULT})
        elif method == "initialized":
            send({"jsonrpc": "2.0", "method": "statusChanged", "params": {"n": 1}})
            send({"jsonrpc": "2.0", "method": "$/progress", "params": {"token": "t", "value": 50}})
            send({"jsonrpc": "2.0", "id": "s1", "method": "executeStage", "params": {"stage": "draft"}})
            send({"jsonrpc": "2.0", "id": "s2", "method": "unknown/method", "params": {}})
            send({"jsonrpc": "2.0", "id": 3, "method": "executeStage", "params": {"stage": "boom"}})
            # A batch holding a notification, and a response nobody waits for (dropped quietly).
            send([{"jsonrpc": "2.0", "method": "statusChanged", "params": {"n": 2}}])
            send({"jsonrpc": "2.0", "id": 999, "result": {}})
            send({"jsonrpc": "2.0", "id": "s4", "method": "slow", "params": {}})
            # Cancelled at once, before its handler can start: still answered -32800.
            send({"jsonrpc": "2.0", "id": "s5", "method": "slow", "params": {}})
            send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "s5"}})
            # Cancelled while its handler runs.
            cancel = {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "s4"}}
            threading.Timer(0.3, send, args=[cancel]).start()
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": msg["id"], "result": {"responses": responses}})
        elif method == "shutdown":
            send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
        elif method == "exit":
            sys.exit(0)


def silent(ignore_term: bool) -> None:
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pidfile = option("pidfile")
        if pidfile:
            child = subprocess.Popen(["sleep", "300"])
            with open(pidfile, "w") as fh:
                fh.write(str(child.pid))
    sys.stdin.read()  # until EOF
    while True:
        time.sleep(1)


if __name__ == "__main__":
    mode = option("mode", "chatty")
    if mode == "chatty":
        chatty()
    else:
        silent(ignore_term=(mode == "stubborn"))
