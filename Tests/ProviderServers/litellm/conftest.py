"""StageRunner against the LiteLLM proxy: fixtures.

`litellm_bin` is $LITELLM_BIN (run.sh passes the one it installed); `bin_path` is
$STAGERUNNER_BIN, else .build/debug/stagerunner. Two proxies start once per session, together
(each takes seconds to tens of seconds to start on a small machine): `proxy`, authenticating with
a master key and no database, as `litellm --config` does out of the box, and `auth_proxy`, whose
custom auth answers a wrong key 401. Each test gets a fresh copy of examples/daydream whose
stagerunner.yaml points providers at them, and its own `stagerunner serve`.

Every check also records what it saw (`observe`); the values are printed at the end of the run
and, with $LITELLM_OBSERVATIONS set, written there as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

pytest.register_assert_rewrite("litellm_support")

from litellm_support import (  # noqa: E402
    CUSTOM_AUTH_KEY,
    MASTER_KEY,
    PRICES,
    REPO,
    RETRIES,
    WRONG_KEY,
    LiteLLMProxy,
    StageRunnerServer,
    make_workspace,
    providers_for,
)

STARTUP_TIMEOUT = float(os.environ.get("LITELLM_STARTUP_TIMEOUT", "300"))
OBSERVATIONS: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def bin_path() -> str:
    path = Path(os.environ.get("STAGERUNNER_BIN") or REPO / ".build" / "debug" / "stagerunner")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no stagerunner binary at {path}: build it (swift build) or set STAGERUNNER_BIN")
    return str(path)


@pytest.fixture(scope="session")
def litellm_bin() -> str:
    path = os.environ.get("LITELLM_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("set LITELLM_BIN to the litellm executable (Tests/ProviderServers/litellm/run.sh does)")
    return path


@pytest.fixture(scope="session")
def _proxies(litellm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiteLLMProxy]]:
    """Both proxies, started together; stopped (their process groups killed) whatever happens."""
    proxies = {
        "main": LiteLLMProxy(litellm_bin, tmp_path_factory.mktemp("litellm-main")),
        "auth": LiteLLMProxy(litellm_bin, tmp_path_factory.mktemp("litellm-auth"), custom_auth=True),
    }
    try:
        for proxy in proxies.values():
            proxy.start()
        # Started together, waited for in turn: the second is usually ready when the first is.
        _ready(proxies["main"], "main", MASTER_KEY)
        _ready(proxies["auth"], "custom-auth", CUSTOM_AUTH_KEY)
        yield proxies
    finally:
        for proxy in proxies.values():
            proxy.stop()


def _ready(proxy: LiteLLMProxy, name: str, key: str) -> LiteLLMProxy:
    if proxy.ready_after is None:
        proxy.wait_ready(STARTUP_TIMEOUT)
        # The first model request of a fresh proxy imports a good part of LiteLLM: make it here,
        # not inside a test's model call.
        warm = proxy.openai_direct("mock-gpt", "warm up", stream=False, key=key)
        assert warm["status"] == 200, f"{name} proxy warm-up: {warm}\n{proxy.log_tail()}"
        OBSERVATIONS.append({"check": f"{name} proxy ready", "after_seconds": round(proxy.ready_after or 0, 1)})
    return proxy


@pytest.fixture(scope="session")
def proxy(_proxies: dict[str, LiteLLMProxy]) -> LiteLLMProxy:
    return _ready(_proxies["main"], "main", MASTER_KEY)


@pytest.fixture(scope="session")
def auth_proxy(_proxies: dict[str, LiteLLMProxy]) -> LiteLLMProxy:
    return _ready(_proxies["auth"], "custom-auth", CUSTOM_AUTH_KEY)


@pytest.fixture
def workspace(tmp_path: Path, proxy: LiteLLMProxy) -> Path:
    return make_workspace(tmp_path / "daydream", providers_for(proxy, retries=RETRIES), PRICES)


@pytest.fixture
def start_server(bin_path: str, tmp_path: Path) -> Iterator[Callable[..., StageRunnerServer]]:
    """start_server(workspace, env={}): `stagerunner serve` on it, initialized, with the keys in
    LITELLM_PROXY_KEY and LITELLM_WRONG_KEY (and `env`); shut down after the test."""
    servers: list[StageRunnerServer] = []

    def start(workspace: Path, env: dict[str, str] | None = None) -> StageRunnerServer:
        srv = StageRunnerServer(
            bin_path,
            workspace,
            {"LITELLM_PROXY_KEY": MASTER_KEY, "LITELLM_WRONG_KEY": WRONG_KEY, **(env or {})},
            tmp_path / f"stagerunner-{len(servers)}.log",
        )
        servers.append(srv)
        init = srv.request("initialize", {"protocolVersion": "1.0", "clientInfo": {"name": "litellm-tests"}})
        assert "result" in init.message, init.message
        return srv

    yield start
    statuses = [(srv, srv.close()) for srv in servers]
    for srv, status in statuses:
        assert status == 0, f"stagerunner exited with {status}; log:\n{srv.log_tail()}"


@pytest.fixture
def server(start_server: Callable[..., StageRunnerServer], workspace: Path) -> StageRunnerServer:
    """`stagerunner serve` on `workspace`, whose providers point at the main proxy."""
    return start_server(workspace)


@pytest.fixture
def observe(request: pytest.FixtureRequest):
    """observe(check, **values): one line of the end-of-run report."""

    def record(check: str, **values: Any) -> None:
        OBSERVATIONS.append({"test": request.node.name, "check": check, **values})

    return record


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not OBSERVATIONS:
        return
    terminalreporter.section("observed against the LiteLLM proxy")
    for entry in OBSERVATIONS:
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in entry.items() if k not in ("test", "check"))
        terminalreporter.write_line(f"{entry['check']}: {values}")
    target = os.environ.get("LITELLM_OBSERVATIONS")
    if target:
        Path(target).write_text(json.dumps(OBSERVATIONS, indent=2) + "\n", encoding="utf-8")
