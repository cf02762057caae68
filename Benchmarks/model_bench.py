#!/usr/bin/env python3
"""Model calls at 100 in flight: StageRunner against Python's openai SDK, in one run.

Both clients make N chat completions against Tests/MockModelServer/mock_model_server.py, whose
model `sleep-100` answers after 100 ms, keeping IN_FLIGHT requests open: the ideal wall time is
N / IN_FLIGHT × 0.1 s (1.0 s for the defaults).

- `stagerunner serve`: N `runStage` requests over JSON-RPC on stdio, each a draft with its own
  gen id whose model is `mock:sleep-100` (an OpenAI-compatible provider in stagerunner.yaml),
  cache off. Each one is the whole pipeline: template resolution, the HTTP call through
  libcurl (limits, retries, pricing), parsing, the atomic commit of four files and the call log.
- `stagerunner serve, embedded model`: the same requests answered by the embedded model, with no
  HTTP and no wait: the pipeline's own CPU, to subtract from the row above.
- `StageEngine model client`: Benchmarks' `model-bench` executable (built by run.sh, or
  `swift build -c release --package-path Benchmarks --product model-bench`): the same client
  chain runStage uses (pricing, retries, the provider limiter, the OpenAI-compatible provider on
  the shared libcurl multi handle) called N times from IN_FLIGHT tasks in one process, with no
  pipeline around it: the model call's own cost, comparable with the SDK row.
- `openai AsyncOpenAI`: the official SDK in its own process, `chat.completions.create` N times
  with IN_FLIGHT tasks, max_retries=0; nothing is stored.

CPU is user + system time of the client process only (the server for StageRunner, the Python
process for the SDK), measured from /proc or getrusage around the timed part; RSS is the
process's peak (VmHWM). The mock server runs in a process of its own and is not counted.

usage: model_bench.py STAGERUNNER [N] [IN_FLIGHT]
       model_bench.py --openai-worker BASE_URL N IN_FLIGHT   (internal: the SDK row's process)
"""

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/daydream"
MOCK = ROOT / "Tests/MockModelServer/mock_model_server.py"
MODEL = "sleep-100"
PROMPT = "Name three ways an idle mind recombines ideas."
KEY = "test-key"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_mock() -> tuple[subprocess.Popen, int]:
    mock = subprocess.Popen([sys.executable, str(MOCK)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = mock.stdout.readline()
    if not line.startswith("PORT "):
        raise SystemExit(f"the mock model server did not start: {line!r}")
    return mock, int(line.split()[1])


def bench_stagerunner(binary: str, port: int, count: int, in_flight: int, model: str) -> dict:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    workspace = Path(tempfile.mkdtemp(dir=base, prefix="model-bench-")) / "ws"
    shutil.copytree(EXAMPLE, workspace)
    (workspace / "stagerunner.yaml").write_text(
        f'providers:\n  mock: {{kind: openai, baseURL: "http://127.0.0.1:{port}/v1", apiKeyEnv: MOCK_KEY}}\n'
    )
    server = subprocess.Popen(
        [binary, "serve", "--workspace", str(workspace), "--log-level", "error"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "MOCK_KEY": KEY},
    )

    def request(number: int) -> bytes:
        params = {"stage": "draft", "genId": f"bench-{number}", "templateId": "systematic-analytical",
                  "model": model, "promptText": PROMPT, "cache": "off", "maxTextLength": 0}
        return (json.dumps({"jsonrpc": "2.0", "id": number, "method": "runStage", "params": params}) + "\n").encode()

    def answer() -> None:
        response = json.loads(server.stdout.readline())
        if "error" in response:
            raise SystemExit(f"runStage failed: {response['error']}")

    # Warm: catalogs read, call log and cache opened, libcurl loaded, connections made.
    for number in range(-in_flight, 0):
        server.stdin.write(request(number))
    server.stdin.flush()
    for _ in range(in_flight):
        answer()
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    sent = received = 0
    while received < count:
        while sent < count and sent - received < in_flight:
            server.stdin.write(request(sent))
            sent += 1
        server.stdin.flush()
        answer()
        received += 1
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server.pid) - cpu_before
    rss = peak_rss_mb(server.pid)
    server.stdin.close()
    server.wait()
    shutil.rmtree(workspace.parent)
    return {"wall": wall, "cpu": cpu, "rss": rss}


async def openai_worker(base_url: str, count: int, in_flight: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]

    async def run(total: int) -> None:
        remaining = iter(range(total))

        async def worker() -> None:
            for _ in remaining:
                completion = await client.chat.completions.create(model=MODEL, messages=messages)
                assert completion.choices[0].message.content

        await asyncio.gather(*(worker() for _ in range(in_flight)))

    await run(in_flight)  # warm: imports done, connections made
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    await run(count)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    await client.close()
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime - cpu_before, "rss": peak_rss_mb(os.getpid())}


