"""The application's layout in Redis: its number of partitions, recorded and checked.

Every instance of an application must split its events into the same number of
partitions: a key's partition is ``partition_of(key, partitions)``, so instances that
disagreed would put one key's events in two streams, and two owners would handle them
out of order. The number is recorded in the hash ``…:meta`` (field ``partitions``) by the
first instance that starts, and every instance checks it at start-up.

An application whose events stream (``…:events``) exists but that has no record was
started by a version without partitions: it counts as having one partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actorbus.redis._config import Keys
    from actorbus.redis._context import Context

__all__ = ["check_names", "recorded_partitions"]


def check_names(keys: Keys, owned: str | None = None) -> None:
    """Check that `keys` can carry partition hash tags.

    They must with more than one partition, and for an `owned` group (an entity kind's,
    whose partitions are owned even when there is one).

    Raises:
        ValueError: If the prefix or application name has a brace: the first ``{…}`` of
            a key would then not be the partition's tag.
    """
    if (keys.partitions > 1 or owned is not None) and any(brace in keys.base for brace in "{}"):
        what = (
            f"RedisTransport(partitions={keys.partitions})"
            if owned is None
            else f"group {owned!r} (an entity kind's)"
        )
        msg = (
            f"{what} cannot be used with the key prefix {keys.base!r}: with partitions or "
            "entity kinds, the prefix and the application name must not contain '{' or '}' "
            "(each partition's keys carry a Redis Cluster hash tag in braces)"
        )
        raise ValueError(msg)


async def recorded_partitions(context: Context) -> int:
    """The number of partitions recorded for the application (recording ours if none).

    Raises:
        ValueError: If Redis records another number than the transport's.
        RedisError: If Redis cannot be reached.
    """
    keys = context.keys
    client = context.client
    recorded = await client.call(b"HGET", keys.meta, b"partitions")
    if recorded is None:
        # Recorded by the first instance: an unpartitioned application that ran before
        # partitions existed has its one stream already.
        existing = await client.call(b"EXISTS", keys.events)
        mine = 1 if existing else keys.partitions
        await client.call(b"HSETNX", keys.meta, b"partitions", mine)
        recorded = await client.call(b"HGET", keys.meta, b"partitions")
    number = int(recorded)
    if number != keys.partitions:
        msg = (
            f"RedisTransport(partitions={keys.partitions}) does not match application "
            f"{keys.app!r} on Redis at {context.where}, which was started with "
            f"partitions={number} (recorded in the hash {keys.meta}, field 'partitions'): "
            f"every instance of an application must use the same number. Start this one "
            f"with partitions={number}, or move the whole application to "
            f"{keys.partitions} partitions first (the scaling guide, 'Changing the number "
            "of partitions', says how)"
        )
        raise ValueError(msg)
    return number
