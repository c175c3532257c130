"""Keeping the events stream bounded without dropping anything a group still needs.

Every `trim_interval` seconds each running instance computes the oldest entry any
consumer group of the events stream still needs — a group's oldest pending entry, or,
when nothing is pending, its last delivered entry (entries after it are unread) — and
trims the stream below it (``XTRIM MINID ~``: approximate, so Redis only drops whole
internal nodes and trimming is cheap). A group can only move forward, so a threshold
computed a moment ago is still safe when the XTRIM runs.

On the way it removes what crashed anonymous instances left behind: their broadcast
groups (``b:~…``) and their consumers with nothing pending in the competing-consumer
groups. An instance counts as gone when its heartbeat key (``…:alive:{instance}``, which
every running instance refreshes each `trim_interval` with a time to live of at least
`stale_after`) has expired, and this janitor has then seen it missing for as long as a
heartbeat lives: a Redis restarted without persistence has lost every heartbeat at once,
and the live instances only beat again within their next `trim_interval`. The consumers'
``idle`` time cannot tell: before Redis 7.2 it only restarts when a read returns entries,
so a live but quiet instance looks idle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from coredis.exceptions import RedisError, ResponseError
from coredis.tokens import PureToken

from actorbus.redis._config import broadcast_group, format_id, is_anonymous, parse_id
from actorbus.redis._health import TRANSIENT, logger

if TYPE_CHECKING:
    import coredis

    from actorbus.redis._config import Settings, StreamId
    from actorbus.redis._context import Context

__all__ = ["Maintenance", "beat"]


def heartbeat_lifetime(settings: Settings) -> float:
    """Seconds a heartbeat lives: `stale_after`, and at least 3 beats."""
    return max(settings.stale_after, 3 * settings.trim_interval)


async def beat(client: coredis.Redis[bytes], context: Context) -> None:
    """Refresh `context`'s instance heartbeat: alive for `stale_after` (≥ 3 beats) more."""
    ttl = max(1, int(heartbeat_lifetime(context.settings)))
    await client.set(context.keys.alive(context.instance), b"1", ex=ttl)


class Maintenance:
    """The periodic trimming and clean-up task of one instance."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._key = context.keys.events
        self._own = broadcast_group(context.instance)
        self._silent: dict[str, float] = {}  # instance -> when its heartbeat was first missing
        self.scope = anyio.CancelScope()

    async def run(self, client: coredis.Redis[bytes]) -> None:
        """Beat and trim every `trim_interval` seconds until cancelled through `scope`."""
        with self.scope:
            while True:
                try:
                    await self.beat(client)
                except TRANSIENT as exc:
                    self._context.health.failed(exc)
                except RedisError as exc:
                    logger.warning("heartbeat failed: %s", self._context.health.describe(exc))
                await anyio.sleep(self._context.settings.trim_interval)
                try:
                    await self.trim(client)
                except TRANSIENT as exc:
                    self._context.health.failed(exc)
                except RedisError as exc:
                    logger.warning(
                        "trimming %s failed: %s", self._key, self._context.health.describe(exc)
                    )

    async def beat(self, client: coredis.Redis[bytes]) -> None:
        """Say this instance is alive until well after the next beat."""
        await beat(client, self._context)

    async def _gone(
        self, client: coredis.Redis[bytes], instance: str, silent: dict[str, float]
    ) -> bool:
        """Whether `instance` has had no heartbeat for a whole heartbeat lifetime, as seen here.

        A missing key alone is not enough: after Redis lost its data, a live instance's
        heartbeat is missing until its next beat, and removing its group then (and trimming
        past what it had not read) would lose events for it.
        """
        found: int = await client.exists([self._context.keys.alive(instance)])
        if found:
            return False
        now = anyio.current_time()
        since = self._silent.setdefault(instance, silent.get(instance, now))
        return now - since >= heartbeat_lifetime(self._context.settings)

    async def trim(self, client: coredis.Redis[bytes]) -> int:
        """Trim once; return how many entries Redis removed."""
        try:
            groups: Any = await client.xinfo_groups(self._key)
        except ResponseError:
            return 0  # no stream yet
        keep: list[StreamId] = []
        silent, self._silent = self._silent, {}  # what _gone does not see again is forgotten
        for info in groups:
            name = bytes(info[b"name"]).decode()
            if await self._remove_stale(client, name, silent):
                continue
            if int(info[b"pending"]):
                summary: Any = await client.xpending(self._key, name)
                if summary.minimum_identifier is not None:
                    keep.append(parse_id(summary.minimum_identifier))
                    continue
            keep.append(parse_id(info[b"last-delivered-id"]))
        if not keep:
            return 0
        threshold: Any = format_id(min(keep))  # an id: coredis types it for MAXLEN only
        removed: int = await client.xtrim(
            self._key, PureToken.MINID, threshold, PureToken.APPROXIMATELY
        )
        return removed

    async def _remove_stale(
        self, client: coredis.Redis[bytes], group: str, silent: dict[str, float]
    ) -> bool:
        """Clean up after crashed anonymous instances; True if `group` itself was removed."""
        if group == self._own:
            return False
        anonymous_broadcast = group.startswith("b:") and is_anonymous(group[2:])
        if not (anonymous_broadcast or group.startswith("g:")):
            return False
        if anonymous_broadcast:
            if await self._gone(client, group[2:], silent):
                await client.xgroup_destroy(self._key, group)
                logger.info(
                    "removed consumer group %r of %s: its anonymous instance stopped "
                    "beating more than %ss ago (stale_after)",
                    group,
                    self._key,
                    self._context.settings.stale_after,
                )
                return True
            return False
        consumers: Any = await client.xinfo_consumers(self._key, group)
        for consumer in consumers:
            name = bytes(consumer[b"name"]).decode(errors="replace")
            if (
                is_anonymous(name)
                and name != self._context.instance
                and int(consumer[b"pending"]) == 0
                and await self._gone(client, name, silent)
            ):
                await client.xgroup_delconsumer(self._key, group, name)
        return False
