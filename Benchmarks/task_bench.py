#!/usr/bin/env python3
"""runTask throughput and the cost of command stages, against Python doing the same, in one run.

1. A five-stage task — template, model (embedded), JSON parser, JSON Schema check, artifact
   write — through `runTask` on `stagerunner serve`, N runs with 64 in flight. Its CPU time
   (user + system, from /proc) divided by the runs is the engine's cost per task.
   Peer: the same task done the conventional way in one Python process: Jinja2 with
   StrictUndefined, the same scripted answer, json.loads of the fenced block, jsonschema's
   Draft202012Validator (compiled once), the artifact written aside, fsynced and renamed.
2. A task whose one stage is a Python `command`, run M times one at a time, against Python's
   subprocess.run of the same script with the same JSON on stdin: what StageRunner adds to a
   command stage.

usage: task_bench.py STAGERUNNER [N] [M]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import jsonschema

from task_workspace import ANSWER, INPUT, SCHEMA, TEMPLATE, make_workspace

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Server:
    def __init__(self, binary: str, workspace: Path) -> None:
        self.process = subprocess.Popen([binary, "serve", "--workspace", str(workspace), "--log-level", "error"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, number: int, task: str, run_id: str) -> None:
        params = {"task": task, "input": INPUT, "runId": run_id}
        self.process.stdin.write((json.dumps({"jsonrpc": "2.0", "id": number, "method": "runTask",
                                              "params": params}) + "\n").encode())

    def answer(self) -> dict:
        response = json.loads(self.process.stdout.readline())
        if "error" in response or not response["result"]["ok"]:
            raise SystemExit(f"runTask failed: {json.dumps(response)[:500]}")
        return response["result"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def bench_tasks(binary: str, workspace: Path, count: int) -> dict:
    server = Server(binary, workspace)
    server.send(0, "tasks/summary.yaml", "warm")
    server.process.stdin.flush()
    server.answer()
    cpu_before = cpu_seconds(server.process.pid)
    started = time.perf_counter()
    sent = received = 0
    while received < count:
        while sent < count and sent - received < 64:
            server.send(sent + 1, "tasks/summary.yaml", f"r{sent}")
            sent += 1
        server.process.stdin.flush()
        server.answer()
        received += 1
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server.process.pid) - cpu_before
    server.close()
    written = sum(1 for _ in (workspace / "data/tasks/summary").glob("r*/summary.json"))
    assert written == count, f"expected {count} artifacts, found {written}"
    return {"rate": count / elapsed, "cpu_ms": cpu / count * 1000}


def bench_python_tasks(workspace: Path, count: int) -> dict:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template = environment.from_string(TEMPLATE)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    out = workspace / "python"
    out.mkdir()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for number in range(count):
        prompt = template.render(input=INPUT)
        assert "Tide pools" in prompt
        answer = ANSWER
        block = answer[answer.index("```json") + 7: answer.rindex("```")]
        value = json.loads(block)
        errors = list(validator.iter_errors(value))
        assert not errors
        folder = out / f"r{number}"
        folder.mkdir()
        temporary = folder / "summary.json.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(descriptor, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())
        os.fsync(descriptor)
        os.close(descriptor)
        os.rename(temporary, folder / "summary.json")
    elapsed = time.perf_counter() - started
    return {"rate": count / elapsed, "cpu_ms": (time.process_time() - cpu_started) / count * 1000}


def bench_command(binary: str, workspace: Path, count: int) -> dict:
    server = Server(binary, workspace)
    times = []
    for number in range(count + 1):
        begin = time.perf_counter()
        server.send(number, "tasks/command.yaml", f"c{number}")
        server.process.stdin.flush()
        server.answer()
        if number:  # the first one warms the page cache
            times.append((time.perf_counter() - begin) * 1000)
    server.close()
    return {"median_ms": statistics.median(times)}


def bench_python_command(workspace: Path, count: int) -> dict:
    request = json.dumps({"stage": "ingestion", "preRefinement": False, "context": {"output": INPUT}})
    times = []
    for number in range(count + 1):
        begin = time.perf_counter()
        result = subprocess.run(["python3", "stage.py"], input=request.encode(),
                                capture_output=True, cwd=workspace / "tasks", check=True)
        json.loads(result.stdout)
        if number:
            times.append((time.perf_counter() - begin) * 1000)
    return {"median_ms": statistics.median(times)}


def main() -> None:
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    commands = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    base = Path(tempfile.gettempdir())
    workspace = make_workspace(base)
    try:
        ours = bench_tasks(binary, workspace, count)
        peer = bench_python_tasks(workspace, count)
        command = bench_command(binary, workspace, commands)
        python_command = bench_python_command(workspace, commands)
    finally:
        shutil.rmtree(workspace)
    print(f"# runTask benchmark\n\n- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"- machine: {os.cpu_count()} cores, {base}; {count} five-stage tasks (64 in flight); "
          f"{commands} command stages one at a time\n")
    print("| runner | tasks/s | × Python | CPU per task |")
    print("|---|---:|---:|---:|")
    print(f"| stagerunner serve, runTask (JSON-RPC) | {ours['rate']:,.0f} | {ours['rate'] / peer['rate']:.2f}× "
          f"| {ours['cpu_ms']:.3f} ms (server) |")
    print(f"| Python: Jinja2 + json + jsonschema + fsynced write | {peer['rate']:,.0f} | 1.00× | {peer['cpu_ms']:.3f} ms |")
    print("\n| command stage (python3 script, JSON in and out) | median | × subprocess.run |")
    print("|---|---:|---:|")
    print(f"| runTask with one `command` stage, over JSON-RPC | {command['median_ms']:.1f} ms "
          f"| {command['median_ms'] / python_command['median_ms']:.2f}× |")
    print(f"| Python subprocess.run of the same script | {python_command['median_ms']:.1f} ms | 1.00× |")


if __name__ == "__main__":
    main()
