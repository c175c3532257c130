"""`Watchdog`: the deadlines of the bridge's own connections on trio, in one task.

Every exchange of a `Link` has a deadline (a hung server must not hold a reader, an acker
or a publisher forever). On trio, a cancel scope with a deadline around each exchange
cost as much CPU time as the rest of the round trip (about 25 of 66 µs on the benchmark
machine): trio files each deadline in its timer queue and takes it out again. Instead, a
connection notes its deadline when an exchange starts, and the transport's watchdog, one
task waking every `INTERVAL` seconds, closes a connection whose exchange is past its
deadline; the exchange then fails with `TimeoutError`, at most `INTERVAL` late. While no
watchdog runs (before the transport starts it, after it stopped, or a `Link` of its own),
connections use a cancel scope as before. On asyncio, a timer on the event loop costs
little, so no watchdog is needed there (`AsyncioConnection`).
"""

from __future__ import annotations

import math
import weakref
from typing import Final, Protocol

import anyio

__all__ = ["INTERVAL", "Watchdog", "Watched"]

INTERVAL: Final = 0.1
"""Seconds between checks: how late an exchange past its deadline may fail."""


class Watched(Protocol):
    """A connection whose exchanges the watchdog may end."""

    deadline: float
    """When the exchange under way must be over (infinity between exchanges)."""

    async def expire(self) -> None:
        """End the exchange under way: it fails with `TimeoutError`."""


class Watchdog:
    """Ends the exchanges that passed their deadline (module docs); one per transport."""

    def __init__(self) -> None:
        self._watched: weakref.WeakSet[Watched] = weakref.WeakSet()
        self.running = False

    def watch(self, connection: Watched) -> None:
        """Check `connection` from now on (until it is garbage)."""
        self._watched.add(connection)

    def forget(self, connection: Watched) -> None:
        self._watched.discard(connection)

    async def run(self) -> None:
        """Check the deadlines every `INTERVAL` seconds, until cancelled."""
        self.running = True
        try:
            while True:
                await anyio.sleep(INTERVAL)
                now = anyio.current_time()
                for connection in [c for c in self._watched if c.deadline <= now]:
                    # Expiring one lets other tasks run: an exchange of this list may
                    # have finished (or a new one started) since it was made.
                    if connection.deadline <= now:
                        connection.deadline = math.inf
                        await connection.expire()
                        now = anyio.current_time()
        finally:
            self.running = False
