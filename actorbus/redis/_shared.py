"""`SharedReader`: one read for every partition of a group that this instance owns.

With a consumer per partition, each reading its own stream, the entries of a busy
application are spread over as many reads as there are partitions, and each read, its
hand-over and its acknowledgement cost the same whatever they carry: an instance that
owns 8 partitions paid for 8 small batches where one stream gives one large one. On one
Redis server, a single XREADGROUP reads many streams, so a group's partitions are read
together: the `SharedReader` of a group sends one ``XREADGROUP … STREAMS s1 … sn > … >``
for the partitions owned here (with the unwanted entries of the last read acknowledged in
the same write, as a consumer does), then feeds each partition's `GroupConsumer` its
entries. Each consumer keeps the rest: taking over what was pending before it is read,
its claims, its acker, its lease's fence.

What holds for a consumer's own reads holds here: a partition is included only once its
take-over is done and while its fence holds for more than `LEASE_SLACK` (the read blocks
no longer than the shortest of them); a partition whose reading stopped during a read gets
nothing of it (what was read stays pending, for the next owner); the entries of one read
are delivered, the actors let run, and handed over to each acker, under the consumers'
locks, so that each acker gets them in the order the actors did.

Redis Cluster refuses a command over keys of different slots, and each partition has its
own: there, each consumer reads its own stream.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

from actorbus.redis._claimer import refused
from actorbus.redis._consumer import LEASE_SLACK
from actorbus.redis._context import REPLY_SLACK
from actorbus.redis._errors import TRANSIENT, NoGroup, ReplyError
from actorbus.redis._health import Retry
from actorbus.redis._protocol import Command, pack

if TYPE_CHECKING:
    from actorbus.redis._acker import Entry
    from actorbus.redis._client import DedicatedConnection
    from actorbus.redis._consumer import GroupConsumer
    from actorbus.redis._context import Context

__all__ = ["SharedReader"]

_POLL: Final = 0.05
"""Seconds between looks while no partition is to be read (none yet, or fences turning)."""
_ROUNDS: Final = 2
"""Scheduling rounds the actors get before a read's entries are handed over (at most)."""


class SharedReader:
    """Reads the partitions of group `group` owned here, for their consumers (module docs)."""

    def __init__(self, context: Context, group: str) -> None:
        self._context = context
        self.group = group
        self._members: list[GroupConsumer] = []
        self._changed = anyio.Event()

    def add(self, consumer: GroupConsumer) -> None:
        """Read for `consumer` (fed) from now on, once it wants it."""
        self._members.append(consumer)
        self.wake()

    def wake(self) -> None:
        """Something changed: look again at which partitions to read."""
        self._changed.set()

    async def run(self) -> None:
        """Read until cancelled."""
        context = self._context
        connection = context.dedicated(context.keys.stream(0))  # (one server: any key)
        retry = Retry(context.health)
        try:
            while True:
                self._members = [m for m in self._members if not m.finished.is_set()]
                readers = [m for m in self._members if m.wants_read()]
                if not readers:
                    with anyio.move_on_after(_POLL):
                        await self._changed.wait()
                    self._changed = anyio.Event()
                    continue
                for member in readers:
                    member.in_read = True
                try:
                    await self._read(connection, readers, retry)
                finally:
                    for member in readers:
                        member.read_done()
        finally:
            await connection.close()

    async def _read(
        self, connection: DedicatedConnection, readers: list[GroupConsumer], retry: Retry
    ) -> None:
        """One read for `readers` (and the acknowledgement of their unwanted entries)."""
        context = self._context
        settings = context.settings
        health = context.health
        left = min(m.lease.remaining() if m.lease else settings.block for m in readers)
        block = max(1, min(settings.block_ms, int((left - LEASE_SLACK) * 1000)))
        unwanted = [(m, m.take_unwanted()) for m in readers]
        unwanted = [(m, acks) for m, acks in unwanted if acks]
        read: Command = (b"XREADGROUP", b"GROUP", self.group, context.instance)
        read += (b"COUNT", settings.batch, b"BLOCK", block, b"STREAMS")
        read += (*(m.stream for m in readers), *(b">" for _ in readers))
        commands = [m.acknowledgement(acks) for m, acks in unwanted] + [read]
        timeout = block / 1000 + settings.publish_timeout + REPLY_SLACK
        try:
            replies = await connection.send(pack(commands), len(commands), timeout=timeout)
        except (*TRANSIENT, ReplyError) as exc:  # (a ReplyError: refused while connecting)
            for member, acks in unwanted:
                member.settle_unwanted(acks, exc)  # put back, or logged
            health.failed(exc)
            await retry.sleep()
            return
        for (member, acks), reply in zip(unwanted, replies, strict=False):
            member.settle_unwanted(acks, reply)
        found = replies[-1]
        if isinstance(found, NoGroup):
            for member in readers:
                await member.recreate(retry)
            return
        if isinstance(found, TRANSIENT):
            health.failed(found)
            await retry.sleep()
            return
        if isinstance(found, ReplyError):
            refused(context, "reading", self.group, found, readers[0].stream)
            await retry.sleep()
            return
        health.succeeded()
        retry.reset()
        # The RESP2 reply: per stream with entries, its key and its entries (nil if none).
        by_stream: dict[bytes, list[list[Any]]] = dict(found or ())
        await self._feed([(m, by_stream.get(m.stream.encode(), [])) for m in readers])

    async def _feed(self, work: list[tuple[GroupConsumer, list[list[Any]]]]) -> None:
        """Deliver each consumer's entries, let the actors run, then hand them over.

        As `Intake.hand_over`: what was delivered is handed over even if the delivery
        raises or a cancellation comes; a cancellation is raised once it was.
        """
        work = [(member, entries) for member, entries in work if entries and member.reading]
        if not work:
            return
        delivered: list[tuple[GroupConsumer, list[Entry]]] = []
        async with contextlib.AsyncExitStack() as locks:
            for member, _ in work:
                await locks.enter_async_context(member.lock)
            try:
                for member, entries in work:
                    items: list[Entry] = []
                    delivered.append((member, items))
                    await member.deliver(entries, items)
            except BaseException:
                for member, items in delivered:
                    await member.give(items, unwinding=True)
                raise
            deferred = await _let_actors_run(delivered[-1][1])
            for member, items in delivered:
                await member.give(items)
            if deferred is not None:
                raise deferred


async def _let_actors_run(last: list[Entry]) -> BaseException | None:
    """A scheduling round or two for the actors just given work; a cancellation, returned."""
    for _ in range(_ROUNDS):
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class() as exc:  # raised once handed over
            return exc
        if not last or last[-1].delivery.pending <= 0:
            break
    return None
