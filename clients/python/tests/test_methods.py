"""Every protocol method against the real server, in both framings; results are schema-checked."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from stagerunner import Client, InvalidRequest
from stagerunner_testkit import Spawner

FRAMINGS = ["ndjson", "lsp"]


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_initialize_handshake(spawn: Spawner, workspace: Path, framing: str) -> None:
    async with spawn(framing=framing) as c:
        init = c.initialize_result
        assert init is not None
        assert init["protocolVersion"] == "1.0"
        assert init["serverInfo"]["name"] == "stagerunner"
        assert init["capabilities"]["framing"] == framing
        assert init["workspace"]["root"] == str(workspace.resolve())
        assert c.capabilities is not None and "runStage" in c.capabilities["methods"]
        assert c.validated_results["initialize"] == 1
        assert (c.sent["initialize"], c.sent["initialized"]) == (1, 1)
    assert c.returncode == 0


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_ping(spawn: Spawner, framing: str) -> None:
    async with spawn(framing=framing) as c:
        assert await c.ping() == {}
        assert await c.ping(echo=None) == {"echo": None}
        assert await c.ping(echo="héllo wörld ✓ 𝄞") == {"echo": "héllo wörld ✓ 𝄞"}
        nested: dict[str, Any] = {"b": [1, 2, {"c": True}], "a": "x\ny"}
        assert await c.ping(echo=nested) == {"echo": nested}
        assert await c.request("ping") == {}
        assert c.validated_results["ping"] == 5


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_workspace_methods(spawn: Spawner, workspace: Path, framing: str) -> None:
    async with spawn(framing=framing) as c:
        report = await c.validate_workspace()
        assert report["valid"] is True
        assert report["root"] == str(workspace.resolve())
        assert report["templates"] == 6 and report["generations"] == 10

        everything = await c.list_templates()
        assert [t["stage"] for t in everything["templates"]][:2] == ["draft", "draft"]
        assert len(everything["templates"]) == 6
        evaluation = await c.list_templates("evaluation", include_inactive=False)
        assert {t["id"] for t in evaluation["templates"]} == {"novelty", "scientific-rigor"}
        assert all(t["parser"] for t in evaluation["templates"])

        prompt = await c.render_prompt("draft", gen_id="d-creative")
        assert prompt["templateId"] == "creative-synthesis"
        assert prompt["templateFile"] == "data/1_raw/templates/draft/creative-synthesis.txt"
        assert "Default mode network" in prompt["prompt"]
        assert prompt["variables"]["idea_count"] == 3
        override = await c.render_prompt("draft", gen_id="d-creative", values={"idea_count": 5})
        assert override["variables"]["idea_count"] == 5
        assert not (workspace / "data" / "gens").exists() or not any((workspace / "data" / "gens").rglob("*.json"))

        draft = await c.run_stage("draft", gen_id="d-creative", run_id="py-1")
        assert draft["genId"] == "d-creative" and draft["reused"] is False
        assert draft["status"] == "success"
        assert draft["metadata"]["run_id"] == "py-1"
        assert draft["metadata"]["provider"] == "embedded"
        assert (workspace / "data/gens/draft/d-creative/metadata.json").exists()
        again = await c.run_stage("draft", gen_id="d-creative")
        assert again["reused"] is True
        forced = await c.run_stage("draft", gen_id="d-creative", force=True)
        assert forced["reused"] is False

        copy = await c.run_stage("essay", gen_id="e-creative-copy")
        assert copy["metadata"]["mode"] == "copy" and copy["raw"] is None
        assert copy["parsed"] == draft["parsed"]

        # The evaluation's essay is generated first (it is in the membership).
        evaluation_run = await c.run_stage("evaluation", gen_id="v-creative-llm-novelty")
        assert evaluation_run["metadata"]["parent_gen_id"] == "e-creative-llm"
        assert "score" in evaluation_run
        assert (workspace / "data/gens/essay/e-creative-llm/metadata.json").exists()

        clipped = await c.run_stage("draft", gen_id="d-creative", max_text_length=10)
        assert clipped["textTruncated"] is True and clipped["raw"] is not None and len(clipped["raw"].encode()) <= 10

        adhoc = await c.run_stage(
            "draft",
            template_id="systematic-analytical",
            model="sonnet-4",
            values={"concepts": [{"name": "a", "description": "b"}]},
            max_tokens=5,
        )
        assert adhoc["metadata"]["truncated"] is True
        assert adhoc["status"] == "truncated"

        await c.shutdown()
        with pytest.raises(InvalidRequest):
            await c.ping()
        for method in ("validateWorkspace", "listTemplates", "renderPrompt", "runStage", "shutdown"):
            assert c.validated_results.get(method, 0) >= 1, method
    assert c.returncode == 0


async def test_generic_request_and_notify(spawn: Spawner) -> None:
    async with spawn(args=["--enable-test-methods"]) as c:
        assert await c.request("test/sleep", {"ms": 1}) == {"slept": 1}
        assert await c.request("test/print", {"text": "to stderr"}) == {}
        await c.notify("no/such-notification", {"x": 1})  # ignored by the server
        assert await c.ping(echo=1) == {"echo": 1}


async def test_await_and_close_without_context_manager(spawn: Spawner) -> None:
    c = await spawn()
    try:
        assert await c.ping(echo="x") == {"echo": "x"}
    finally:
        await c.close()
    await c.close()  # idempotent
    assert c.closed and c.returncode == 0


async def test_without_initialize(bin_path: str, workspace: Path) -> None:
    async with Client.spawn(bin_path, workspace, initialize=False) as c:
        assert c.initialize_result is None
        assert (await c.validate_workspace())["valid"] is True


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_large_non_ascii_messages(spawn: Spawner, framing: str) -> None:
    big = "é𝄞x" * 300_000  # about 2.1 MB of UTF-8, read in many chunks with characters split
    async with spawn(framing=framing) as c:
        result, small = await asyncio.gather(c.ping(echo=big), c.ping(echo="small"))
        assert result == {"echo": big}
        assert small == {"echo": "small"}


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_timeout_in_both_framings(spawn: Spawner, framing: str) -> None:
    async with spawn(framing=framing, args=["--enable-test-methods"]) as c:
        with pytest.raises(TimeoutError):
            await c.request("test/sleep", {"ms": 5000}, timeout=0.2)
        assert await c.request("test/sleep", {"ms": 10}, timeout=5) == {"slept": 10}


def test_executable_resolution(bin_path: str, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGERUNNER_BIN", bin_path)
    assert Client.spawn(workspace=workspace).argv[:2] == [bin_path, "serve"]
    monkeypatch.delenv("STAGERUNNER_BIN")
    monkeypatch.setenv("PATH", str(workspace))  # no stagerunner there
    with pytest.raises(FileNotFoundError):
        Client.spawn()
    explicit = Client.spawn("/opt/x/stagerunner", workspace, args=["--log-level", "debug"], framing="lsp")
    assert explicit.argv == [
        "/opt/x/stagerunner",
        "serve",
        "--framing",
        "lsp",
        "--workspace",
        str(workspace),
        "--log-level",
        "debug",
    ]
    with pytest.raises(ValueError):
        Client.spawn(bin_path, framing="xml")  # type: ignore[arg-type]


async def test_explicit_environment(spawn: Spawner) -> None:
    # env replaces the whole environment, as in subprocess.
    async with spawn(env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}) as c:
        assert await c.ping(echo="env") == {"echo": "env"}
