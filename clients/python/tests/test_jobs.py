"""Jobs against the real server: runPipeline, getStatus, cancel, retry, resume, artifacts and subscriptions."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from stagerunner import (
    InvalidParams,
    JobError,
    StatusChange,
    StatusSubscription,
    SyncClient,
    TaskError,
    apply_patch,
    compute_task_stage,
)
from stagerunner_testkit import REPO_ROOT, Spawner, errors_for, validate_result

RESEARCH = REPO_ROOT / "examples" / "research-task"

FLAKY_TASK = """name: flaky
stages:
  ingestion:
    command: [python3, -c, "import json, os, sys; sys.stdin.read(); os.path.exists('ok.flag') or sys.exit('no ok.flag yet'); print(json.dumps({'output': 'fixed', 'flags': {}}))"]
"""
SLOW_TASK = """name: slow
stages:
  ingestion:
    command: [python3, -c, "import json, os, sys, time; sys.stdin.read(); os.path.exists('fast.flag') or time.sleep(30); print(json.dumps({'output': 'slept', 'flags': {}}))"]
"""
FLAKY = {"name": "flaky", "tasks": [
    {"task": "tasks/flaky.task.yaml"}, {"name": "review", "task": "tasks/review.task.yaml", "input": "seed"},
]}
SLOW = {"name": "slow", "tasks": [{"task": "tasks/slow.task.yaml"}]}
REVIEW_INPUT = {"title": "Kelp", "findings": ["a", "b"], "confidence": 0.5}


@pytest.fixture
def research(tmp_path: Path) -> Path:
    """A fresh copy of examples/research-task, with a flaky and a slow task added."""
    dest = tmp_path / "research-task"
    shutil.copytree(RESEARCH, dest)
    (dest / "tasks" / "flaky.task.yaml").write_text(FLAKY_TASK)
    (dest / "tasks" / "slow.task.yaml").write_text(SLOW_TASK)
    return dest


def transitions(changes: list[StatusChange]) -> list[tuple[str, ...]]:
    """The job and task events of the changes, in order."""
    return [
        (e["type"], e["state"]) if e["type"] == "job" else (e["type"], e["task"], e["state"])
        for change in changes
        for e in change.events
        if e["type"] in ("job", "task")
    ]


async def test_research_pipeline_end_to_end(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        changes: list[StatusChange] = []
        async with c.subscribe_status(delivery="patch") as every:
            assert every.baseline_rev == 0 and every.documents == {}
            started = await c.run_pipeline("pipelines/research.pipeline.yaml", {"topic": "Tide pools of the Atlantic"})
            validate_result("runPipeline", started)
            job_id = started["jobId"]
            async for change in every:
                changes.append(change)
                if change.job_id == job_id and change.finished:
                    break
        assert transitions(changes) == [
            ("job", "pending"), ("job", "running"),
            ("task", "summary", "running"), ("task", "summary", "refining"), ("task", "summary", "done"),
            ("task", "review", "running"), ("task", "review", "done"),
            ("job", "done"),
        ]
        assert [change.rev for change in changes] == sorted({change.rev for change in changes})
        status = await c.get_status(job_id)
        assert changes[-1].status == status["status"], "the patched document is getStatus's"
        assert status["taskStages"] == {"summary": None, "review": None}
        document = status["status"]
        assert (document["state"], document["progress"]["percent"]) == ("done", 100)
        assert document["tasks"]["summary"]["refinementAttempts"] == 1
        assert document["tasks"]["review"]["files"] == {
            "output": "tasks/review/output.json", "logs": "tasks/review/execution-logs.json",
        }

        review = await c.get_artifact(job_id, "tasks/review/review.md")
        on_disk = (research / "jobs" / job_id / "tasks" / "review" / "review.md").read_text()
        assert (review["text"], review["size"]) == (on_disk, len(on_disk.encode()))
        output = json.loads((await c.get_artifact(job_id, "tasks/summary/output.json"))["text"])
        assert output["ok"] is True
        listed = await c.list_jobs("done")
        assert [job["id"] for job in listed["jobs"]] == [job_id]
        assert (await c.list_jobs("failed"))["jobs"] == []
        for method in ("runPipeline", "getStatus", "getArtifact", "listJobs", "subscribeStatus", "unsubscribeStatus"):
            assert c.validated_results.get(method), method
        assert c.validated_notifications["statusChanged"] >= len(changes)
        assert c.received["statusChanged"] >= len(changes) and c.sent["unsubscribeStatus"] == 1


async def until_finished(subscription: StatusSubscription, job_id: str) -> list[StatusChange]:
    """The changes of `job_id` until it has finished."""
    changes = []
    async for change in subscription:
        if change.job_id == job_id:
            changes.append(change)
            if change.finished:
                return changes
    raise AssertionError("the subscription ended before the job finished")


async def test_patch_mode_reproduces_get_status(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        async with c.subscribe_status(delivery="patch") as by_patch, c.subscribe_status() as by_snapshot:
            job_id = (await c.run_pipeline("pipelines/research.pipeline.yaml", {"topic": "Kelp forests"}))["jobId"]
            patched, snapshots = await asyncio.gather(until_finished(by_patch, job_id), until_finished(by_snapshot, job_id))
        final = (await c.get_status(job_id))["status"]
        assert patched[-1].status == final == snapshots[-1].status
        assert patched[-1].state == "done" and not any(change.resynced for change in patched)
        assert any("patch" in change.params for change in patched)


async def test_a_subscription_sees_pending_running_done_in_order(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        async with c.subscribe_status() as every:
            job_id = (await c.run_pipeline(SLOW | {"tasks": [{"task": "tasks/review.task.yaml"}]}, REVIEW_INPUT))["jobId"]
            states: list[str] = []
            async for change in every:
                if not states or states[-1] != change.state:
                    states.append(change.state)
                if change.finished:
                    break
        assert states == ["pending", "running", "done"], states
        assert job_id in every.documents


async def test_wait_answers_with_the_final_status(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        result = await c.run_pipeline(FLAKY, REVIEW_INPUT, name="flaky run", wait=True)
        validate_result("runPipeline", result)
        status = result["status"]
        assert (status["name"], status["state"], status["current"], status["currentStage"]) == (
            "flaky run", "failed", "flaky", "ingestion",
        )
        assert compute_task_stage(status, "flaky") == "ingestion" and compute_task_stage(status, "review") is None
        assert (await c.get_status(result["jobId"]))["taskStages"] == {"flaky": "ingestion", "review": None}


async def test_a_pipeline_dry_run_checks_every_task_and_starts_no_job(spawn: Spawner, research: Path) -> None:
    gaps = {"name": "gaps", "tasks": [{"task": "tasks/flaky.task.yaml"}, {"name": "gone", "task": "tasks/missing.task.yaml"}]}
    async with spawn(workspace=research) as c:
        async with c.subscribe_status() as every:
            dry = await c.dry_run_pipeline("pipelines/research.pipeline.yaml", {"topic": "Kelp"})
            partial = await c.dry_run_pipeline(gaps)
            assert (await c.list_jobs())["jobs"] == []
        assert every.documents == {} and c.received.get("statusChanged", 0) == 0
    for result in (dry, partial):
        validate_result("runPipeline", result)
        assert errors_for("dryRun.result.json", result) == []
        assert "jobId" not in result
    assert (dry["dryRun"], dry["ok"], dry["pipeline"]) == (True, True, "research")
    assert [(task["name"], task["file"], task["ok"]) for task in dry["tasks"]] == [
        ("summary", "tasks/summary.task.yaml", True), ("review", "tasks/review.task.yaml", True),
    ]
    assert [stage["stage"] for stage in dry["tasks"][1]["stages"]] == ["promptTemplating", "inference", "integration"]
    assert all(stage["problems"] == [] for task in dry["tasks"] for stage in task["stages"])
    assert (partial["ok"], partial["pipeline"]) == (False, "gaps")
    flaky, gone = partial["tasks"]
    assert (flaky["name"], flaky["ok"], [stage["stage"] for stage in flaky["stages"]]) == ("flaky", True, ["ingestion"])
    assert (gone["name"], gone["file"], gone["ok"]) == ("gone", "tasks/missing.task.yaml", False)
    assert "stages" not in gone and "tasks/missing.task.yaml" in gone["error"]
    assert not (research / "jobs").exists() and not (research / "data" / "tasks").exists()
    assert [params for method, params in c.requests if method == "runPipeline"] == [
        {"pipeline": "pipelines/research.pipeline.yaml", "input": {"topic": "Kelp"}, "dryRun": True},
        {"pipeline": gaps, "dryRun": True},
    ]


async def test_a_pipeline_dry_run_checks_the_tasks_as_the_job_would_run_them(spawn: Spawner, research: Path) -> None:
    (research / "tasks" / "plain.task.yaml").write_text("name: plain\nstages:\n  inference:\n    llm: null\n")
    openai = {"defaultProvider": "openai", "defaultModel": "gpt-4o-mini"}
    pipeline = {"name": "plain", "tasks": [{"task": "tasks/plain.task.yaml"}], "defaults": {"modelConfig": openai}}
    env = {name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"}
    async with spawn(workspace=research, env=env) as c:
        task = await c.dry_run_task("tasks/plain.task.yaml", model_config=openai)
        assert task["ok"] is False and "OPENAI_API_KEY" in task["stages"][0]["problems"][0]
        job = await c.run_pipeline(pipeline, wait=True)
        assert job["status"]["state"] == "failed"  # the job does use openai, and has no key
        dry = await c.dry_run_pipeline(pipeline)
    assert dry["ok"] is False, dry
    assert dry["tasks"][0]["stages"][0]["problems"] == task["stages"][0]["problems"]


async def test_retry_after_a_failure(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        failed = await c.run_pipeline(FLAKY, REVIEW_INPUT, wait=True)
        job_id = failed["jobId"]
        assert failed["status"]["tasks"]["flaky"]["error"]["name"] == "CommandError"
        with pytest.raises(JobError) as raised:
            await c.resume_job(job_id)
        assert (raised.value.reason, raised.value.job_id) == ("invalid_state", job_id)

        (research / "tasks" / "ok.flag").write_text("")
        async with c.subscribe_status(job_id, "patch", until_finished=True) as sub:
            assert await c.retry_task(job_id, "flaky") == {"jobId": job_id}
            changes = [change async for change in sub]
        assert transitions(changes)[-1] == ("job", "done")
        document = changes[-1].status
        assert (document["tasks"]["flaky"]["attempts"], document["tasks"]["review"]["state"]) == (2, "done")
        assert document == (await c.get_status(job_id))["status"]
        with pytest.raises(JobError) as raised:
            await c.retry_task(job_id, "nope")
        assert raised.value.reason == "not_found"


async def test_cancel_mid_stage_then_resume(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        async with c.subscribe_status() as every:
            job_id = (await c.run_pipeline(SLOW))["jobId"]
            async for change in every:
                if change.job_id == job_id and change.event["type"] == "stage" and change.event["state"] == "started":
                    break
            cancelled = await asyncio.wait_for(c.cancel_job(job_id), 10)
        validate_result("cancelJob", cancelled)
        status = cancelled["status"]
        assert (status["state"], status["tasks"]["slow"]["state"]) == ("cancelled", "cancelled")
        assert (status["cancelled"]["task"], status["cancelled"]["stage"]) == ("slow", "ingestion")
        with pytest.raises(JobError) as raised:
            await c.cancel_job(job_id)
        assert raised.value.reason == "invalid_state"

        (research / "tasks" / "fast.flag").write_text("")
        sub = c.subscribe_status(job_id, "patch", until_finished=True)
        await sub.start()
        assert await c.resume_job(job_id) == {"jobId": job_id}
        last = [change async for change in sub][-1]
        assert last.state == "done" and last.status["tasks"]["slow"]["attempts"] == 2


async def test_errors_of_the_job_methods(spawn: Spawner, research: Path) -> None:
    async with spawn(workspace=research) as c:
        with pytest.raises(JobError) as raised:
            await c.get_status("20990101T000000Z-0000")
        assert raised.value.reason == "not_found" and raised.value.kind == "job"
        job_id = (await c.run_pipeline("pipelines/research.pipeline.yaml", {"topic": "x"}, wait=True))["jobId"]
        with pytest.raises(JobError) as raised:
            await c.get_artifact(job_id, "../../stagerunner.yaml")
        assert raised.value.reason == "invalid_path"
        with pytest.raises(TaskError) as bad:
            await c.run_pipeline({"tasks": [{"task": "tasks/summary.task.yaml", "input": {"task": "later"}}]})
        assert (bad.value.kind, bad.value.path) == ("pipeline", "tasks[0].input.task")
        c.check_params = False
        with pytest.raises(InvalidParams) as invalid:
            await c.list_jobs("finished")  # type: ignore[arg-type]
        assert invalid.value.field == "params.state"
        with pytest.raises(InvalidParams):
            await c.unsubscribe_status("sub-99")
        with pytest.raises(ValueError):
            c.subscribe_status(job_id, "diff")


def test_sync_client_iterates_a_subscription(sync_spawn: Any, research: Path) -> None:
    c: SyncClient = sync_spawn(workspace=research)
    with c.subscribe_status(delivery="patch") as sub:
        job_id = c.run_pipeline("pipelines/research.pipeline.yaml", {"topic": "Salt marshes"})["jobId"]
        changes = []
        for change in sub:
            changes.append(change)
            if change.job_id == job_id and change.finished:
                break
    assert changes[-1].state == "done"
    assert changes[-1].status == c.get_status(job_id)["status"] == sub.documents[job_id]
    assert c.cancel_job is not None and c.list_jobs()["jobs"][0]["id"] == job_id
    assert c.get_artifact(job_id, "tasks/review/review.md")["size"] > 0


# ---------------------------------------------------------------------------------------------
# The subscription's bookkeeping, without a server


class FakeClient:
    """Just enough of a Client for StatusSubscription._apply: getStatus answers `current`."""

    def __init__(self, current: dict[str, Any]) -> None:
        self.current = current
        self.calls = 0
        self.closed = False

    async def request(self, method: str, params: Any, timeout: float | None = None) -> Any:
        assert method == "getStatus"
        self.calls += 1
        return {"status": self.current, "taskStages": {}}


def document(rev: int, state: str = "running") -> dict[str, Any]:
    return {"id": "j", "rev": rev, "state": state, "tasks": {}}


async def test_patches_apply_only_on_the_rev_held_else_get_status() -> None:
    fake = FakeClient(document(9, "done"))
    sub = StatusSubscription(fake, "j", "patch")  # type: ignore[arg-type]
    sub.subscription_id = "sub-1"
    sub.documents["j"] = document(3)
    event = {"type": "job", "state": "running"}

    def note(rev: int, base: int, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return {"subscriptionId": "sub-1", "jobId": "j", "rev": rev, "baseRev": base, "event": event, "coalesced": 1,
                "patch": ops + [{"op": "replace", "path": "/rev", "value": rev}]}

    change = await sub._apply(note(4, 3, [{"op": "add", "path": "/current", "value": "a"}]))
    assert change is not None and change.status == document(4) | {"current": "a"} and not change.resynced
    assert await sub._apply(note(4, 3, [])) is None, "a revision already held is skipped"
    assert await sub._apply({**note(5, 4, []), "subscriptionId": "sub-2"}) is None, "another subscription's"
    change = await sub._apply(note(7, 6, []))  # a gap: 5 and 6 were never seen
    assert change is not None and change.resynced and change.status == document(9, "done") and fake.calls == 1
    assert await sub._apply(note(8, 7, [])) is None, "getStatus is already past it"
    change = await sub._apply(note(10, 9, [{"op": "remove", "path": "/missing"}]))  # does not apply
    assert change is not None and change.resynced and fake.calls == 2
    snapshot = document(12, "failed")
    change = await sub._apply({"subscriptionId": "sub-1", "jobId": "j", "rev": 12, "event": event, "coalesced": 3,
                               "events": [event, event, event], "snapshot": snapshot})
    assert change is not None and change.status == snapshot and change.coalesced == 3 and len(change.events) == 3
    assert change.finished


def test_apply_patch_follows_rfc_6902() -> None:
    base = {"a": {"b": 1}, "list": [1], "we/ird~": 0}
    patched = apply_patch(base, [
        {"op": "replace", "path": "/a/b", "value": 2}, {"op": "add", "path": "/a/c", "value": None},
        {"op": "remove", "path": "/we~1ird~0"}, {"op": "add", "path": "/list/-", "value": 2},
    ])
    assert patched == {"a": {"b": 2, "c": None}, "list": [1, 2]}
    assert base == {"a": {"b": 1}, "list": [1], "we/ird~": 0}, "the original is untouched"


def test_the_status_examples_validate_and_give_task_stages() -> None:
    examples = REPO_ROOT / "protocol" / "examples" / "getStatus.result"
    for path in sorted(examples.glob("*.json")):
        result = json.loads(path.read_text())
        assert errors_for("getStatus.result.json", result) == []
        for task, stage in result["taskStages"].items():
            assert compute_task_stage(result["status"], task) == stage, (path.name, task)
