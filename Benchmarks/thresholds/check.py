#!/usr/bin/env python3
"""Per-request cost of `stagerunner serve` under valgrind, held against committed thresholds.

For `ping`, `renderPrompt` and `runStage` (a draft on the embedded model, so no network) it
counts, per request, the heap allocations (valgrind's DHAT: blocks allocated) and the user-space
instructions executed (callgrind: Ir) by the whole server process, all threads included. The
counts do not depend on the machine's speed or load, so CI can hold them to a threshold like
swift-nio's committed malloc counts.

How one figure is measured: a server on a fresh copy of examples/daydream (on tmpfs when there
is one) gets WARM_UP requests of the method, then N more, sent one at a time (one in flight);
stdin is closed and valgrind prints the process's total at exit. A second server does the same
with 2N. (total(2N) - total(N)) / N is the cost of one request: start-up, the warm-up (catalogs
read, template compiled, call log opened) and shut-down cancel out. Every runStage has its own
genId, so each one really renders, calls the embedded model, parses, commits its four files and
writes the call log (the embedded provider is never cached); the script checks they were all
committed. The server runs with SWIFT_DETERMINISTIC_HASHING=1, which removes the run-to-run
variation of the hash seed.

valgrind 3.19 cannot read the DWARF 5 debug information of Swift 6 binaries ("unhandled dwarf2
abbrev form code 0x25"), so the server runs from a copy with the debug sections removed
(objcopy --strip-debug: the same code, and the symbol table is kept for profiles).

The thresholds are per method and metric in thresholds.json, next to this script. They come
from --update: the median of --runs measurements (5 by default) times the headroom written in
that file (allocations 1.10, instructions 1.15), rounded up. The figures are those of the
release binary (`make release`); a debug build costs many times more.

usage: check.py [STAGERUNNER] [--update] [--runs K] [--method M ...] [--jobs J] [--keep DIR]
  STAGERUNNER defaults to <repo>/.build/release/stagerunner.
  exit status: 0 within the thresholds, 1 a threshold exceeded, 2 could not measure.
"""

import argparse
import concurrent.futures
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
import task_workspace  # noqa: E402  (Benchmarks/task_workspace.py: the runTask benchmark's task)
EXAMPLE = ROOT / "examples/daydream"
THRESHOLDS = HERE / "thresholds.json"

WARM_UP = 5
# N per method: the second server gets 2N. Large enough that the start-up's own variation
# (about ±0.1 M instructions) is a fraction of a percent of the difference.
REQUESTS = {"ping": 200, "renderPrompt": 50, "runStage": 50, "runTask": 50}
METHODS = list(REQUESTS)
METRICS = ["allocations", "instructions"]
TOOLS = {"allocations": "dhat", "instructions": "callgrind"}
DEFAULT_HEADROOM = {"allocations": 1.10, "instructions": 1.15}

VALUES = {"concepts": [{"name": "Default mode network"}, {"name": "Generator-verifier gap"},
                       {"name": "Combinatorial search"}]}
UPDATE_HINT = ("If the change is intended, rewrite the thresholds with `make thresholds UPDATE=1` "
               "(or `python3 Benchmarks/thresholds/check.py --update [STAGERUNNER]`) and commit "
               "Benchmarks/thresholds/thresholds.json. To see where the cost went: add --keep DIR "
               "and compare DIR/<method>-<N>.callgrind.out with callgrind_annotate, or load the "
               "dhat.json files into valgrind's dh_view.html.")


class MeasureError(Exception):
    pass


def params(method: str, number: int) -> dict | None:
    if method == "ping":
        return None
    if method == "runTask":
        return {"task": "tasks/summary.yaml", "input": task_workspace.INPUT, "runId": f"threshold-{number}"}
    # "embedded:" names the provider, so a STAGERUNNER_DEFAULT_PROVIDER in the environment
    # cannot send these to the network.
    result = {"stage": "draft", "templateId": "systematic-analytical", "model": "embedded:bench",
              "values": VALUES}
    if method == "runStage":
        result.update(genId=f"threshold-{number}", maxTextLength=0)
    return result


def tmp_base() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def stripped_copy(binary: Path, directory: Path) -> Path:
    """The binary without its debug sections, which valgrind 3.19 cannot parse."""
    target = directory / "stagerunner"
    candidates = [shutil.which("objcopy"), shutil.which("llvm-objcopy")]
    swift = shutil.which("swift")
    if swift:
        candidates.append(str(Path(swift).resolve().parent / "llvm-objcopy"))
    for tool in filter(None, candidates):
        if Path(tool).is_file():
            done = subprocess.run([tool, "--strip-debug", str(binary), str(target)], capture_output=True)
            if done.returncode == 0:
                return target
    print("check.py: no objcopy (binutils) to strip debug info; valgrind may fail to read it", file=sys.stderr)
    return binary


