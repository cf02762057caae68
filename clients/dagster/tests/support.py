"""What the tests and the benchmark share: the loopback mock provider, and the call logs' counts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MOCK_SERVER = REPO / "Tests" / "MockModelServer" / "mock_model_server.py"


@contextmanager
def running_mock_provider() -> Iterator[str]:
    """The mock model server on loopback, for as long as the block lasts; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(MOCK_SERVER), "--exit-with-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the mock server printed {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        assert process.stdin is not None
        process.stdin.close()  # --exit-with-stdin: it ends when its input does
        process.wait(timeout=60)


