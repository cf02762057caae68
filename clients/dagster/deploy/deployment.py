"""Deployment folders for the example cohort, and the celery deployment in one command.

    python deployment.py layout FOLDER [--celery]
    python deployment.py celery FOLDER [--job NAME]... [--workers N] [--concurrency N]

A deployment folder holds ``workspace/`` (a copy of ``examples/daydream``, made once),
``definitions.py`` (the code location; the celery one with ``--celery``), ``dagster-home/`` (the
Dagster instance, SQLite) and ``logs/``. ``celery`` then starts ``redis-server`` on a free
loopback port, runs ``dagster instance migrate`` (a second worker starting on an unmigrated
instance dies on "table alembic_version already exists"), starts the workers, waits until each
is ready, runs each job with ``dagster job execute`` (its run config names the broker and the
workspace), prints a summary per run as one JSON line, and stops the workers and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml
from stagerunner_dagster.workspace import model_calls

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLE = REPO / "examples" / "daydream"
BIN = Path(sys.executable).parent

#: How long a worker or Redis may take to start; a bound, not an expectation.
START_TIMEOUT_SECONDS = 180


def layout(folder: Path, *, celery: bool) -> None:
    """Lays the deployment folder out; an existing workspace is kept as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "workspace").exists():
        shutil.copytree(EXAMPLE, folder / "workspace")
    shutil.copyfile(HERE / ("celery_definitions.py" if celery else "definitions.py"), folder / "definitions.py")
    home = folder / "dagster-home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    (folder / "logs").mkdir(exist_ok=True)


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    condition: Any, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Polls ``condition`` until it holds; fails naming ``what`` (and the end of ``log``) when
    ``process`` ends first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise SystemExit(f"{what} did not happen: the process ended ({process.returncode}):\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.2)


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(_read(log).splitlines()[-lines:])


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def started(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Runs ``command`` in its own process group, logging to ``log``; ends the group on leaving."""
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group (a celery worker and its pool), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_summary(home: Path, workspace: Path, run_id: str) -> dict[str, Any]:
    """What a run did: its status, the steps each celery worker ran, materializations per asset."""
    os.environ["DAGSTER_HOME"] = str(home)
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        workers: Counter[str] = Counter()
        materializations: Counter[str] = Counter()
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.ENGINE_EVENT and event.engine_event_data:
                worker = event.engine_event_data.metadata.get("Celery worker")
                if worker is not None:
                    workers[str(worker.value)] += 1
            elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION and event.asset_key is not None:
                materializations[event.asset_key.to_user_string()] += 1
        return {
            "job": run.job_name,
            "runId": run_id,
            "status": run.status.value,
            "stepsByWorker": dict(sorted(workers.items())),
            "materializations": dict(sorted(materializations.items())),
            "modelCalls": dict(sorted(model_calls(workspace).items())),
        }


def latest_run_id(home: Path, job: str) -> str:
    os.environ["DAGSTER_HOME"] = str(home)
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.get() as instance:
        [run] = instance.get_runs(filters=RunsFilter(job_name=job), limit=1)
        return run.run_id


def celery(folder: Path, jobs: list[str], workers: int, concurrency: int) -> int:
    """The celery deployment: Redis, a migrated instance, ``workers`` workers, each job run once."""
    layout(folder, celery=True)
    home, logs, workspace = folder / "dagster-home", folder / "logs", folder / "workspace"
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])  # celery, dagster: the venv's
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONDONTWRITEBYTECODE="1", PATH=path)
    port = free_port()
    broker = {"broker": f"redis://127.0.0.1:{port}/0", "backend": f"redis://127.0.0.1:{port}/1"}
    (folder / "celery.yaml").write_text(yaml.safe_dump({"execution": {"config": broker}}), encoding="utf-8")
    run_config = {
        "execution": {"config": broker},
        "resources": {"stagerunner": {"config": {"workspace": str(workspace.resolve())}}},
    }
    (folder / "run.yaml").write_text(yaml.safe_dump(run_config), encoding="utf-8")
    redis = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    status = 0
    with started(redis, logs / "redis.log", env, folder) as server:
        wait_until(
            lambda: accepts_connections(port), f"redis-server listening on port {port}", server, logs / "redis.log"
        )
        subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"], env=env, cwd=folder, check=True, capture_output=True
        )
        with _workers(folder, env, workers, concurrency):
            for job in jobs:
                execute = [str(BIN / "dagster"), "job", "execute", "-f", "definitions.py", "-j", job, "-c", "run.yaml"]
                with open(logs / f"{job}.log", "ab") as output:
                    finished = subprocess.run(execute, env=env, cwd=folder, stdout=output, stderr=subprocess.STDOUT)
                summary = run_summary(home, workspace, latest_run_id(home, job))
                print(json.dumps(summary), flush=True)
                if finished.returncode != 0 or summary["status"] != "SUCCESS":
                    print(f"{job} failed; see {logs / (job + '.log')}", file=sys.stderr)
                    status = 1
    return status


@contextmanager
def _workers(folder: Path, env: dict[str, str], count: int, concurrency: int) -> Iterator[None]:
    """``count`` celery workers on the deployment's broker, each ready before this yields."""
    with ExitStack() as stack:
        for index in range(1, count + 1):
            name = f"worker{index}"
            log = folder / "logs" / f"{name}.log"
            command = [
                str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", "celery.yaml",
                "-n", name, "--", f"--concurrency={concurrency}",
            ]  # fmt: skip
            worker = stack.enter_context(started(command, log, env, folder))
            wait_until(lambda log=log: " ready." in _read(log), f"{name} ready", worker, log)
        yield


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    lay = commands.add_parser("layout", help="lay a deployment folder out")
    lay.add_argument("folder", type=Path)
    lay.add_argument("--celery", action="store_true", help="the code location runs its steps on celery")
    run = commands.add_parser("celery", help="run jobs on celery workers")
    run.add_argument("folder", type=Path)
    run.add_argument("--job", action="append", help="a job to run (repeatable); default stagerunner_shards")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--concurrency", type=int, default=1, help="steps each worker runs at once")
    options = parser.parse_args(arguments)
    folder = options.folder.resolve()
    if options.command == "layout":
        layout(folder, celery=options.celery)
        return 0
    return celery(folder, options.job or ["stagerunner_shards"], options.workers, options.concurrency)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
