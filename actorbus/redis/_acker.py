"""Acknowledging one consumer group: settle each entry once handled, send the results.

The acker receives the entries a `GroupConsumer` handed to the local mailboxes, in
batches, and settles each one as soon as its handlers finished, in any order — a slow
handler holds back only its own entry, not the acknowledgement of those after it:

- handled → acknowledge it (XACK);
- dead-lettered by supervision (or undecodable, or delivered too often) → add it to the
  dead-letter stream, then acknowledge it. An entry larger than `DEAD_LETTER_WHOLE`
  goes there as a preview of its first `PREVIEW_BYTES` with its size (and its event's
  ``id`` and ``type`` when it could be decoded): every group that gives up on it adds a
  dead letter, and copying a multi-megabyte entry into each would fill Redis's memory.
  Its stream id (field ``entry``) finds the whole entry in the events stream while it
  is kept there;
- not handled (its actor stopped first, or the group has no local member any more) →
  leave it pending, to be claimed and delivered again.

Entries already handled when the reader hands them over are settled then, by the
reader (`Acker.settle_finished`), without waking the acker's task. The acker takes the
next read batch only while fewer than `batch` entries wait for their
handlers, so a group with stuck handlers stops reading after a few batches
(backpressure), and a crash leaves at most that many entries handled but unacknowledged.

Entries are settled in the order they were handed over (the order their actors got
them) whenever one of them waits for its handlers: the reader settles a read batch
itself only while the acker holds nothing. So the states that entities commit
(`Tracker.commit`) for one key are saved in the order they were made.

A request (an entry carrying ``replyto``) whose handler replied also gets its reply sent.
A second task sends what was settled in one pipeline — dead letters, replies, then one
acknowledgement — on a connection of its own, retrying while Redis is unreachable (on a
Redis Cluster, where the dead letters and replies may live on other masters, the
acknowledgement follows once they were written). The acknowledgement is an XACK, or, when
it must check a lease (and save committed states), one script
(`actorbus.redis._scripts`): Redis refuses it when the partition's lease is no longer
ours, or when the partition's count of saves is not the one this tenure expects (Redis
lost saves it had acknowledged). Either way the entries stay pending for the next owner,
their states are not saved, and the lease is given up (`Lease.revoke`): the partition's
`Ownership` stops using it, and its entities are released, so that their next tenure
reads their states from Redis. It waits a few milliseconds first so that one XACK covers
many entries: a round trip costs far more than the delay, and a later acknowledgement
only widens what a crash would leave pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import anyio

from actorbus._message import Outcome
from actorbus.redis._errors import TRANSIENT, ReplyError
from actorbus.redis._health import Retry, logger
from actorbus.redis._replies import REPLY_MAXLEN, REPLY_TTL, reply_fields, reply_target
from actorbus.redis._scripts import DIVERGED, FENCED, RESENT, acknowledge

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from actorbus._envelope import Envelope
    from actorbus._message import Delivery
    from actorbus.redis._client import DedicatedConnection
    from actorbus.redis._context import Context
    from actorbus.redis._lease import Lease
    from actorbus.redis._protocol import Command

__all__ = ["DEAD_LETTER_WHOLE", "PREVIEW_BYTES", "Acker", "Entry", "dead_letter_fields"]

DEAD_LETTER_WHOLE: Final = 64 * 1024
"""Bytes of an entry's ``e`` field up to which a dead letter holds it whole."""
PREVIEW_BYTES: Final = 1024
"""Bytes of a larger entry that its dead letter keeps (field ``preview``)."""

_ACK_DELAY: Final = 0.005
"""Seconds settled entries wait so that they are sent together."""
_FED_ACK_DELAY: Final = 0.02
"""The same for a fed consumer's acker: its shared reader takes plain acknowledgements first."""
_POLL: Final = 0.01
"""Seconds between looks for finished entries while the oldest one is still being handled."""
_SEND_TIMEOUT: Final = 10.0
"""Seconds one pipeline of dead letters, replies and acknowledgements may take."""


class Entry:
    """One stream entry on its way from a consumer's reader (or claimer) to its acker."""

    __slots__ = ("deliveries", "delivery", "envelope", "id", "raw")

    def __init__(
        self,
        id_: bytes,
        raw: bytes,
        envelope: Envelope | None,
        delivery: Delivery,
        deliveries: int,
    ) -> None:
        self.id = id_
        self.raw = raw
        self.envelope = envelope  # None when it could not be decoded
        self.delivery = delivery
        self.deliveries = deliveries


