"""Redis Cluster's hash slots, and the hash tags that spread an application's partitions.

A cluster serves each key from the node that owns its hash slot: CRC-16 (XMODEM) of the
key, or of its hash tag — the part between the first ``{`` and the next ``}``, when that
part is not empty — modulo 16384 (Redis Cluster specification, "Keys distribution
model"). Keys with one hash tag share a slot, so one command or script may use them all.

Every key of one partition carries the partition's tag (`partition_tag`). The tags are
chosen so that partition ``p`` of ``P`` falls in the ``p``-th of ``P`` equal ranges of
slots: a cluster whose masters own equal runs of slots (what ``redis-cli --cluster
create`` makes) then serves nearly equal numbers of partitions on each master.
"""

from __future__ import annotations

from functools import cache
from typing import Final

__all__ = ["SLOTS", "crc16", "hash_slot", "partition_tag"]

SLOTS: Final = 16384


def _table() -> tuple[int, ...]:
    table: list[int] = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE: Final = _table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster uses it."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_slot(key: bytes | str) -> int:
    """The hash slot of `key` (its hash tag's, when it has one)."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:  # an empty tag `{}` does not count
            data = data[start + 1 : end]
    return crc16(data) % SLOTS


@cache
def partition_tag(app: str, partition: int, partitions: int) -> str:
    """The hash tag (without braces) of `partition` of `partitions` of application `app`.

    ``{app}.p{partition}.{n}`` for the smallest ``n`` whose slot lies in the partition's
    range of slots: the same in every process, for every version of actorbus.
    """
    low = partition * SLOTS // partitions
    high = (partition + 1) * SLOTS // partitions
    n = 0
    while True:
        tag = f"{app}.p{partition}.{n}"
        if low <= crc16(tag.encode()) % SLOTS < high:
            return tag
        n += 1
