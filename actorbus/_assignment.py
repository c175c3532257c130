"""Which member of a group owns which partition: the same answer in every instance.

Every member of a group computes the assignment from the same inputs (the sorted list of
live members, the number of partitions, the group's name) and gets the same answer, so
the members agree without talking to each other.

It is balanced: every member owns ``P // N`` or ``P // N + 1`` of the ``P`` partitions
(within one of an equal share). It is stable: each partition goes to the member that
ranks it highest (rendezvous hashing: CRC-32 of group, partition and member) among those
that still have room, so when a member joins or leaves, mostly the partitions it takes
or gives up change hands.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["assign", "owned_by"]


def _rank(group: str, partition: int, member: str) -> int:
    return zlib.crc32(f"{group}\x00{partition}\x00{member}".encode())


def assign(members: Iterable[str], partitions: int, group: str) -> dict[int, str]:
    """The owner of each partition, for the live `members` of `group`.

    Empty when there is no member. Every member owns within one of ``partitions / N``.
    """
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(partitions, len(ordered))
    load = dict.fromkeys(ordered, 0)
    over = 0  # members that own base + 1
    owners: dict[int, str] = {}
    for partition in range(partitions):
        ranked = sorted(ordered, key=lambda m: (_rank(group, partition, m), m), reverse=True)
        for member in ranked:
            if load[member] < base or (load[member] == base and over < extra):
                if load[member] == base:
                    over += 1
                load[member] += 1
                owners[partition] = member
                break
    return owners


def owned_by(member: str, members: Iterable[str], partitions: int, group: str) -> frozenset[int]:
    """The partitions `member` owns among `members` (see `assign`)."""
    owners = assign(members, partitions, group)
    return frozenset(partition for partition, owner in owners.items() if owner == member)
