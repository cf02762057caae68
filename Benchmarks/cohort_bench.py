#!/usr/bin/env python3
"""Start-up and runStage throughput against the size of a workspace's membership file, in one run.

Start-up and throughput should not grow with the membership (the CSV listing a cohort's
generations). For each size (1k, 10k, 100k and 1M draft rows by default) the script copies
examples/daydream into a temporary directory, without its `.stagerunner/`, writes
`data/cohorts/demo/membership.csv` with that many rows, and measures:

1. First answer: wall time from spawning `stagerunner serve --workspace W` to the answer of
   `initialize` (which does not open the workspace), and from the spawn to the answer of the
   `renderPrompt` sent right after it (the first workspace method: it opens the membership's
   index). Once for the first server ever to see the file, which scans it and saves the index
   in `.stagerunner/index/`; then the median over SPAWNS fresh processes, which map the saved
   index. The file is written two seconds before the first server starts: a file changed more
   recently is indexed in memory only (its times could hide a second change).
2. validateWorkspace on a fresh server: spawn to answer. It reads and checks every row.
3. runStage throughput: a new server process, CALLS `runStage` requests for distinct gen ids of
   the membership (embedded model, 64 in flight), timed from the spawn to the last answer, the
   median of SPAWNS such servers (the generations removed before each: the figures move with
   the disk's flushes); then CALLS more on the last, now warm, server. The gen ids are new in a fresh workspace, so every
   call generates (`reused: false`); each result must say `status: success`.
4. The server's RSS (VmRSS): after the first answer of step 1, and after both batches of step 3.
5. Peer, on the same file: Python's csv.DictReader reading it and a dict keyed by gen_id, the
   least a client does to look a row up (median of SPAWNS). The ratios are the first server
   ever / Python load and a fresh server / Python load.

Standard library only.

usage: cohort_bench.py STAGERUNNER [--rows 1000,10000,...] [--quick] [--calls N] [--spawns N] [--dir DIR]
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/daydream"
MEMBERSHIP = "data/cohorts/demo/membership.csv"
HEADER = "stage,gen_id,cohort_id,parent_gen_id,combo_id,template_id,llm_model_id\n"
IN_FLIGHT = 64
DEFAULT_ROWS = [1_000, 10_000, 100_000, 1_000_000]
QUICK_ROWS = [1_000, 10_000]
# A membership file changed more recently than this is indexed in memory only, not saved.
SETTLE_SECONDS = 2.1


def gen_id(index: int) -> str:
    return f"d{index}"


def make_workspace(base: Path, rows: int) -> Path:
    """A copy of the example whose only membership file has `rows` draft rows."""
    workspace = Path(tempfile.mkdtemp(dir=base, prefix="cohort-bench-")) / "ws"
    shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns(".stagerunner"))
    with open(workspace / MEMBERSHIP, "w") as file:
        file.write(HEADER)
        for start in range(0, rows, 100_000):
            file.writelines(f"draft,{gen_id(index)},demo,,combo-loop,creative-synthesis,sonnet-4\n"
                            for index in range(start, min(rows, start + 100_000)))
    # On disk before any server starts, as a cohort's file is when it runs: otherwise the first
    # generation commits (which make the file system durable with syncfs) would pay for writing
    # the just-made 56 MB file out, and the figures would grow with it.
    os.sync()
    return workspace


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`stagerunner serve` in NDJSON; `started` is the perf_counter just before the spawn."""

    def __init__(self, binary: str, workspace: Path) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen([binary, "serve", "--workspace", str(workspace), "--log-level", "error"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, number: int, method: str, params: dict) -> None:
        self.process.stdin.write((json.dumps({"jsonrpc": "2.0", "id": number, "method": method,
                                              "params": params}) + "\n").encode())

    def answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the server ended (exit status {self.process.wait()})")
        response = json.loads(line)
        if "error" in response:
            raise SystemExit(f"request {response.get('id')} failed: {json.dumps(response['error'])[:500]}")
        return response["result"]

    def since_spawn_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=120)


