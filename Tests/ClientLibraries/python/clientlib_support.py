"""What the three client-library suites share: where things are, and the values they expect.

Each suite drives `stagerunner serve` through a JSON-RPC library that this project did not write,
the way that library's own users write it. The values below are what the server must answer in
fresh copies of `examples/daydream` and `examples/research-task`; the suites compare exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLES = REPO / "examples"
OPENRPC = REPO / "protocol" / "openrpc.json"

#: pygls pipes the server's stderr and never reads it, so the server is asked to say little there.
SERVE_ARGS = ("serve", "--log-level", "error")

#: Generous bounds for a loaded 2-core machine: none of these is a performance budget.
ANSWER_TIMEOUT = 60.0
PIPELINE_TIMEOUT = 180.0
CANCEL_TIMEOUT = 10.0  # the sleeping command sleeps 60 s
EXIT_TIMEOUT = 30.0


def server_bin() -> Path:
    """The binary under test: $STAGERUNNER_BIN, else the debug build of this checkout."""
    return Path(os.environ.get("STAGERUNNER_BIN") or REPO / ".build" / "debug" / "stagerunner")


def _openrpc_methods() -> list[dict[str, Any]]:
    return json.loads(OPENRPC.read_text(encoding="utf-8"))["methods"]


def request_methods() -> list[str]:
    """The request methods a client may call, sorted: `capabilities.methods` must be exactly these."""
    return sorted(
        m["name"]
        for m in _openrpc_methods()
        if m.get("x-direction") in ("clientToServer", "both") and "result" in m and not m.get("x-testOnly")
    )


def client_notifications() -> list[str]:
    """The notifications a client may send, sorted: `capabilities.notifications` sorted."""
    return sorted(
        m["name"]
        for m in _openrpc_methods()
        if m.get("x-direction") in ("clientToServer", "both") and "result" not in m
    )


# --- examples/daydream -------------------------------------------------------------------------

#: listTemplates without params: every catalog row, by stage (draft, essay, evaluation), then id.
TEMPLATES = [
    {
        "active": True,
        "description": "Brainstorm connections between the concepts and end with the strongest idea",
        "file": "data/1_raw/templates/draft/creative-synthesis.txt",
        "generator": "llm",
        "id": "creative-synthesis",
        "name": "Creative Synthesis",
        "parser": "essay_idea_last",
        "stage": "draft",
    },
    {
        "active": True,
        "description": "Pairwise analysis of the concepts",
        "file": "data/1_raw/templates/draft/systematic-analytical.txt",
        "generator": "llm",
        "id": "systematic-analytical",
        "name": "Systematic Analytical",
        "stage": "draft",
    },
    {
        "active": True,
        "description": "Use the draft's parsed idea as the essay; no model call",
        "file": "data/1_raw/templates/essay/parsed-from-draft.txt",
        "generator": "copy",
        "id": "parsed-from-draft",
        "name": "Parsed From Draft",
        "stage": "essay",
    },
    {
        "active": True,
        "description": "Write an essay from the draft's strongest idea",
        "file": "data/1_raw/templates/essay/synthesis-plain.txt",
        "generator": "llm",
        "id": "synthesis-plain",
        "name": "Synthesis (plain)",
        "stage": "essay",
    },
    {
        "active": True,
        "description": "Does the essay reinvent the daydreaming loop? Ends with a SCORE line",
        "file": "data/1_raw/templates/evaluation/novelty.txt",
        "generator": "llm",
        "id": "novelty",
        "name": "Novelty",
        "parser": "in_last_line",
        "stage": "evaluation",
    },
    {
        "active": True,
        "description": "Methodological discipline with a Final Score header",
        "file": "data/1_raw/templates/evaluation/scientific-rigor.txt",
        "generator": "llm",
        "id": "scientific-rigor",
        "name": "Scientific Rigor",
        "parser": "complex",
        "stage": "evaluation",
    },
]


def validate_workspace_result(root: Path) -> dict[str, Any]:
    """validateWorkspace without params in an untouched copy of examples/daydream at `root`."""
    return {
        "diagnostics": [],
        "diagnosticsOmitted": 0,
        "errors": 0,
        "generations": 10,
        "root": str(root),
        "templates": 6,
        "valid": True,
        "warnings": 0,
    }


RUN_STAGE_PARAMS = {"stage": "draft", "genId": "d-creative"}

#: The second `<essay-idea>` of responses/draft-creative.txt, which `essay_idea_last` keeps.
DRAFT_PARSED = (
    'A background "daydreaming loop": a generator samples pairs of concepts from memory and proposes\n'
    "links between them, while a critic model scores each link and writes the best ones back, so the\n"
    "system keeps producing and filtering candidate insights without being asked."
)

DRAFT_FILES = [
    "data/gens/draft/d-creative/prompt.txt",
    "data/gens/draft/d-creative/raw.txt",
    "data/gens/draft/d-creative/parsed.txt",
    "data/gens/draft/d-creative/metadata.json",
]


def check_draft(result: Mapping[str, Any], workspace: Path, *, reused: bool) -> None:
    """runStage {stage: draft, genId: d-creative}: the scripted answer, parsed, committed."""
    raw = (workspace / "responses" / "draft-creative.txt").read_text(encoding="utf-8")
    assert result["genId"] == "d-creative"
    assert result["stage"] == "draft"
    assert result["status"] == "success"
    assert result["reused"] is reused
    assert result["textTruncated"] is False
    assert result["debug"] == {}
    assert result["files"] == DRAFT_FILES
    assert result["raw"] == raw
    assert result["parsed"] == DRAFT_PARSED
    assert "score" not in result
    metadata = result["metadata"]
    assert {k: metadata[k] for k in ("gen_id", "stage", "template_id", "mode", "model", "provider", "parser")} == {
        "gen_id": "d-creative",
        "stage": "draft",
        "template_id": "creative-synthesis",
        "mode": "llm",
        "model": "sonnet-4",
        "provider": "embedded",
        "parser": "essay_idea_last",
    }
    assert (metadata["status"], metadata["finish_reason"], metadata["truncated"], metadata["cost_usd"]) == (
        "success",
        "stop",
        False,
        0,
    )
    assert metadata["files"] == ["prompt.txt", "raw.txt", "parsed.txt", "metadata.json"]
    assert (metadata["raw_length"], metadata["raw_lines"]) == (411, 9)  # 8 lines and the empty one after the last LF
    gen = workspace / "data" / "gens" / "draft" / "d-creative"
    assert (gen / "parsed.txt").read_text(encoding="utf-8") == DRAFT_PARSED
    assert (gen / "raw.txt").read_text(encoding="utf-8") == raw
    assert json.loads((gen / "metadata.json").read_text(encoding="utf-8")) == dict(metadata)


# --- examples/research-task ---------------------------------------------------------------------

PIPELINE_PARAMS = {"pipeline": "pipelines/research.pipeline.yaml", "input": {"topic": "Tide pools of the Atlantic"}}

#: The job and task events of the research pipeline, in the order a subscriber sees them
#: (protocol/README.md section 8.10, "Lifecycle").
RESEARCH_TRANSITIONS = [
    ("job", "pending"),
    ("job", "running"),
    ("task", "summary", "running"),
    ("task", "summary", "refining"),
    ("task", "summary", "done"),
    ("task", "review", "running"),
    ("task", "review", "done"),
    ("job", "done"),
]

#: A task whose only stage is a command that writes its pid, then sleeps a minute.
SLEEPY_TASK = """\
name: sleepy
stageTimeout: 600
stages:
  ingestion:
    command: [python3, stages/sleep.py]
