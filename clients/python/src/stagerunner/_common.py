"""Private helpers shared by :mod:`stagerunner.client` and :mod:`stagerunner.sync`.

The missing-argument sentinel, the type variables of the clients' signatures, and the
building of request params. Not part of the API: anything here may change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

__all__ = ["MISSING", "F", "P", "R", "T", "drop_none", "stage_params"]

MISSING: Any = object()
"""The default of a parameter whose absence is not ``None`` (``ping``'s ``echo``)."""

F = TypeVar("F", bound=Callable[..., Any])
"""A callable returned unchanged: a registered handler or callback, a wrapper given a signature."""
P = ParamSpec("P")
"""The parameters of a :class:`~stagerunner.Client` method that :class:`~stagerunner.SyncClient` takes as they are."""
R = TypeVar("R")
"""The result of such a method."""
T = TypeVar("T")
"""The result of a coroutine run to completion."""


def drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params without the members that are ``None`` (the server reads null as absent anyway)."""
    return {k: v for k, v in params.items() if v is not None}


def stage_params(stage: str, values: Mapping[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """runStage/renderPrompt params: snake_case keywords to the protocol's camelCase, None dropped."""
    params: dict[str, Any] = {"stage": stage, "values": dict(values) if values is not None else None}
    for name, value in fields.items():
        head, *rest = name.split("_")
        params[head + "".join(part.capitalize() for part in rest)] = value
    return drop_none(params)
