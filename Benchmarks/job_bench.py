#!/usr/bin/env python3
"""Jobs (protocol/README.md sections 8.9 to 8.11) as a client sees them, through `stagerunner
serve`. Standard library only.

1. Stage boundary → notification: 100 jobs started at once (each a four-stage task: template,
   embedded model, JSON parser, artifact write), one `subscribeStatus` for every job in patch
   mode. For each stage event (started, completed) the latency is the client's clock when the
   bytes of its `statusChanged` arrived (time.time() right after read(2), before any parsing)
   minus the `lastUpdated` that the server stamped on that change (in the patch; both are
   CLOCK_REALTIME on the same machine). `lastUpdated` has millisecond resolution and is
   truncated, so each figure is an upper bound, at most 1 ms above the true latency.
2. A 10,000-task pipeline (each task a template and an embedded model call): wall time from the
   `runPipeline` request (wait: true) to its answer, status changes (the final `rev`), status
   writes (renames onto tasks-status.json, counted with inotify; the first write or two, before
   the job's folder is watched, can be missed) and the server's peak RSS (VmHWM).

usage: job_bench.py STAGERUNNER [JOBS] [TASKS]
"""

import calendar
import ctypes
import json
import os
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ANSWER = 'Here it is:\n```json\n{"title": "Tide pools", "findings": ["zonation", "turnover"]}\n```\n'


def make_workspace(base: Path, tasks: int) -> Path:
    workspace = Path(tempfile.mkdtemp(dir=base, prefix="job-bench-"))
    (workspace / "tasks").mkdir()
    (workspace / "pipelines").mkdir()
    (workspace / "stagerunner.yaml").write_text(
        "embedded:\n  rules:\n    - promptContains: Summarize\n      response: " + json.dumps(ANSWER) + "\n")
    (workspace / "tasks/four.yaml").write_text(
        "stages:\n"
        "  promptTemplating: { template: { text: 'Summarize {{ input.topic }}' } }\n"
        "  inference: { llm: embedded:bench }\n"
        "  parsing: { parse: json }\n"
        "  integration: { write: summary.json }\n")
    (workspace / "tasks/two.yaml").write_text(
        "stages:\n"
        "  promptTemplating: { template: { text: 'A note on {{ input.topic }}' } }\n"
        "  inference: { llm: embedded:bench }\n")
    (workspace / "pipelines/four.yaml").write_text("name: four\ntasks:\n  - name: summary\n    task: ../tasks/four.yaml\n")
    large = {"name": "large", "tasks": [{"name": f"t{index:05d}", "task": "../tasks/two.yaml", "input": "seed"}
                                        for index in range(tasks)]}
    (workspace / "pipelines/large.json").write_text(json.dumps(large))
    (workspace / "jobs").mkdir()
    return workspace