"""

SLEEP_SCRIPT = """\
import json, os, sys, time

sys.stdin.read()
pid_file = os.path.join(os.environ["STAGERUNNER_WORK_DIR"], "sleeper.pid")
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
time.sleep(60)
print(json.dumps({"output": "woke up", "flags": {}}))
"""

SLEEPY_RUN_ID = "sleepy-1"


def sleeper_pid_file(workspace: Path) -> Path:
    return workspace / "data" / "tasks" / "sleepy" / SLEEPY_RUN_ID / "sleeper.pid"


def run_sleepy_params() -> dict[str, Any]:
    return {"task": "tasks/sleepy.task.yaml", "runId": SLEEPY_RUN_ID}


#: An inline task whose quality check is the client's `quality` handler (protocol/README.md §8.8).
GRADED_PARAMS = {
    "task": {
        "name": "graded",
        "stages": {
            "ingestion": {"template": {"text": "A draft about {{ input.topic }}."}},
            "validateQuality": {"client": "quality"},
        },
    },
    "input": {"topic": "kelp"},
    "runId": "graded-1",
}
GRADE = {"grade": "A", "notes": "clear and short"}
QUALITY_ANSWER = {"output": GRADE, "flags": {"validationFailed": False}}


def check_execute_stage_params(params: Mapping[str, Any]) -> None:
    """The executeStage request for GRADED_PARAMS' validateQuality stage."""
    assert params["handler"] == "quality"
    assert params["stage"] == "validateQuality"
    context = params["context"]
    assert context["currentStage"] == "validateQuality"
    assert context["output"] == "A draft about kelp."
    assert context["data"] == {"ingestion": "A draft about kelp.", "seed": {"topic": "kelp"}}
    assert context["flags"] == {}
    assert context["refinementCount"] == 0
    assert (context["currentModel"], context["availableModels"]) == ("default", ["default"])
    assert context["meta"] == {
        "modelConfig": {},
        "runId": "graded-1",
        "taskName": "graded",
        "workDir": "data/tasks/graded/graded-1",
    }
    assert [(e["stage"], e.get("ok"), e.get("reason")) for e in context["logs"]] == [
        ("ingestion", True, None),
        ("preProcessing", None, "no-handler"),
        ("promptTemplating", None, "no-handler"),
        ("inference", None, "no-handler"),
        ("parsing", None, "no-handler"),
        ("validateStructure", None, "no-handler"),
    ]


