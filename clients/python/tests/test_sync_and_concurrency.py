"""SyncClient, and many requests in flight at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from stagerunner import SyncClient, TemplateError, WorkspaceError
from stagerunner_testkit import Spawner

CONCEPTS = [{"name": "Default mode network", "description": "rest"}, {"name": "Search", "description": "combos"}]


def test_sync_client_methods(sync_spawn: Callable[..., SyncClient], workspace: Path) -> None:
    c = sync_spawn(args=["--enable-test-methods"])
    assert c.initialize_result is not None and c.initialize_result["protocolVersion"] == "1.0"
    assert c.ping() == {}
    assert c.ping(echo="sync ✓") == {"echo": "sync ✓"}
    assert c.validate_workspace()["valid"] is True
    assert len(c.list_templates(stage="draft")["templates"]) == 2
    assert "Default mode network" in c.render_prompt("draft", gen_id="d-creative")["prompt"]
    result = c.run_stage("draft", gen_id="d-creative")
    assert result["status"] == "success"
    assert c.run_stage("draft", gen_id="d-creative")["reused"] is True
    with pytest.raises(TemplateError) as err:
        c.run_stage("draft", template_id="creative-synthesis", model="m")
    assert err.value.line is not None
    with pytest.raises(WorkspaceError):
        c.render_prompt("evaluation", gen_id="v-analytic-llm-novelty")
    with pytest.raises(TimeoutError):
        c.request("test/sleep", {"ms": 5000}, timeout=0.2)
    assert c.request("ping", {"echo": 2}) == {"echo": 2}
    c.notify("initialized", {})
    c.shutdown()
    pid = c.pid
    c.close()
    c.close()  # idempotent
    assert c.returncode == 0 and pid is not None
    with pytest.raises(RuntimeError):
        c.ping()


def test_sync_client_context_manager(bin_path: str, workspace: Path) -> None:
    threads_before = threading.active_count()
    with SyncClient.spawn(bin_path, workspace) as c:
        assert c.ping(echo=1) == {"echo": 1}
        assert "stagerunner" in c.stderr_tail() or c.stderr_tail() == ""
    assert c.returncode == 0
    assert threading.active_count() <= threads_before


async def test_fifty_concurrent_run_stage(spawn: Spawner, workspace: Path) -> None:
    async with spawn() as c:
        stage_calls = asyncio.gather(
            *(
                c.run_stage(
                    "draft",
                    gen_id=f"c-{i:02d}",
                    template_id="systematic-analytical",
                    model="sonnet-4",
                    values={"concepts": CONCEPTS},
                    run_id="concurrency",
                )
                for i in range(50)
            )
        )
        ping_calls = asyncio.gather(*(c.ping(echo=i) for i in range(10)))
        stages, pings = await asyncio.gather(stage_calls, ping_calls)
        assert pings == [{"echo": i} for i in range(10)]
        assert [r["genId"] for r in stages] == [f"c-{i:02d}" for i in range(50)]
        assert all(r["reused"] is False and r["status"] == "success" for r in stages)
        assert len(list((workspace / "data/gens/draft").iterdir())) == 50
        assert c.validated_results["runStage"] == 50

        # The same generation requested 20 times at once is generated once: overlapping requests
        # share the execution (reused false), later ones find it committed (reused true).
        same = await asyncio.gather(*(c.run_stage("essay", gen_id="e-creative-llm") for _ in range(20)))
        assert len({r["metadata"]["run_id"] for r in same}) == 1
        assert len({r["metadata"]["created_at"] for r in same}) == 1
        assert not same[0]["reused"]


def test_sync_client_from_threads(sync_spawn: Callable[..., SyncClient]) -> None:
    c = sync_spawn()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                assert c.ping(echo=[n, i]) == {"echo": [n, i]}
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_sync_call_from_loop_thread_is_refused(sync_spawn: Callable[..., SyncClient]) -> None:
    c = sync_spawn()
    seen: list[BaseException] = []

    async def inside() -> None:
        try:
            c.ping()
        except RuntimeError as exc:
            seen.append(exc)

    c._call(inside())
    assert len(seen) == 1 and "loop thread" in str(seen[0])
