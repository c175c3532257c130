"""`MemoryTransport`: APP-scope semantics for several systems in one process, for tests.

Systems that share one `MemoryBroker` and one name are instances of one application:
APP events reach every running instance (broadcast), and each event reaches one member
of each competing-consumer group. Envelopes travel as CloudEvents JSON, exactly as they
do through Redis, so what works here round-trips through the wire format.

With ``partitions`` > 1, as with Redis, each partition of a group is owned by one member
at a time, so a group handles the events of one key in publishing order; the partitions
are rebalanced when members join or leave, a member that leaves hands its partitions
over once it finished what it had of them, and `MemoryTransport.crash` simulates a
`kill -9`: the member's partitions are taken over after `lease` seconds, its unfinished
events first, in order, and nothing it still handles is committed. An entity kind's
group is owned that way even with one partition (one live entity per key), and the
states its entities commit are kept on the broker (`MemoryBroker.states`), saved with the
delivery's outcome only while the member owns the partition, as Redis saves them.

Differences from the Redis bridge: nothing outlives the broker (an instance that is not
running misses the events published meanwhile, and an event whose actor stopped before
handling it is not delivered again), there is no dead-letter stream (dead-lettered
events are kept in `MemoryBroker.dead_letters`), and publishing never fails.
"""

from __future__ import annotations

import collections
import itertools
import math
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import anyio.lowlevel

from actorbus._dispatch import TO_GROUP
from actorbus._exceptions import AskTimeout, DecodeError
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus._message import Outcome
from actorbus._sharding import is_entity_group
from actorbus._transport import PartitionOwner, Transport, TransportHost
from actorbus._wire import decode, encode
from actorbus.testing._ownership import GroupOwnership

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from actorbus._envelope import Envelope
    from actorbus._message import Delivery

__all__ = ["MemoryBroker", "MemoryTransport"]

_OWNER_POLL: Final = 0.01
"""Seconds between looks for the owner of a request's partition while it has none."""

_Item = tuple[int, bytes, str | None, int]
"""(sequence, raw event, group or None for broadcast, partition)."""


class MemoryBroker:
    """The shared in-process "server" that `MemoryTransport` instances attach to.

    Attributes:
        dead_letters: ``(raw entry, error)`` for every event dead-lettered or undecodable.
        published: How many events were published through this broker.
        states: The entity states committed through it, by (app, namespace, key).
    """

    def __init__(self) -> None:
        self._instances: dict[str, list[MemoryTransport]] = {}
        self._partitions: dict[str, int] = {}
        self._groups: dict[tuple[str, str], GroupOwnership] = {}
        self._turns: dict[tuple[str, str], itertools.count[int]] = {}
        self._spread = itertools.count()  # the partition of each unkeyed event, in turn
        self._sequence = itertools.count()  # publishing order, for events taken over
        self._anonymous = itertools.count(1)
        self.states: dict[tuple[str, str, str], bytes] = {}
        self.dead_letters: list[tuple[bytes, BaseException | None]] = []
        self.published: int = 0

    def transport(
        self, *, instance: str | None = None, partitions: int = 1, lease: float = 10.0
    ) -> MemoryTransport:
        """A new transport attached to this broker."""
        return MemoryTransport(self, instance=instance, partitions=partitions, lease=lease)

    def members(self, app: str) -> list[MemoryTransport]:
        """The transports attached as instances of application `app` (a live list)."""
        return self._instances.setdefault(app, [])

    def anonymous_name(self) -> str:
        """A name for an instance without one."""
        return f"memory-{next(self._anonymous)}"

    def attach(self, app: str, member: MemoryTransport) -> None:
        """Add `member` as an instance of `app`.

        Raises:
            ValueError: If its number of partitions differs from the application's.
        """
        partitions = self._partitions.setdefault(app, member.partitions)
        if partitions != member.partitions:
            msg = (
                f"MemoryTransport(partitions={member.partitions}) joins application {app!r}, "
                f"whose instances use partitions={partitions}: every instance of an "
                "application must use the same number"
            )
            raise ValueError(msg)
        self.members(app).append(member)

    def detach(self, app: str, member: MemoryTransport) -> None:
        """Remove `member`; what it still owned moves to the others at once."""
        members = self.members(app)
        if member in members:
            members.remove(member)
        for name in member.groups:
            self.group(app, name).leave(member, self.live(app, name))

    def group(self, app: str, name: str) -> GroupOwnership:
        """Who owns the partitions of group `name` of `app`."""
        found = self._groups.get((app, name))
        if found is None:
            found = self._groups[(app, name)] = GroupOwnership(name, self._partitions[app])
        return found

    def live(self, app: str, name: str) -> list[Any]:
        """The members of group `name` of `app` that take events now."""
        return [m for m in self.members(app) if m.consuming and name in m.groups]

    def owners(self, app: str) -> dict[str, dict[int, PartitionOwner]]:
        """Who owns each partition of each group of `app` now, with its fencing token.

        A partition being handed over still belongs to its old owner; one whose owner
        crashed belongs to it until its lease runs out.
        """
        found: dict[str, dict[int, PartitionOwner]] = {}
        for (of, name), group in sorted(self._groups.items()):
            if of != app:
                continue
            found[name] = {
                partition: PartitionOwner(owner.name, group.tokens.get(partition))
                if (owner := group.owners.get(partition)) is not None
                else PartitionOwner(None)
                for partition in range(group.partitions)
            }
        return found

    def owning(self, app: str, name: str) -> bool:
        """Whether the partitions of group `name` of `app` are owned (one member each)."""
        return self._partitions.get(app, 1) > 1 or is_entity_group(name)

    def rebalance(self, app: str, name: str) -> None:
        """Move the partitions of group `name` to their owners among the live members."""
        if self.owning(app, name):
            self.group(app, name).rebalance(self.live(app, name))

    def send(self, app: str, raw: bytes, key: str | None = None) -> None:
        """Hand one encoded event to every running instance of `app` and to each group."""
        self.published += 1
        sequence = next(self._sequence)
        partitions = self._partitions.get(app, 1)
        partition = (
            partition_of(key, partitions) if key is not None else next(self._spread) % partitions
        )
        members = [m for m in self.members(app) if m.consuming]
        for member in members:
            member.inbox(sequence, raw, None, partition)
        for name in sorted({g for m in members for g in m.groups}):
            if self.owning(app, name):
                self.group(app, name).send(sequence, raw, partition)
                continue
            candidates = [m for m in members if name in m.groups]
            turn = next(self._turns.setdefault((app, name), itertools.count()))
            candidates[turn % len(candidates)].inbox(sequence, raw, name, partition)

    async def drain(self) -> None:
        """Wait until every attached instance has handled everything sent to it.

        Partitions being handed over (an old owner finishing before it releases them)
        are handed over too: after `drain`, each partition of a live member's group is
        with its target owner. Partitions of a crashed owner wait for its lease.
        """
        while True:
            busy = [m for ms in self._instances.values() for m in ms if m.pending]
            for member in busy:
                await member.idle()
            if busy:
                continue
            if not any(group.moving for group in self._groups.values()):
                return
            await anyio.lowlevel.checkpoint()  # a release runs in its owner's task group


