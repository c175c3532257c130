"""`Subscriptions`: what one transport consumes — its broadcast and its groups.

- The **broadcast** group ``b:{instance}``: a `GroupConsumer` per events stream (one per
  partition), each reading its stream in order.
- A **competing-consumer group** ``g:{group}``: without partitions, one `GroupConsumer`
  of the one stream, shared with the group's other members (claiming what silent ones
  left); with partitions, an `Ownership`, which runs a consumer for each partition this
  member owns. An entity kind's group always has an `Ownership`, even with one partition:
  its members keep state per key, so one of them at a time may read a partition.

Each group is created on every stream when it is joined, at the end of the stream, so
that what is published from then on reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Final

import anyio
import anyio.abc

from actorbus._sharding import is_entity_group
from actorbus.redis._config import broadcast_group, member_group
from actorbus.redis._consumer import GroupConsumer
from actorbus.redis._errors import GroupExists, ReplyError
from actorbus.redis._layout import check_names
from actorbus.redis._maintenance import forget_instance
from actorbus.redis._ownership import Ownership

if TYPE_CHECKING:
    from actorbus._transport import TransportHost
    from actorbus.redis._context import Context
    from actorbus.redis._protocol import Command

__all__ = ["Subscriptions"]

_DRAIN_TIMEOUT: Final = 5.0
"""Seconds `close` lets the ackers finish acknowledging what was handled."""
_CLEANUP_TIMEOUT: Final = 3.0


class Subscriptions:
    """The consumer groups one transport reads (module docs).

    `shared_reads` (class attribute): a partitioned group reads the partitions owned here
    with one command (`SharedReader`) on a single server; on a Redis Cluster each
    partition is read on its own whatever it says (each has its own slot).

    Args:
        context: The transport's shared state.
        host: The system receiving the events.
        durable: Whether the instance resumes its own pending entries after a restart.
    """

    shared_reads: ClassVar[bool] = True

    def __init__(self, context: Context, host: TransportHost, *, durable: bool) -> None:
        self._context = context
        self._host = host
        self._durable = durable
        self._consumers: list[GroupConsumer] = []  # broadcast's; unpartitioned groups'
        self._groups: set[str] = set()  # the competing-consumer groups joined
        self._ownerships: dict[str, Ownership] = {}  # partitioned groups
        self._running: list[GroupConsumer] = []
        self._owning: list[Ownership] = []
        self._task_group: anyio.abc.TaskGroup | None = None
        self._intake_stopped = False
        self.opened = False
        """Whether the broadcast group exists (`open` succeeded)."""

    def owned(self, group: str) -> dict[int, int]:
        """The partitions of local `group` owned here, with their fencing tokens.

        Without partitions, ``{0: 0}`` for a group joined here (no lease).
        """
        name = member_group(group)
        ownership = self._ownerships.get(name)
        if ownership is not None:
            return ownership.owned()
        return {0: 0} if name in self._groups else {}

    async def open(self) -> None:
        """Create the instance's broadcast group on every stream, and its consumers.

        Raises:
            RedisError: If Redis cannot be reached or refuses.
        """
        context = self._context
        instance = context.instance
        group = broadcast_group(instance)
        await self._create(group)
        streams = context.keys.streams
        await self._each([(b"XGROUP", b"CREATECONSUMER", key, group, instance) for key in streams])
        self._consumers = [
            GroupConsumer(
                context,
                self._host,
                group,
                None,
                resume=self._durable,
                stream=key,
                partition=partition,
            )
            for partition, key in enumerate(streams)
        ]
        self.opened = True

    async def add_group(self, group: str) -> None:
        """Join local `group`: create it in Redis, and consume it once started.

        Raises:
            RedisError: If Redis cannot be reached or refuses.
            ValueError: If `group` is an entity kind's and the key prefix or the
                application name has a brace (see `check_names`).
        """
        name = member_group(group)
        if name in self._groups:
            return
        owned = is_entity_group(group)
        if owned:
            check_names(self._context.keys, group)
        await self._create(name)
        self._groups.add(name)
        running = self._task_group is not None and not self._intake_stopped
        if self._context.keys.partitions > 1 or owned:
            # A cluster refuses a read of several partitions: their streams are in
            # different slots.
            shared = self.shared_reads and self._context.client.cluster is None
            ownership = Ownership(self._context, self._host, name, group, shared_reads=shared)
            self._ownerships[name] = ownership
            if running:
                self._own(ownership)
            return
        consumer = GroupConsumer(self._context, self._host, name, group, resume=self._durable)
        self._consumers.append(consumer)
        if running:
            self._launch(consumer)

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start consuming, with every task in `task_group`."""
        self._task_group = task_group
        for consumer in self._consumers:
            self._launch(consumer)
        for ownership in self._ownerships.values():
            self._own(ownership)

    def _launch(self, consumer: GroupConsumer) -> None:
        assert self._task_group is not None  # noqa: S101 - started
        self._running.append(consumer)
        self._task_group.start_soon(consumer.run)

    def _own(self, ownership: Ownership) -> None:
        assert self._task_group is not None  # noqa: S101 - started
        self._owning.append(ownership)
        self._task_group.start_soon(ownership.run)

    def stop_intake(self) -> None:
        """Stop reading; what was read is still acknowledged once handled.

        A partitioned group's member withdraws from the group at once (the others start
        asking for its partitions); it keeps its leases until `close` has acknowledged
        what was handled, then releases them all (`Ownership.leave`).
        """
        self._intake_stopped = True
        for consumer in self._running:
            consumer.stop_intake()
        for ownership in self._owning:
            ownership.stop_intake()

    async def close(self, *, forget: bool) -> None:
        """Acknowledge what was handled, hand partitions over, stop every consumer.

        `forget`: also remove what only this (anonymous) instance used in Redis.
        """
        self.stop_intake()
        with anyio.move_on_after(_DRAIN_TIMEOUT):
            for consumer in self._running:
                await consumer.finished.wait()
        with anyio.move_on_after(_DRAIN_TIMEOUT + _CLEANUP_TIMEOUT):
            for ownership in self._owning:
                await ownership.leave(_DRAIN_TIMEOUT)
        for consumer in self._running:
            consumer.scope.cancel()
        for ownership in self._owning:
            ownership.scope.cancel()
        with anyio.move_on_after(_CLEANUP_TIMEOUT):
            for consumer in self._running:
                await consumer.finished.wait()
            for ownership in self._owning:
                await ownership.finished.wait()
            if forget and self.opened:
                await forget_instance(self._context, sorted(self._groups))

    async def _create(self, group: str) -> None:
        """Create `group` at the end of every stream (where it exists, keep its place)."""
        streams = self._context.keys.streams
        commands: list[Command] = [
            (b"XGROUP", b"CREATE", key, group, b"$", b"MKSTREAM") for key in streams
        ]
        await self._each(commands, GroupExists)

    async def _each(self, commands: list[Command], *allowed: type[ReplyError]) -> None:
        """Send `commands` in one pipeline; raise the first error reply (but `allowed` ones).

        Raises:
            RedisError: The first error, or the connection's.
        """
        for reply in await self._context.client.pipeline(commands):
            if isinstance(reply, ReplyError) and not isinstance(reply, allowed):
                raise reply
