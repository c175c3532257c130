"""Backend fast paths, resolved once per system.

`anyio.lowlevel.checkpoint_if_cancelled()` looks the running backend up (through sniffio)
on every call, which costs more than the check itself on the publish and tell paths. A
system resolves the backend's own function once, when it starts, and calls that. This
is the one module that reaches into anyio's internals; if they change, the public
functions are used instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["resolve_checkpoints"]


def resolve_checkpoints() -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """(checkpoint_if_cancelled, checkpoint) of the running backend."""
    try:
        from anyio._core._eventloop import get_async_backend  # noqa: PLC0415

        backend = get_async_backend()
    except Exception:  # pragma: no cover - anyio moved things: the public path still works
        return anyio.lowlevel.checkpoint_if_cancelled, anyio.lowlevel.checkpoint
    return backend.checkpoint_if_cancelled, backend.checkpoint