def first_answer(binary: str, workspace: Path) -> dict:
    """Spawn → initialize answer, spawn → first renderPrompt answer, and RSS once loaded."""
    server = Server(binary, workspace)
    server.send(0, "initialize", {"clientInfo": {"name": "cohort-bench"}})
    server.process.stdin.flush()
    server.answer()
    initialize_ms = server.since_spawn_ms()
    server.send(1, "renderPrompt", {"stage": "draft", "genId": gen_id(0)})
    server.process.stdin.flush()
    prompt = server.answer()["prompt"]
    render_ms = server.since_spawn_ms()
    assert "Default mode network" in prompt, prompt[:200]
    rss = rss_mib(server.process.pid)
    server.close()
    return {"initialize_ms": initialize_ms, "render_ms": render_ms, "rss_mib": rss}


def validate_ms(binary: str, workspace: Path) -> float:
    """Spawn → validateWorkspace answer on a fresh server."""
    server = Server(binary, workspace)
    server.send(0, "validateWorkspace", {})
    server.process.stdin.flush()
    report = server.answer()
    elapsed = server.since_spawn_ms()
    server.close()
    assert report["generations"] > 0, report
    return elapsed


def run_batch(server: Server, first: int, count: int, started: float) -> float:
    """`count` runStage requests, gen ids from `first`, IN_FLIGHT at a time; calls per second since `started`."""
    sent = received = 0
    while received < count:
        while sent < count and sent - received < IN_FLIGHT:
            server.send(first + sent, "runStage", {"stage": "draft", "genId": gen_id(first + sent),
                                                  "runId": "cohort-bench", "maxTextLength": 0})
            sent += 1
        server.process.stdin.flush()
        result = server.answer()
        if result["status"] != "success" or result["reused"]:
            raise SystemExit(f"{result['genId']}: status {result['status']}, reused {result['reused']}")
        received += 1
    return count / (time.perf_counter() - started)


def throughput(binary: str, workspace: Path, calls: int, runs: int) -> dict:
    """CALLS runStage from a fresh server (spawn included), median of RUNS servers, the
    generations removed before each; then CALLS more on the last, now warm, server."""
    fresh = []
    for run in range(runs):
        shutil.rmtree(workspace / "data/gens", ignore_errors=True)
        server = Server(binary, workspace)
        fresh.append(run_batch(server, 0, calls, server.started))
        rss_fresh = rss_mib(server.process.pid)
        if run < runs - 1:
            server.close()
    warm = run_batch(server, calls, calls, time.perf_counter())
    rss = rss_mib(server.process.pid)
    server.close()
    committed = sum(1 for _ in (workspace / "data/gens/draft").glob("d*/metadata.json"))
    assert committed == 2 * calls, f"expected {2 * calls} committed generations, found {committed}"
    return {"fresh": statistics.median(fresh), "warm": warm, "rss_fresh_mib": rss_fresh, "rss_mib": rss}


def python_load_ms(path: Path) -> float:
    """csv.DictReader over the membership file and a dict keyed by gen_id."""
    started = time.perf_counter()
    with open(path, newline="") as file:
        index = {row["gen_id"]: row for row in csv.DictReader(file)}
    elapsed = (time.perf_counter() - started) * 1000
    assert gen_id(0) in index
    return elapsed