def check_graded_result(result: Mapping[str, Any], *, output: Any = GRADE, flags: Any = None) -> None:
    """runTask GRADED_PARAMS, once the client answered its stage with `output` and `flags`."""
    flags = {"validationFailed": False} if flags is None else flags
    assert result["ok"] is True, result.get("error")
    assert "failedStage" not in result and "error" not in result
    assert result["refinementAttempts"] == 0
    assert result["llmMetrics"] == []
    context = result["context"]
    assert context["data"] == {"ingestion": "A draft about kelp.", "seed": {"topic": "kelp"}, "validateQuality": output}
    assert context["flags"] == flags
    assert context["output"] == "A draft about kelp."  # a validation stage's output is not passed on
    logs = [(e["stage"], e.get("ok"), e.get("reason")) for e in result["logs"]]
    assert logs == [
        ("ingestion", True, None),
        ("preProcessing", None, "no-handler"),
        ("promptTemplating", None, "no-handler"),
        ("inference", None, "no-handler"),
        ("parsing", None, "no-handler"),
        ("validateStructure", None, "no-handler"),
        ("validateQuality", True, None),
        ("critique", None, "no-handler"),
        ("refine", None, "no-handler"),
        ("finalValidation", None, "no-handler"),
        ("integration", None, "no-handler"),
    ]


# --- statusChanged ------------------------------------------------------------------------------


def job_done(notification: Mapping[str, Any]) -> bool:
    """Whether a statusChanged notification (delivery snapshot) carries a finished job."""
    return notification["snapshot"]["state"] in ("done", "failed", "cancelled")


def transitions(notifications: Iterable[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """The job and task events the notifications stand for, merged ones included, in order."""
    seen: list[tuple[str, ...]] = []
    for note in notifications:
        for event in note.get("events") or [note["event"]]:
            if event["type"] == "job":
                seen.append(("job", event["state"]))
            elif event["type"] == "task":
                seen.append(("task", event["task"], event["state"]))
    return seen


def check_research_stream(
    notifications: list[Mapping[str, Any]], baseline: Mapping[str, Any], job_id: str
) -> Mapping[str, Any]:
    """The statusChanged notifications of a subscription to every job, made before runPipeline.

    Returns the last document they carried.
    """
    assert (baseline["rev"], baseline["snapshot"]) == (0, {"jobs": {}})
    assert notifications, "no statusChanged notification arrived"
    subscription = baseline["subscriptionId"]
    held = 0
    for note in notifications:
        assert note["subscriptionId"] == subscription
        assert note["jobId"] == job_id
        assert note["coalesced"] >= 1
        # every change adds one to rev: a notification that follows the one held is held + coalesced
        assert note["rev"] == held + note["coalesced"], (
            f"rev {note['rev']} after {held} with coalesced {note['coalesced']}"
        )
        assert note["snapshot"]["rev"] == note["rev"]
        assert note["snapshot"]["id"] == job_id
        held = note["rev"]
    revs = [n["rev"] for n in notifications]
    assert revs == sorted(set(revs)), f"rev must only grow: {revs}"
    assert transitions(notifications) == RESEARCH_TRANSITIONS
    assert [job_done(n) for n in notifications].count(True) == 1 and job_done(notifications[-1])
    document = notifications[-1]["snapshot"]
    assert document["schemaVersion"] == 1
    assert (document["state"], document["current"], document["currentStage"]) == ("done", None, None)
    assert document["pipeline"] == "pipelines/research.pipeline.yaml"
    assert document["name"] == "research"
    assert document["taskOrder"] == ["summary", "review"]
    assert document["progress"] == {"tasksDone": 2, "tasksTotal": 2, "percent": 100}
    assert {name: task["state"] for name, task in document["tasks"].items()} == {"summary": "done", "review": "done"}
    assert document["tasks"]["summary"]["refinementAttempts"] == 1
    assert (document["tasks"]["summary"]["modelCalls"], document["tasks"]["review"]["modelCalls"]) == (4, 1)
    assert "tasks/review/review.md" in document["tasks"]["review"]["artifacts"]
    return document


# --- helpers ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """pygls hands untyped messages over as namedtuples; this turns them back into JSON values."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def process_ended(pid: int) -> bool:
    """Whether a process is gone (or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


async def async_wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
