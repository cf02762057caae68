"""Fixtures: the server binary, and fresh copies of the example workspaces in tmp dirs."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

pytest.register_assert_rewrite("clientlib_support", "pygls_support")

from clientlib_support import EXAMPLES, SLEEP_SCRIPT, SLEEPY_TASK, server_bin  # noqa: E402


@pytest.fixture(scope="session")
def bin_path() -> str:
    """The server binary ($STAGERUNNER_BIN, else .build/debug/stagerunner)."""
    path = server_bin()
    if not os.access(path, os.X_OK):
        pytest.skip(f"no stagerunner binary at {path}: build it (swift build) or set STAGERUNNER_BIN")
    return str(path)


def _copy(example: str, dest: Path) -> Path:
    shutil.copytree(EXAMPLES / example, dest)
    return dest.resolve()


@pytest.fixture
def daydream(tmp_path: Path) -> Path:
    """A fresh copy of examples/daydream."""
    return _copy("daydream", tmp_path / "daydream")


@pytest.fixture
def spaced_daydream(tmp_path: Path) -> Path:
    """A fresh copy of examples/daydream in a folder whose file: URI needs percent-encoding."""
    return _copy("daydream", tmp_path / "day dream ü")


@pytest.fixture
def research(tmp_path: Path) -> Path:
    """A fresh copy of examples/research-task, plus tasks/sleepy.task.yaml (a command that sleeps 60 s)."""
    workspace = _copy("research-task", tmp_path / "research")
    (workspace / "tasks" / "sleepy.task.yaml").write_text(SLEEPY_TASK, encoding="utf-8")
    (workspace / "tasks" / "stages" / "sleep.py").write_text(SLEEP_SCRIPT, encoding="utf-8")
    return workspace
