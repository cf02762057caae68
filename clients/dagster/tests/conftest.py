"""Fixtures of the Dagster integration's tests: the server binary, workspaces, a Dagster instance.

Every test works on a copy of ``examples/daydream`` (never the example itself) and a Dagster
instance in a temporary ``DAGSTER_HOME``. The server is ``$STAGERUNNER_BIN``, else the debug
build; tests are skipped when neither exists.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance

from stagerunner_dagster import close_shared_servers
from support import running_mock_provider

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "daydream"


def server_binary() -> str | None:
    """The stagerunner binary under test, if there is one."""
    candidate = os.environ.get("STAGERUNNER_BIN") or str(REPO / ".build" / "debug" / "stagerunner")
    return candidate if os.access(candidate, os.X_OK) else None


@pytest.fixture(autouse=True)
def stagerunner_bin(monkeypatch: pytest.MonkeyPatch) -> str:
    """The binary, exported as STAGERUNNER_BIN for the servers the tests start."""
    binary = server_binary()
    if binary is None:
        pytest.skip("no stagerunner binary (swift build, or set STAGERUNNER_BIN)")
    monkeypatch.setenv("STAGERUNNER_BIN", binary)
    return binary


@pytest.fixture(autouse=True)
def no_servers_left() -> Iterator[None]:
    """Each test starts without servers of earlier tests and closes the ones it started."""
    close_shared_servers()
    yield
    close_shared_servers()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh copy of the daydream example."""
    target = tmp_path / "daydream"
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary DAGSTER_HOME."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[DagsterInstance]:
    """A persistent instance (SQLite files in DAGSTER_HOME), as step processes need."""
    with DagsterInstance.get() as dagster_instance:
        yield dagster_instance


def edit_config(workspace: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Changes the workspace's stagerunner.yaml through ``edit`` (on the parsed document)."""
    path = workspace / "stagerunner.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


#: The generations of the example that call a model: all ten but the copy essay.
EXAMPLE_MODEL_CALLS = {
    "d-creative",
    "d-analytic",
    "e-creative-llm",
    "e-analytic-llm",
    "v-creative-llm-novelty",
    "v-creative-llm-rigor",
    "v-creative-copy-novelty",
    "v-analytic-llm-novelty",
    "v-analytic-llm-rigor",
}


@pytest.fixture
def mock_provider(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The loopback mock model server, configured in the workspace as provider ``mock``.

    The example's models go to it: ``sonnet-4`` answers after 300 ms (drafts, essays) and
    ``gpt-5-mini`` echoes (evaluations), so calls of different steps overlap in time.
    Yields the server's base URL.
    """
    with running_mock_provider() as address:
        base_url = f"{address}/v1"
        monkeypatch.setenv("MOCK_PROVIDER_KEY", "test-key")
        config = workspace / "stagerunner.yaml"
        config.write_text(
            config.read_text(encoding="utf-8")
            + textwrap.dedent(
                f"""
                providers:
                  mock: {{kind: openai, baseURL: "{base_url}", apiKeyEnv: MOCK_PROVIDER_KEY}}
                aliases:
                  sonnet-4: "mock:sleep-300"
                  gpt-5-mini: "mock:echo"
                prices:
                  mock:sleep-300: {{input: 1, output: 2}}
                """
            ),
            encoding="utf-8",
        )
        yield base_url