def log_text(log: Path) -> str:
    """valgrind's log without its banner and blank lines, cut to 1,500 characters."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    for index, line in enumerate(lines):
        if "== Command: " in line:
            lines = lines[index + 1:]
            break
    return "\n".join(line for line in lines if not re.fullmatch(r"==\d+== *", line))[:1500]


def measure_once(binary: Path, method: str, count: int, metric: str, keep: Path | None) -> int:
    """One server under valgrind: WARM_UP + count requests of method; the process's total of metric."""
    base = Path(tempfile.mkdtemp(dir=tmp_base(), prefix=f"thresholds-{method}-"))
    try:
        if method == "runTask":
            workspace = task_workspace.make_workspace(base)
        else:
            workspace = base / "ws"
            shutil.copytree(EXAMPLE, workspace)
        log = base / "valgrind.log"
        tool = TOOLS[metric]
        output = "/dev/null"
        if keep is not None:
            suffix = "callgrind.out" if tool == "callgrind" else "dhat.json"
            output = str(keep / f"{method}-{count}.{suffix}")
        out_option = {"dhat": "--dhat-out-file", "callgrind": "--callgrind-out-file"}[tool]
        environment = dict(os.environ, SWIFT_DETERMINISTIC_HASHING="1")
        environment.pop("STAGERUNNER_DEFAULT_PROVIDER", None)
        command = ["valgrind", f"--tool={tool}", f"--log-file={log}", f"{out_option}={output}",
                   str(binary), "serve", "--workspace", str(workspace), "--log-level", "error"]
        server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=environment, cwd=base)
        try:
            for number in range(WARM_UP + count):
                message = {"jsonrpc": "2.0", "id": number, "method": method}
                method_params = params(method, number)
                if method_params is not None:
                    message["params"] = method_params
                try:
                    server.stdin.write((json.dumps(message) + "\n").encode())
                    server.stdin.flush()
                except BrokenPipeError:
                    pass  # the server is gone: readline() says so
                while True:  # skip notifications, if any
                    line = server.stdout.readline()
                    if not line:
                        raise MeasureError(f"{method}: the server exited after {number} requests; "
                                           f"valgrind's log:\n{log_text(log)}")
                    response = json.loads(line)
                    if response.get("id") == number:
                        break
                if "error" in response:
                    raise MeasureError(f"{method} failed: {response['error']}")
                if method == "runTask" and not response["result"]["ok"]:
                    raise MeasureError(f"runTask failed: {json.dumps(response['result'])[:500]}")
                if method == "runStage":
                    result = response["result"]
                    if result.get("reused") or result["metadata"].get("provider") != "embedded":
                        raise MeasureError(f"runStage was not a fresh embedded generation: {result['metadata']}")
            server.stdin.close()
            if server.wait(timeout=120) != 0:
                raise MeasureError(f"{method}: the server exited with status {server.returncode}; "
                                   f"valgrind's log:\n{log_text(log)}")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        text = log.read_text(errors="replace") if log.exists() else ""
        if method == "runStage":
            committed = sum(1 for _ in (workspace / "data/gens/draft").glob("threshold-*/metadata.json"))
            if committed != WARM_UP + count:
                raise MeasureError(f"runStage: expected {WARM_UP + count} committed generations, found {committed}")
        if method == "runTask":
            written = sum(1 for _ in (workspace / "data/tasks/summary").glob("threshold-*/summary.json"))
            if written != WARM_UP + count:
                raise MeasureError(f"runTask: expected {WARM_UP + count} artifacts, found {written}")
        if tool == "dhat":
            found = re.search(r"Total:\s+[\d,]+ bytes in ([\d,]+) blocks", text)
        else:
            found = re.search(r"Collected\s*:\s*(\d+)", text)
        if not found:
            raise MeasureError(f"no total in valgrind's output for {method} ({tool}):\n{log_text(log)}")
        return int(found.group(1).replace(",", ""))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def measure(binary: Path, methods: list, runs: int, jobs: int, keep: Path | None) -> dict:
    """{method: {metric: [per-request figure of each run]}}."""
    work = [(method, metric, run, size) for run in range(runs) for method in methods
            for metric in METRICS for size in (1, 2)]
    totals = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(measure_once, binary, method, REQUESTS[method] * size, metric,
                               keep if run == 0 else None): (method, metric, run, size)
                   for method, metric, run, size in work}
        for future in concurrent.futures.as_completed(futures):
            totals[futures[future]] = future.result()
    result = {}
    for method in methods:
        count = REQUESTS[method]
        result[method] = {metric: [(totals[(method, metric, run, 2)] - totals[(method, metric, run, 1)]) / count
                                   for run in range(runs)] for metric in METRICS}
    return result


def round_up(value: float, metric: str) -> int:
    """Up to an integer for allocations, to three significant digits for instructions."""
    if metric == "allocations" or value < 1000:
        return math.ceil(value)
    step = 10 ** (int(math.log10(value)) - 2)
    return math.ceil(value / step) * step


