#!/usr/bin/env python3
"""runStage throughput and engine overhead, against a Python/Jinja2 stage runner, in one run.

StageRunner: `stagerunner serve` on a copy of examples/daydream; N draft generations with
unique gen ids through `runStage` (render, embedded model, parse, durable atomic commit, call
log), 64 in flight, then 300 one at a time. Its CPU time (user + system, from /proc) divided
by the generations is the engine's cost per stage.

Peer: the same stage done the conventional way in Python (as DayDreaming's runner does it):
Jinja2 with StrictUndefined renders the same template, the same scripted answer stands in for
the model, and prompt/raw/parsed/metadata.json are written to a temporary directory, each
fsynced, renamed into place, the directory fsynced; the call goes into SQLite. One process,
no RPC.

Both run on the system's temporary directory and, when present, on tmpfs (/dev/shm), since
the file system decides much of the cost.

usage: stage_bench.py STAGERUNNER [N]
"""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/daydream"
TEMPLATE = "systematic-analytical"
VALUES = {"concepts": [{"name": "Default mode network"}, {"name": "Generator-verifier gap"},
                       {"name": "Combinatorial search"}]}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def bench_stagerunner(binary: str, base: Path, count: int) -> dict:
    workspace = Path(tempfile.mkdtemp(dir=base, prefix="stage-bench-")) / "ws"
    shutil.copytree(EXAMPLE, workspace)
    server = subprocess.Popen([binary, "serve", "--workspace", str(workspace), "--log-level", "error"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def request(number: int) -> bytes:
        params = {"stage": "draft", "genId": f"bench-{number}", "templateId": TEMPLATE, "model": "bench",
                  "values": VALUES, "maxTextLength": 0}
        return (json.dumps({"jsonrpc": "2.0", "id": number, "method": "runStage", "params": params}) + "\n").encode()

    def answer() -> dict:
        response = json.loads(server.stdout.readline())
        if "error" in response:
            raise SystemExit(f"runStage failed: {response['error']}")
        return response["result"]

    answer_first = request(-1)
    server.stdin.write(answer_first)
    server.stdin.flush()
    answer()  # warm: catalogs read, template compiled, call log opened
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    sent = received = 0
    while received < count:
        while sent < count and sent - received < 64:
            server.stdin.write(request(sent))
            sent += 1
        server.stdin.flush()
        answer()
        received += 1
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server.pid) - cpu_before
    latencies = []
    for number in range(count, count + 300):
        begin = time.perf_counter()
        server.stdin.write(request(number))
        server.stdin.flush()
        answer()
        latencies.append((time.perf_counter() - begin) * 1000)
    server.stdin.close()
    server.wait()
    files = sum(1 for _ in (workspace / "data/gens/draft").glob("bench-*/metadata.json"))
    assert files == count + 301, f"expected {count + 301} committed generations, found {files}"
    shutil.rmtree(workspace.parent)
    return {"rate": count / elapsed, "cpu_ms": cpu / count * 1000, "latency_ms": statistics.median(latencies)}


def bench_python(base: Path, count: int) -> dict:
    workspace = Path(tempfile.mkdtemp(dir=base, prefix="stage-bench-py-"))
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    source = (EXAMPLE / f"data/1_raw/templates/draft/{TEMPLATE}.txt").read_text()
    template = environment.from_string(source)
    database = sqlite3.connect(workspace / "calls.sqlite")
    database.execute("CREATE TABLE calls (gen_id TEXT, model TEXT, status TEXT, latency_ms REAL, tokens INTEGER)")
    answer = "Ideas connecting the concepts:\n- first\n- second\n- third\n"
    gens = workspace / "gens"
    gens.mkdir()
    directory = os.open(gens, os.O_RDONLY)

    def durable(path: Path, text: str) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(descriptor, text.encode())
        os.fsync(descriptor)
        os.close(descriptor)

    started = time.perf_counter()
    for number in range(count):
        begin = time.perf_counter()
        prompt = template.render(**VALUES)
        temporary = gens / f".tmp-{number}"
        temporary.mkdir()
        durable(temporary / "prompt.txt", prompt)
        durable(temporary / "raw.txt", answer)
        durable(temporary / "parsed.txt", answer.rstrip())
        metadata = {"stage": "draft", "gen_id": f"g{number}", "template_id": TEMPLATE, "status": "success",
                    "duration_ms": (time.perf_counter() - begin) * 1000, "files": ["prompt.txt", "raw.txt"]}
        durable(temporary / "metadata.json", json.dumps(metadata, indent=2, sort_keys=True))
        os.fsync(os.open(temporary, os.O_RDONLY))
        os.rename(temporary, gens / f"g{number}")
        os.fsync(directory)
        with database:
            database.execute("INSERT INTO calls VALUES (?, ?, ?, ?, ?)", (f"g{number}", "bench", "success", 0.0, 10))
    elapsed = time.perf_counter() - started
    shutil.rmtree(workspace)
    return {"rate": count / elapsed, "cpu_ms": None, "latency_ms": elapsed / count * 1000}


def main() -> None:
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    places = [("temporary directory", Path(tempfile.gettempdir()))]
    if Path("/dev/shm").is_dir():
        places.append(("tmpfs (/dev/shm)", Path("/dev/shm")))
    print(f"# runStage benchmark\n\n- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"- machine: {os.cpu_count()} cores; {count} pipelined generations (64 in flight) then 300 one at a time\n")
    print("| file system | runner | stages/s | × Python | engine CPU per stage | one at a time (median) |")
    print("|---|---|---:|---:|---:|---:|")
    results = []
    for label, base in places:
        ours = bench_stagerunner(binary, base, count)
        peer = bench_python(base, min(count, 1000))
        results.append((label, ours))
        print(f"| {label} | stagerunner serve (JSON-RPC) | {ours['rate']:,.0f} | {ours['rate'] / peer['rate']:.2f}× "
              f"| {ours['cpu_ms']:.3f} ms | {ours['latency_ms']:.2f} ms |")
        print(f"| {label} | Python + Jinja2, fsync per file | {peer['rate']:,.0f} | 1.00× | — | {peer['latency_ms']:.2f} ms |")
    print("\nTargets (on the fastest file system measured):")
    best = max(results, key=lambda item: item[1]["rate"])
    rate, cpu = best[1]["rate"], best[1]["cpu_ms"]
    print(f"- at least 2,000 stages/s: {'met' if rate >= 2000 else 'MISSED'} — {rate:,.0f} ({best[0]})")
    print(f"- engine overhead under 1 ms per stage: {'met' if cpu < 1 else 'MISSED'} — {cpu:.3f} ms of CPU")


if __name__ == "__main__":
    main()