def document_time(stamp: str) -> float:
    """Seconds since the epoch of `2026-11-22T01:52:03.101Z`."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + (float("0." + fraction) if fraction else 0)


class Server:
    """`stagerunner serve` in NDJSON; a thread reads its output and notes when each line arrived."""

    def __init__(self, binary: str, workspace: Path, extra: list[str]) -> None:
        self.process = subprocess.Popen(
            [binary, "serve", "--workspace", str(workspace), "--log-level", "error", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.lines: list[tuple[float, bytes]] = []
        self.changed = threading.Condition()
        # Counted as lines arrive, so that waiting for them costs the reader nothing.
        self.jobs_ended = 0
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        descriptor = self.process.stdout.fileno()
        partial = b""
        while True:
            chunk = os.read(descriptor, 1 << 20)
            arrived = time.time()
            if not chunk:
                break
            parts = (partial + chunk).split(b"\n")
            partial = parts.pop()
            ended = sum(1 for line in parts if b'"type":"job"' in line and self._ends_job(line))
            # The waiting thread is woken only for what it waits for: a response, or a job's end.
            wake = ended or any(b'"statusChanged"' not in line for line in parts)
            with self.changed:
                self.lines.extend((arrived, line) for line in parts if line)
                self.jobs_ended += ended
                if wake:
                    self.changed.notify_all()

    @staticmethod
    def _ends_job(line: bytes) -> bool:
        if b'"done"' not in line and b'"failed"' not in line:
            return False
        params = json.loads(line).get("params", {})
        events = params.get("events") or [params.get("event", {})]
        return any(event.get("type") == "job" and event.get("state") in ("done", "failed") for event in events)

    def send(self, method: str, params: dict) -> int:
        self.next_id += 1
        self.process.stdin.write((json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                              "params": params}) + "\n").encode())
        return self.next_id

    def wait_for(self, predicate, timeout: float) -> None:
        """Waits until predicate(server) holds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SystemExit(f"timed out; last output: {self.lines[-1:]!r}")
                self.changed.wait(remaining)

    def response(self, request_id: int, timeout: float = 60) -> dict:
        marker = f'"id":{request_id},'.encode()
        found: list[dict] = []

        def answered(server) -> bool:
            for _, line in reversed(server.lines):
                if marker in line:
                    message = json.loads(line)
                    if message.get("id") == request_id:
                        found.append(message)
                        return True
            return False

        self.wait_for(answered, timeout)
        if "error" in found[0]:
            raise SystemExit(f"request {request_id} failed: {found[0]['error']}")
        return found[0]["result"]

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=120)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def bench_notifications(binary: str, workspace: Path, jobs: int, at_once: bool) -> dict:
    server = Server(binary, workspace, ["--max-running-jobs", str(max(jobs, 4))])
    # Warm-up: the task file, the embedded provider and the call log are opened once.
    server.response(server.send("runPipeline", {"pipeline": "pipelines/four.yaml", "input": {"topic": "warm"},
                                                "options": {"wait": True}}))
    server.response(server.send("subscribeStatus", {"delivery": "patch"}))
    start_line = len(server.lines)
    requests = []
    batch = b""
    ended_before = server.jobs_ended
    for number in range(jobs):
        server.next_id += 1
        requests.append(server.next_id)
        batch += (json.dumps({"jsonrpc": "2.0", "id": server.next_id, "method": "runPipeline",
                              "params": {"pipeline": "pipelines/four.yaml", "input": {"topic": f"pool {number}"}}})
                  + "\n").encode()
        if not at_once:  # one job at a time: each starts when the one before has ended
            server.process.stdin.write(batch)
            batch = b""
            server.wait_for(lambda server: server.jobs_ended - ended_before > number, 60)
    server.process.stdin.write(batch)
    server.wait_for(lambda server: server.jobs_ended - ended_before >= jobs, 300)
    ids = {server.response(request)["jobId"] for request in requests}
    latencies: dict[str, list[float]] = {"started": [], "completed": [], "failed": []}
    notifications = coalesced = 0
    change_times: list[float] = []
    for arrived, line in server.lines[start_line:]:
        message = json.loads(line)
        if message.get("method") != "statusChanged" or message["params"]["jobId"] not in ids:
            continue
        params = message["params"]
        notifications += 1
        events = params["events"] if params.get("coalesced", 1) > 1 else [params["event"]]
        if len(events) > 1:
            coalesced += 1
        if "patch" in params:
            stamps = [op["value"] for op in params["patch"] if op.get("path") == "/lastUpdated"]
        else:
            stamps = [params["snapshot"]["lastUpdated"]]
        if len(stamps) != len(events):  # merged past the limit: only the last event is placed
            events, stamps = events[-1:], stamps[-1:]
        for event, stamp in zip(events, stamps):
            change_times.append(document_time(stamp))
            if event.get("type") == "stage":
                latencies[event["state"]].append((arrived - document_time(stamp)) * 1000)
    states = {}
    for job in ids:
        state = server.response(server.send("getStatus", {"jobId": job}))["status"]["state"]
        states[state] = states.get(state, 0) + 1
    server.close()
    span = (max(change_times) - min(change_times)) * 1000 if change_times else 0
    every = latencies["started"] + latencies["completed"] + latencies["failed"]
    if not every:
        raise SystemExit("no stage events were received")
    return {"all": every, "started": latencies["started"], "notifications": notifications, "span_ms": span,
            "coalesced": coalesced, "states": states}


IN_MOVED_TO, IN_CREATE, IN_ISDIR, IN_Q_OVERFLOW = 0x80, 0x100, 0x40000000, 0x4000


