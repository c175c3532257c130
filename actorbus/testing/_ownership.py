"""Who owns each partition of each group, for the in-memory transport.

With ``partitions`` > 1, and for an entity kind's group whatever the number of
partitions, each partition of a competing-consumer group is owned by one member at a
time (`actorbus._assignment`: balanced, the same answer everywhere), and the events of
a partition go to its owner, so a group handles the events of one key in publishing
order. When the members change, a partition moves only once its old owner
finished what it had of it; meanwhile its new events wait here. A crashed member keeps
its partitions until its lease runs out; its unfinished events then go first to the new
owners, in order. Each tenure of a partition has a fencing token, one more than the
tenure before it.
"""

from __future__ import annotations

import collections
from typing import Protocol

from actorbus._assignment import assign

__all__ = ["GroupOwnership", "Member"]


class Member(Protocol):
    """A group member as the ownership sees it (a `MemoryTransport`)."""

    @property
    def name(self) -> str:
        """The member's instance name (unique in its application)."""
        ...

    @property
    def crashed(self) -> bool:
        """Whether the member crashed (it keeps its partitions until its lease runs out)."""
        ...

    def inbox(self, sequence: int, raw: bytes, group: str | None, partition: int) -> None:
        """Take one event of `partition` for `group` (None: broadcast)."""
        ...

    def release_soon(self, group: str, partition: int) -> None:
        """Finish what it has of `partition` of `group`, then call `GroupOwnership.released`."""
        ...


class GroupOwnership:
    """The owners of one group's partitions, and the events waiting for an owner."""

    __slots__ = ("held", "moving", "name", "owners", "partitions", "tokens")

    def __init__(self, name: str, partitions: int) -> None:
        self.name: str = name
        self.partitions: int = partitions
        self.owners: dict[int, Member] = {}
        self.moving: set[int] = set()  # partitions being handed over
        self.tokens: dict[int, int] = {}
        """The fencing token of each partition's current tenure: one more at each handover."""
        self.held: dict[int, collections.deque[tuple[int, bytes]]] = collections.defaultdict(
            collections.deque
        )

    def owned_by(self, member: Member) -> dict[int, int]:
        """The partitions `member` owns now, with their fencing tokens.

        A partition being handed over is still its owner's until it released it.
        """
        return {p: self.tokens[p] for p, owner in sorted(self.owners.items()) if owner is member}

    def holds(self, member: Member, partition: int) -> bool:
        """Whether `member` owns `partition` now (its deliveries' fence)."""
        return self.owners.get(partition) is member

    def send(self, sequence: int, raw: bytes, partition: int) -> None:
        """Give an event to its partition's owner, or keep it until there is one."""
        owner = self.owners.get(partition)
        if owner is None or partition in self.moving or self.held.get(partition):
            self.held[partition].append((sequence, raw))
        else:
            owner.inbox(sequence, raw, self.name, partition)

    def rebalance(self, live: list[Member]) -> None:
        """Give each partition to its target owner among the `live` members.

        A partition whose owner changes moves once the old owner released it; one
        without an owner moves at once; a crashed owner keeps its partitions until
        `taken_over`.
        """
        by_name = {member.name: member for member in live}
        target = {
            p: name for name, ps in assign(self.name, by_name, self.partitions).items() for p in ps
        }
        for partition in range(self.partitions):
            new = by_name.get(target.get(partition, ""))
            old = self.owners.get(partition)
            if partition in self.moving or old is new or (old is not None and old.crashed):
                continue
            if old is None:
                self._hand_to(partition, new)
            else:
                self.moving.add(partition)
                old.release_soon(self.name, partition)

    def released(self, partition: int, live: list[Member]) -> None:
        """The old owner finished with `partition`: hand it on."""
        self.moving.discard(partition)
        self.owners.pop(partition, None)
        self.rebalance(live)

    def leave(self, member: Member, live: list[Member]) -> None:
        """`member` left after finishing everything: its partitions move at once."""
        for partition, owner in list(self.owners.items()):
            if owner is member:
                del self.owners[partition]
                self.moving.discard(partition)
        self.rebalance(live)

    def taken_over(
        self, member: Member, unfinished: dict[int, list[tuple[int, bytes]]], live: list[Member]
    ) -> None:
        """A crashed `member`'s lease ran out: its unfinished events go first, in order."""
        for partition, events in unfinished.items():
            self.held[partition].extendleft(sorted(events, reverse=True))
        for partition, owner in list(self.owners.items()):
            if owner is member:
                del self.owners[partition]
                self.moving.discard(partition)
        self.rebalance(live)

    def _hand_to(self, partition: int, new: Member | None) -> None:
        if new is None:
            return
        self.owners[partition] = new
        self.tokens[partition] = self.tokens.get(partition, 0) + 1
        for sequence, raw in self.held.pop(partition, ()):
            new.inbox(sequence, raw, self.name, partition)
