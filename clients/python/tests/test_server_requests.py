"""Server-to-client requests and notifications, with the scripted fake server (the real one sends none yet)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stagerunner import Client, InvalidParams, Notification
from stagerunner_testkit import fake_server


async def test_handlers_and_notifications(tmp_path: Path) -> None:
    c = Client.spawn(fake_server(tmp_path), args=["--mode=chatty"])
    seen_status: list[Any] = []
    seen_all: list[Notification] = []
    cancelled = asyncio.Event()

    @c.on_request("executeStage")
    async def execute(params: dict[str, Any]) -> dict[str, Any]:
        if params["stage"] == "boom":
            raise InvalidParams(-32602, "no such stage", {"field": "params.stage", "problem": "boom"})
        return {"done": params["stage"]}

    @c.on_request("slow")
    async def slow(params: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @c.on_notification("statusChanged")
    def status(params: Any) -> None:
        seen_status.append(params)

    @c.on_notification()
    async def every(note: Notification) -> None:
        seen_all.append(note)

    stream = c.notifications("statusChanged")  # subscribed before anything arrives
    async with c:
        first = await asyncio.wait_for(stream.__anext__(), 5)
        assert first == {"method": "statusChanged", "params": {"n": 1}}
        second = await asyncio.wait_for(stream.__anext__(), 5)
        assert second["params"] == {"n": 2}  # from inside a batch
        await asyncio.wait_for(cancelled.wait(), 5)

        answers: list[Any] = []
        for _ in range(50):
            answers = (await c.ping())["responses"]  # type: ignore[typeddict-item]
            if len(answers) >= 5:
                break
            await asyncio.sleep(0.05)
        by_id = {a["id"]: a for a in answers}
        assert by_id["s1"] == {"jsonrpc": "2.0", "id": "s1", "result": {"done": "draft"}}
        assert by_id["s2"]["error"]["code"] == -32601
        assert by_id["s2"]["error"]["data"] == {"method": "unknown/method", "available": ["executeStage", "slow"]}
        assert by_id[3]["error"]["code"] == -32602 and by_id[3]["error"]["data"]["field"] == "params.stage"
        assert by_id["s4"]["error"]["code"] == -32800
        assert by_id["s5"]["error"]["code"] == -32800
        assert seen_status == [{"n": 1}, {"n": 2}]
        assert [n["method"] for n in seen_all] == ["statusChanged", "$/progress", "statusChanged"]

    # The stream ends when the connection closes.
    leftovers = [n async for n in stream]
    assert leftovers == []
    assert c.returncode == 0


async def test_notification_stream_closes(tmp_path: Path) -> None:
    async with Client.spawn(fake_server(tmp_path), args=["--mode=chatty"]) as c:
        async with c.notifications() as stream:
            note = await asyncio.wait_for(stream.__anext__(), 5)
            assert note["method"] == "statusChanged"
        assert [n async for n in stream] == []
