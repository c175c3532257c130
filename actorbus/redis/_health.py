"""Connection health of the Redis bridge: outage detection, logging, backoff, counters."""

from __future__ import annotations

import logging
import random
from typing import Final

import anyio
import attrs
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import ReadOnlyError

from actorbus.redis._config import scrub
from actorbus.redis._tls import tls_advice

__all__ = ["TRANSIENT", "Backoff", "Counters", "Health", "RedisStats", "logger"]

logger: Final = logging.getLogger("actorbus.redis")

TRANSIENT: Final = (RedisConnectionError, ReadOnlyError, TimeoutError, OSError)
"""Errors that mean "Redis is not reachable right now": back off and try again.

coredis raises its `ConnectionError` when it cannot connect or loses the connection,
and the builtin `TimeoutError` when a reply takes longer than the stream timeout;
``READONLY`` is what a demoted primary answers during a failover.
"""


@attrs.frozen
class RedisStats:
    """A snapshot of a `RedisTransport`'s counters (see `RedisTransport.stats`).

    Attributes:
        published: Events Redis accepted from this instance.
        delivered: Stream entries this instance handed to its local mailboxes (claimed
            ones included), undecodable entries excluded.
        acked: Entries acknowledged (handled, or dead-lettered) by this instance.
        dead_lettered: Entries this instance added to the dead-letter stream.
        claimed: Entries this instance took over from silent consumers.
        reconnects: Outages that ended (the connection came back).
        outages: Times the connection to Redis was lost.
        connected: Whether the last command sent to Redis succeeded.
    """

    published: int
    delivered: int
    acked: int
    dead_lettered: int
    claimed: int
    reconnects: int
    outages: int
    connected: bool


class Counters:
    """The mutable counters behind `RedisStats`."""

    __slots__ = ("acked", "claimed", "dead_lettered", "delivered", "published")

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.acked = 0
        self.dead_lettered = 0
        self.claimed = 0


class Health:
    """Whether Redis answers; logs each outage once (WARNING) and its end (INFO)."""

    __slots__ = (
        "_down_since",
        "_reconnected",
        "_tls_told",
        "_url",
        "_where",
        "connected",
        "outages",
        "reconnects",
    )

    def __init__(self, url: str, where: str) -> None:
        self._url = url
        self._where = where
        self.connected = True
        self.outages = 0
        self.reconnects = 0
        self._down_since = 0.0
        self._reconnected: anyio.Event | None = None
        self._tls_told: set[str] = set()  # the TLS failures this outage logged

    async def wait_reconnected(self, delay: float) -> bool:
        """Sleep `delay` seconds, or less if an outage under way ends meanwhile.

        Any part of the bridge whose command succeeds ends the outage, so the others,
        backing off, try again then rather than at the end of their own delay. Returns
        whether the sleep was cut short so.
        """
        if self.connected:
            await anyio.sleep(delay)
            return False
        if self._reconnected is None:
            self._reconnected = anyio.Event()
        with anyio.move_on_after(delay) as scope:
            await self._reconnected.wait()
        return not scope.cancelled_caught

    def describe(self, error: BaseException) -> str:
        """`error` as one line, with any password removed."""
        return scrub(f"{type(error).__name__}: {error}", self._url)

    def failed(self, error: BaseException) -> None:
        """A command failed for a transient reason: an outage starts (or goes on).

        An outage is logged once, with the error that started it. Each distinct TLS
        failure is logged once more in an outage, with what to check: reconnecting meets
        it on every try (the server's certificate changed, say), while the outage's first
        error was most likely the connection dropping. A handshake cut short by the
        connection closing is not one of them (a server restarting does that).
        """
        if self.connected:
            self.connected = False
            self.outages += 1
            self._down_since = anyio.current_time()
            self._tls_told.clear()
            logger.warning(
                "lost the connection to Redis at %s (%s); retrying with backoff, events stay "
                "in Redis until they are handled",
                self._where,
                self.describe(error),
            )
        advice = tls_advice(error, cut_short=False)
        if advice is not None and advice not in self._tls_told:
            self._tls_told.add(advice)
            logger.warning(
                "cannot reconnect to Redis at %s: %s; still retrying with backoff",
                self._where,
                advice,
            )

    def succeeded(self) -> None:
        """A command succeeded: an outage, if any, is over."""
        if self.connected:
            return
        self.connected = True
        self.reconnects += 1
        if self._reconnected is not None:
            self._reconnected.set()
            self._reconnected = None
        logger.info(
            "reconnected to Redis at %s after %.1fs",
            self._where,
            anyio.current_time() - self._down_since,
        )


class Backoff:
    """Delays between attempts: 0.1 s doubling up to 5 s, with full jitter."""

    __slots__ = ("_current", "_cut_short", "_health", "initial", "maximum")

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, *, health: Health) -> None:
        self.initial = initial
        self.maximum = maximum
        self._current = initial
        self._health = health  # an outage it reports ending cuts the sleep short
        self._cut_short = False  # the last sleep was: the next one is not

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._current = self.initial
        self._cut_short = False

    async def sleep(self) -> None:
        """Sleep for the next delay: half to all of it, so instances do not retry in step.

        The end of an outage (`health`) cuts the sleep short, but not twice in a
        row: if the attempt made then failed too (this part of the bridge fails while
        others succeed), the next sleep lasts its whole delay, so a failing part keeps
        to its backoff rather than retrying after every success of the others.
        """
        delay = self._current * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        self._current = min(self.maximum, self._current * 2)
        if self._cut_short:
            self._cut_short = False
            await anyio.sleep(delay)
        else:
            self._cut_short = await self._health.wait_reconnected(delay)
