"""What the two pygls suites share: a protocol that keeps what it reads, and a clean teardown.

Neither changes how pygls talks to the server. `protocol_cls` and `server_exit` are pygls' own
extension points; the recording only lets the tests look at ids and count responses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pygls.client import JsonRPCClient
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol

from clientlib_support import EXIT_TIMEOUT, SERVE_ARGS

#: A whole test may take this long before it is failed (each step has its own, shorter bound).
TEST_TIMEOUT = 400.0


class _Recording:
    """Keeps every message read from the server, and the ids of the requests sent to it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[Any] = []
        self.sent_ids: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.received.append(message)
        super().handle_message(message)  # type: ignore[misc]

    def send_request(self, method: str, params: Any = None, callback: Any = None, msg_id: Any = None) -> Any:
        if msg_id is None:
            msg_id = str(uuid.uuid4())  # what pygls would pick, picked here so that it is known
        self.sent_ids.append(msg_id)
        return super().send_request(method, params, callback, msg_id)  # type: ignore[misc]

    def responses(self) -> list[Any]:
        """The responses read, in order."""
        return [m for m in self.received if getattr(m, "method", None) is None]

    def unsolicited_responses(self) -> list[Any]:
        """Responses to no request of ours: what a notification must never get."""
        return [m for m in self.responses() if m.id not in self.sent_ids]

    def server_requests(self, method: str) -> list[Any]:
        return [m for m in self.received if getattr(m, "method", None) == method and hasattr(m, "id")]


class RecordingJsonRPCProtocol(_Recording, JsonRPCProtocol):
    pass


class RecordingLanguageServerProtocol(_Recording, LanguageServerProtocol):
    pass


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Runs one test's coroutine in a fresh event loop, with a watchdog."""

    async def guarded() -> Any:
        return await asyncio.wait_for(coroutine, TEST_TIMEOUT)

    return asyncio.run(guarded())


@asynccontextmanager
async def serving(client: JsonRPCClient, bin_path: str, cwd: Path) -> AsyncIterator[JsonRPCClient]:
    """`start_io` the server; afterwards make sure it is gone, whatever the test did."""
    await client.start_io(bin_path, *SERVE_ARGS, cwd=str(cwd))
    try:
        yield client
    finally:
        server = client._server  # pygls keeps the process here; used only to clean up after a failure
        if server is not None and server.returncode is None:
            server.terminate()  # SIGTERM: the server finishes what runs, then exits
            try:
                await asyncio.wait_for(server.wait(), 15)
            except TimeoutError:
                server.kill()
                await server.wait()
        await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
