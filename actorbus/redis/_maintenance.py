"""Keeping the events streams bounded without dropping anything a group still needs.

Every `trim_interval` seconds each running instance computes, for each events stream
(one per partition), the oldest entry any of its consumer groups still needs — a
group's oldest pending entry, or, when nothing is pending, its last delivered entry
(entries after it are unread) — and trims the stream below it (``XTRIM MINID ~``:
approximate, so Redis only drops whole internal nodes and trimming is cheap). A group
can only move forward, so a threshold computed a moment ago is still safe when the
XTRIM runs.

On the way it removes what crashed anonymous instances left behind: their broadcast
groups (``b:~…``) and their consumers with nothing pending in the competing-consumer
groups. An instance counts as gone when its heartbeat key (``…:alive:{instance}``, which
every running instance refreshes each `trim_interval` with a time to live of at least
`stale_after`) has expired, and this janitor has then seen it missing for as long as a
heartbeat lives: a Redis restarted without persistence has lost every heartbeat at once,
and the live instances only beat again within their next `trim_interval`. The consumers'
``idle`` time cannot tell: before Redis 7.2 it only restarts when a read returns entries,
so a live but quiet instance looks idle.

`forget_instance` removes what a stopping anonymous instance used, at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from actorbus.redis._config import broadcast_group, format_id, is_anonymous, parse_id
from actorbus.redis._errors import TRANSIENT, RedisError, ReplyError
from actorbus.redis._health import logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from actorbus.redis._client import Client
    from actorbus.redis._config import Settings, StreamId
    from actorbus.redis._context import Context

__all__ = ["Maintenance", "beat", "forget_instance", "info_dict"]


def heartbeat_lifetime(settings: Settings) -> float:
    """Seconds a heartbeat lives: `stale_after`, and at least 3 beats."""
    return max(settings.stale_after, 3 * settings.trim_interval)


async def beat(context: Context) -> None:
    """Refresh `context`'s instance heartbeat: alive for `stale_after` (≥ 3 beats) more."""
    ttl = max(1, int(heartbeat_lifetime(context.settings)))
    await context.client.call(b"SET", context.keys.alive(context.instance), b"1", b"EX", ttl)


def info_dict(flat: list[Any]) -> dict[bytes, Any]:
    """One record of an XINFO reply (a flat list of names and values) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=False))


class Maintenance:
    """The periodic trimming and clean-up task of one instance."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._streams = context.keys.streams
        self._own = broadcast_group(context.instance)
        self._silent: dict[str, float] = {}  # instance -> when its heartbeat was first missing
        self._client: Client = context.client
        self.scope = anyio.CancelScope()

    async def run(self) -> None:
        """Beat and trim every `trim_interval` seconds until cancelled through `scope`."""
        with self.scope:
            while True:
                try:
                    await beat(self._context)
                except TRANSIENT as exc:
                    self._context.health.failed(exc)
                except ReplyError as exc:
                    logger.warning("heartbeat failed: %s", self._context.health.describe(exc))
                await anyio.sleep(self._context.settings.trim_interval)
                try:
                    await self.trim()
                except TRANSIENT as exc:
                    self._context.health.failed(exc)
                except ReplyError as exc:
                    logger.warning(
                        "trimming the events streams of %r failed: %s",
                        self._context.keys.app,
                        self._context.health.describe(exc),
                    )

    async def _gone(self, instance: str, silent: dict[str, float]) -> bool:
        """Whether `instance` has had no heartbeat for a whole heartbeat lifetime, as seen here.

        A missing key alone is not enough: after Redis lost its data, a live instance's
        heartbeat is missing until its next beat, and removing its group then (and trimming
        past what it had not read) would lose events for it.
        """
        found: int = await self._client.call(b"EXISTS", self._context.keys.alive(instance))
        if found:
            return False
        now = anyio.current_time()
        since = self._silent.setdefault(instance, silent.get(instance, now))
        return now - since >= heartbeat_lifetime(self._context.settings)

    async def trim(self) -> int:
        """Trim every events stream once; return how many entries Redis removed."""
        silent, self._silent = self._silent, {}  # what _gone does not see again is forgotten
        removed = 0
        for key in self._streams:
            removed += await self._trim(key, silent)
        return removed

    async def _trim(self, key: str, silent: dict[str, float]) -> int:
        client = self._client
        try:
            groups: list[Any] = await client.call(b"XINFO", b"GROUPS", key)
        except ReplyError as exc:
            if "no such key" in str(exc):
                return 0  # no stream yet
            raise
        keep: list[StreamId] = []
        for flat in groups:
            info = info_dict(flat)
            name = info[b"name"].decode()
            if await self._remove_stale(key, name, silent):
                continue
            if int(info[b"pending"]):
                # The summary form: [count, smallest id, greatest id, consumers].
                summary: list[Any] = await client.call(b"XPENDING", key, name)
                if summary[1] is not None:
                    keep.append(parse_id(summary[1]))
                    continue
            keep.append(parse_id(info[b"last-delivered-id"]))
        if not keep:
            return 0
        threshold = format_id(min(keep))
        removed: int = await client.call(b"XTRIM", key, b"MINID", b"~", threshold)
        return removed

    async def _remove_stale(self, key: str, group: str, silent: dict[str, float]) -> bool:
        """Clean up after crashed anonymous instances; True if `group` itself was removed."""
        if group == self._own:
            return False
        anonymous_broadcast = group.startswith("b:") and is_anonymous(group[2:])
        if not (anonymous_broadcast or group.startswith("g:")):
            return False
        if anonymous_broadcast:
            if await self._gone(group[2:], silent):
                await self._client.call(b"XGROUP", b"DESTROY", key, group)
                logger.info(
                    "removed consumer group %r of %s: its anonymous instance stopped "
                    "beating more than %ss ago (stale_after)",
                    group,
                    key,
                    self._context.settings.stale_after,
                )
                return True
            return False
        consumers: list[Any] = await self._client.call(b"XINFO", b"CONSUMERS", key, group)
        for flat in consumers:
            consumer = info_dict(flat)
            name = consumer[b"name"].decode(errors="replace")
            if (
                is_anonymous(name)
                and name != self._context.instance
                and int(consumer[b"pending"]) == 0
                and await self._gone(name, silent)
            ):
                await self._client.call(b"XGROUP", b"DELCONSUMER", key, group, name)
        return False


async def forget_instance(context: Context, groups: Iterable[str]) -> None:
    """Remove what only this anonymous instance used; keep anything still pending.

    Its broadcast group on every events stream, its consumers without pending entries in
    the competing-consumer `groups`, its reply stream and its heartbeat.
    """
    client = context.client
    keys = context.keys
    me = context.instance.encode()
    try:
        for stream in keys.streams:
            await client.call(b"XGROUP", b"DESTROY", stream, broadcast_group(context.instance))
            for name in groups:
                consumers = await client.call(b"XINFO", b"CONSUMERS", stream, name)
                mine = [info_dict(c) for c in consumers if info_dict(c)[b"name"] == me]
                if mine and int(mine[0][b"pending"]) == 0:
                    await client.call(b"XGROUP", b"DELCONSUMER", stream, name, me)
        # One key per command: a cluster may hold them on different nodes.
        await client.call(b"DEL", keys.replies(context.instance))
        await client.call(b"DEL", keys.alive(context.instance))
    except RedisError as exc:
        logger.warning(
            "could not remove anonymous instance %r from Redis at %s (%s); "
            "its subscription will be removed after stale_after=%ss",
            context.instance,
            context.where,
            context.health.describe(exc),
            context.settings.stale_after,
        )