class Acker:
    """Settles and acknowledges the entries of consumer group `group`.

    Args:
        context: The transport's shared state.
        group: The Redis consumer group.
        inflight: The consumer's entries being handled; settled ones are removed.
        stream: The stream read (default: the application's one events stream).
        partition: The partition of that stream (for the keys of committed states).
        lease: The partition's lease, for a partitioned group: acknowledgements check it.
        fed: Its consumer is fed by a `SharedReader`, which sends the plain
            acknowledgements (`take_plain`) with its next read.
    """

    def __init__(
        self,
        context: Context,
        group: str,
        inflight: dict[bytes, float],
        *,
        stream: str | None = None,
        partition: int = 0,
        lease: Lease | None = None,
        fed: bool = False,
    ) -> None:
        self._context = context
        self._group = group
        self._delay = _FED_ACK_DELAY if fed else _ACK_DELAY
        self._key = stream or context.keys.events
        self._partition = partition
        self._lease = lease
        self._instance = context.instance
        self._inflight = inflight
        self.waiting = 0
        """Entries handed to the acker task (`handing`) and not settled yet."""
        self._dead_head: Command = (b"XADD", context.keys.dead)
        if context.settings.dead_maxlen is not None:
            self._dead_head += (b"MAXLEN", b"~", context.settings.dead_maxlen)
        self._dead_head += (b"*",)
        self._batch: _Batch | None = None  # what was settled and not sent yet, while running

    async def run(self, receive: MemoryObjectReceiveStream[list[Entry]]) -> None:
        """Settle entries until `receive` ended and all were settled; send the rest, return."""
        batch = self._batch = _Batch()
        connection = self._context.dedicated(self._key)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._flush_loop, connection, batch)
            try:
                with receive:
                    await self._settle_all(receive, batch)
            finally:
                batch.closed = True
                batch.ready.set()

    def settle_finished(self, items: list[Entry]) -> list[Entry]:
        """Settle the entries of `items` already handled; return the others, for `run`.

        The reader calls it as it hands a read batch over: when the handlers did not
        wait (the usual case by then), the acker task is not woken at all. Nothing is
        settled before `run` starts or once its last pipeline is being sent (`closed`):
        the entries then go to `run`, or stay pending if it is gone.
        """
        batch = self._batch
        if batch is None or batch.closed or self.waiting:
            return items  # (while the task holds some, it settles in order)
        return self._settle_handled(items, batch)

    def take_plain(self) -> list[bytes]:
        """The acknowledgements settled and not sent, if nothing must go with them.

        For a shared reader to send with its next read: only while no dead letter (which
        must be added before its entry is acknowledged) and no state (saved by the same
        script as its entry's acknowledgement, in order) waits to be sent.
        """
        batch = self._batch
        if batch is None or batch.closed or batch.dead or batch.states or not batch.acks:
            return []
        acks, batch.acks = batch.acks, []
        return acks

    def handing(self, count: int) -> None:
        """`count` entries are being handed to the acker task (-`count`: they were not)."""
        self.waiting += count

    async def _settle_all(
        self, receive: MemoryObjectReceiveStream[list[Entry]], batch: _Batch
    ) -> None:
        unsettled: list[Entry] = []  # in the order read
        limit = self._context.settings.batch
        receiving = True
        while receiving or unsettled:
            if receiving and len(unsettled) < limit:
                items = await _take(receive, wait=not unsettled)
                if items is None:
                    receiving = False
                    continue
                if items:
                    unsettled += items
                    continue
            before = len(unsettled)
            unsettled = await self._settle_finished(unsettled, batch)
            self.waiting -= before - len(unsettled)

    async def _settle_finished(self, unsettled: list[Entry], batch: _Batch) -> list[Entry]:
        """Wait a little for the oldest entry, settle every finished one; return the rest."""
        oldest = unsettled[0]
        if oldest.delivery.pending > 0:
            # Mostly entries finish in order: wake up with the oldest, but look again now
            # and then, so that a slow one does not hold back those after it.
            with anyio.move_on_after(_POLL):
                await oldest.delivery.wait()
        return self._settle_handled(unsettled, batch)

    def _settle_handled(self, items: list[Entry], batch: _Batch) -> list[Entry]:
        """Settle the handled entries of `items` into `batch`, wake its sender; return the rest."""
        rest: list[Entry] = []
        for item in items:
            if item.delivery.pending > 0:
                rest.append(item)
            else:
                self._settle(item, batch)
        if len(rest) < len(items):
            batch.ready.set()
        return rest

    async def _flush_loop(self, connection: DedicatedConnection, batch: _Batch) -> None:
        try:
            while True:
                await batch.ready.wait()
                batch.ready = anyio.Event()
                if not (batch.closed or batch.replies):  # a requester waits for replies
                    await anyio.sleep(self._delay)
                await self._flush(connection, batch.take())
                if batch.closed and batch.empty():
                    return
        finally:
            await connection.close()

    def _settle(self, item: Entry, batch: _Batch) -> None:
        delivery = item.delivery
        envelope = item.envelope
        if envelope is not None and delivery.has_reply:
            target = reply_target(envelope)
            if target is not None:
                key = self._context.keys.replies(target)
                batch.replies.append((key, reply_fields(envelope, delivery, self._instance)))
        outcome = delivery.outcome
        if outcome is Outcome.NOT_HANDLED:
            self._inflight.pop(item.id, None)  # left pending: claimed again later
            return
        if outcome is Outcome.DEAD_LETTERED:
            fields = dead_letter_fields(item, self._group, self._instance)
            if self._key != self._context.keys.events:
                fields[b"stream"] = self._key.encode()
            batch.dead.append(fields)
        if delivery.commit is not None:
            if self._lease is None:
                self._unfenced(item)
                return
            namespace, key, state = delivery.commit
            batch.states[self._context.keys.state(self._partition, namespace, key)] = state
        batch.acks.append(item.id)

    async def _flush(self, connection: DedicatedConnection, batch: _Batch) -> None:
        """Send the batch's dead letters, replies and XACK; retry while Redis is away."""
        if batch.empty():
            return
        commands = self._commands(batch)
        if self._context.client.cluster is not None and batch.acks and len(commands) > 1:
            # On a cluster the dead letters and replies may live on other masters than the
            # stream, written at the same time as the XACK: acknowledge only once they are
            # in Redis, as the order of one pipeline makes sure on a single server.
            replies = await self._send(connection, commands[:-1])
            replies += await self._send(connection, commands[-1:])
        else:
            replies = await self._send(connection, commands)
        counters = self._context.counters
        for reply in replies[: len(batch.dead)]:
            if isinstance(reply, ReplyError):
                logger.error("adding a dead letter failed: %s", reply)
            else:
                counters.dead_lettered += 1
        if batch.acks:
            self._acknowledged(batch, replies[-1])
        for entry in batch.acks:
            self._inflight.pop(entry, None)

    def _acknowledged(self, batch: _Batch, ack: Any) -> None:
        """Note the reply to the batch's acknowledgement."""
        lease = self._lease
        if isinstance(ack, ReplyError):
            logger.error("acknowledging entries of group %r failed: %s", self._group, ack)
            if batch.states and lease is not None:
                # The states held in memory are newer than Redis's: start again from these.
                self._given_up(len(batch.acks), "its states could not be saved")
        elif ack == FENCED:
            self._fenced(len(batch.acks))
        elif ack == DIVERGED:
            self._given_up(
                len(batch.acks),
                "Redis does not hold the states saved last (it lost writes it had "
                "acknowledged: a restart with appendfsync everysec, a failover)",
            )
        else:
            if batch.states and lease is not None:
                lease.saves += 1
            self._context.counters.acked += len(batch.acks) if ack == RESENT else ack

    async def _send(self, connection: DedicatedConnection, commands: list[Command]) -> list[Any]:
        """Send `commands` in one pipeline until Redis answers them; return the replies."""
        backoff = Retry(self._context.health)
        while True:
            try:
                replies = await connection.pipeline(commands, timeout=_SEND_TIMEOUT)
            except TRANSIENT as exc:
                self._context.health.failed(exc)
                await backoff.sleep()
                continue
            except ReplyError as exc:  # refused while connecting (credentials)
                logger.error("connecting to acknowledge entries failed: %s", exc)
                await backoff.sleep()
                continue
            # LOADING (a restarted Redis reading its AOF) or READONLY (a failover): send it
            # all again rather than drop the acknowledgement, or a dead letter whose entry
            # is acknowledged. What did succeed is repeated: a dead letter may be doubled.
            transient = next((reply for reply in replies if isinstance(reply, TRANSIENT)), None)
            if transient is None:
                self._context.health.succeeded()
                return replies
            self._context.health.failed(transient)
            await backoff.sleep()

    def _unfenced(self, item: Entry) -> None:
        """A state was committed in a group without a lease: never saved unfenced."""
        self._inflight.pop(item.id, None)  # left pending: its state must not be lost
        logger.error(
            "an entity state was committed for entry %s of group %r, which has no partition "
            "lease: it is not saved, and the entry is left pending",
            item.id.decode(),
            self._group,
        )

    def _given_up(self, count: int, why: str) -> None:
        """The partition's states in Redis are not ours: give the lease up (module docs)."""
        assert self._lease is not None  # noqa: S101 - only a lease's acknowledgement saves
        self._lease.revoke()
        self._context.counters.fenced += count
        logger.warning(
            "Redis refused to save the states of %d entries of group %r in %s: %s; this "
            "instance gives up partition %d (fencing token %d), and its entities are built "
            "again from the states in Redis, handling those entries again",
            count,
            self._group,
            self._key,
            why,
            self._partition,
            self._lease.token,
        )

    def _fenced(self, count: int) -> None:
        """Redis refused an acknowledgement: the partition's lease is no longer ours."""
        assert self._lease is not None  # noqa: S101 - only a lease's acknowledgement is fenced
        self._lease.revoke()
        self._context.counters.fenced += count
        logger.warning(
            "Redis refused to acknowledge %d entries of group %r in %s: the lease on "
            "partition %d (fencing token %d) is no longer ours; they stay pending for its "
            "new owner, which handles them again",
            count,
            self._group,
            self._key,
            self._partition,
            self._lease.token,
        )

    def _commands(self, batch: _Batch) -> list[Command]:
        """One pipeline: dead letters, then replies, then one acknowledgement."""
        commands: list[Command] = [(*self._dead_head, *_flat(fields)) for fields in batch.dead]
        for key, fields in batch.replies:
            commands.append((b"XADD", key, b"MAXLEN", b"~", REPLY_MAXLEN, b"*", *_flat(fields)))
            commands.append((b"EXPIRE", key, REPLY_TTL))
        if batch.acks:
            commands.append(self._acknowledgement(batch))
        return commands

    def _acknowledgement(self, batch: _Batch) -> Command:
        """XACK the batch's entries; with a lease, the script that checks it (and saves)."""
        lease = self._lease
        if lease is None:
            return (b"XACK", self._key, self._group, *batch.acks)
        states = list(batch.states.items())
        saves = (self._context.keys.saves(self._partition, self._group), lease.saves)
        return acknowledge(
            lease.key, lease.value, self._key, self._group, batch.acks, states, saves
        )


