"""runStage's progress callbacks ($/progress), its budgetScope and cache params, and BudgetError (-32017)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stagerunner import BudgetError, ProgressValue, StageResult, SyncClient, TemplateError
from stagerunner.types import CacheMode
from stagerunner_testkit import Spawner

# Members of a runStage result that differ from one run to the next.
VOLATILE_METADATA = {"created_at", "duration_ms", "run_id"}


def comparable(result: StageResult) -> dict[str, Any]:
    """The result without what changes between two runs of the same generation."""
    same: dict[str, Any] = dict(result)
    same["metadata"] = {k: v for k, v in result["metadata"].items() if k not in VOLATILE_METADATA}
    same.pop("reused")
    return same


async def test_progress_run_yields_begin_the_whole_text_and_end(spawn: Spawner) -> None:
    async with spawn() as c:
        plain = await c.run_stage("draft", gen_id="d-creative")
        values: list[ProgressValue] = []
        streamed = await c.run_stage("draft", gen_id="d-creative", force=True, on_progress=values.append)
        # The embedded provider answers whole: one report with the whole text.
        assert values == [
            {"kind": "begin", "title": "runStage"},
            {"kind": "report", "text": plain["raw"]},
            {"kind": "end", "message": "success"},
        ]
        assert streamed["reused"] is False
        assert comparable(streamed) == comparable(plain)
        assert c.sent["runStage"] == 2
        assert c.received["$/progress"] == 3
        assert c.validated_notifications["$/progress"] == 3  # each one checked against progress.params.json
        assert not c._progress_routes  # the token's route is gone


async def test_async_callback_explicit_token_and_notification_stream(spawn: Spawner) -> None:
    async with spawn() as c:
        seen: list[str] = []

        async def slow(value: ProgressValue) -> None:
            await asyncio.sleep(0.01)  # each value is delivered after the previous one is handled
            seen.append(value["kind"])

        async with c.notifications("$/progress") as stream:
            result = await c.run_stage("draft", gen_id="d-creative", progress_token=42, on_progress=slow)
            assert seen == ["begin", "report", "end"]  # all delivered before run_stage returned
            tokens = [(await anext(stream))["params"]["token"] for _ in range(3)]
        assert tokens == [42, 42, 42]
        assert result["status"] == "success"

        # A token alone: the notifications come, to notifications() and on_notification callbacks.
        async with c.notifications("$/progress") as stream:
            reused = await c.run_stage("draft", gen_id="d-creative", progress_token="mine")
            notes = [(await anext(stream))["params"] for _ in range(2)]
        assert reused["reused"] is True
        # A reused generation sends begin and end only.
        assert notes == [
            {"token": "mine", "value": {"kind": "begin", "title": "runStage"}},
            {"token": "mine", "value": {"kind": "end", "message": "reused"}},
        ]


async def test_concurrent_runs_get_their_own_values(spawn: Spawner) -> None:
    async with spawn() as c:
        got: dict[str, list[ProgressValue]] = {"a": [], "b": []}
        a, b = await asyncio.gather(
            c.run_stage("draft", gen_id="d-creative", on_progress=got["a"].append),
            c.run_stage(
                "draft",
                template_id="systematic-analytical",
                model="sonnet-4",
                values={"concepts": [{"name": "Sleep", "description": "replay"}]},
                on_progress=got["b"].append,
            ),
        )
        assert [v.get("text") for v in got["a"] if v["kind"] == "report"] == [a["raw"]]
        assert [v.get("text") for v in got["b"] if v["kind"] == "report"] == [b["raw"]]
        assert a["raw"] != b["raw"]


async def test_an_error_ends_the_progress_with_its_message(spawn: Spawner) -> None:
    async with spawn() as c:
        values: list[ProgressValue] = []
        with pytest.raises(TemplateError) as err:
            await c.run_stage("draft", template_id="creative-synthesis", model="m", on_progress=values.append)
        assert [v["kind"] for v in values] == ["begin", "end"]
        assert values[-1]["message"] in err.value.message  # the response's message is prefixed "Template: "


async def test_a_callback_that_raises_fails_the_call_once_the_server_answered(spawn: Spawner, workspace: Path) -> None:
    async with spawn() as c:

        def boom(value: ProgressValue) -> None:
            if value["kind"] == "report":
                raise RuntimeError("the UI went away")

        with pytest.raises(RuntimeError, match="the UI went away"):
            await c.run_stage("draft", gen_id="d-creative", on_progress=boom)
        assert (workspace / "data/gens/draft/d-creative/metadata.json").exists()  # the run completed
        assert await c.ping(echo="still fine") == {"echo": "still fine"}


def test_sync_client_progress(sync_spawn: Callable[..., SyncClient]) -> None:
    c = sync_spawn()
    chunks: list[str] = []
    result = c.run_stage("draft", gen_id="d-creative", on_progress=lambda v: chunks.append(v.get("text", "")))
    assert "".join(chunks) == result["raw"]


def set_budgets(workspace: Path, budgets: str) -> None:
    config = workspace / "stagerunner.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "\nbudgets:\n" + budgets, encoding="utf-8")


async def test_a_request_budget_refusal_raises_budget_error(spawn: Spawner, workspace: Path) -> None:
    set_budgets(workspace, "  request: {tokens: 5}\n")
    async with spawn() as c:
        values: list[ProgressValue] = []
        with pytest.raises(BudgetError) as err:
            await c.run_stage("draft", gen_id="d-creative", on_progress=values.append)
        e = err.value
        assert e.code == -32017 and e.kind == "budget"
        assert (e.scope, e.unit, e.cap) == ("request", "tokens", 5)
        assert e.spent == 0 and e.reserved == 0
        assert e.needed is not None and e.needed > 5
        assert e.budget_scope is None
        assert e.hint
        assert set(e.data) >= {"scope", "unit", "cap", "spent", "reserved", "needed"}
        assert [v["kind"] for v in values] == ["begin", "end"]
        assert not (workspace / "data/gens/draft/d-creative").exists()  # nothing committed


async def test_a_job_budget_names_its_budget_scope(spawn: Spawner, workspace: Path) -> None:
    set_budgets(workspace, "  job: {tokens: 50}\n")
    async with spawn() as c:
        with pytest.raises(BudgetError) as err:
            await c.run_stage(
                "draft",
                template_id="systematic-analytical",
                model="m",
                prompt_text="Write at length about idle minds.",
                max_tokens=100,
                budget_scope="batch-1",
            )
        assert (err.value.scope, err.value.budget_scope, err.value.cap) == ("job", "batch-1", 50)
        assert err.value.needed is not None and err.value.needed > 50
        # Without a budgetScope only the request and process caps apply.
        ok = await c.run_stage(
            "draft", template_id="systematic-analytical", model="m", prompt_text="Short.", max_tokens=100
        )
        assert ok["status"] in ("success", "truncated")


async def test_the_cache_param_is_accepted(spawn: Spawner) -> None:
    async with spawn() as c:
        modes: tuple[CacheMode, ...] = ("use", "refresh", "off")
        for mode in modes:
            result = await c.run_stage(
                "draft",
                gen_id=f"c-{mode}",
                template_id="systematic-analytical",
                model="m",
                prompt_text="Cache me.",
                cache=mode,
            )
            assert result["metadata"]["provider"] == "embedded"  # never cached
            assert "cached" not in result["metadata"]
        assert c.sent["runStage"] == 3


def test_budget_error_reads_its_data() -> None:
    from stagerunner import error_from_response

    err = error_from_response(
        {
            "code": -32017,
            "message": "Budget: …",
            "data": {
                "kind": "budget",
                "scope": "process",
                "unit": "cost_usd",
                "cap": 0.5,
                "spent": 0.25,
                "reserved": 0.1,
                "needed": 0.3,
            },
        }
    )
    assert isinstance(err, BudgetError)
    assert (err.scope, err.unit, err.cap, err.spent, err.reserved, err.needed) == (
        "process",
        "cost_usd",
        0.5,
        0.25,
        0.1,
        0.3,
    )
    assert re.search("Budget", str(err))
