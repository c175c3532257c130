"""Keeping the events stream bounded without dropping anything a group still needs.

Every `trim_interval` seconds each running instance computes the oldest entry any
consumer group of the events stream still needs — a group's oldest pending entry, or,
when nothing is pending, its last delivered entry (entries after it are unread) — and
trims the stream below it (``XTRIM MINID ~``: approximate, so Redis only drops whole
internal nodes and trimming is cheap). A group can only move forward, so a threshold
computed a moment ago is still safe when the XTRIM runs.

On the way it removes what crashed anonymous instances left behind: their broadcast
groups (``b:~…``) once every consumer in them has been idle for `stale_after` seconds,
and their idle consumers with nothing pending from the competing-consumer groups.
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

    from actorbus.redis._config import StreamId
    from actorbus.redis._context import Context

__all__ = ["Maintenance"]


class Maintenance:
    """The periodic trimming and clean-up task of one instance."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._key = context.keys.events
        self._own = broadcast_group(context.instance)
        self.scope = anyio.CancelScope()

    async def run(self, client: coredis.Redis[bytes]) -> None:
        """Trim every `trim_interval` seconds until cancelled through `scope`."""
        with self.scope:
            while True:
                await anyio.sleep(self._context.settings.trim_interval)
                try:
                    await self.trim(client)
                except TRANSIENT as exc:
                    self._context.health.failed(exc)
                except RedisError as exc:
                    logger.warning(
                        "trimming %s failed: %s", self._key, self._context.health.describe(exc)
                    )

    async def trim(self, client: coredis.Redis[bytes]) -> int:
        """Trim once; return how many entries Redis removed."""
        try:
            groups: Any = await client.xinfo_groups(self._key)
        except ResponseError:
            return 0  # no stream yet
        keep: list[StreamId] = []
        for info in groups:
            name = bytes(info[b"name"]).decode()
            if await self._remove_stale(client, name):
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

    async def _remove_stale(self, client: coredis.Redis[bytes], group: str) -> bool:
        """Clean up after crashed anonymous instances; True if `group` itself was removed."""
        if group == self._own:
            return False
        anonymous_broadcast = group.startswith("b:") and is_anonymous(group[2:])
        if not (anonymous_broadcast or group.startswith("g:")):
            return False
        stale_ms = self._context.settings.stale_after * 1000
        consumers: Any = await client.xinfo_consumers(self._key, group)
        if anonymous_broadcast:
            if consumers and all(int(c[b"idle"]) > stale_ms for c in consumers):
                await client.xgroup_destroy(self._key, group)
                logger.info(
                    "removed consumer group %r of %s: its anonymous instance has been silent "
                    "for over %ss (stale_after)",
                    group,
                    self._key,
                    self._context.settings.stale_after,
                )
                return True
            return False
        for consumer in consumers:
            name = bytes(consumer[b"name"]).decode(errors="replace")
            if (
                is_anonymous(name)
                and name != self._context.instance
                and int(consumer[b"pending"]) == 0
                and int(consumer[b"idle"]) > stale_ms
            ):
                await client.xgroup_delconsumer(self._key, group, name)
        return False
