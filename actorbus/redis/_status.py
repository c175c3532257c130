"""What Redis holds about a running application: its streams, and its instances' reports.

For the dashboard (``actorbus dashboard``, ``actorbus top``). Every command names one key,
so the same code works on Redis Cluster:

- a stream's status is ``XLEN`` and ``XINFO GROUPS`` of that stream (every partition's
  stream, with partitions);
- the owner of a partition of a group is its lease, ``GET …:{tag}:lease:g:{group}``
  (``<epoch>:<instance>:<nonce>``: the owner and its fencing token), for each partitioned
  group found on the partition streams;
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

from actorbus._sharding import GROUP_PREFIX
from actorbus._transport import GroupStatus, PartitionOwner, StreamStatus
from actorbus.redis._client import Client
from actorbus.redis._config import Keys, check_url, member_group, redact_url
from actorbus.redis._endpoint import endpoint
from actorbus.redis._errors import ReplyError
from actorbus.redis._maintenance import info_dict
from actorbus.redis._tls import tls_context

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actorbus.redis._protocol import Command

__all__ = [
    "StatusReader",
    "forget_report",
    "index_key",
    "partition_owners",
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
    """The application's streams: length, and each group's status.

    The events streams (one per partition, partition 0 first), then the dead letters. A
    stream that does not exist yet has length 0 and no groups.

    Raises:
        RedisError: If Redis cannot be reached or refuses.
    """
    names = (*keys.streams, keys.dead)
    lengths = await client.pipeline([(b"XLEN", key) for key in names])
    infos = await _groups_of(client, names)
    found: list[StreamStatus] = []
    for key, length, records in zip(names, lengths, infos, strict=True):
        if isinstance(length, Exception):
            raise length
        groups = sorted((_group(info_dict(info)) for info in records), key=lambda g: g.name)
        found.append(StreamStatus(key, int(length), tuple(groups)))
    return tuple(found)


async def partition_owners(
    client: Client, keys: Keys
) -> dict[str, dict[int, PartitionOwner]] | None:
    """Who owns each partition of each owned group, read from the leases.

    The groups are the competing-consumer groups (``g:{group}``) found on the events
    streams, named as the application names them (``billing``, ``entity:Account``); a
    partition without a lease is owned by nobody now. With one partition, only an
    entity kind's group can be owned, and is shown while its lease exists; None when
    none is.

    Raises:
        RedisError: If Redis cannot be reached or refuses.
    """
    prefix = member_group("")
    names = {
        bytes(info_dict(info)[b"name"]).decode(errors="replace")
        for records in await _groups_of(client, keys.streams)
        for info in records
    }
    groups = sorted(name.removeprefix(prefix) for name in names if name.startswith(prefix))
    if keys.partitions == 1:
        groups = [group for group in groups if group.startswith(GROUP_PREFIX)]
    pairs = [(group, partition) for group in groups for partition in range(keys.partitions)]
    commands: list[Command] = [(b"GET", keys.lease(p, member_group(g))) for g, p in pairs]
    values = await client.pipeline(commands) if commands else []
    owners: dict[str, dict[int, PartitionOwner]] = {group: {} for group in groups}
    for (group, partition), value in zip(pairs, values, strict=True):
        if isinstance(value, Exception):
            raise value
        owners[group][partition] = _owner(value)
    if keys.partitions > 1:
        return owners
    held = {
        group: found
        for group, found in owners.items()
        if any(owner.instance is not None for owner in found.values())
    }
    return held or None


def _owner(value: bytes | None) -> PartitionOwner:
    """The owner named by a lease value, ``<epoch>:<instance>:<nonce>`` (None: no lease)."""
    if value is None:
        return PartitionOwner(None)
    epoch, _, rest = value.decode(errors="replace").partition(":")
    instance = rest.rpartition(":")[0] or rest
    return PartitionOwner(instance, int(epoch) if epoch.isdigit() else None)


async def _groups_of(client: Client, streams: Sequence[str]) -> list[Sequence[Any]]:
    """The ``XINFO GROUPS`` records of each of `streams` (none for a missing stream)."""
    replies = await client.pipeline([(b"XINFO", b"GROUPS", key) for key in streams])
    found: list[Sequence[Any]] = []
    for reply in replies:
        if isinstance(reply, ReplyError):  # no such stream (yet), or not a stream
            found.append(())
        elif isinstance(reply, Exception):
            raise reply
        else:
            found.append(reply)
    return found


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
        """The application's keys (with its number of partitions once Redis recorded it)."""
        self._client = Client(endpoint(url, tls_context(url), self.where), timeout=_READ_TIMEOUT)
        self._recorded = False
        self._start = False

    async def reports(self) -> list[bytes]:
        """The live reports of the application's instances (see `read_reports`)."""
        return await read_reports(await self._started(), self.keys)

    async def streams(self) -> tuple[StreamStatus, ...]:
        """The application's streams (see `stream_status`)."""
        return await stream_status(await self._started(), await self._layout())

    async def partitions(self) -> dict[str, dict[int, PartitionOwner]] | None:
        """The owners of the application's partitions (see `partition_owners`)."""
        return await partition_owners(await self._started(), await self._layout())

    async def _started(self) -> Client:
        """The client, once it knows whether Redis is a cluster (tried at each read until then)."""
        if not self._start:
            await self._client.start(None, timeout=_READ_TIMEOUT)
            self._start = True
        return self._client

    async def _layout(self) -> Keys:
        """The keys, with the number of partitions the application recorded in Redis.

        Read until it is recorded (the dashboard may start before the application);
        it cannot change while the application runs.
        """
        if not self._recorded:
            client = await self._started()
            recorded = await client.call(b"HGET", self.keys.meta, b"partitions")
            if recorded is not None:
                self.keys = Keys(self.keys.prefix, self.keys.app, int(recorded))
                self._recorded = True
        return self.keys

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()
