"""Show re-exported names under their public module (as anyio and trio do)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

__all__ = ["expose"]


def expose(namespace: MutableMapping[str, Any], names: Iterable[str], module: str) -> None:
    """Set `__module__` of the private-module objects named in `names` to `module`.

    Reprs, tracebacks and the API docs then show the public import path.
    """
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith("actorbus."):
            obj.__module__ = module
