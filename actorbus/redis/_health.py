"""Connection health of the Redis bridge: outage detection, logging, retries, counters."""

from __future__ import annotations

import logging
from typing import Final

import anyio
import attrs

from actorbus._supervision import Backoff
from actorbus.redis._config import scrub
from actorbus.redis._errors import RedisError
from actorbus.redis._tls import tls_advice

__all__ = ["BACKOFF", "Counters", "Health", "RedisStats", "Retry", "logger"]

logger: Final = logging.getLogger("actorbus.redis")

BACKOFF: Final = Backoff(initial=0.1, maximum=5.0, multiplier=2.0, jitter=0.5)
"""The delays of the bridge's loops while Redis is away: 0.1 s doubling to 5 s, ±50 %."""


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
        fenced: Acknowledgements Redis refused because this instance no longer held the
            lease of the entry's partition (the entries stay for the partition's owner).
        acquired: Partition leases this instance acquired (each starts a tenure).
        lost: Partition leases it lost (not renewed in time, or taken over), rather than
            handed over.
    """

    published: int
    delivered: int
    acked: int
    dead_lettered: int
    claimed: int
    reconnects: int
    outages: int
    connected: bool
    fenced: int = 0
    acquired: int = 0
    lost: int = 0


class Counters:
    """The mutable counters behind `RedisStats`."""

    __slots__ = (
        "acked",
        "acquired",
        "claimed",
        "dead_lettered",
        "delivered",
        "fenced",
        "lost",
        "published",
    )

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.acked = 0
        self.dead_lettered = 0
        self.claimed = 0
        self.fenced = 0
        self.acquired = 0
        self.lost = 0


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
        """`error` as one line, with any password removed.

        The client's errors say what they are (``NOPERM this user has no permissions
        ...``, ``connection to Redis lost: EndOfStream``); others get their type's name.
        """
        text = str(error) if isinstance(error, RedisError) else f"{type(error).__name__}: {error}"
        return scrub(text, self._url)

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


class Retry:
    """The waits between the attempts of one loop that talks to Redis.

    The delays are those of a `Backoff` (`BACKOFF` unless given), attempt after attempt
    until `reset`. The end of an outage (`Health`) cuts a wait short, but not twice in a
    row: if the attempt made then failed too (this part of the bridge fails while others
    succeed), the next wait lasts its whole delay, so a failing part keeps to its
    backoff rather than retrying after every success of the others.
    """

    __slots__ = ("_attempt", "_backoff", "_cut_short", "_health")

    def __init__(self, health: Health, backoff: Backoff = BACKOFF) -> None:
        self._health = health
        self._backoff = backoff
        self._attempt = 0
        self._cut_short = False  # the last wait was: the next one is not

    def reset(self) -> None:
        """Start again from the first delay (after a success)."""
        self._attempt = 0
        self._cut_short = False

    async def sleep(self) -> None:
        """Wait for the next delay (or less, when an outage under way ends)."""
        self._attempt += 1
        delay = self._backoff.delay(self._attempt)
        if self._cut_short:
            self._cut_short = False
            await anyio.sleep(delay)
        else:
            self._cut_short = await self._health.wait_reconnected(delay)
