"""Consuming one consumer group: read, hand over to the mailboxes, acknowledge, claim.

Each `GroupConsumer` runs three tasks (claiming uses the transport's shared client):

- the **reader** first takes back this consumer's own pending entries (a durable
  instance resuming after a restart), then reads new entries (XREADGROUP ``>``, up to
  `batch`, blocking up to `block`, on a connection of its own: a `Link`), decodes each,
  gives it to the local mailboxes (`TransportHost.deliver`, which waits while they are
  full: backpressure) and passes it on to the acker. An entry whose type (field ``t``)
  no local subscriber of the group wants is not decoded: the reader acknowledges it
  itself, in the same write as its next read. A broadcast group is not read at all
  while the instance has no subscriber outside a group (`_pass_by` moves it to the
  newest entry instead);
- the **claimer**, every ``claim_after / 2`` seconds, refreshes the entries still being
  handled here (so a live but slow consumer keeps them) and claims the entries left idle
  for ``claim_after`` by silent consumers (XPENDING + XCLAIM), dead-lettering those
  already delivered ``max_deliveries`` times;
- the **acker** (`actorbus.redis._acker`) waits for each entry's outcome in order and
  acknowledges or dead-letters it, or leaves it pending for redelivery. The reader lets
  the actors run before it hands a batch over, and settles the entries already handled
  by then itself (`Acker.settle_finished`): with handlers that do not wait, the acker
  task is not woken per batch.

Entries go from the reader and the claimer to the acker one read batch at a time through
a stream holding one batch, so a consumer has at most a few batches in flight: when the
handlers fall behind, it stops reading.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
from coredis.exceptions import (
    AuthorizationError,
    RedisError,
    StreamConsumerGroupError,
    StreamDuplicateConsumerGroupError,
)

from actorbus._backend import clock, resolve_checkpoints, running_asyncio
from actorbus._exceptions import ActorbusError, DecodeError
from actorbus._message import Tracker
from actorbus._wire import decode
from actorbus.redis._acker import Acker, Entry
from actorbus.redis._health import TRANSIENT, Backoff, logger
from actorbus.redis._link import Command, Link, link_for, pack

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    import coredis
    from anyio.streams.memory import MemoryObjectSendStream
    from coredis.response.types import StreamEntry

    from actorbus._envelope import Envelope
    from actorbus._transport import TransportHost
    from actorbus.redis._context import Context

__all__ = ["GroupConsumer"]

_ABSENT_POLL: Final = 0.05
"""Seconds between checks while a group has no local member (nothing is read then)."""
_NOT_READ: Final[Any] = object()
"""What `_fetch` returns when it did not read (nobody here takes the entries now)."""
_HAND_OVER_TIMEOUT: Final = 5.0
_TWO_FIELDS: Final = 4
"""The length of an entry's flat field list with two fields and their values."""
_REPLY_SLACK: Final = 10.0
"""Seconds a blocking read may take beyond `block` and `publish_timeout` (a hung server)."""


