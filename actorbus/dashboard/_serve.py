"""Serving the dashboard's application with Hypercorn, on asyncio or on trio.

Hypercorn has a ``serve`` per backend (``hypercorn.asyncio.serve``,
``hypercorn.trio.serve``); this module's whole point is to pick the one of the running
backend, so the dashboard runs in the worker's own event loop either way. The listening
socket is bound by `listen` before anything starts (a port in use is a clear error at
once; see `actorbus.dashboard._address`) and handed to Hypercorn by file descriptor.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Final, Protocol

import anyio

try:
    from hypercorn.config import Config
except ImportError as _missing:  # the extra is not installed
    msg = "the dashboard needs Starlette and Hypercorn: pip install 'actorbus[dashboard]'"
    raise ImportError(msg) from _missing

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable

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
        await _hypercorn_serve(trio=_in_trio())(app, config, shutdown_trigger=stop.wait)


class _Serve(Protocol):
    """Hypercorn's ``serve`` (``hypercorn.asyncio`` and ``hypercorn.trio`` alike), for ASGI."""

    def __call__(
        self, app: ASGIApp, config: Config, *, shutdown_trigger: Callable[[], Awaitable[None]]
    ) -> Awaitable[None]: ...


def _hypercorn_serve(*, trio: bool) -> _Serve:
    """The ``serve`` of Hypercorn's module for one backend, with the type it has for us.

    Hypercorn types its ``app`` argument as its own ASGI or WSGI callables, with the WSGI
    environ a bare ``dict`` (of unknown types for a type checker); Starlette types the
    same ASGI 3 callable with its own names. The module is read by name, so its
    ``serve`` comes untyped through `importlib` and gets the signature we use.
    """
    module = importlib.import_module("hypercorn.trio" if trio else "hypercorn.asyncio")
    serve: _Serve = module.serve
    return serve


def _in_trio() -> bool:
    try:
        import trio  # noqa: PLC0415 - trio is optional
    except ImportError:
        return False
    return trio.lowlevel.in_trio_task()
