"""Publishing: concurrent XADDs coalesced into pipelines, each caller awaiting its own reply.

`Publisher.publish` returns once Redis answered *its* XADD. When nobody else is
publishing (the last batch was a single event, nothing is queued and the connection is
free), the caller sends its entry itself and reads the reply: no other task involved,
as with a plain client. Otherwise it queues the encoded envelope and waits: one task,
`Publisher.run`, takes what is queued — the first item, then whatever else is queued, up
to `batch` — writes it in one send on its own connection and reads the replies: one
round trip for many events when many tasks publish at once. When the last batch had
more than one event, it first lets one scheduling round pass, so that the
publishers its replies woke queue their next events and they go out together. Entries
reach Redis in the order they were queued, so the events of one publishing task keep
their order.

On a Redis Cluster each entry goes to the master of its stream's hash slot: a batch is
one write per master, to all of them at once, each master's entries in their order. An
entry redirected (``MOVED``, ``ASK``) or refused for now (a failover) is sent again where
the cluster's map says, by the client, within the entry's deadline; one whose connection
broke may have been applied and is sent again only by the retries described below.

Each item has a deadline, `publish_timeout` after it was made (when `publish` was
called, or as `publish_batch` queues it). The publishing task keeps it: no wait of its
own (a pipeline, a backoff) outlasts the earliest deadline of the items it holds, and
since every item gets the same timeout and the queue is FIFO, that is also the earliest
deadline of anything still queued. An item whose deadline passed is answered
`TransportError` and dropped from later attempts, so an event is never reported
published unless Redis accepted it. (A batch whose replies were lost may have been
applied: sent again, its events are in the stream twice — at-least-once.) This
spares each queued publish a cancel scope of its own.

`Publisher.publish_batch` queues the entries of a batch one after the other, so they go
out in order, in pipelines. Once one of them is not accepted (refused, past its deadline,
or the transport closed), the batch's entries after it not yet written are withdrawn
(those before it still go out): Redis then holds the entries before the failed one, and
at most those written together with it.

Each entry has two fields: ``e``, the CloudEvents JSON, and ``t``, the event type, so a
consumer can acknowledge an entry that no local subscriber wants without decoding it.

With partitions, an event with a key (``partitionkey``) goes to the stream of
``partition_of(key, partitions)``, and one without a key to the next stream in turn
(round-robin per publisher, which keeps the streams even).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

from actorbus._envelope import named
from actorbus._exceptions import TransportError
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus._supervision import Backoff
from actorbus.redis._errors import TRANSIENT, ConnectionLost, ReplyError, Unreachable
from actorbus.redis._health import Retry
from actorbus.redis._protocol import BULK, Command, bulk, pack_head

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from actorbus._envelope import Envelope
    from actorbus.redis._context import Context

__all__ = ["Packed", "Publisher"]

Packed = tuple[bytes, bytes]
"""An entry ready to send: its stream's key, and its XADD in the wire format."""

_NOT_QUEUED: Final = (TimeoutError, anyio.ClosedResourceError, anyio.BrokenResourceError)
"""What `Publisher._wait_for_room` raises when an item could not be queued."""
_BACKOFF: Final = Backoff(initial=0.02, maximum=0.5, multiplier=2.0, jitter=0.5)
"""Between attempts of a pipeline: short, since callers wait (their deadlines bound it)."""


class _ClosedUnanswered(Exception):
    """The transport closed after a send of the item started, before Redis answered."""


class _Call:
    """The `publish_batch` call that items belong to, and its first item not accepted."""

    __slots__ = ("failed_at",)

    def __init__(self) -> None:
        self.failed_at: int | None = None  # index of the first item (so far) not accepted

    def failed(self, index: int) -> None:
        """The item at `index` was not accepted (and not withdrawn)."""
        if self.failed_at is None or index < self.failed_at:
            self.failed_at = index

    def withdraws(self, index: int) -> bool:
        """Whether the item at `index`, not written yet, is to be withdrawn."""
        return self.failed_at is not None and index > self.failed_at


