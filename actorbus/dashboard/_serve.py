"""Serving the dashboard's application with Hypercorn, on asyncio or on trio.

Hypercorn has a ``serve`` per backend (``hypercorn.asyncio.serve``,
``hypercorn.trio.serve``); this module's whole point is to pick the one of the running
backend, so the dashboard runs in the worker's own event loop either way. The listening
socket is bound by `listen` before anything starts (a port in use is a clear error at
once; see `actorbus.dashboard._address`) and handed to Hypercorn by file descriptor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, cast

import anyio

try:
    from hypercorn.config import Config
except ImportError as _missing:  # the extra is not installed
    msg = "the dashboard needs Starlette and Hypercorn: pip install 'actorbus[dashboard]'"
    raise ImportError(msg) from _missing

if TYPE_CHECKING:
    import socket

    from starlette.types import ASGIApp

__all__ = ["serve"]

logger: Final = logging.getLogger("actorbus.dashboard")

_GRACE: Final = 1.0
"""Seconds open requests (live streams) get to finish once the dashboard stops."""


async def serve(app: ASGIApp, sock: socket.socket, stop: anyio.Event) -> None:
    """Serve `app` on `sock` (which it takes over) until `stop` is set.

    Requests still open then get `_GRACE` seconds. Cancelling the caller does not cut
    the server short: set `stop` to end it.
    """
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = _GRACE
    config.accesslog = None
    config.errorlog = logger
    config.loglevel = "WARNING"
    with anyio.CancelScope(shield=True):
        if _in_trio():
            from hypercorn.trio import serve as serve_on_trio  # noqa: PLC0415 - one backend

            await serve_on_trio(cast("Any", app), config, shutdown_trigger=stop.wait)
        else:
            from hypercorn.asyncio import serve as serve_on_asyncio  # noqa: PLC0415

            await serve_on_asyncio(cast("Any", app), config, shutdown_trigger=stop.wait)


def _in_trio() -> bool:
    try:
        import trio  # noqa: PLC0415 - trio is optional
    except ImportError:
        return False
    return trio.lowlevel.in_trio_task()
