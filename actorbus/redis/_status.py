"""What Redis holds about a running application: its streams, and its instances' reports.

For the dashboard (``actorbus dashboard``, ``actorbus top``). Every command names one key,
so the same code works on Redis Cluster:

- a stream's status is ``XLEN`` and ``XINFO GROUPS`` of that stream;
- each instance reports with ``SET …:status:{instance} <json> PX ttl`` (one key per
  instance, gone once the instance stops renewing it) and ``ZADD …:status`` (an index of
  the instances that reported, so a reader needs no ``SCAN``, which a cluster would run
  node by node). The index's scores are the reporters' clocks, used only to forget names
  that stopped reporting long ago: an instance is shown only while its own report key
  lives, so a stopped instance is never shown, whatever the clocks say.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from actorbus._transport import GroupStatus, StreamStatus
from actorbus.redis._client import Client
from actorbus.redis._config import Keys, check_url, redact_url
from actorbus.redis._endpoint import endpoint
from actorbus.redis._errors import ReplyError
from actorbus.redis._maintenance import info_dict
from actorbus.redis._tls import tls_context

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "StatusReader",
    "forget_report",
    "index_key",
    "read_reports",
    "report_key",
    "stream_status",
    "write_report",
]

_FORGET_AFTER_MS: Final = 10 * 60 * 1000
"""An index entry not renewed for this long is removed (its report key is long gone)."""
_READ_TIMEOUT: Final = 5.0


def index_key(keys: Keys) -> str:
    """The sorted set of the instances that report (member: the instance name)."""
    return f"{keys.base}status"


def report_key(keys: Keys, instance: str) -> str:
    """The key holding the latest report of `instance` (with a time to live)."""
    return f"{keys.base}status:{instance}"


async def write_report(
    client: Client, keys: Keys, instance: str, report: bytes, ttl: float
) -> None:
    """Store `instance`'s report for `ttl` seconds and list it in the index.

    Raises:
        RedisError: If Redis cannot be reached or refuses.
    """
    ttl_ms = max(1, round(ttl * 1000))
    index = index_key(keys)
    await client.call(b"SET", report_key(keys, instance), report, b"PX", ttl_ms)
    await client.call(b"ZADD", index, _now_ms(), instance)
    # The index goes with the last instance (plus a margin for the readers' clean-up).
    await client.call(b"PEXPIRE", index, ttl_ms + _FORGET_AFTER_MS)


async def forget_report(client: Client, keys: Keys, instance: str) -> None:
    """Remove `instance`'s report and its index entry (a clean stop).

    Raises:
        RedisError: If Redis cannot be reached or refuses.
    """
    await client.call(b"DEL", report_key(keys, instance))
    await client.call(b"ZREM", index_key(keys), instance)


async def read_reports(client: Client, keys: Keys) -> list[bytes]:
    """The live reports of the application's instances, ordered by instance name.

    Raises:
        RedisError: If Redis cannot be reached or refuses.
    """
    index = index_key(keys)
    await client.call(b"ZREMRANGEBYSCORE", index, b"-inf", _now_ms() - _FORGET_AFTER_MS)
    names: list[bytes] = sorted(await client.call(b"ZRANGE", index, 0, -1))
    reports: list[bytes] = []
    for name in names:
        found = await client.call(b"GET", report_key(keys, name.decode(errors="replace")))
        if found is not None:
            reports.append(found)
    return reports


async def stream_status(client: Client, keys: Keys) -> tuple[StreamStatus, ...]:
    """The application's streams (events, dead letters): length, and each group's status.

    A stream that does not exist yet has length 0 and no groups.

    Raises:
        RedisError: If Redis cannot be reached or refuses.
    """
    found: list[StreamStatus] = []
    for key in (keys.events, keys.dead):
        length = int(await client.call(b"XLEN", key))
        groups: list[GroupStatus] = []
        if length or await client.call(b"EXISTS", key):
            try:
                infos: Sequence[Any] = await client.call(b"XINFO", b"GROUPS", key)
            except ReplyError:  # not a stream after all (or gone meanwhile): no groups
                infos = ()
            groups = [_group(info_dict(info)) for info in infos]
        found.append(StreamStatus(key, length, tuple(sorted(groups, key=lambda g: g.name))))
    return tuple(found)


def _group(info: dict[bytes, Any]) -> GroupStatus:
    lag = info.get(b"lag")  # Redis 7.0 and newer; nil when Redis cannot tell
    return GroupStatus(
        name=bytes(info[b"name"]).decode(errors="replace"),
        consumers=int(info[b"consumers"]),
        pending=int(info[b"pending"]),
        lag=None if lag is None else int(lag),
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


class StatusReader:
    """Reads an application's status from Redis, without running an instance of it.

    What ``actorbus dashboard --redis URL --app NAME`` shows. Nothing connects until the
    first read; `where` is the URL without its password.

    Raises:
        ValueError: For an invalid URL or TLS options that cannot be used.
    """

    def __init__(self, url: str, app: str, *, prefix: str = "actorbus") -> None:
        check_url(url)
        self.where = redact_url(url)
        self.keys = Keys(prefix, app)
        self._client = Client(endpoint(url, tls_context(url), self.where), timeout=_READ_TIMEOUT)

    async def reports(self) -> list[bytes]:
        """The live reports of the application's instances (see `read_reports`)."""
        return await read_reports(self._client, self.keys)

    async def streams(self) -> tuple[StreamStatus, ...]:
        """The application's streams (see `stream_status`)."""
        return await stream_status(self._client, self.keys)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()