class _Item:
    """One queued XADD, its caller's deadline and wake-up."""

    __slots__ = (
        "abandoned",
        "answered",
        "call",
        "deadline",
        "done",
        "entry",
        "error",
        "expired",
        "index",
        "key",
        "last_error",
        "packed",
        "withdrawn",
        "written",
    )

    def __init__(
        self, packed: bytes, key: bytes, deadline: float, call: _Call | None, index: int
    ) -> None:
        self.packed = packed  # the XADD, in the wire format
        self.key = key  # its stream
        self.deadline = deadline
        self.call = call  # the batch it belongs to, if any
        self.index = index  # its place in that batch
        self.answered = False
        self.done: anyio.Event | None = None  # made when the caller waits (`wait`)
        self.entry: bytes | None = None
        self.error: BaseException | None = None
        self.last_error: BaseException | None = None
        self.expired = False
        self.abandoned = False  # its caller stopped waiting: not to be sent
        self.withdrawn = False  # not sent: an earlier item of its batch was not accepted
        self.written = False  # a send of it started: Redis may have it, answered or not

    async def wait(self) -> None:
        """Wait until the item is answered (`finish`)."""
        if not self.answered:
            done = self.done = anyio.Event()
            await done.wait()

    def finish(self) -> None:
        """The item is answered: wake its caller (and note a failure for its batch)."""
        self.answered = True
        if self.entry is None and self.call is not None and not self.withdrawn:
            self.call.failed(self.index)
        if self.done is not None:
            self.done.set()

    def withdraw(self) -> None:
        """Not sent, since an earlier item of its batch was not accepted."""
        if not self.answered:
            self.withdrawn = True
            self.finish()

    def expire(self) -> None:
        """The deadline passed: the caller gets `TransportError`."""
        if not self.answered:
            self.expired = True
            self.finish()

    def not_queued(self, reason: BaseException) -> None:
        """Queueing failed with `reason` (one of `_NOT_QUEUED`): the caller's error."""
        if isinstance(reason, TimeoutError):
            self.expired = True
            self.finish()
        else:
            self.closed()

    def closed(self) -> None:
        """The transport closed before Redis answered: the caller gets `TransportError`."""
        if not self.answered:
            self.error = _ClosedUnanswered() if self.written else anyio.ClosedResourceError()
            self.finish()