def dead_letter_fields(item: Entry, group: str, instance: str) -> dict[bytes, bytes]:
    """The fields of `item`'s dead letter: the entry whole, or a preview if it is large."""
    error = item.delivery.dead_error
    raw = item.raw
    if len(raw) <= DEAD_LETTER_WHOLE:
        fields = {b"e": raw}
    else:
        fields = {b"preview": raw[:PREVIEW_BYTES], b"size": b"%d" % len(raw)}
        if item.envelope is not None:
            fields[b"id"] = item.envelope.id.encode()
            fields[b"type"] = item.envelope.type.encode()
    fields[b"error"] = f"{type(error).__name__}: {error}".encode()
    fields[b"group"] = group.encode()
    fields[b"deliveries"] = b"%d" % item.deliveries
    fields[b"entry"] = item.id
    fields[b"instance"] = instance.encode()
    return fields


async def _take(
    receive: MemoryObjectReceiveStream[list[Entry]], *, wait: bool
) -> list[Entry] | None:
    """The next read batch (waiting for one only if `wait`), [] if none yet, None at the end."""
    try:
        return await receive.receive() if wait else receive.receive_nowait()
    except anyio.EndOfStream:
        return None
    except anyio.WouldBlock:
        return []


def _flat(fields: dict[bytes, bytes]) -> tuple[bytes, ...]:
    return tuple(part for pair in fields.items() for part in pair)


class _Batch:
    """What was settled and not sent yet."""

    __slots__ = ("acks", "closed", "dead", "ready", "replies", "states")

    def __init__(self) -> None:
        self.acks: list[bytes] = []
        self.states: dict[str, bytes] = {}  # state key -> the latest state committed
        self.dead: list[dict[bytes, bytes]] = []
        self.replies: list[tuple[str, dict[bytes, bytes]]] = []
        self.ready = anyio.Event()
        self.closed = False

    def empty(self) -> bool:
        return not (self.acks or self.dead or self.replies)

    def take(self) -> _Batch:
        """Move the contents into a new batch (the one to send) and start afresh."""
        taken = _Batch()
        taken.acks, self.acks = self.acks, []
        taken.states, self.states = self.states, {}
        taken.dead, self.dead = self.dead, []
        taken.replies, self.replies = self.replies, []
        return taken