class WriteCounter:
    """Counts renames onto jobs/<new job>/tasks-status.json with inotify."""

    def __init__(self, jobs_folder: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.descriptor = self.libc.inotify_init1(os.O_CLOEXEC)
        if self.descriptor < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.jobs_folder = jobs_folder
        self.root = self.libc.inotify_add_watch(self.descriptor, str(jobs_folder).encode(), IN_CREATE)
        self.writes = 0
        self.overflowed = False
        self.stopped = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stopped:
            ready, _, _ = select.select([self.descriptor], [], [], 0.1)
            if not ready:
                continue
            data = os.read(self.descriptor, 1 << 20)
            offset = 0
            while offset < len(data):
                watch, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                if mask & IN_Q_OVERFLOW:
                    self.overflowed = True
                elif watch == self.root and mask & IN_CREATE and mask & IN_ISDIR:
                    self.libc.inotify_add_watch(self.descriptor, str(self.jobs_folder / name).encode(), IN_MOVED_TO)
                elif mask & IN_MOVED_TO and name == "tasks-status.json":
                    self.writes += 1

    def stop(self) -> int:
        time.sleep(0.3)
        self.stopped = True
        self.thread.join()
        os.close(self.descriptor)
        return self.writes


def bench_large(binary: str, workspace: Path, tasks: int) -> dict:
    server = Server(binary, workspace, [])
    server.response(server.send("ping", {}))
    counter = WriteCounter(workspace / "jobs")
    started = time.perf_counter()
    result = server.response(server.send("runPipeline", {"pipeline": "pipelines/large.json",
                                                         "input": {"topic": "tide pools"},
                                                         "options": {"wait": True}}), timeout=3600)
    wall = time.perf_counter() - started
    rss = server.peak_rss_kib()
    writes = counter.stop()
    server.close()
    status = result["status"]
    if status["state"] != "done" or status["progress"]["tasksDone"] != tasks:
        raise SystemExit(f"the large job ended {status['state']} with {status['progress']}")
    size = (workspace / "jobs" / result["jobId"] / "tasks-status.json").stat().st_size
    return {"wall": wall, "rev": status["rev"], "writes": writes, "overflowed": counter.overflowed,
            "rss_mib": rss / 1024, "document_kib": size / 1024}


def main() -> None:
    sys.setswitchinterval(0.0005)  # the reader thread gets the interpreter back quickly
    binary = sys.argv[1]
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    tasks = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    base = Path(tempfile.gettempdir())
    workspace = make_workspace(base, tasks)
    try:
        print(f"job_bench: {jobs} jobs at once...", file=sys.stderr)
        notified = bench_notifications(binary, workspace, jobs, at_once=True)
        print(f"job_bench: {jobs} jobs one at a time...", file=sys.stderr)
        alone = bench_notifications(binary, workspace, jobs, at_once=False)
        print(f"job_bench: a {tasks:,}-task pipeline...", file=sys.stderr)
        large = bench_large(binary, workspace, tasks)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    every, started = notified["all"], notified["started"]
    load = os.getloadavg()[0]
    print(f"# Job benchmark\n\n- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"- machine: {os.cpu_count()} cores (load average {load:.1f} at the end), {base}; "
          f"client: this script (Python {sys.version.split()[0]})")
    print(f"- {jobs} four-stage jobs at once, one subscription in patch mode: {len(every):,} stage events in "
          f"{notified['notifications']:,} notifications ({notified['coalesced']} coalesced), all changes within "
          f"{notified['span_ms']:.0f} ms; jobs "
          + ", ".join(f"{count} {state}" for state, count in sorted(notified["states"].items())))
    print("- latency = client clock at arrival − the change's `lastUpdated` (1 ms resolution, truncated: "
          "an upper bound, at most 1 ms high)\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| stage boundary → client, p50 | {statistics.median(every):.2f} ms |")
    print(f"| stage boundary → client, p99 (target < 5 ms) | {percentile(every, 0.99):.2f} ms |")
    print(f"| stage boundary → client, max | {max(every):.2f} ms |")
    print(f"| stage started → client, p50 / p99 | {statistics.median(started):.2f} / "
          f"{percentile(started, 0.99):.2f} ms |")
    print(f"| one job at a time ({len(alone['all']):,} stage events): p50 / p99 | "
          f"{statistics.median(alone['all']):.2f} / {percentile(alone['all'], 0.99):.2f} ms |")
    print(f"| {tasks:,}-task pipeline: wall time | {large['wall']:.2f} s ({tasks / large['wall']:,.0f} tasks/s) |")
    print(f"| status changes (final rev) | {large['rev']:,} ({large['rev'] / large['wall']:,.0f}/s) |")
    overflow = " (inotify overflowed: more)" if large["overflowed"] else ""
    print(f"| status writes (fsynced renames) | {large['writes']:,} ({large['writes'] / large['wall']:,.1f}/s; "
          f"document {large['document_kib']:,.0f} KiB){overflow} |")
    print(f"| server peak RSS (VmHWM) | {large['rss_mib']:.1f} MiB |")


if __name__ == "__main__":
    main()