class GroupConsumer:
    """Reads one consumer group of the events stream for the local subscribers.

    Args:
        context: The transport's shared state.
        host: The system receiving the events.
        group: The Redis consumer group (``b:{instance}`` or ``g:{group}``).
        local_group: None for the broadcast group, else the local group name.
        resume: Take back this consumer's own pending entries first.
    """

    def __init__(
        self,
        context: Context,
        host: TransportHost,
        group: str,
        local_group: str | None,
        *,
        resume: bool,
    ) -> None:
        self._context = context
        self._settings = context.settings
        self._host = host
        self.group = group
        self._local_group = local_group
        self._resume = resume
        self._key = context.keys.events
        self._consumer = context.instance
        self._inflight: dict[bytes, float] = {}  # entry id -> when last refreshed
        # One claim at a time (the take-back after a restart, the claim loop): each sees
        # what the other holds, so no entry is claimed and delivered twice here.
        self._claiming = anyio.Lock()
        self._intake = anyio.CancelScope()
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self._unwanted = Tracker(0)  # the outcome of entries no local subscriber wants
        self._unwanted_ids: list[bytes] = []  # read ones, acknowledged with the next read
        self._idle = False  # whether the last read had nothing for a local subscriber
        self._passed_at = -math.inf  # when `_pass_by` last moved the group to the end
        self._pass_by_allowed = True  # False once Redis refused XGROUP SETID (an old ACL)
        self._acker: Acker | None = None  # while running
        # Scheduling rounds the reader lets pass before a hand-over (see `_hand_over`).
        self._rounds = 1
        self._schedule: Callable[[], Awaitable[None]] = anyio.lowlevel.checkpoint
        self._clock: Callable[[], float] = anyio.current_time

    def stop_intake(self) -> None:
        """Stop reading and claiming; what was read is still acknowledged."""
        self._intake.cancel()

    async def run(self, client: coredis.Redis[bytes]) -> None:
        """Consume until cancelled through `scope` (or `stop_intake` and the acks are done).

        `client` is the transport's shared client, connected and kept open until every
        consumer finished: claiming shares it rather than connect a client of its own
        (which a short-lived system could cancel halfway through connecting).
        """
        try:
            with self.scope:
                send, receive = anyio.create_memory_object_stream[list[Entry]](1)
                acker = self._acker = Acker(self._context, self.group, self._inflight)
                self._rounds = 1 if running_asyncio() else 2
                self._schedule = resolve_checkpoints().schedule
                self._clock = clock()
                reader = link_for(self._context)
                try:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(acker.run, receive)
                        with send, self._intake:
                            async with anyio.create_task_group() as producers:
                                read = self._read_loop
                                producers.start_soon(read, client, reader, send.clone())
                                producers.start_soon(self._claim_loop, client, send.clone())
                finally:
                    await reader.close()
        finally:
            self.finished.set()

    # -- reading ----------------------------------------------------------------------------

    async def _read_loop(
        self,
        client: coredis.Redis[bytes],
        reader: Link,
        send: MemoryObjectSendStream[list[Entry]],
    ) -> None:
        health = self._context.health
        backoff = Backoff(health=health)
        settings = self._settings
        read: Command = (b"XREADGROUP", b"GROUP", self.group, self._consumer)
        read += (b"COUNT", settings.batch, b"BLOCK", settings.block_ms)
        read += (b"STREAMS", self._key, b">")
        packed = pack([read])  # the same bytes for every read
        timeout = settings.block + settings.publish_timeout + _REPLY_SLACK
        with send:
            if self._resume:
                await self._take_back_own(client, send, backoff)
            while True:
                try:
                    found = await self._fetch(reader, packed, timeout)
                except StreamConsumerGroupError:
                    await self._recreate(client, backoff)
                    continue
                except TRANSIENT as exc:
                    health.failed(exc)
                    await backoff.sleep()
                    continue
                except RedisError as exc:
                    self._refused("reading", exc)
                    await backoff.sleep()
                    continue
                if found is _NOT_READ:
                    continue
                health.succeeded()
                backoff.reset()
                if self._idle and found:
                    # Nothing read lately was for here: let the tasks that the other
                    # consumers just gave work (actors) run first, then look at it.
                    await anyio.lowlevel.checkpoint()
                # The RESP2 reply: the stream's key and its entries, each an id and a
                # flat list of fields and values.
                self._idle = not await self._take_in(found[0][1] if found else [], send)

    async def _take_in(
        self, entries: list[tuple[bytes, list[bytes]]], send: MemoryObjectSendStream[list[Entry]]
    ) -> list[Entry]:
        """Deliver the entries of a read and hand them over; return those delivered.

        One by one: a cancellation leaves the rest pending. What was delivered is handed
        over even then, and an error of the delivery is raised, not the cancellation.
        """
        self._hold(entry_id for entry_id, _ in entries)
        items: list[Entry] = []
        try:
            for entry_id, values in entries:
                if len(values) == _TWO_FIELDS:  # "e" and "t", as `Publisher` writes them
                    fields = {values[0]: values[1], values[2]: values[3]}
                else:
                    fields = dict(zip(values[::2], values[1::2], strict=True))
                if self._unwanted_here(fields):
                    self._unwanted_ids.append(entry_id)
                else:
                    items.append(await self._dispatch(entry_id, fields, 1))
        except BaseException:
            await self._give_unwinding(send, items)
            raise
        await self._hand_over(send, items)
        return items

    async def _read(self, reader: Link, read: bytes, timeout: float) -> Any:
        """XREADGROUP (`read`, packed); the unwanted entries of the last read are acknowledged.

        They need no handler, so instead of going through the acker their XACK goes
        out in the same write as the next read (if it is lost, they stay pending and
        are claimed and settled again).

        Raises:
            coredis.exceptions.RedisError: The read's error (or a lost connection, or no
                answer in time: `ConnectionError`).
        """
        acks = self._unwanted_ids
        if not acks:
            (found,) = await reader.send(read, 1, timeout=timeout)
        else:
            xack = pack([(b"XACK", self._key, self.group, *acks)])
            acked, found = await reader.send(xack + read, 2, timeout=timeout)
            self._unwanted_ids = []
            self._settle_unwanted(acks, acked)
        if isinstance(found, RedisError):
            raise found
        return found

    def _settle_unwanted(self, acks: list[bytes], acked: Any) -> None:
        """Note the XACK reply for entries no local subscriber wanted."""
        if isinstance(acked, TRANSIENT):
            self._unwanted_ids = acks + self._unwanted_ids  # LOADING, READONLY: ack them later
        elif isinstance(acked, RedisError):
            self._refused("acknowledging", acked)
        else:
            self._context.counters.acked += acked
            for entry in acks:
                self._inflight.pop(entry, None)

    async def _fetch(self, reader: Link, read: bytes, timeout: float) -> Any:
        """The next read, or `_NOT_READ` after a pause while nobody here would take it."""
        if self._local_group is None:
            if self._pass_by_allowed and not self._host.broadcasts():
                await self._pass_by(reader, timeout)
                return _NOT_READ
        elif self._local_group not in self._host.groups():
            await anyio.sleep(_ABSENT_POLL)  # the entries wait in the group for a member
            return _NOT_READ
        return await self._read(reader, read, timeout)

    async def _pass_by(self, reader: Link, timeout: float) -> None:
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
                (b"XREVRANGE", self._key, b"+", b"-", b"COUNT", 1), timeout=timeout
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
                    self._settle_unwanted(acks, replies[0])
                if move:
                    self._moved(replies[-1])
            self._passed_at = now
            self._context.health.succeeded()
        await anyio.sleep(_ABSENT_POLL)

    def _moved(self, reply: Any) -> None:
        """Check the reply to XGROUP SETID: without the permission, read as before.

        Raises:
            coredis.exceptions.RedisError: Any other error (the group is gone, say).
        """
        if isinstance(reply, AuthorizationError):
            self._pass_by_allowed = False
            logger.warning(
                "the Redis user may not move consumer group %r of %s (NOPERM on XGROUP "
                "SETID): reading it instead; add +xgroup|setid to its ACL (Redis guide) "
                "so that an instance without broadcast subscribers need not read every event",
                self.group,
                self._key,
            )
        elif isinstance(reply, RedisError):
            raise reply

    def _hold(self, entry_ids: Iterable[bytes]) -> None:
        """Note entries as being handled here (before anything awaits: nobody claims them)."""
        self._inflight.update(dict.fromkeys(entry_ids, self._clock()))

    async def _recreate(self, client: coredis.Redis[bytes], backoff: Backoff) -> None:
        """The group is gone (Redis lost its data, or it was removed as stale): recreate it.

        From the start of what the stream still holds, so nothing published since is
        missed (entries handled before may come again: at-least-once).
        """
        try:
            await client.xgroup_create(self._key, self.group, identifier="0", mkstream=True)
        except StreamDuplicateConsumerGroupError:
            return
        except TRANSIENT as exc:
            self._context.health.failed(exc)
            await backoff.sleep()
            return
        logger.warning(
            "consumer group %r of %s was missing (Redis restarted without persistence, or "
            "the group was removed as stale); recreated it from the oldest entry kept: "
            "events may be handled twice",
            self.group,
            self._key,
        )

    async def _dispatch(self, entry_id: bytes, fields: Any, deliveries: int) -> Entry:
        """Hand one entry to the local mailboxes (or mark it undecodable) for the acker.

        The caller checked that some local subscriber may want it (`_unwanted_here`).
        """
        raw = fields.get(b"e")
        try:
            envelope = _decode(raw, fields, self._settings.max_message_bytes)
        except DecodeError as exc:
            logger.warning(
                "cannot decode stream entry %s of %s for group %r: %s; dead-lettering it",
                entry_id.decode(),
                self._key,
                self.group,
                exc,
            )
            if raw is None:
                shown = {
                    bytes(k).decode(errors="replace"): bytes(v).decode(errors="replace")
                    for k, v in fields.items()
                }
                raw = json.dumps(shown).encode()
            delivery = Tracker(0)
            delivery.dead(exc)
            item = Entry(entry_id, bytes(raw), None, delivery, deliveries)
        else:
            delivery = await self._host.deliver(envelope, self._local_group)
            self._context.counters.delivered += 1
            item = Entry(entry_id, bytes(raw), envelope, delivery, deliveries)
        return item

    def _unwanted_here(self, fields: Any) -> bool:
        """Whether the entry names its type (field ``t``) and no local subscriber wants it."""
        type_ = fields.get(b"t")
        if type_ is None or fields.get(b"e") is None:
            return False  # written by someone else: decode it to know
        return not self._host.subscribed(bytes(type_).decode(errors="replace"), self._local_group)

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(
        self, client: coredis.Redis[bytes], send: MemoryObjectSendStream[list[Entry]]
    ) -> None:
        health = self._context.health
        with send:
            while True:
                try:
                    await self._refresh(client)
                    await self._claim(client, send, min_idle=self._settings.claim_after_ms)
                except StreamConsumerGroupError:
                    pass  # the reader recreates the group
                except TRANSIENT as exc:
                    health.failed(exc)
                except RedisError as exc:
                    self._refused("claiming", exc)
                else:
                    health.succeeded()
                await anyio.sleep(self._settings.claim_after / 2)

    def _refused(self, what: str, error: RedisError) -> None:
        logger.error(
            "%s group %r of %s failed: %s (check the ACL user's permissions); retrying",
            what,
            self.group,
            self._key,
            self._context.health.describe(error),
        )

    async def _take_back_own(
        self,
        client: coredis.Redis[bytes],
        send: MemoryObjectSendStream[list[Entry]],
        backoff: Backoff,
    ) -> None:
        """Process again what this consumer had read but not acknowledged before a restart."""
        start = "-"
        while True:
            try:
                last = await self._claim(client, send, min_idle=0, start=start, own=True)
            except StreamConsumerGroupError:
                return  # no group yet: nothing to take back
            except TRANSIENT as exc:
                self._context.health.failed(exc)
                await backoff.sleep()
                continue
            except RedisError as exc:
                self._refused("resuming", exc)
                return
            if last is None:
                return
            start = "(" + last.decode()

    async def _refresh(self, client: coredis.Redis[bytes]) -> None:
        """Reset the idle time of entries still being handled here, so nobody claims them.

        Runs every ``claim_after / 2`` and refreshes entries older than a quarter of it,
        so a live entry is never idle for more than about three quarters of ``claim_after``. The
        XCLAIM's own minimum idle time keeps an entry another instance took over in the
        meantime from being taken back.
        """
        quarter = self._settings.claim_after / 4
        now = anyio.current_time()
        stale = [entry for entry, since in self._inflight.items() if now - since >= quarter]
        min_idle = round(quarter * 500)  # ms: half the quarter, below what it must have
        for start in range(0, len(stale), self._settings.batch):
            chunk = stale[start : start + self._settings.batch]
            await client.xclaim(self._key, self.group, self._consumer, min_idle, chunk, justid=True)
            for entry in chunk:
                if entry in self._inflight:
                    self._inflight[entry] = now

    async def _claim(
        self,
        client: coredis.Redis[bytes],
        send: MemoryObjectSendStream[list[Entry]],
        *,
        min_idle: int,
        start: str = "-",
        own: bool = False,
    ) -> bytes | None:
        """Claim up to `batch` pending entries idle for `min_idle` ms and process them.

        Returns the last pending id looked at when a full page was found (more may
        follow), else None.
        """
        async with self._claiming:
            return await self._claim_now(client, send, min_idle=min_idle, start=start, own=own)

    async def _claim_now(
        self,
        client: coredis.Redis[bytes],
        send: MemoryObjectSendStream[list[Entry]],
        *,
        min_idle: int,
        start: str,
        own: bool,
    ) -> bytes | None:
        pending: Any = await client.xpending(
            self._key,
            self.group,
            start=start,
            end="+",
            count=self._settings.batch,
            idle=min_idle or None,
            consumer=self._consumer if own else None,
        )
        if not pending:
            return None
        found = {bytes(p.identifier): p for p in pending if p.identifier not in self._inflight}
        if found:
            claimed: Any = await client.xclaim(
                self._key, self.group, self._consumer, min_idle, list(found)
            )
            self._hold(_bytes(entry.identifier) for entry in claimed)
            items: list[Entry] = []
            try:
                for entry in claimed:
                    info = found[_bytes(entry.identifier)]
                    if _bytes(info.consumer) != self._consumer.encode():
                        self._context.counters.claimed += 1
                    items.append(await self._process_claimed(entry, int(info.delivered)))
            except BaseException:
                await self._give_unwinding(send, items)
                raise
            await self._hand_over(send, items)
        last: bytes = bytes(pending[-1].identifier)
        return last if len(pending) >= self._settings.batch else None

    async def _process_claimed(self, entry: StreamEntry, delivered: int) -> Entry:
        entry_id = _bytes(entry.identifier)
        limit = self._settings.max_deliveries
        fields: Any = entry.field_values or {}
        if delivered < limit:
            if self._unwanted_here(fields):
                return Entry(entry_id, bytes(fields[b"e"]), None, self._unwanted, delivered + 1)
            return await self._dispatch(entry_id, fields, delivered + 1)
        error = ActorbusError(
            f"entry {entry_id.decode()} was delivered {delivered} times without being "
            f"acknowledged (max_deliveries={limit})"
        )
        logger.warning("%s in group %r; dead-lettering it", error, self.group)
        delivery = Tracker(0)
        delivery.dead(error)
        return Entry(entry_id, bytes(fields.get(b"e", b"")), None, delivery, delivered)

    async def _hand_over(
        self, send: MemoryObjectSendStream[list[Entry]], items: list[Entry]
    ) -> None:
        """Pass delivered entries to the acker, even while intake is being cancelled.

        They are in the mailboxes: once handled they must be acknowledged, or another
        member would handle them again after `claim_after`. A cancellation is raised once
        they are handed over; waiting for room at the acker is shielded, but only for a
        bounded time, so a stuck acker cannot hold up shutdown.
        """
        if not items:
            return
        # Let the actors just given work run first: before the next read is sent, and
        # before the acker looks at the entries, which by then are mostly handled and
        # settled right here (the acker task is not even woken). asyncio runs tasks in
        # the order they were woken, so one scheduling round is enough; trio runs each
        # round's tasks in either order: there a second round follows when the last
        # entry was not handled yet. A cancellation that arrives meanwhile is raised
        # once the entries are handed over.
        deferred: BaseException | None = None
        for _ in range(self._rounds):
            try:
                await self._schedule()
            except anyio.get_cancelled_exc_class() as exc:  # raised below, once handed over
                deferred = exc
                break
            if items[-1].delivery.pending <= 0:
                break
        await self._give(send, items)  # an error of its own wins over the cancellation
        if deferred is not None:
            raise deferred

    async def _give_unwinding(
        self, send: MemoryObjectSendStream[list[Entry]], items: list[Entry]
    ) -> None:
        """Hand `items` over while an exception propagates: no yield, nothing raised instead."""
        if items:
            with anyio.CancelScope(shield=True):
                await self._give(send, items)

    async def _give(self, send: MemoryObjectSendStream[list[Entry]], items: list[Entry]) -> None:
        """Settle the handled entries at once, pass the others to the acker task."""
        if self._acker is not None:
            items = self._acker.settle_finished(items)
            if not items:
                return
        # If the acker is gone, the entries stay pending and are delivered again.
        closed = (anyio.BrokenResourceError, anyio.ClosedResourceError)
        try:
            send.send_nowait(items)  # the usual case: room, so no wait to shield
        except anyio.WouldBlock:
            pass
        except closed:
            return
        else:
            return
        with anyio.move_on_after(_HAND_OVER_TIMEOUT, shield=True), contextlib.suppress(*closed):
            await send.send(items)


def _bytes(value: str | bytes) -> bytes:
    """A stream id or name as bytes (the client returns bytes; the types allow str)."""
    return value if isinstance(value, bytes) else value.encode()


def _decode(raw: bytes | None, fields: Any, max_bytes: int) -> Envelope:
    if raw is None:
        msg = f"stream entry has no 'e' field (fields: {sorted(fields)!r})"
        raise DecodeError(msg)
    return decode(raw, max_bytes=max_bytes)
