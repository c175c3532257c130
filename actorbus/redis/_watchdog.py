"""`Watchdog`: the deadlines of the bridge's own connections on trio, in one task.

Every exchange of a `Link` has a deadline (a hung server must not hold a reader, an acker
or a publisher forever). On trio, a cancel scope with a deadline around each exchange
cost as much CPU time as the rest of the round trip (about 25 of 66 µs on the benchmark
machine): trio files each deadline in its timer queue and takes it out again. Instead, a
connection notes its deadline when an exchange starts, and the transport's watchdog, one
task, closes a connection whose exchange is past its deadline; the exchange then fails
with `TimeoutError`.

The watchdog sleeps until the earliest deadline it knows of (for ever when no exchange is
under way). An exchange that starts with an earlier deadline moves that wake-up forward
(`Watchdog.sooner`: a comparison per exchange, and rarely a change of the sleep's
deadline). Most exchanges finish long before their deadline, so the watchdog wakes
about once per timeout, finds that exchange over and goes back to sleep: an idle worker
wakes about once per blocking read's timeout (16 s by default) rather than ten times a
second. When the watchdog stops, the exchanges still under way are ended (they would
have no deadline left). While no watchdog runs (before the transport starts it, after
it stopped, or a `Link` of its own), exchanges use a cancel scope as before. On
asyncio, a timer on the event loop costs little, so no watchdog is needed there
(`AsyncioConnection`).
"""

from __future__ import annotations

import math
import sys
import weakref
from typing import Protocol

import anyio

__all__ = ["Watchdog", "Watched"]


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
        self.wakes_at = -math.inf
        """When the sleeping watchdog checks next; -inf while it is checking (or not running)."""
        self._sleep: anyio.CancelScope | None = None
        self.checks = 0  # how many times it woke up and checked (for tests)

    def watch(self, connection: Watched) -> None:
        """Check `connection` from now on (until it is garbage)."""
        self._watched.add(connection)

    def forget(self, connection: Watched) -> None:
        self._watched.discard(connection)

    def sooner(self, deadline: float) -> None:
        """An exchange's `deadline` comes before the next check (`wakes_at`): wake then."""
        self.wakes_at = deadline
        if self._sleep is not None:
            self._sleep.deadline = deadline

    async def run(self) -> None:
        """End the exchanges past their deadline as they pass it, until cancelled."""
        self.running = True
        try:
            while True:
                self.checks += 1
                await self._expire(anyio.current_time())
                earliest = min([c.deadline for c in self._watched], default=math.inf)
                # No await between reading the deadlines and sleeping: an exchange that
                # starts from now on sees `wakes_at` and wakes this sleep if it must.
                with anyio.CancelScope(deadline=earliest) as self._sleep:
                    self.wakes_at = earliest
                    await anyio.sleep_forever()
                self._sleep = None
                self.wakes_at = -math.inf
        finally:
            self.running = False
            self._sleep = None
            self.wakes_at = -math.inf
            # Nobody keeps their deadlines from now on: end the exchanges still under way.
            with anyio.CancelScope(shield=True):
                await self._expire(sys.float_info.max)  # every finite deadline

    async def _expire(self, until: float) -> None:
        """End the exchanges under way whose deadline is `until` or earlier."""
        for connection in [c for c in self._watched if c.deadline <= until]:
            # Expiring one lets other tasks run: an exchange of this list may have
            # finished (or a new one started) since it was made.
            if connection.deadline <= until:
                connection.deadline = math.inf
                await connection.expire()