class MemoryTransport(Transport):
    """An in-memory `Transport` (see the module docs for how it differs from Redis).

    Args:
        broker: The broker its application's instances share (a new one by default).
        instance: This instance's name (unique in the application; one is made up).
        partitions: How many partitions the application's events are split into (the
            same for every instance).
        lease: Seconds before a crashed instance's partitions are taken over.
    """

    def __init__(
        self,
        broker: MemoryBroker | None = None,
        *,
        instance: str | None = None,
        partitions: int = 1,
        lease: float = 10.0,
    ) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            msg = f"MemoryTransport partitions must be an integer >= 1, got {partitions!r}"
            raise ValueError(msg)
        if lease <= 0:
            msg = f"MemoryTransport lease must be > 0 seconds, got {lease!r}"
            raise ValueError(msg)
        self.broker: MemoryBroker = broker or MemoryBroker()
        self.instance = instance
        self.partitions = partitions
        self.lease = lease
        self.groups: set[str] = set()
        self.consuming: bool = False
        self.crashed: bool = False
        self.pending: int = 0
        self._name = instance or self.broker.anonymous_name()
        self._started = False
        self._host: TransportHost | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._idle: anyio.Event | None = None
        # Unfinished events of each (group, partition), by sequence; partitions to release.
        self._unfinished: dict[tuple[str, int], dict[int, bytes]] = collections.defaultdict(dict)
        self._releasing: set[tuple[str, int]] = set()
        send, receive = anyio.create_memory_object_stream[_Item](math.inf)
        self._send: MemoryObjectSendStream[_Item] = send
        self._receive: MemoryObjectReceiveStream[_Item] = receive

    @property
    def name(self) -> str:
        """This instance's name in its application."""
        return self._name

    @property
    def host(self) -> TransportHost | None:
        """The system this transport is open for (None before `open`)."""
        return self._host

    def set_instance(self, name: str) -> None:
        """Name this instance (the name is informational: nothing here is durable)."""
        self.instance = self._name = name

    def owned(self, group: str) -> dict[int, int]:
        """The partitions of `group` this instance owns now, each with its fencing token.

        Without ownership (one partition, a group that is no entity kind's), every
        partition with token 0 for a group joined here.
        """
        if group not in self.groups or self._host is None or self.crashed:
            return {}
        if not self.broker.owning(self._host.name, group):
            return dict.fromkeys(range(self.partitions), 0)
        return self.broker.group(self._host.name, group).owned_by(self)

    def _app(self) -> str:
        if self._host is None:
            msg = "MemoryTransport is not open: give it to ActorSystem(transport=...)"
            raise RuntimeError(msg)
        return self._host.name

    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:
        """Attach to the broker as an instance of `host`'s application.

        Raises:
            ValueError: If the application's other instances use another `partitions`.
        """
        self.broker.attach(host.name, self)
        self._host = host
        self._tasks = task_group

    async def add_group(self, group: str) -> None:
        """Join `group`: from now on this instance competes for the group's events."""
        self.groups.add(group)
        if self.consuming:
            self.broker.rebalance(self._app(), group)

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start the consumer task and take this instance's share of the partitions."""
        self.consuming = self._started = True
        task_group.start_soon(self._consume)
        for group in self.groups:
            self.broker.rebalance(self._app(), group)

    def inbox(self, sequence: int, raw: bytes, group: str | None, partition: int) -> None:
        """Queue one event for this instance (called by the broker)."""
        self.pending += 1
        if group is not None:
            self._unfinished[(group, partition)][sequence] = raw
        self._send.send_nowait((sequence, raw, group, partition))

    async def idle(self) -> None:
        """Wait until this instance handled everything queued for it."""
        if self.pending:
            self._idle = self._idle or anyio.Event()
            await self._idle.wait()

    async def _consume(self) -> None:
        assert self._host is not None  # noqa: S101 - opened
        with self._receive:
            async for sequence, raw, group, partition in self._receive:
                if not self.crashed:
                    await self._take(self._host, raw, group, partition)
                self._finished(sequence, group, partition)

    async def _take(
        self, host: TransportHost, raw: bytes, group: str | None, partition: int
    ) -> None:
        try:
            envelope = decode(raw)
        except DecodeError as exc:
            self.broker.dead_letters.append((raw, exc))
            return
        fence = None if group is None else self._fence(host.name, group, partition)
        delivery = await host.deliver(envelope, group, fence)
        await delivery.wait()
        if fence is None or fence():
            self._settle(delivery, raw)
        # else: what a crashed instance (or an owner no more) finishes is not committed

    def _fence(self, app: str, group: str, partition: int) -> Callable[[], bool] | None:
        """The fence of a delivery of `partition` of `group`: True while this member owns it."""
        if not self.broker.owning(app, group):
            return None
        ownership = self.broker.group(app, group)

        def fence() -> bool:
            return not self.crashed and ownership.holds(self, partition)

        return fence

    async def answer_owned(self, envelope: Envelope, group: str, partition: int) -> Delivery:
        """Deliver a request of `partition` of owned `group` here, as an event; its delivery.

        The entities' states it changes are saved as an event's would be.
        """
        assert self._host is not None  # noqa: S101 - only the partition's owner is asked
        fence = self._fence(self._host.name, group, partition)
        delivery = await self._host.deliver(envelope, group, fence)
        await delivery.wait()
        if fence is None or fence():
            self._settle(delivery, encode(envelope))
        return delivery

    def _settle(self, delivery: Delivery, raw: bytes) -> None:
        if self.crashed:
            return  # what a crashed instance finishes is not committed: it is redelivered
        if delivery.outcome is Outcome.DEAD_LETTERED:
            self.broker.dead_letters.append((raw, None))
        elif delivery.outcome is Outcome.HANDLED and delivery.commit is not None:
            namespace, key, state = delivery.commit
            self.broker.states[(self._app(), namespace, key)] = state

    def _finished(self, sequence: int, group: str | None, partition: int) -> None:
        if group is not None and not self.crashed:
            self._unfinished[(group, partition)].pop(sequence, None)
            if (group, partition) in self._releasing:
                self._release_when_done(group, partition)
        self.pending -= 1
        if not self.pending and self._idle is not None:
            self._idle.set()
            self._idle = None

    def release_soon(self, group: str, partition: int) -> None:
        """Finish what this instance has of `partition` of `group`, then hand it over."""
        self._releasing.add((group, partition))
        self._release_when_done(group, partition)

    def _release_when_done(self, group: str, partition: int) -> None:
        if self._unfinished.get((group, partition)) or self._tasks is None:
            return
        self._releasing.discard((group, partition))
        self._tasks.start_soon(self._release, group, partition)

    async def _release(self, group: str, partition: int) -> None:
        assert self._host is not None  # noqa: S101 - opened
        await self._host.release(group, frozenset({partition}))
        broker = self.broker
        broker.group(self._host.name, group).released(partition, broker.live(self._app(), group))

    def crash(self) -> None:
        """Simulate a crash (``kill -9``) of this instance, for tests.

        It stops taking events at once and hands nothing over; what it is handling goes
        on, but is not committed. After `lease` seconds its partitions are taken over,
        its unfinished events first, in order.
        """
        if self.crashed or self._tasks is None:
            return
        self.crashed = True
        self.consuming = False
        self._tasks.start_soon(self._taken_over_after_lease)

    async def _taken_over_after_lease(self) -> None:
        await anyio.sleep(self.lease)
        app = self._app()
        for group in self.groups:
            unfinished = {
                partition: list(events.items())
                for (name, partition), events in self._unfinished.items()
                if name == group and events
            }
            self.broker.group(app, group).taken_over(self, unfinished, self.broker.live(app, group))
        self._unfinished.clear()

    async def publish(self, envelope: Envelope) -> None:
        """Send to every running instance of the application (and one member per group)."""
        self.broker.send(self._app(), encode(envelope), envelope.headers.get(PARTITION_KEY))
        await anyio.lowlevel.checkpoint()

    async def publish_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Encode every envelope first (an error sends none), then send them in order."""
        app = self._app()
        encoded = [(encode(e), e.headers.get(PARTITION_KEY)) for e in envelopes]
        for raw, key in encoded:
            self.broker.send(app, raw, key)
        await anyio.lowlevel.checkpoint()

    async def partition_owners(self) -> dict[str, dict[int, PartitionOwner]] | None:
        """Who owns each partition of each group of the application, with fencing tokens.

        With one partition, only the groups whose partition has an owner (those that
        are owned at all); None when there are none.
        """
        await anyio.lowlevel.checkpoint()
        if self._host is None:
            return None
        found = self.broker.owners(self._host.name)
        if self.partitions > 1:
            return found
        owned = {
            group: owners
            for group, owners in found.items()
            if any(owner.instance is not None for owner in owners.values())
        }
        return owned or None

    async def load_state(self, namespace: str, key: str) -> bytes | None:
        """The state last committed for `key` in `namespace` through this broker."""
        await anyio.lowlevel.checkpoint()
        return self.broker.states.get((self._app(), namespace, key))

    async def request(self, envelope: Envelope, timeout: float) -> Any:
        """Ask the running instances in turn; the first one with a handler answers.

        A request to one group whose partitions are owned (an `EntityRef.ask`) is
        delivered to the owner of its key's partition, as an event is.
        """
        wire = decode(encode(envelope))
        app = self._app()
        group = envelope.headers.get(TO_GROUP)
        if group is not None and self.broker.owning(app, group):
            return await self._ask_owner(wire, group, timeout)
        with anyio.move_on_after(timeout):
            for member in list(self.broker.members(self._app())):
                if member.host is None or not member.consuming:
                    continue
                try:
                    return await member.host.answer(wire, timeout)
                except AskTimeout:
                    continue
        msg = f"no instance of {self._app()!r} answered {envelope.type!r} within {timeout}s"
        raise AskTimeout(msg)

    async def _ask_owner(self, envelope: Envelope, group: str, timeout: float) -> Any:
        app = self._app()
        key = envelope.headers.get(PARTITION_KEY)
        partition = 0 if key is None else partition_of(key, self.partitions)
        ownership = self.broker.group(app, group)
        with anyio.move_on_after(timeout):
            while True:
                owner = ownership.owners.get(partition)
                if isinstance(owner, MemoryTransport) and owner.consuming:
                    delivery = await owner.answer_owned(envelope, group, partition)
                    if delivery.outcome is not Outcome.NOT_HANDLED:
                        return delivery.result()
                await anyio.sleep(_OWNER_POLL)  # handed over or taken over meanwhile
        msg = f"no instance of {app!r} answered {envelope.type!r} within {timeout}s"
        raise AskTimeout(msg)

    async def stop_intake(self) -> None:
        """Stop receiving; hand each partition over once its events here are finished."""
        self.consuming = False
        if self._host is None or self.crashed:
            return
        for group in self.groups:
            if not self.broker.owning(self._host.name, group):
                continue
            ownership = self.broker.group(self._host.name, group)
            for partition in ownership.owned_by(self):
                if partition not in ownership.moving:
                    self.release_soon(group, partition)

    async def close(self) -> None:
        """Detach from the broker."""
        self._send.close()
        if not self._started:
            self._receive.close()
        if self._host is not None:
            self.broker.detach(self._host.name, self)
