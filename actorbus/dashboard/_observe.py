"""Looking at a running system: sample it every second, serve the page, report to Redis.

`observe` is what ``actorbus run --dashboard`` starts next to the system (and what an
application that runs its system itself starts in a task group of its own);
`watch_redis` is ``actorbus dashboard --redis URL --app NAME``: the same page, from the
reports of every instance.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final

import anyio

from actorbus._transport import Transport
from actorbus.dashboard._address import address, is_loopback
from actorbus.dashboard._board import Board
from actorbus.dashboard._snapshot import TransportStatus, take, transport_status
from actorbus.dashboard._view import History, app_state, instance_view

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Coroutine

    from actorbus._system import ActorSystem

__all__ = [
    "REPORT_TTL",
    "follow_redis",
    "for_worker",
    "observe",
    "redis_state",
    "reports",
    "serve_board",
    "watch_redis",
]

logger: Final = logging.getLogger("actorbus.dashboard")

REPORT_TTL: Final = 3
"""A report lives this many sampling periods (and at least 2 s) unless renewed."""


def reports(transport: Transport | None) -> bool:
    """Whether `transport` can take status reports (it overrides `Transport.report`)."""
    return transport is not None and type(transport).report is not Transport.report


async def observe(
    system: ActorSystem,
    *,
    listen: socket.socket | None = None,
    token: str | None = None,
    every: float = 1.0,
    report: bool = True,
) -> None:
    """Sample `system` every `every` seconds; serve the dashboard and report, until cancelled.

    Args:
        system: A running system.
        listen: A listening socket (see `actorbus.dashboard.listen`) to serve the page
            on; None serves nothing.
        token: Required on every request of the page when given.
        every: Seconds between two samples (the page's refresh period).
        report: Also put this instance's status in its transport (Redis), for
            ``actorbus dashboard --redis``; a transport that cannot take it is skipped.
    """
    if every <= 0:
        msg = f"the dashboard's sampling period must be > 0 seconds, got {every!r}"
        raise ValueError(msg)
    board = Board()
    transport = system.transport
    reporting = report and reports(transport)
    ttl = max(2.0, REPORT_TTL * every)
    history = History()
    async with anyio.create_task_group() as tasks:
        if listen is not None:
            tasks.start_soon(serve_board, board, listen, token)
        try:
            while True:
                snapshot = take(system)
                rates = history.add(snapshot)
                if listen is not None:
                    status = await transport_status(transport)
                    view = instance_view(snapshot, rates, history)
                    board.publish(app_state(system.name, [view], status, source="process"))
                if reporting:
                    assert transport is not None  # noqa: S101 - `reports` said so
                    compact = instance_view(snapshot, rates, history, actor_sparks=False)
                    await transport.report(_dumps(compact), ttl)
                await anyio.sleep(every)
        finally:
            board.close()


async def serve_board(board: Board, sock: socket.socket, token: str | None) -> None:
    """Serve the page of `board` on `sock` until cancelled (then stop within a second)."""
    from actorbus.dashboard._http import build_app  # noqa: PLC0415 - the optional extra
    from actorbus.dashboard._serve import serve  # noqa: PLC0415

    host, port = sock.getsockname()[:2]
    app = build_app(
        board, token=token, loopback=is_loopback(host), cookie=f"actorbus_dashboard_{port}"
    )
    logger.info("dashboard on %s%s", address(sock), " (token required)" if token else "")
    stop = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve, app, sock, stop)
        try:
            await anyio.sleep_forever()
        finally:
            board.close()
            stop.set()


async def watch_redis(
    url: str,
    app: str,
    *,
    listen: socket.socket,
    token: str | None = None,
    every: float = 1.0,
    prefix: str = "actorbus",
) -> None:
    """Serve the dashboard of every instance of `app` from their reports to Redis.

    Raises:
        ValueError: For an invalid Redis URL.
    """
    board = Board()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve_board, board, listen, token)
        await follow_redis(url, app, board.publish, every=every, prefix=prefix)


async def follow_redis(
    url: str,
    app: str,
    publish: Any,
    *,
    every: float = 1.0,
    prefix: str = "actorbus",
) -> None:
    """Read the reports and streams of `app` every `every` seconds; `publish` each state."""
    from actorbus.redis._status import StatusReader  # noqa: PLC0415 - the optional extra

    reader = StatusReader(url, app, prefix=prefix)
    try:
        while True:
            publish(await redis_state(reader, app))
            await anyio.sleep(every)
    finally:
        with anyio.CancelScope(shield=True):
            await reader.aclose()


async def redis_state(reader: Any, app: str) -> dict[str, Any]:
    """One state of `app` read from Redis; an outage shows as an error, not a crash."""
    try:
        found = [json.loads(raw) for raw in await reader.reports()]
        status = TransportStatus(await reader.streams(), await reader.partitions())
    except Exception as exc:  # shown on the page; the next round tries again
        found, status = [], TransportStatus(error=f"{type(exc).__name__}: {exc}")
    return app_state(app, found, status, source=reader.where)


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def for_worker(
    listen: socket.socket | None, *, token: str | None, every: float, report: bool
) -> Callable[[ActorSystem], Coroutine[Any, Any, None]]:
    """What ``actorbus run`` starts next to its system (`observe`), if there is anything to do.

    That is a page to serve, or a transport to report to.
    """

    async def watching(system: ActorSystem) -> None:
        if listen is None and not (report and reports(system.transport)):
            return
        await observe(system, listen=listen, token=token, every=every, report=report)

    return watching
