"""runTask and client-run stages (executeStage) against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from stagerunner import Client, RequestFailed, SyncClient, TaskContext, TaskError
from stagerunner_testkit import REPO_ROOT, Spawner, errors_for, validate_result

RESEARCH = REPO_ROOT / "examples" / "research-task"

GRADED = {
    "name": "graded",
    "stages": {
        "ingestion": {"template": {"text": "A draft about {{ input.topic }}."}},
        "validateQuality": {"client": "quality"},
        "integration": {"write": "graded.txt"},
    },
}


#: The stages of examples/research-task/tasks/summary.task.yaml, with their handlers as logs name them.
SUMMARY_STAGES = [
    ("ingestion", "command python3 stages/ingest.py"),
    ("promptTemplating", "template tasks/prompts/draft.j2"),
    ("inference", "llm"),
    ("parsing", "parse json"),
    ("validateStructure", "schema tasks/schemas/summary.schema.json"),
    ("critique", "prompt tasks/prompts/critique.j2"),
    ("refine", "prompt tasks/prompts/refine.j2"),
    ("integration", "write summary.json"),
]
#: A task file with three stages a dry run finds problems in, and one it finds none in.
BROKEN_TASK = """name: broken
stages:
  ingestion:
    command: [no-such-program-for-stagerunner-tests]
  inference:
    llm: openai:gpt-4o-mini
  validateQuality:
    client: quality
  integration:
    write: out.txt
