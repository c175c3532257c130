"""Consuming one consumer group: read, hand over to the mailboxes, acknowledge, claim.

Each `GroupConsumer` runs three tasks:

- the **reader** first takes back this consumer's own pending entries (a durable
  instance resuming after a restart), then reads new entries (XREADGROUP ``>``, up to
  `batch`, blocking up to `block`, on a connection of its own), takes each in
  (`actorbus.redis._intake`: decoded and given to the local mailboxes, which wait while
  they are full: backpressure) and passes it on to the acker. An entry that no local
  subscriber of the group wants is not decoded: the reader acknowledges it itself, in
  the same write as its next read. A broadcast group is not read at all while the
  instance has no subscriber outside a group (`_pass_by` moves it to the newest entry
  instead);
- the **claimer** (`actorbus.redis._claimer`) takes over the entries silent consumers
  left pending;
- the **acker** (`actorbus.redis._acker`) waits for each entry's outcome and
  acknowledges or dead-letters it, or leaves it pending for redelivery. The reader lets
  the actors run before it hands a batch over, and settles the entries already handled
  by then itself (`Acker.settle_finished`): with handlers that do not wait, the acker
  task is not woken per batch.

A partitioned group has a `GroupConsumer` per partition this instance owns, started and
stopped by its `actorbus.redis._ownership.Ownership`, with the partition's lease: it
takes over what the partition's earlier owners left pending before it reads new entries,
reads only while the lease's fence holds (and blocks no longer than it will), and every
acknowledgement and claim checks the lease in Redis. On one server, a *fed* consumer
does not read itself: one `actorbus.redis._shared.SharedReader` per group reads all the
partitions owned here with one command and feeds each its entries (`deliver`, `give`).

Entries go from the reader and the claimer to the acker one read batch at a time through
a stream holding one batch, so a consumer has at most a few batches in flight: when the
handlers fall behind, it stops reading.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

from actorbus.redis._acker import Acker, Entry
from actorbus.redis._claimer import Claimer, refused
from actorbus.redis._context import REPLY_SLACK
from actorbus.redis._errors import (
    TRANSIENT,
    GroupExists,
    NoGroup,
    PermissionDenied,
    ReplyError,
)
from actorbus.redis._health import Retry, logger
from actorbus.redis._intake import Intake
from actorbus.redis._protocol import Command, fields_of, pack
from actorbus.redis._scripts import FENCED, acknowledge

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.streams.memory import MemoryObjectSendStream

    from actorbus._transport import TransportHost
    from actorbus.redis._client import DedicatedConnection
    from actorbus.redis._context import Context
    from actorbus.redis._lease import Lease

__all__ = ["LEASE_SLACK", "GroupConsumer"]

_ABSENT_POLL: Final = 0.05
"""Seconds between checks while a group has no local member (nothing is read then)."""
_NOT_READ: Final[Any] = object()
"""What `_fetch` returns when it did not read (nobody here takes the entries now)."""
LEASE_SLACK: Final = 0.05
"""Seconds of a lease's fence a read leaves unused (a read ends that much before it)."""