def bench_engine(binary: Path, port: int, count: int, in_flight: int) -> dict:
    output = subprocess.run(
        [str(binary), f"http://127.0.0.1:{port}/v1", MODEL, str(count), str(in_flight)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output)


def bench_openai(port: int, count: int, in_flight: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--openai-worker", f"http://127.0.0.1:{port}/v1", str(count), str(in_flight)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output)


def main() -> None:
    if sys.argv[1] == "--openai-worker":
        print(json.dumps(asyncio.run(openai_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))))
        return
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    in_flight = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    ideal = count / in_flight * 0.1
    try:
        import openai

        sdk = f"openai {openai.__version__} AsyncOpenAI"
    except ImportError:
        sdk = None
    mock, port = start_mock()
    try:
        rows = [("stagerunner serve (runStage, mock provider)", bench_stagerunner(binary, port, count, in_flight, "mock:" + MODEL))]
        rows.append(("stagerunner serve (runStage, embedded model)", bench_stagerunner(binary, port, count, in_flight, "m")))
        engine = Path(os.environ.get("MODEL_BENCH", ROOT / "Benchmarks/.build/release/model-bench"))
        if engine.is_file():
            rows.append(("StageEngine model client (model-bench, in process)", bench_engine(engine, port, count, in_flight)))
        peer = bench_openai(port, count, in_flight) if sdk else None
        if peer:
            rows.append((f"Python {sdk}", peer))
    finally:
        mock.kill()
        mock.wait()
    print(f"# Model-call benchmark\n\n- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"- machine: {os.cpu_count()} cores; {count} calls, {in_flight} in flight, the mock answers after 100 ms "
          f"(ideal wall {ideal:.2f} s)\n")
    print("| client | wall | × ideal | CPU | CPU per call | peak RSS | wall × SDK | CPU × SDK |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, row in rows:
        embedded = "embedded" in label
        versus = (f"{row['wall'] / peer['wall']:.2f}×" if peer and not embedded else "—",
                  f"{row['cpu'] / peer['cpu']:.2f}×" if peer else "—")
        wall = "—" if embedded else f"{row['wall']:.2f} s"
        ratio = "—" if embedded else f"{row['wall'] / ideal:.2f}×"
        print(f"| {label} | {wall} | {ratio} | {row['cpu']:.2f} s | {row['cpu'] / count * 1e6:,.0f} µs "
              f"| {row['rss']:.0f} MB | {versus[0]} | {versus[1]} |")
    if not sdk:
        print("\nThe openai SDK is not installed (Benchmarks/run.sh installs it into Benchmarks/.venv).")
    ours = rows[0][1]
    print("\nTargets (issue 4; wall and RSS for runStage through the mock provider):")
    print(f"- wall within 1.15× of ideal: {'met' if ours['wall'] <= ideal * 1.15 else 'MISSED'} — {ours['wall'] / ideal:.2f}×")
    print(f"- RSS under 80 MB: {'met' if ours['rss'] < 80 else 'MISSED'} — {ours['rss']:.0f} MB")
    direct = next((row for label, row in rows if label.startswith("StageEngine")), None)
    if direct:
        model_cpu = direct["cpu"] / count * 1e6
        how = "the engine's model client alone (model-bench)"
    else:
        model_cpu = (ours["cpu"] - rows[1][1]["cpu"]) / count * 1e6
        how = "the mock row less the embedded row (build model-bench for a direct figure)"
    print(f"- client CPU under 200 µs per request: {'met' if model_cpu < 200 else 'MISSED'} — {model_cpu:,.0f} µs, {how}; "
          f"{ours['cpu'] / count * 1e6:,.0f} µs for the whole runStage")


if __name__ == "__main__":
    main()