"""


def tree(root: Path) -> list[str]:
    """Every file and folder under ``root``, relative to it, but the server's own ``.stagerunner/``
    (its cache and call log, which the server opens on the first task method, dry runs included)."""
    return sorted(
        str(path.relative_to(root)) for path in root.rglob("*") if path.relative_to(root).parts[0] != ".stagerunner"
    )


@pytest.fixture
def research(tmp_path: Path) -> Path:
    """A fresh copy of examples/research-task."""
    dest = tmp_path / "research-task"
    shutil.copytree(RESEARCH, dest)
    return dest


async def test_research_example_runs_through_run_task(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        assert "runTask" in (c.capabilities or {})["methods"]
        result = await c.run_task("tasks/summary.task.yaml", {"topic": "Tide pools of the Atlantic"}, run_id="py")
        validate_result("runTask", result)
        assert result["ok"] is True and result["refinementAttempts"] == 1
        assert result["context"]["meta"]["workDir"] == "data/tasks/research-summary/py"
        assert result["context"]["data"]["ingestion"]["keywords"] == ["tide", "pools", "atlantic"]
        reasons = [entry.get("reason") for entry in result["logs"]]
        assert "validation-failed-flag" in reasons and "already-pre-refined" in reasons
        assert {m["provider"] for m in result["llmMetrics"]} == {"embedded"}
        summary = json.loads((research / "data/tasks/research-summary/py/summary.json").read_text())
        assert summary["confidence"] == 0.72
        assert c.validated_results["runTask"] == 1


async def test_a_dry_run_checks_the_research_task_and_runs_nothing(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        before = tree(research)
        dry = await c.dry_run_task("tasks/summary.task.yaml", {"topic": "Tide pools"})
        assert tree(research) == before, "a dry run writes nothing"
    validate_result("runTask", dry)
    assert errors_for("dryRun.result.json", dry) == []
    assert (dry["dryRun"], dry["ok"], dry["task"]) == (True, True, "research-summary")
    assert [(stage["stage"], stage["handler"]) for stage in dry["stages"]] == SUMMARY_STAGES
    assert [stage["problems"] for stage in dry["stages"]] == [[]] * len(SUMMARY_STAGES)
    assert not {"logs", "context", "llmMetrics"} & set(dry), "nothing ran"
    assert not (research / "data" / "tasks").exists()
    assert [params for method, params in c.requests if method == "runTask"] == [
        {"task": "tasks/summary.task.yaml", "input": {"topic": "Tide pools"}, "dryRun": True}
    ]


async def test_a_dry_run_finds_what_would_stop_each_stage(spawn: Spawner, research: Path) -> None:
    (research / "tasks" / "broken.task.yaml").write_text(BROKEN_TASK)
    env = {name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"}
    async with spawn(workspace=research, env=env) as c:
        dry = await c.dry_run_task("tasks/broken.task.yaml")
        assert not (research / "data" / "tasks").exists()
        ran = await c.run_task("tasks/broken.task.yaml", run_id="real")  # a run, not a dry run: the task runs
    validate_result("runTask", dry)
    assert (dry["dryRun"], dry["ok"], dry["task"]) == (True, False, "broken")
    stages = {stage["stage"]: stage for stage in dry["stages"]}
    assert list(stages) == ["ingestion", "inference", "validateQuality", "integration"]
    assert stages["ingestion"]["handler"] == "command no-such-program-for-stagerunner-tests"
    assert any("no-such-program-for-stagerunner-tests" in problem for problem in stages["ingestion"]["problems"])
    assert any("OPENAI_API_KEY" in problem for problem in stages["inference"]["problems"])
    assert any("quality" in problem for problem in stages["validateQuality"]["problems"])
    assert stages["integration"] == {"stage": "integration", "handler": "write out.txt", "problems": []}
    assert (ran["ok"], ran["failedStage"]) == (False, "ingestion")
    assert (research / "data" / "tasks" / "broken" / "real").is_dir()
    assert [params for method, params in c.requests if method == "runTask"] == [
        {"task": "tasks/broken.task.yaml", "dryRun": True},
        {"task": "tasks/broken.task.yaml", "runId": "real"},
    ]


async def test_run_task_options_reach_the_context(spawn: Spawner, research: Path) -> None:
    text = "{{ currentModel }}/{{ meta.modelConfig.models | length }}"
    task = {"stages": {"ingestion": {"template": {"text": text}}}}
    async with spawn(workspace=research) as c:
        result = await c.run_task(
            task,
            "seed text",
            model_config={"defaultProvider": "embedded", "defaultModel": "research", "models": ["research", "b"]},
            max_refinements=0,
            task_timeout=30,
            run_id="opts",
        )
    assert result["ok"] is True
    context = result["context"]
    assert context["data"] == {"seed": "seed text", "ingestion": "research/2"}
    assert (context["currentModel"], context["availableModels"]) == ("research", ["research", "b"])


async def test_a_client_stage_is_served_by_a_python_handler(spawn: Spawner, research: Path) -> None:
    seen: list[tuple[str, TaskContext]] = []
    c = spawn(workspace=research)

    @c.stage_handler("quality")
    async def grade(stage: str, context: TaskContext) -> dict[str, Any]:
        seen.append((stage, context))
        return {"output": {"grade": "A", "words": len(context["output"].split())}, "flags": {"validationFailed": False}}

    async with c:
        result = await c.run_task(GRADED, {"topic": "kelp"}, run_id="g1")
    validate_result("runTask", result)
    assert result["ok"] is True, result.get("error")
    assert [stage for stage, _ in seen] == ["validateQuality"]
    context = seen[0][1]
    assert context["output"] == "A draft about kelp." and context["currentStage"] == "validateQuality"
    assert context["meta"]["taskName"] == "graded"
    assert result["context"]["data"]["validateQuality"] == {"grade": "A", "words": 4}
    assert (research / "data/tasks/graded/g1/graded.txt").read_text() == "A draft about kelp."
    assert c.validated_results.get("executeStage") == 1  # the answer was checked against the schema
    assert c.received["executeStage"] == 1


async def test_a_failing_validation_handler_drives_refinement(spawn: Spawner, research: Path) -> None:
    grades = iter(["C", "A"])

    def critique(stage: str, context: TaskContext) -> dict[str, Any]:  # a plain function: run in a thread
        assert threading.current_thread() is not threading.main_thread()
        return {"output": f"critique {context['refinementCount']}", "flags": {}}

    async def quality(stage: str, context: TaskContext) -> dict[str, Any]:
        grade = next(grades)
        return {"output": grade, "flags": {"validationFailed": grade != "A"}}

    task = {
        "stages": {
            "promptTemplating": {"template": {"text": "draft"}},
            "validateQuality": {"client": "quality"},
            "critique": {"client": "critique"},
        }
    }
    async with spawn(workspace=research, stage_handlers={"quality": quality, "critique": critique}) as c:
        assert c.stage_handlers == ["critique", "quality"]
        result = await c.run_task(task)
    assert result["ok"] is True and result["refinementAttempts"] == 1
    assert result["context"]["data"]["critique"] == "critique 1"
    assert [e["stage"] for e in result["logs"] if e.get("preRefinement")] == ["critique"]


async def test_a_handler_that_raises_fails_the_task_with_client_stage_error(spawn: Spawner, research: Path) -> None:
    c = spawn(workspace=research)

    @c.stage_handler("quality")
    def broken(stage: str, context: TaskContext) -> dict[str, Any]:
        raise ValueError("the grader is down")

    async with c:
        result = await c.run_task(GRADED, {"topic": "kelp"})
    validate_result("runTask", result)
    assert (result["ok"], result["failedStage"]) == (False, "validateQuality")
    error = result["error"]
    assert error["name"] == "ClientStageError"
    assert error["message"] == (
        "the client's handler 'quality' answered executeStage with error -32803: ValueError: the grader is down"
    )
    assert error["data"] == {"exception": "ValueError", "handler": "quality", "stage": "validateQuality"}


async def test_an_rpc_error_from_a_handler_is_sent_as_it_is(spawn: Spawner, research: Path) -> None:
    c = spawn(workspace=research)

    @c.stage_handler("quality")
    async def refuse(stage: str, context: TaskContext) -> dict[str, Any]:
        raise RequestFailed(-32803, "quota exceeded", {"retryAfter": 30})

    async with c:
        result = await c.run_task(GRADED, {"topic": "kelp"})
    assert result["error"]["message"].endswith("error -32803: quota exceeded")
    assert result["error"]["data"] == {"retryAfter": 30}


async def test_undeclared_handlers_and_late_registration(spawn: Spawner, research: Path) -> None:
    c = spawn(workspace=research)

    @c.stage_handler("other")
    async def other(stage: str, context: TaskContext) -> dict[str, Any]:
        return {"output": None, "flags": {}}

    async with c:
        with pytest.raises(RuntimeError, match="registered after initialize"):
            c.stage_handler("quality")(other)
        c.stage_handler("other")(other)  # replacing a declared handler is fine
        result = await c.run_task(GRADED, {"topic": "kelp"})
    assert (result["ok"], result["error"]["name"]) == (False, "ClientStageError")
    assert "did not declare" in result["error"]["message"] and "(it declared other)" in result["error"]["message"]


async def test_a_task_that_cannot_be_loaded_raises_task_error(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        c.check_params = False  # the inline task breaks schema/task.json on purpose
        with pytest.raises(TaskError) as missing:
            await c.run_task("tasks/missing.yaml")
        assert (missing.value.code, missing.value.kind, missing.value.file) == (-32015, "task", "tasks/missing.yaml")
        with pytest.raises(TaskError) as bad:
            await c.run_task({"stages": {"parsing": {"parse": "yaml"}}})
        assert (bad.value.file, bad.value.path) == ("<inline>", "stages.parsing.parse")


async def test_a_slow_handler_is_cancelled_when_its_stage_times_out(spawn: Spawner, research: Path) -> None:
    cancelled = asyncio.Event()
    c = spawn(workspace=research)

    @c.stage_handler("quality")
    async def slow(stage: str, context: TaskContext) -> dict[str, Any]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"output": None, "flags": {}}

    task = {"stages": {"validateQuality": {"client": "quality", "timeout": 0.3}}}
    async with c:
        result = await c.run_task(task, max_refinements=0)
        await asyncio.wait_for(cancelled.wait(), 5)
    assert (result["ok"], result["error"]["name"]) == (False, "StageTimeoutError")
    assert c.received["$/cancelRequest"] == 1  # the server gave up on its executeStage


def test_sync_client_runs_tasks_with_handlers(bin_path: str, research: Path) -> None:
    def quality(stage: str, context: TaskContext) -> dict[str, Any]:
        return {"output": context["output"].upper(), "flags": {"validationFailed": False}}

    with SyncClient.spawn(bin_path, workspace=research, stage_handlers={"quality": quality}) as c:
        result = c.run_task(GRADED, {"topic": "kelp"}, run_id="sync")
        assert result["ok"] is True
        assert result["context"]["data"]["validateQuality"] == "A DRAFT ABOUT KELP."
        research_result = c.run_task("tasks/summary.task.yaml", {"topic": "Kelp forests"})
        assert research_result["ok"] is True


def test_sync_client_dry_runs(bin_path: str, research: Path) -> None:
    with SyncClient.spawn(bin_path, workspace=research) as c:
        task = c.dry_run_task("tasks/summary.task.yaml")
        pipeline = c.dry_run_pipeline("pipelines/research.pipeline.yaml")
    assert (task["dryRun"], task["ok"], len(task["stages"])) == (True, True, len(SUMMARY_STAGES))
    assert (pipeline["dryRun"], pipeline["ok"], [t["name"] for t in pipeline["tasks"]]) == (True, True, ["summary", "review"])
    assert not (research / "data" / "tasks").exists() and not (research / "jobs").exists()


def test_stage_handler_names_must_be_non_empty() -> None:
    c = Client(["stagerunner", "serve"])
    with pytest.raises(ValueError):
        c.stage_handler("")
