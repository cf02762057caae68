"""The deployments, each started by its one command (``make dagster-e2e`` runs these).

* ``deploy/celery.sh``: Redis, a migrated instance, two celery workers on one workspace, and the
  example cohort run twice: one step per generation, then shards (which find everything made).
* ``deploy/local.sh``: ``dagster dev`` on a copy of the example, asked over GraphQL for its assets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_MODEL_CALLS, REPO

pytestmark = pytest.mark.e2e

DEPLOY = REPO / "clients" / "dagster" / "deploy"


def test_the_example_cohort_on_two_celery_workers_sharing_one_workspace(tmp_path: Path) -> None:
    folder = tmp_path / "celery"
    finished = subprocess.run(
        [str(DEPLOY / "celery.sh"), str(folder), "--job", "stagerunner_generations", "--job", "stagerunner_shards"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    generations, shards = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    for run in (generations, shards):
        assert run["status"] == "SUCCESS"
        assert run["materializations"] == {"draft": 2, "essay": 3, "evaluation": 5}
        assert sorted(worker.split("@")[0] for worker in run["stepsByWorker"]) == ["worker1", "worker2"]
    assert sum(generations["stepsByWorker"].values()) == 10 and sum(shards["stepsByWorker"].values()) == 2
    # Each generation was paid once, by the first run; the shards found them all made.
    assert shards["modelCalls"] == {gen_id: 1 for gen_id in EXAMPLE_MODEL_CALLS}
    assert (folder / "workspace/data/gens/evaluation/v-creative-llm-novelty/metadata.json").is_file()
    assert not (REPO / "examples/daydream/data/gens").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def graphql(port: int, query: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_dagster_dev_serves_the_example(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "local"
    log = open(tmp_path / "dagster-dev.log", "wb")
    process = subprocess.Popen(
        [str(DEPLOY / "local.sh"), str(folder)],
        env=dict(os.environ, PORT=str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assets = None
        deadline = time.monotonic() + 300  # a bound for a loaded machine, not an expectation
        while assets is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = graphql(port, "{ assetNodes { assetKey { path } } }")
                nodes = (answer.get("data") or {}).get("assetNodes") or []
                assets = sorted("/".join(node["assetKey"]["path"]) for node in nodes) or None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        assert assets == ["draft", "essay", "evaluation", "gen_id_partitions"], (
            tmp_path / "dagster-dev.log"
        ).read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
