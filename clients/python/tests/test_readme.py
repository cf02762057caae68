"""The README's quick start runs as written, against the real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from stagerunner_testkit import EXAMPLE

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(__file__).resolve().parents[1] / "src"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_quick_start_is_short() -> None:
    quick = python_blocks()[0]
    assert len([line for line in quick.splitlines() if line.strip()]) <= 10


def run_block(code: str, bin_path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` from a directory laid out like the repository root (examples/daydream)."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root / "examples" / "daydream")
    shutil.copytree(EXAMPLE.parent / "research-task", root / "examples" / "research-task")
    env = dict(os.environ, STAGERUNNER_BIN=bin_path, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_quick_start_runs(bin_path: str, tmp_path: Path) -> None:
    done = run_block(python_blocks()[0], bin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "{'echo': 'hello'}"
    assert lines[1] == "['creative-synthesis', 'systematic-analytical']"
    assert lines[2].startswith("success ['data/gens/draft/d-creative/prompt.txt'")
    assert (tmp_path / "repo/examples/daydream/data/gens/draft/d-creative/metadata.json").exists()


def test_sync_example_runs(bin_path: str, tmp_path: Path) -> None:
    done = run_block(python_blocks()[1], bin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True\n"


def test_progress_example_runs(bin_path: str, tmp_path: Path) -> None:
    done = run_block(python_blocks()[2], bin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    raw = (tmp_path / "repo/examples/daydream/data/gens/draft/d-creative/raw.txt").read_text(encoding="utf-8")
    assert done.stdout == raw + "True\n"


def test_task_example_runs(bin_path: str, tmp_path: Path) -> None:
    done = run_block(python_blocks()[3], bin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True 1\n{'words': 2}\n"
    assert list((tmp_path / "repo/examples/research-task/data/tasks/research-summary").glob("*/summary.json"))


def test_jobs_example_runs(bin_path: str, tmp_path: Path) -> None:
    done = run_block(python_blocks()[4], bin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done 100 True\nThe\n"
