#!/usr/bin/env python3
"""Runs the examples through a live `stagerunner serve` and prints what happened.

1. examples/daydream from the terminal: `stagerunner validate`, `templates`, a dry run, then
   `stagerunner generate --cohort demo` (drafts, essays, evaluations), `gens` and `export`.
2. examples/research-task: one `runTask` of the task runner's eleven stages, whose first answer
   fails its JSON Schema and is critiqued and refined until it passes.
3. examples/research-task's pipeline as a job with `stagerunner run`: live on a terminal (a bar
   per task), one line per transition otherwise; it ends with a summary and the job's folder.

Each example is copied to a temporary directory first. Standard library only.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = (Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".build/release/stagerunner").resolve()
COLOR = sys.stdout.isatty()


def shade(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


class Server:
    """A stagerunner process spoken to in newline-delimited JSON."""

    def __init__(self, workspace: Path) -> None:
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--workspace", str(workspace), "--log-level", "warning"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.next_id = 0

    def send(self, method: str, params: dict | None = None, notify: bool = False) -> int | None:
        message: dict = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        request_id = None
        if not notify:
            self.next_id += 1
            request_id = message["id"] = self.next_id
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return request_id

    def receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the server closed its output unexpectedly")
        return json.loads(line)

    def call(self, method: str, params: dict | None = None) -> dict:
        request_id = self.send(method, params)
        response = self.receive()
        assert response.get("id") == request_id, response
        if "error" in response:
            raise SystemExit(f"{method} failed: {response['error']['message']}")
        return response["result"]

    def close(self) -> int:
        self.call("shutdown")
        self.send("exit", notify=True)
        self.process.stdin.close()
        return self.process.wait(timeout=10)


def research_task(base: Path) -> None:
    workspace = base / "research-task"
    shutil.copytree(ROOT / "examples/research-task", workspace)
    server = Server(workspace)
    topic = "Tide pools of the Atlantic"
    print(shade(f"\nrunTask tasks/summary.task.yaml with topic {topic!r}:\n", "1"))
    result = server.call("runTask", {"task": "tasks/summary.task.yaml", "input": {"topic": topic}, "runId": "demo"})
    print(shade(f"{'cycle':<6} {'stage':<18} {'outcome':<26} {'ms':>8}", "1"))
    logs = result["logs"]
    for index, entry in enumerate(logs):
        following = logs[index + 1] if index + 1 < len(logs) else {}
        if entry["stage"] == "refinement-trigger":
            print(shade(f"{entry['refinementCycle']:<6} refinement cycle ({entry['reason']})", "33"))
            continue
        if entry.get("skipped"):
            if entry["reason"] == "no-handler":
                continue
            print(f"{entry['refinementCycle']:<6} {entry['stage']:<18} {'skipped: ' + entry['reason']:<26}")
            continue
        outcome = "ok" if entry["ok"] else "failed"
        rejected = following.get("stage") == "refinement-trigger"
        if rejected:
            outcome = "output rejected"
        if entry.get("preRefinement"):
            outcome += " (before validation)"
        print(f"{entry['refinementCycle']:<6} {entry['stage']:<18} {shade(f'{outcome:<26}', '32' if entry['ok'] and not rejected else '31')} "
              f"{entry['ms']:>8.2f}")
    error = result["context"]["flags"].get("lastValidationError", {})
    if error:
        print(f"\nfirst answer rejected: {error['message']}")
    calls = result["llmMetrics"]
    tokens = sum(metric["totalTokens"] for metric in calls)
    print(f"ok={str(result['ok']).lower()} after {result['refinementAttempts']} refinement cycle(s); "
          f"{len(calls)} model calls, {tokens} tokens, provider {', '.join(sorted({m['provider'] for m in calls}))}")
    summary = json.loads((workspace / "data/tasks/research-summary/demo/summary.json").read_text(encoding="utf-8"))
    print(f"summary.json: {json.dumps(summary)}")
    print(f"artifacts: {workspace}/data/tasks/research-summary/demo/ (summary.json, logs/)")
    server.close()


def pipeline_run(base: Path) -> None:
    workspace = base / "research-pipeline"
    shutil.copytree(ROOT / "examples/research-task", workspace)
    topic = "Tide pools of the Atlantic"
    command = [str(BINARY), "run", "pipelines/research.pipeline.yaml", "--input-json", json.dumps({"topic": topic})]
    print(shade(f"\nstagerunner run pipelines/research.pipeline.yaml (a job of two tasks) in {workspace}:\n", "1"))
    sys.stdout.flush()
    status = subprocess.run(command, cwd=workspace).returncode
    jobs = sorted((workspace / "jobs").iterdir())
    if status != 0 or not jobs:
        raise SystemExit(f"stagerunner run exited with status {status}")
    folder = jobs[-1]
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    print(f"artifacts: {folder}/ ({', '.join(files)})")


def command(workspace: Path, *arguments: str) -> int:
    """Runs `stagerunner <arguments>` in `workspace`, its output straight to the terminal."""
    print(shade(f"\n$ stagerunner {' '.join(arguments)}", "1"))
    sys.stdout.flush()
    return subprocess.run([str(BINARY), *arguments], cwd=workspace).returncode


def cohort(base: Path) -> None:
    workspace = base / "daydream"
    shutil.copytree(ROOT / "examples/daydream", workspace)
    print(shade(f"examples/daydream copied to {workspace}", "1"))
    for arguments in (("validate",), ("templates",), ("generate", "--cohort", "demo", "--dry-run")):
        if command(workspace, *arguments) != 0:
            raise SystemExit(f"stagerunner {' '.join(arguments)} failed")
    # Drafts, then essays (one copied from its draft without a model call), then evaluations.
    if command(workspace, "generate", "--cohort", "demo") != 0:
        raise SystemExit("stagerunner generate failed")
    command(workspace, "gens", "--cohort", "demo")
    # Asked again, every generation is reused: no model call.
    command(workspace, "generate", "--cohort", "demo", "--stage", "evaluation")
    command(workspace, "export", "--cohort", "demo", "--by", "essay")
    print(f"\nartifacts: {workspace}/data/gens/<stage>/<gen_id>/"
          "{prompt.txt, raw.txt, parsed.txt, metadata.json}")
    print(f"call log:  {workspace}/.stagerunner/calls.sqlite (stagerunner costs)")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="stagerunner-demo-"))
    cohort(base)
    research_task(base)
    pipeline_run(base)


if __name__ == "__main__":
    main()