def valgrind_version() -> str:
    return subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()


def fmt(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stagerunner", nargs="?", default=str(ROOT / ".build/release/stagerunner"))
    parser.add_argument("--update", action="store_true",
                        help="measure and rewrite thresholds.json (for an intended change)")
    parser.add_argument("--runs", type=int, help="measurements of each figure; the median counts "
                        "(default 1, or 5 with --update)")
    parser.add_argument("--method", action="append", choices=METHODS, help="only this method (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="valgrind runs at once (default 1)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the callgrind and DHAT profiles of the first run in DIR")
    parser.add_argument("--thresholds", type=Path, default=THRESHOLDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = args.runs or (5 if args.update else 1)
    methods = args.method or METHODS

    if not shutil.which("valgrind"):
        print("check.py: valgrind is not installed (make deps installs it: apt-get install valgrind)", file=sys.stderr)
        return 2
    binary = Path(args.stagerunner).resolve()
    if not binary.is_file():
        print(f"check.py: {binary} is missing (make release builds it)", file=sys.stderr)
        return 2
    stored = json.loads(args.thresholds.read_text()) if args.thresholds.exists() else {}
    if not args.update and not stored:
        print(f"check.py: no {args.thresholds}; create it with --update", file=sys.stderr)
        return 2
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="thresholds-bin-"))
    try:
        try:
            figures = measure(stripped_copy(binary, scratch), methods, runs, args.jobs, args.keep)
        except MeasureError as error:
            print(f"check.py: could not measure: {error}", file=sys.stderr)
            return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started
    version = valgrind_version()

    headroom = {**DEFAULT_HEADROOM, **stored.get("headroom", {})}
    if args.update:
        table = stored.get("methods", {})
        for method in methods:
            entry = {"requests": REQUESTS[method]}
            for metric in METRICS:
                values = figures[method][metric]
                median = statistics.median(values)
                entry[metric] = {"measured": round(median, 1), "runs": [round(v, 1) for v in values],
                                 "threshold": round_up(median * headroom[metric], metric)}
            table[method] = entry
        document = {
            "about": "Per-request heap allocations (DHAT blocks) and instructions (callgrind Ir) of "
                     "stagerunner serve (release build), checked by Benchmarks/thresholds/check.py "
                     "(make thresholds). threshold = measured (median of runs) x headroom, rounded up. "
                     "Rewrite with: make thresholds UPDATE=1",
            "headroom": headroom,
            "measuredWith": {"date": time.strftime("%Y-%m-%d", time.gmtime()), "valgrind": version,
                             "machine": f"{platform.machine()}, {os.cpu_count()} cores"},
            "methods": {method: table[method] for method in METHODS if method in table},
        }
        text = json.dumps(document, indent=2, ensure_ascii=False)
        # Lists of numbers on one line each.
        text = re.sub(r"\[\s+([-\d.,\s]+?)\s+\]", lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)
        args.thresholds.write_text(text + "\n")
        stored = document

    print(f"# Per-request cost under valgrind ({version}; {runs} run{'s' if runs > 1 else ''} of each, "
          f"median; {elapsed:.0f} s)\n")
    print("| method | metric | measured | spread (min–max) | threshold | measured / threshold |")
    print("|---|---|---:|---:|---:|---:|")
    failures = []
    notes = []
    for method in methods:
        for metric in METRICS:
            values = figures[method][metric]
            median = statistics.median(values)
            spread = f"{fmt(min(values))}–{fmt(max(values))}" if runs > 1 else "—"
            limit = stored.get("methods", {}).get(method, {}).get(metric, {})
            threshold = limit.get("threshold")
            if threshold is None:
                print(f"| {method} | {metric} | {fmt(median)} | {spread} | none | — |")
                failures.append(f"{method} {metric}: no threshold in {args.thresholds.name}")
                continue
            ratio = median / threshold
            print(f"| {method} | {metric} | {fmt(median)} | {spread} | {threshold:,} | {ratio:.2f} |")
            if median > threshold:
                failures.append(f"{method} {metric}: {fmt(median)} per request exceeds the threshold "
                                f"{threshold:,} ({median / limit['measured']:.2f}× the recorded {fmt(limit['measured'])})")
            elif limit.get("measured") and median < 0.9 * limit["measured"]:
                notes.append(f"{method} {metric}: {fmt(median)} per request, {1 - median / limit['measured']:.0%} "
                             f"below the recorded {fmt(limit['measured'])}; --update would tighten the threshold")
    recorded = stored.get("measuredWith", {}).get("valgrind")
    if recorded and recorded != version:
        notes.append(f"the thresholds were measured with {recorded}, this is {version}")
    for note in notes:
        print(f"\nnote: {note}")
    if args.update:
        print(f"\nwrote {args.thresholds}")
    if failures:
        print("", file=sys.stderr)
        for failure in failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        print(UPDATE_HINT, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