class Publisher:
    """Coalesces concurrent XADDs to the events stream into pipelines (module docs)."""

    def __init__(self, context: Context) -> None:
        self._connection = context.dedicated(context.keys.events)
        settings = self._settings = context.settings
        self._health = context.health
        self._counters = context.counters
        self._where = context.where
        send, receive = anyio.create_memory_object_stream[_Item](settings.batch * 4)
        self._send = send
        self._receive = receive
        # Each entry's XADD: the head of its stream, then its payload, "t" and its type.
        self._xadd_heads = [self._head(key, settings.maxlen) for key in context.keys.streams]
        self._streams: tuple[bytes, ...] = tuple(key.encode() for key in context.keys.streams)
        self._partitions = len(self._xadd_heads)
        self._turn = 0  # the partition of the next event without a key
        self._xadd_tail = BULK + bulk(b"t") + BULK
        self._held: list[_Item] = []  # taken from the queue and not answered yet
        self._connection_lock = anyio.Lock()  # one task at a time uses the connection
        self._crowd = False  # whether the last batch had company: others publish too
        self._running = False
        self._clock: Callable[[], float] = anyio.current_time

    async def publish(self, payload: bytes, envelope: Envelope) -> bytes:
        """Add `payload` (`envelope` encoded) to the stream; return its id once accepted.

        Waits at most `publish_timeout` seconds in all (queueing included). A
        cancellation point; a caller cancelled before its batch was sent is dropped.

        Raises:
            TransportError: If Redis did not accept the entry in time, refused it, or the
                transport is closed.
        """
        item = self._item(self.pack(payload, envelope), None, 0)
        try:
            if not (self._alone() and await self._send_alone(item)):
                try:
                    self._send.send_nowait(item)
                except anyio.WouldBlock:
                    await self._wait_for_room(item)
            await item.wait()
        except _NOT_QUEUED as exc:
            item.not_queued(exc)
        except BaseException:
            item.abandoned = True
            raise
        return self._outcome(item, envelope)

    async def publish_batch(self, packed: Sequence[Packed], envelopes: Sequence[Envelope]) -> None:
        """`publish` for each of `envelopes` in order, queued together; wait for all.

        `packed` holds their streams and XADDs (`pack`): a batch holds each event once, in
        the wire format.

        Entries are queued one after the other (waiting for room when the queue is
        full), so the publishing task sends them in pipelines of up to `batch`. Each has
        its own deadline, `publish_timeout` after the loop reached it (waiting for room
        counts). Once one is not accepted, those after it not written yet are withdrawn
        (module docs). A cancellation drops those
        not written yet.

        Raises:
            TransportError: Once every entry queued was answered, if one was not accepted:
                the first such, with a note saying how many of the batch were accepted.
        """
        call = _Call()
        queued: list[_Item] = []
        try:
            try:
                for index, xadd in enumerate(packed):
                    if call.failed_at is not None:
                        break
                    item = self._item(xadd, call, index)
                    queued.append(item)
                    try:
                        self._send.send_nowait(item)
                    except anyio.WouldBlock:
                        await self._wait_for_room(item)
            except _NOT_QUEUED as exc:
                queued[-1].not_queued(exc)
            for item in queued:
                await item.wait()
        except BaseException:
            for item in queued:
                item.abandoned = True
            raise
        if call.failed_at is not None:
            self._batch_failed(queued, envelopes, call.failed_at)

    def _batch_failed(self, items: list[_Item], envelopes: Sequence[Envelope], index: int) -> None:
        """Raise the error of ``items[index]``, the batch's first item not accepted.

        Raises:
            TransportError: Always.
        """
        accepted = sum(item.entry is not None for item in items)
        try:
            self._outcome(items[index], envelopes[index])
        except TransportError as exc:
            exc.add_note(
                f"Redis accepted at least {accepted} of the {len(envelopes)} events this "
                "batch published to it; the one named above is the first it did not "
                "accept, and those after it not yet sent were not sent"
            )
            raise

    @staticmethod
    def _head(key: str, maxlen: int | None) -> bytes:
        head: Command = (b"XADD", key)
        if maxlen is not None:
            head += (b"MAXLEN", b"~", maxlen)
        return pack_head((*head, b"*", b"e"), 3)

    def pack(self, payload: bytes, envelope: Envelope) -> Packed:
        """The stream of `envelope` and its XADD, in the wire format, of `payload`.

        To the stream of the envelope's partition (module docs).
        """
        type_ = envelope.type.encode()
        partition = 0
        if self._partitions > 1:
            key = envelope.headers.get(PARTITION_KEY)
            if key is None:
                self._turn = partition = (self._turn + 1) % self._partitions
            else:
                partition = partition_of(key, self._partitions)
        head = self._xadd_heads[partition]
        return self._streams[partition], head + self._xadd_tail % (
            len(payload),
            payload,
            len(type_),
            type_,
        )

    def _item(self, packed: Packed, call: _Call | None, index: int) -> _Item:
        """The queue item of the XADD `packed` to its stream, with its deadline from now."""
        deadline = self._clock() + self._settings.publish_timeout
        stream, xadd = packed
        return _Item(xadd, stream, deadline, call, index)

    async def _wait_for_room(self, item: _Item) -> None:
        """Queue `item` once the queue has room, waiting no longer than its deadline.

        Raises:
            TimeoutError: No room in time.
            anyio.ClosedResourceError: The transport is closing.
        """
        with anyio.fail_after(item.deadline - self._clock()):
            await self._send.send(item)

    def _alone(self) -> bool:
        """Whether nobody else publishes now: the caller may send its entry itself."""
        return (
            self._running
            and not self._crowd
            and not self._held
            and not self._connection_lock.locked()
            and self._receive.statistics().current_buffer_used == 0
        )

    async def _send_alone(self, item: _Item) -> bool:
        """Send `item` from the caller's own task (no hop to the publishing task).

        Returns False, with nothing answered, when it must go through the queue after
        all: the connection is busy, or Redis could not be reached (the publishing task
        retries it until the deadline).
        """
        try:
            self._connection_lock.acquire_nowait()
        except anyio.WouldBlock:
            return False
        started = self._connection.started
        try:
            (reply,) = await self._connection.send_each(
                [(item.key, item.packed)], timeout=max(item.deadline - self._clock(), 0.001)
            )
        except BaseException:
            if self._connection.started != started:  # (`_mark_written`, without its list)
                item.written = True
            raise
        finally:
            self._connection_lock.release()
        _note_sent(item, reply)
        if isinstance(reply, TRANSIENT):
            item.last_error = reply
            self._health.failed(reply)
            return False
        self._health.succeeded()
        self._answer(item, reply)
        return True

    def _mark_written(self, items: list[_Item], started: int) -> None:
        """After a cancelled send: the items may be in Redis if it started an exchange."""
        if self._connection.started != started:
            for item in items:
                item.written = True

    def _answer(self, item: _Item, reply: Any) -> None:
        if isinstance(reply, ReplyError):
            item.error = reply
        else:
            item.entry = reply
            self._counters.published += 1
        item.finish()

    def _outcome(self, item: _Item, envelope: Envelope) -> bytes:
        """The entry id of an answered `item`, or its failure as `TransportError`."""
        if item.entry is not None:
            return item.entry
        what = named(envelope)
        if item.expired:
            item.abandoned = True
            cause = item.last_error
            reason = f" (last error: {self._health.describe(cause)})" if cause else ""
            within = f"within publish_timeout={self._settings.publish_timeout}s{reason}"
            if item.written:
                msg = (
                    f"Redis at {self._where} did not confirm {what} {within}; it was sent, "
                    "so it may have been published: publishing it again may deliver it "
                    "twice, which idempotent handlers absorb"
                )
            else:
                msg = (
                    f"Redis at {self._where} did not accept {what} {within}; it was not "
                    "published: publish it again once Redis is reachable"
                )
            raise TransportError(msg) from cause
        if item.withdrawn:
            msg = f"cannot publish {what}: an earlier event of its batch was not accepted"
            raise TransportError(msg)
        if isinstance(item.error, _ClosedUnanswered):
            msg = (
                f"the Redis transport closed before Redis answered for {what}: it may have "
                "been published (publishing it again may deliver it twice, which idempotent "
                "handlers absorb)"
            )
            raise TransportError(msg) from None
        if isinstance(item.error, anyio.ClosedResourceError):
            msg = f"cannot publish {what}: the Redis transport is closed"
            raise TransportError(msg) from None
        if item.error is not None:
            msg = (
                f"Redis at {self._where} refused {what}: {self._health.describe(item.error)}; "
                "it was not published (check the ACL user's permissions and Redis memory)"
            )
            raise TransportError(msg) from item.error
        msg = f"the publishing of {what} ended without an answer"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover - answered with one of the above

    def close(self) -> None:
        """Stop taking entries; `run` returns once those queued and in flight are answered."""
        self._running = False  # no caller sends its own entry from now on
        self._send.close()

    def discard(self) -> None:
        """Release the queue once `run` returned (or never ran): what is left fails."""
        self._send.close()
        for item in self._held:
            item.closed()
        self._held = []
        while True:
            try:
                item = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            item.closed()
        self._receive.close()

    async def run(self) -> None:
        """Send queued entries in pipelines until `close` (the one publishing task)."""
        self._running = True
        try:
            async for first in self._receive:
                self._held = [first]
                if self._crowd:
                    await anyio.lowlevel.checkpoint()
                try:
                    self._connection_lock.acquire_nowait()
                except anyio.WouldBlock:  # a lone caller is sending its own entry
                    await self._connection_lock.acquire()
                try:
                    items = self._more([first])
                    self._crowd = len(items) > 1
                    await self._send_batch(items)
                finally:
                    self._connection_lock.release()
                self._held = []
            # Closed (`close`, which also ended the lone path): a caller sending its own
            # entry finishes before the connection closes, within its deadline.
            with anyio.move_on_after(self._settings.publish_timeout):
                await self._connection_lock.acquire()
                self._connection_lock.release()
        finally:
            self._running = False
            await self._connection.close()

    def _more(self, items: list[_Item]) -> list[_Item]:
        """The live ones of `items`, and whatever else is queued, up to `batch` in all.

        Items whose deadline passed are answered (expired) and left out.
        """
        now = anyio.current_time()
        live: list[_Item] = []

        def keep(item: _Item) -> None:
            if item.abandoned or item.answered:
                return
            if item.call is not None and item.call.withdraws(item.index):
                item.withdraw()
                return
            if item.deadline <= now:
                item.expire()
            else:
                live.append(item)

        for item in items:
            keep(item)
        while len(live) < self._settings.batch:
            try:
                keep(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        self._held = live
        return live

    async def _send_batch(self, items: list[_Item]) -> None:
        # A short backoff: callers are waiting, and their own deadlines bound the retries.
        backoff = Retry(self._health, _BACKOFF)
        while items:
            # Nothing waits past the earliest deadline held (items[0]'s: FIFO, one timeout).
            wait = items[0].deadline - anyio.current_time()
            started = self._connection.started
            try:
                replies = await self._connection.send_each(
                    [(item.key, item.packed) for item in items], timeout=max(wait, 0.001)
                )
            except BaseException:  # cancelled: `discard` answers the callers
                self._mark_written(items, started)
                raise
            retry: list[_Item] = []
            for item, reply in zip(items, replies, strict=True):
                _note_sent(item, reply)
                if isinstance(reply, TRANSIENT):  # e.g. READONLY during a failover
                    item.last_error = reply
                    retry.append(item)
                else:
                    self._answer(item, reply)
            if not retry:
                self._health.succeeded()
                return
            self._health.failed(retry[0].last_error or TimeoutError())
            with anyio.move_on_after(retry[0].deadline - anyio.current_time()):
                await backoff.sleep()
            items = self._more(retry)


def _note_sent(item: _Item, reply: Any) -> None:
    """A connection lost with the item's XADD sent: Redis may have it (`_Item.written`)."""
    if isinstance(reply, ConnectionLost) and not isinstance(reply, Unreachable):
        item.written = True
