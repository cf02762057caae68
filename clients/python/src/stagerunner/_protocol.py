"""What a status subscription needs from a client, as :class:`typing.Protocol` types.

:mod:`stagerunner.jobs` is written against these rather than against
:class:`~stagerunner.Client` and :class:`~stagerunner.SyncClient`, which satisfy them
structurally: the clients hand out subscriptions, so the subscriptions must not import the
clients (that would be an import cycle). Not part of the API: anything here may change.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

from ._common import T
from .types import Notification

__all__ = ["BlockingRunner", "NotificationSource", "RequestClient"]


class NotificationSource(Protocol):
    """An async iterator over notifications that can be closed (:class:`~stagerunner.NotificationStream`)."""

    def close(self) -> None:
        """Stop listening; a pending or later ``__anext__`` ends the iteration."""
        ...

    async def __anext__(self) -> Notification:
        """The next notification; ``StopAsyncIteration`` once closed or disconnected."""
        ...


class RequestClient(Protocol):
    """The asynchronous hooks a :class:`~stagerunner.jobs.StatusSubscription` calls (:class:`~stagerunner.Client`)."""

    @property
    def closed(self) -> bool:
        """True once the connection is lost or closed."""
        ...

    async def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Send a request and return its ``result``."""
        ...

    def notifications(self, method: str | None = None) -> NotificationSource:
        """Listen to the notifications of ``method`` (or all), from now on."""
        ...


class BlockingRunner(Protocol):
    """What a :class:`~stagerunner.jobs.SyncStatusSubscription` calls (:class:`~stagerunner.SyncClient`)."""

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's event loop and wait for its result."""
        ...
