"""Process hygiene: timeouts with cancel, crashes, stderr floods, the shutdown ladder, no zombies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from stagerunner import Client, InvalidRequest, ServerExited, StageRunnerError
from stagerunner_testkit import Spawner, fake_server


def assert_reaped(pid: int) -> None:
    """The child was waited for: waitpid finds nothing to reap."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting for an init that reaps it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def test_timeout_sends_cancel(spawn: Spawner) -> None:
    async with spawn(args=["--enable-test-methods", "--log-level", "debug"]) as c:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await c.request("test/sleep", {"ms": 5000}, timeout=0.2)
        assert time.monotonic() - started < 2
        assert await c.ping(echo="after") == {"echo": "after"}
        # shutdown waits for every request in progress: it is quick only if the sleep was cancelled.
        started = time.monotonic()
        await c.shutdown()
        assert time.monotonic() - started < 2
        await asyncio.sleep(0.05)
        assert c._pending == {}  # the late -32800 was dropped quietly
        assert c.sent["$/cancelRequest"] == 1
        assert "cancel" in c.stderr_tail()


async def test_cancelling_the_caller_sends_cancel(spawn: Spawner) -> None:
    async with spawn(args=["--enable-test-methods"]) as c:
        task = asyncio.create_task(c.request("test/sleep", {"ms": 5000}))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        started = time.monotonic()
        await c.shutdown()
        assert time.monotonic() - started < 2


async def test_crash_fails_pending_calls(spawn: Spawner) -> None:
    c = await spawn(args=["--enable-test-methods", "--log-level", "debug"])
    try:
        pending = asyncio.create_task(c.request("test/sleep", {"ms": 5000}))
        await asyncio.sleep(0.3)
        assert c.pid is not None
        os.killpg(c.pid, signal.SIGKILL)
        with pytest.raises(ServerExited) as exited:
            await asyncio.wait_for(pending, 5)
        assert exited.value.returncode == -signal.SIGKILL
        assert "serving on stdio" in exited.value.stderr_tail
        with pytest.raises(ServerExited):
            await c.ping()
    finally:
        await c.close()
    assert c.pid is not None
    assert_reaped(c.pid)


async def test_stderr_flood_does_not_block(spawn: Spawner) -> None:
    async with spawn(args=["--log-level", "trace"], stderr_lines=100) as c:
        payload = "x" * 1024
        started = time.monotonic()
        for i in range(200):
            assert await c.ping(echo=f"{i}:{payload}") == {"echo": f"{i}:{payload}"}
        assert time.monotonic() - started < 20
        # Far more than a pipe's 64 KiB went to stderr; the ring buffer kept the last lines only.
        tail = c.stderr_tail()
        assert len(tail.splitlines()) == 100
        assert "199:" in tail
        assert len(c.stderr_tail(3).splitlines()) == 3


async def test_close_is_clean_and_reaps(spawn: Spawner) -> None:
    c = await spawn()
    pid = c.pid
    await c.close()
    assert c.returncode == 0  # shutdown + exit
    assert (c.sent["shutdown"], c.sent["exit"]) == (1, 1)
    assert pid is not None
    assert_reaped(pid)
    with pytest.raises(StageRunnerError):
        await c.ping()


async def test_after_shutdown_requests_fail(spawn: Spawner) -> None:
    async with spawn() as c:
        await c.shutdown()
        with pytest.raises(InvalidRequest):
            await c.validate_workspace()


async def test_ladder_reaches_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    c = Client.spawn(fake_server(tmp_path), args=["--mode=stubborn", f"--pidfile={pidfile}"], initialize=False)
    await c.start()
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text():
            break
        await asyncio.sleep(0.05)
    child = int(pidfile.read_text())
    pending = asyncio.create_task(c.request("ping", {}))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await c.close()
    took = time.monotonic() - started
    assert 5.5 < took < 9, took  # shutdown 2 s, exit wait 2 s, SIGTERM wait 2 s, then SIGKILL
    assert c.returncode == -signal.SIGKILL
    with pytest.raises(ServerExited):
        await pending
    assert c.pid is not None
    assert_reaped(c.pid)
    for _ in range(50):  # the whole process group got the SIGKILL
        if is_gone(child):
            break
        await asyncio.sleep(0.05)
    assert is_gone(child)


async def test_ladder_sigterm_step(tmp_path: Path) -> None:
    c = await Client.spawn(fake_server(tmp_path), args=["--mode=sigterm"], initialize=False)
    started = time.monotonic()
    await c.close()
    took = time.monotonic() - started
    assert 3.5 < took < 6, took
    assert c.returncode == -signal.SIGTERM
    assert c.pid is not None
    assert_reaped(c.pid)