def bench_size(binary: str, base: Path, rows: int, calls: int, spawns: int) -> dict:
    workspace = make_workspace(base, rows)
    try:
        size_mib = (workspace / MEMBERSHIP).stat().st_size / 2**20
        print(f"cohort_bench: {rows:,} rows ({size_mib:.1f} MiB): first answers...", file=sys.stderr)
        time.sleep(SETTLE_SECONDS)
        first_ever = first_answer(binary, workspace)
        starts = [first_answer(binary, workspace) for _ in range(spawns)]
        print(f"cohort_bench: {rows:,} rows: validateWorkspace...", file=sys.stderr)
        validate = validate_ms(binary, workspace)
        print(f"cohort_bench: {rows:,} rows: Python csv + dict...", file=sys.stderr)
        python = statistics.median(python_load_ms(workspace / MEMBERSHIP) for _ in range(spawns))
        print(f"cohort_bench: {rows:,} rows: 2 × {calls} runStage...", file=sys.stderr)
        rates = throughput(binary, workspace, calls, spawns)
    finally:
        shutil.rmtree(workspace.parent, ignore_errors=True)
    return {"rows": rows, "size_mib": size_mib, "python_ms": python,
            "first_ever_ms": first_ever["render_ms"], "validate_ms": validate,
            "initialize_ms": statistics.median(start["initialize_ms"] for start in starts),
            "render_ms": statistics.median(start["render_ms"] for start in starts),
            "rss_loaded_mib": starts[-1]["rss_mib"], **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", help="the stagerunner binary")
    parser.add_argument("--rows", help="membership sizes, comma-separated (default 1000,10000,100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="1000 and 10000 rows only")
    parser.add_argument("--calls", type=int, default=500, help="runStage calls per batch (default 500)")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="where the workspaces go (default the temporary directory); a tmpfs such as /dev/shm "
                             "takes the disk's flushes out of the runStage figures")
    parser.add_argument("--spawns", type=int, default=3,
                        help="fresh servers (and Python loads) per size for the first answer (default 3)")
    arguments = parser.parse_args()
    sizes = ([int(size) for size in arguments.rows.split(",")] if arguments.rows
             else QUICK_ROWS if arguments.quick else DEFAULT_ROWS)
    if min(sizes) < 2 * arguments.calls:
        parser.error(f"each size needs at least {2 * arguments.calls} rows (2 batches of --calls distinct gen ids)")
    base = Path(arguments.dir)
    results = [bench_size(arguments.binary, base, rows, arguments.calls, arguments.spawns) for rows in sizes]

    print(f"# Membership size benchmark\n\n- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"- machine: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end), {base}; "
          f"Python {sys.version.split()[0]}")
    print(f"- first answers: the first server ever to see the file (it scans it and saves the index), then the "
          f"median of {arguments.spawns} fresh servers; validateWorkspace: a fresh server, spawn to answer; "
          f"runStage: {arguments.calls} draft generations (embedded model, {IN_FLIGHT} in flight) from a fresh "
          f"server, spawn included (median of {arguments.spawns}), then {arguments.calls} more on the warm one; RSS: VmRSS after the first "
          f"renderPrompt / after both batches\n")
    print("| rows | file | spawn → initialize | first server ever → renderPrompt | fresh server → renderPrompt "
          "| Python csv + dict | ratios (first ever, fresh) | validateWorkspace | fresh runStage/s "
          "| warm runStage/s | RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        print(f"| {result['rows']:,} | {result['size_mib']:.1f} MiB | {result['initialize_ms']:.1f} ms "
              f"| {result['first_ever_ms']:.1f} ms | {result['render_ms']:.1f} ms | {result['python_ms']:.1f} ms "
              f"| {result['first_ever_ms'] / result['python_ms']:.2f}×, {result['render_ms'] / result['python_ms']:.2f}× "
              f"| {result['validate_ms']:,.0f} ms | {result['fresh']:,.0f} | {result['warm']:,.0f} "
              f"| {result['rss_loaded_mib']:.1f} / {result['rss_mib']:.1f} |")
    baseline = next((result for result in results if result["rows"] == 1_000),
                    min(results, key=lambda result: result["rows"]))
    print(f"\nFresh runStage throughput against {baseline['rows']:,} rows:")
    for result in results:
        print(f"- {result['rows']:,} rows: {result['fresh'] / baseline['fresh']:.2f}× "
              f"({result['fresh']:,.0f} / {baseline['fresh']:,.0f} calls/s)")


if __name__ == "__main__":
    main()
