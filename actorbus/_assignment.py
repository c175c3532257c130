"""Which member of a group should own which partition: the same answer in every member.

`assign` is a pure function of the group's name, its live members and the number of
partitions, so every member computes the same target from the same member list, with no
coordinator. It is **balanced within one**: with ``N`` members and ``P`` partitions,
``P mod N`` members get ``⌈P/N⌉`` partitions and the others ``⌊P/N⌋``. It is **stable**:
it is rendezvous (highest random weight) hashing with capacities, so when a member joins
it takes partitions from the others and the rest stay where they were, and when one
leaves, mostly its own partitions move.

How: every (partition, member) pair gets a weight, a hash of the group, the member and
the partition (BLAKE2b, the same in every process and version). Going through the pairs
from the heaviest, a partition goes to the member of the pair if it has none yet and the
member has room: ``⌊P/N⌋`` partitions, or one more while fewer than ``P mod N`` members
have taken one more. Every partition finds a member: the room adds up to ``P``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["assign", "weight"]


def weight(group: str, member: str, partition: int) -> int:
    """The rendezvous weight of `member` for `partition` of `group` (64 bits)."""
    digest = hashlib.blake2b(f"{group}\0{member}\0{partition}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def assign(group: str, members: Iterable[str], partitions: int) -> dict[str, frozenset[int]]:
    """The partitions each of `members` should own (every member is a key, maybe empty).

    Deterministic: the same for the same set of members, in any order.
    """
    names = sorted(set(members))
    if not names:
        return {}
    share, extra = divmod(partitions, len(names))
    pairs = sorted(
        ((weight(group, name, partition), partition, name) for name in names
         for partition in range(partitions)),
        reverse=True,
    )  # fmt: skip
    owned: dict[str, set[int]] = {name: set() for name in names}
    taken: set[int] = set()
    extras = 0  # members that took one more than `share`
    for _, partition, name in pairs:
        if partition in taken:
            continue
        count = len(owned[name])
        if count < share or (count == share and extras < extra):
            owned[name].add(partition)
            taken.add(partition)
            extras += count == share
            if len(taken) == partitions:
                break
    return {name: frozenset(parts) for name, parts in owned.items()}