class GroupConsumer:
    """Reads one consumer group of the events stream for the local subscribers.

    Args:
        context: The transport's shared state.
        host: The system receiving the events.
        group: The Redis consumer group (``b:{instance}`` or ``g:{group}``).
        local_group: None for the broadcast group, else the local group name.
        resume: Take back this consumer's own pending entries first.
        stream: The stream to read (default: the application's one events stream).
        partition: Its partition.
        lease: The partition's lease, for a partitioned group.
        fed: A `SharedReader` reads for it; `wake` tells that reader it may read now.
    """

    def __init__(
        self,
        context: Context,
        host: TransportHost,
        group: str,
        local_group: str | None,
        *,
        resume: bool,
        stream: str | None = None,
        partition: int = 0,
        lease: Lease | None = None,
        fed: Callable[[], None] | None = None,
    ) -> None:
        self._context = context
        self._settings = context.settings
        self._host = host
        self.group = group
        self._local_group = local_group
        self._resume = resume
        self._key = stream or context.keys.events
        self.partition = partition
        self.lease = lease
        self._consumer = context.instance
        self._intake = Intake(context, host, group, local_group, stream=self._key, lease=lease)
        self._claimer = Claimer(context, group, self._intake, stream=self._key, lease=lease)
        self._intake_scope = anyio.CancelScope()
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self._unwanted_ids: list[bytes] = []  # read ones, acknowledged with the next read
        self._reading = True  # until `stop_reading`
        self._wake = fed
        self.ready = False
        """Fed: it took over what was pending, and waits for its entries."""
        self.in_read = False
        """Fed: a read under way includes its stream."""
        self._unfed = anyio.Event()  # fed: reading stopped, and no read includes it
        self._send: MemoryObjectSendStream[list[Entry]] | None = None  # fed: to its acker
        self._idle = False  # whether the last read had nothing for a local subscriber
        self._passed_at = -math.inf  # when `_pass_by` last moved the group to the end
        self._pass_by_allowed = True  # False once Redis refused XGROUP SETID (an old ACL)

    def stop_intake(self) -> None:
        """Stop reading and claiming; what was read is still acknowledged."""
        self._intake_scope.cancel()

    def stop_reading(self) -> None:
        """Stop reading and claiming once the read and claim under way are processed.

        Gentler than `stop_intake`, for a partition about to be handed over: a blocking
        read that is cancelled may still take entries in Redis after the next owner took
        over what was pending, and they would stay with this consumer. The read under way
        ends within `block` seconds (or as the lease's fence says); what it read is not
        delivered but left pending, to be taken over with the rest.
        """
        self._reading = False
        self._claimer.stop()
        if not self.in_read:
            self._unfed.set()

    @property
    def stream(self) -> str:
        """The stream it consumes."""
        return self._key

    @property
    def lock(self) -> anyio.Lock:
        """Held while entries are delivered and handed over (see `Claimer.lock`)."""
        return self._claimer.lock

    def wants_read(self) -> bool:
        """Fed: whether the next read should include its stream."""
        lease = self.lease
        return (
            self.ready
            and self._reading
            and (lease is None or lease.remaining() > LEASE_SLACK)
            and (self._local_group is None or self._local_group in self._host.groups())
        )

    def read_done(self) -> None:
        """Fed: the read that included its stream was processed."""
        self.in_read = False
        if not self._reading:
            self._unfed.set()

    def take_unwanted(self) -> list[bytes]:
        """The entries to acknowledge with the next read.

        Nobody here wanted them, or (fed) they were handled and nothing else waits to be
        sent with them (`Acker.take_plain`).
        """
        acks, self._unwanted_ids = self._unwanted_ids, []
        acker = self._intake.acker
        if self._wake is not None and acker is not None:
            acks += acker.take_plain()
        return acks

    @property
    def reading(self) -> bool:
        """Whether what it reads is still delivered (not after `stop_reading`)."""
        return self._reading

    async def run(self) -> None:
        """Consume until cancelled through `scope` (or `stop_intake` and the acks are done)."""
        try:
            with self.scope:
                send, receive = anyio.create_memory_object_stream[list[Entry]](1)
                acker = Acker(
                    self._context,
                    self.group,
                    self._intake.inflight,
                    stream=self._key,
                    partition=self.partition,
                    lease=self.lease,
                    fed=self._wake is not None,
                )
                self._intake.acker = acker
                reader = self._context.dedicated(self._key)
                try:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(acker.run, receive)
                        with send, self._intake_scope:
                            async with anyio.create_task_group() as producers:
                                if self._wake is None:
                                    producers.start_soon(self._read_loop, reader, send.clone())
                                else:
                                    producers.start_soon(self._fed, send.clone())
                                producers.start_soon(self._claimer.run, send.clone())
                finally:
                    await reader.close()
        finally:
            self.finished.set()

    # -- reading ----------------------------------------------------------------------------

    async def _read_loop(
        self, reader: DedicatedConnection, send: MemoryObjectSendStream[list[Entry]]
    ) -> None:
        health = self._context.health
        retry = Retry(health)
        settings = self._settings
        read: Command = (b"XREADGROUP", b"GROUP", self.group, self._consumer)
        read += (b"COUNT", settings.batch, b"BLOCK", settings.block_ms)
        read += (b"STREAMS", self._key, b">")
        packed = pack([read])  # the same bytes for every read
        timeout = settings.block + settings.publish_timeout + REPLY_SLACK
        with send:
            await self._catch_up(send, retry)
            while self._reading:
                try:
                    if self.lease is None:
                        found = await self._fetch(reader, packed, timeout)
                    else:
                        found = await self._fetch_leased(reader, read, timeout)
                except NoGroup:
                    await self.recreate(retry)
                    continue
                except TRANSIENT as exc:
                    health.failed(exc)
                    await retry.sleep()
                    continue
                except ReplyError as exc:
                    refused(self._context, "reading", self.group, exc, self._key)
                    await retry.sleep()
                    continue
                if found is _NOT_READ:
                    continue
                health.succeeded()
                retry.reset()
                if not self._reading:
                    break  # what it read stays pending, for the partition's next owner
                if self._idle and found:
                    # Nothing read lately was for here: let the tasks that the other
                    # consumers just gave work (actors) run first, then look at it.
                    await anyio.lowlevel.checkpoint()
                # The RESP2 reply: the stream's key and its entries, each an id and a
                # flat list of fields and values.
                self._idle = not await self._take_in(found[0][1] if found else [], send)
            await self._acknowledge_unwanted(reader, timeout)

    async def _fed(self, send: MemoryObjectSendStream[list[Entry]]) -> None:
        """Take over what is pending, then let the shared reader feed it until it stops."""
        assert self._wake is not None  # noqa: S101 - fed
        with send:
            self._send = send
            await self._catch_up(send, Retry(self._context.health))
            self.ready = True
            self._wake()
            await self._unfed.wait()
            acks = self.take_unwanted()  # no read follows: send them now
            if acks:
                try:
                    acked = await self._context.client.call(*self.acknowledgement(acks))
                except TRANSIENT:
                    return  # they stay pending, and are taken over with the rest
                except ReplyError as exc:
                    acked = exc
                self.settle_unwanted(acks, acked)

    async def deliver(self, entries: list[list[Any]], items: list[Entry]) -> None:
        """Deliver the entries of a read to the local mailboxes, adding them to `items`.

        (What no local subscriber wants is noted, to be acknowledged with the next read.)
        The caller holds `lock`, and hands `items` over (`give`) even when this raises.
        A fed consumer whose reading stopped meanwhile (a delivery waited for mailbox
        room while the system began to stop) delivers no more: the rest stays pending,
        for the partition's next owner.
        """
        intake = self._intake
        intake.hold(entry_id for entry_id, _ in entries)
        fed = self._wake is not None
        for entry_id, values in entries:
            if fed and not self._reading:
                break
            fields = fields_of(values)
            if intake.is_unwanted(fields):
                self._unwanted_ids.append(entry_id)
            else:
                items.append(await intake.entry(entry_id, fields, 1))

    async def give(self, items: list[Entry], *, unwinding: bool = False) -> None:
        """Fed: hand delivered entries over to the acker (see `Intake.give`)."""
        if self._send is not None:
            if unwinding:
                await self._intake.give_unwinding(self._send, items)
            else:
                await self._intake.give(self._send, items)

    async def _catch_up(self, send: MemoryObjectSendStream[list[Entry]], retry: Retry) -> None:
        """Before reading new entries: take over a partition's, or take our own back."""
        if self.lease is not None:
            await self._claimer.take_over(send, retry)
        elif self._resume:
            await self._claimer.take_back_own(send, retry)

    async def _acknowledge_unwanted(self, reader: DedicatedConnection, timeout: float) -> None:
        """Acknowledge the unwanted entries of the last read now: no read follows."""
        acks = self._unwanted_ids
        if acks:
            self._unwanted_ids = []
            try:
                (acked,) = await reader.pipeline([self.acknowledgement(acks)], timeout=timeout)
            except TRANSIENT:
                return  # they stay pending, and are taken over with the rest
            self.settle_unwanted(acks, acked)

    async def _take_in(
        self, entries: list[list[Any]], send: MemoryObjectSendStream[list[Entry]]
    ) -> list[Entry]:
        """Deliver the entries of a read and hand them over; return those delivered.

        One by one: a cancellation leaves the rest pending. What was delivered is handed
        over even then, and an error of the delivery is raised, not the cancellation.
        """
        intake = self._intake
        items: list[Entry] = []
        async with self._claimer.lock:  # the acker gets them in the order the actors do
            try:
                await self.deliver(entries, items)
            except BaseException:
                await intake.give_unwinding(send, items)
                raise
            await intake.hand_over(send, items)
        return items

    async def _read(self, reader: DedicatedConnection, read: bytes, timeout: float) -> Any:
        """XREADGROUP (`read`, packed); the unwanted entries of the last read are acknowledged.

        They need no handler, so instead of going through the acker their XACK goes
        out in the same write as the next read (if it is lost, they stay pending and
        are claimed and settled again).

        Raises:
            ReplyError: The read's error reply.
            ConnectionLost: The connection was lost, or no answer came in time.
        """
        acks = self._unwanted_ids
        if not acks:
            (found,) = await reader.send(read, 1, timeout=timeout)
        else:
            xack = pack([self.acknowledgement(acks)])
            acked, found = await reader.send(xack + read, 2, timeout=timeout)
            self._unwanted_ids = []
            self.settle_unwanted(acks, acked)
        if isinstance(found, Exception):
            raise found
        return found

    def acknowledgement(self, acks: list[bytes]) -> Command:
        """The XACK of unwanted entries (in a partitioned group, the script that is fenced)."""
        lease = self.lease
        if lease is None:
            return (b"XACK", self._key, self.group, *acks)
        return acknowledge(lease.key, lease.value, self._key, self.group, acks)

    def settle_unwanted(self, acks: list[bytes], acked: Any) -> None:
        """Note the XACK reply for entries no local subscriber wanted."""
        if isinstance(acked, TRANSIENT):
            self._unwanted_ids = acks + self._unwanted_ids  # LOADING, READONLY: ack them later
        elif isinstance(acked, ReplyError):
            refused(self._context, "acknowledging", self.group, acked, self._key)
        elif acked == FENCED and self.lease is not None:
            self.lease.revoke()  # they stay pending, for the partition's next owner
            self._context.counters.fenced += len(acks)
        else:
            self._context.counters.acked += acked
            inflight = self._intake.inflight
            for entry in acks:
                inflight.pop(entry, None)

    async def _fetch_leased(
        self, reader: DedicatedConnection, read: Command, timeout: float
    ) -> Any:
        """The next read of a partition owned here, blocking no longer than its fence holds.

        So Redis delivers entries to this consumer only while its lease is valid: once the
        lease can expire, nothing read here is missing from what the next owner takes over.
        Returns `_NOT_READ` after a short pause when the fence is about to turn (a renewal
        may come) or has turned (its `Ownership` then stops this consumer), or when
        nobody here takes the entries.
        """
        lease = self.lease
        assert lease is not None  # noqa: S101 - a partition's reader
        left = lease.remaining() - LEASE_SLACK
        if left <= 0 or self._local_group not in self._host.groups():
            await anyio.sleep(_ABSENT_POLL)
            return _NOT_READ
        block = max(1, min(self._settings.block_ms, int(left * 1000)))
        return await self._read(reader, pack([(*read[:-4], block, *read[-3:])]), timeout)

    async def _fetch(self, reader: DedicatedConnection, read: bytes, timeout: float) -> Any:
        """The next read, or `_NOT_READ` after a pause while nobody here would take it."""
        if self._local_group is None:
            if self._pass_by_allowed and not self._host.broadcasts():
                await self._pass_by(reader, timeout)
                return _NOT_READ
        elif self._local_group not in self._host.groups():
            await anyio.sleep(_ABSENT_POLL)  # the entries wait in the group for a member
            return _NOT_READ
        return await self._read(reader, read, timeout)

    async def _pass_by(self, reader: DedicatedConnection, timeout: float) -> None:
        """No broadcast subscriber here: move the group to the stream's end, unread.

        Reading every event only to acknowledge it as unwanted would cost this instance
        (a publisher only, or a worker in groups only) as much as handling it. Instead,
        every `block` seconds, the group's last-delivered id is set to the newest entry
        — read *before* checking that there is still no broadcast subscriber, so that
        an event published after a subscription started has a later id and is read.
        (Events published before a subscription may be skipped: only those published
        after `spawn` returns are promised to it.) Checks for a subscriber every
        `_ABSENT_POLL` seconds meanwhile.
        """
        now = anyio.current_time()
        if now - self._passed_at >= self._settings.block:
            newest = await reader.call(
                b"XREVRANGE", self._key, b"+", b"-", b"COUNT", 1, timeout=timeout
            )
            commands: list[Command] = []
            acks = self._unwanted_ids
            if acks:
                commands.append((b"XACK", self._key, self.group, *acks))
            move = bool(newest) and not self._host.broadcasts()
            if move:
                commands.append((b"XGROUP", b"SETID", self._key, self.group, newest[0][0]))
            if commands:
                replies = await reader.pipeline(commands, timeout=timeout)
                self._unwanted_ids = []  # (only this task adds to it)
                if acks:
                    self.settle_unwanted(acks, replies[0])
                if move:
                    self._moved(replies[-1])
            self._passed_at = now
            self._context.health.succeeded()
        await anyio.sleep(_ABSENT_POLL)

    def _moved(self, reply: Any) -> None:
        """Check the reply to XGROUP SETID: without the permission, read as before.

        Raises:
            ReplyError: Any other error (the group is gone, say).
        """
        if isinstance(reply, PermissionDenied):
            self._pass_by_allowed = False
            logger.warning(
                "the Redis user may not move consumer group %r of %s (NOPERM on XGROUP "
                "SETID): reading it instead; add +xgroup|setid to its ACL (Redis guide) "
                "so that an instance without broadcast subscribers need not read every event",
                self.group,
                self._key,
            )
        elif isinstance(reply, ReplyError):
            raise reply

    async def recreate(self, retry: Retry) -> None:
        """The group is gone (Redis lost its data, or it was removed as stale): recreate it.

        From the start of what the stream still holds, so nothing published since is
        missed (entries handled before may come again: at-least-once).
        """
        try:
            await self._context.client.call(
                b"XGROUP", b"CREATE", self._key, self.group, b"0", b"MKSTREAM"
            )
        except GroupExists:
            return
        except TRANSIENT as exc:
            self._context.health.failed(exc)
            await retry.sleep()
            return
        except ReplyError as exc:
            refused(self._context, "recreating", self.group, exc, self._key)
            await retry.sleep()
            return
        logger.warning(
            "consumer group %r of %s was missing (Redis restarted without persistence, or "
            "the group was removed as stale); recreated it from the oldest entry kept: "
            "events may be handled twice",
            self.group,
            self._key,
        )
