"""Fixtures: the server binary, a fresh copy of examples/daydream, and validating clients."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))  # test this checkout's source, installed or not
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from stagerunner import SyncClient  # noqa: E402
from stagerunner_testkit import EXAMPLE, Spawner, ValidatingClient, server_bin  # noqa: E402


@pytest.fixture(scope="session")
def bin_path() -> str:
    """The server binary; tests that need it are skipped when it is missing."""
    path = server_bin()
    if path is None or not os.access(path, os.X_OK):
        pytest.skip("stagerunner binary not built (swift build) and STAGERUNNER_BIN not set")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh copy of examples/daydream."""
    dest = tmp_path / "daydream"
    shutil.copytree(EXAMPLE, dest)
    return dest


@pytest.fixture
def spawn(bin_path: str, workspace: Path) -> Iterator[Spawner]:
    """Factory of ValidatingClient (not started); every one is schema-checked at teardown."""
    made: list[ValidatingClient] = []

    def make(**kwargs: Any) -> ValidatingClient:
        kwargs.setdefault("executable", bin_path)
        kwargs.setdefault("workspace", workspace)
        client = ValidatingClient.spawn(**kwargs)
        made.append(client)
        return client

    yield make
    failures = [f for c in made for f in c.schema_failures]
    assert not failures, "schema violations:\n" + "\n".join(failures)


@pytest.fixture
def sync_spawn(spawn: Spawner) -> Iterator[Callable[..., SyncClient]]:
    """Factory of started SyncClients wrapping ValidatingClients; closed at teardown."""
    made: list[SyncClient] = []

    def make(**kwargs: Any) -> SyncClient:
        sync = SyncClient(spawn(**kwargs)).start()
        made.append(sync)
        return sync

    yield make
    for sync in made:
        sync.close()


ASYNC_TEST_TIMEOUT = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests with asyncio.run (no pytest-asyncio needed), under a time limit."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def run() -> None:
        await asyncio.wait_for(pyfuncitem.obj(**kwargs), ASYNC_TEST_TIMEOUT)

    asyncio.run(run())
    return True
