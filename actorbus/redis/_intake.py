"""From a stream entry read (or claimed) by a consumer to its acker.

`Intake` decides for each entry of one consumer group what happens to it here:

- **unwanted**: its ``t`` field names a type that no local subscriber of the group
  wants, and its ``e`` field names the same type: it is acknowledged without being
  decoded (see `names_type`);
- **delivered**: decoded and given to the local mailboxes by the type inside ``e`` —
  ``t`` is only a hint to skip decoding. An entry whose ``t`` disagrees with the type in
  ``e`` is delivered by the type in ``e`` (a warning says so, once per pair of types);
- **dead-lettered**: it cannot be decoded (no ``e``, not JSON, too large, …), or, read
  for a partitioned group, its key belongs to another partition (an outside producer
  put it in the wrong stream: its owner there could not keep its key's order, nor save
  its state with its acknowledgement).

Entries of a partitioned group are delivered with the partition's fence (`Lease.valid`)
as their `Tracker.fence`: once the lease is lost, what still waits in a mailbox is left
unhandled, for the partition's next owner.

It then hands the entries to the acker (`hand_over`), which acknowledges each once its
handlers finished.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel

from actorbus._exceptions import ActorbusError, DecodeError
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus._message import Tracker
from actorbus._wire import decode
from actorbus.redis._acker import Entry
from actorbus.redis._health import logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from anyio.streams.memory import MemoryObjectSendStream

    from actorbus._envelope import Envelope
    from actorbus._transport import TransportHost
    from actorbus.redis._acker import Acker
    from actorbus.redis._context import Context
    from actorbus.redis._lease import Lease

__all__ = ["Intake", "names_type"]

_HAND_OVER_TIMEOUT: Final = 5.0
_ROUNDS: Final = 2
"""Scheduling rounds a hand-over lets pass, at most, for the actors to handle the entries."""
_TYPE_MEMBER: Final = b'"type"'
_TYPE_VALUE: Final = re.compile(rb'[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')
_MISMATCHES_TOLD: Final = 100
"""Pairs of disagreeing types a consumer warns about (then it stops telling new ones)."""


def names_type(raw: bytes, type_: bytes) -> bool:
    """Whether the CloudEvents JSON `raw` has the type `type_`, seen without decoding it.

    True only in the plain case: `raw` holds ``"type"`` once, at the top level (no
    bracket before it but the object's own), followed by ``:`` and `type_` as a string
    without escapes, as actorbus and JSON libraries write it. Anything else — a member
    written after a nested object, escapes, a data field or value ``"type"`` — is False:
    the entry is then decoded, and the type inside decides. (Member names must be
    unique, as RFC 8259 says they should: with two ``type`` members, one escaped, the
    look and the decoding could disagree.)
    """
    position = raw.find(_TYPE_MEMBER)
    if position < 0 or raw.find(_TYPE_MEMBER, position + len(_TYPE_MEMBER)) >= 0:
        return False
    if raw.count(b"{", 0, position) != 1 or raw.find(b"[", 0, position) >= 0:
        return False
    match = _TYPE_VALUE.match(raw, position + len(_TYPE_MEMBER))
    return match is not None and match.group(1) == type_


class Intake:
    """Takes in the entries of one consumer group (module docs).

    Args:
        context: The transport's shared state.
        host: The system receiving the events.
        group: The Redis consumer group.
        local_group: None for the broadcast group, else the local group name.
        stream: The stream read (default: the application's one events stream).
        lease: The lease of the partition, for a partitioned group.
    """

    def __init__(
        self,
        context: Context,
        host: TransportHost,
        group: str,
        local_group: str | None,
        *,
        stream: str | None = None,
        lease: Lease | None = None,
    ) -> None:
        self._context = context
        self._host = host
        self._group = group
        self._local_group = local_group
        self._key = stream or context.keys.events
        self._lease = lease
        self._fence = lease.valid if lease is not None else None
        self._max_bytes = context.settings.max_message_bytes
        self.inflight: dict[bytes, float] = {}
        """The entries being handled here, and when each was last refreshed (claiming)."""
        self.unwanted = Tracker(0)
        """The outcome of entries no local subscriber wants (handled at once)."""
        self.acker: Acker | None = None  # while its consumer runs
        self._mismatches: set[tuple[bytes, str]] = set()

    def hold(self, entry_ids: Iterable[bytes]) -> None:
        """Note entries as being handled here (before anything awaits: nobody claims them)."""
        self.inflight.update(dict.fromkeys(entry_ids, anyio.current_time()))

    def is_unwanted(self, fields: dict[bytes, bytes]) -> bool:
        """Whether no local subscriber wants the entry, known without decoding it."""
        type_ = fields.get(b"t")
        raw = fields.get(b"e")
        if type_ is None or raw is None:
            return False  # no hint: decode it to know
        if self._host.subscribed(type_.decode(errors="replace"), self._local_group):
            return False
        return names_type(raw, type_)

    async def entry(self, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Entry:
        """Hand one entry to the local mailboxes (or mark it undecodable) for the acker."""
        raw = fields.get(b"e")
        try:
            envelope = _decode(raw, fields, self._max_bytes)
        except DecodeError as exc:
            logger.warning(
                "cannot decode stream entry %s of %s for group %r: %s; dead-lettering it",
                entry_id.decode(),
                self._key,
                self._group,
                exc,
            )
            if raw is None:
                shown = {
                    key.decode(errors="replace"): value.decode(errors="replace")
                    for key, value in fields.items()
                }
                raw = json.dumps(shown).encode()
            delivery = Tracker(0)
            delivery.dead(exc)
            return Entry(entry_id, raw, None, delivery, deliveries)
        hint = fields.get(b"t")
        if hint is not None and hint != envelope.type.encode():
            self._mismatch(entry_id, hint, envelope.type)
        if self._lease is not None:
            misplaced = self._misplaced(entry_id, envelope)
            if misplaced is not None:
                return Entry(entry_id, raw or b"", envelope, misplaced, deliveries)
        delivery = await self._host.deliver(envelope, self._local_group, self._fence)
        self._context.counters.delivered += 1
        return Entry(entry_id, raw or b"", envelope, delivery, deliveries)

    def _misplaced(self, entry_id: bytes, envelope: Envelope) -> Tracker | None:
        """A dead delivery if `envelope`'s key is not of this partition, else None."""
        assert self._lease is not None  # noqa: S101 - a partitioned group's intake
        key = envelope.headers.get(PARTITION_KEY)
        partitions = self._context.keys.partitions
        if key is None or partition_of(key, partitions) == self._lease.partition:
            return None
        error = ActorbusError(
            f"stream entry {entry_id.decode()} of {self._key} has the key {key[:100]!r}, "
            f"whose partition is {partition_of(key, partitions)} of {partitions}, not "
            f"{self._lease.partition}: its producer must add a keyed event to the stream of "
            "partition_of(key, partitions) (see the scaling guide)"
        )
        logger.warning("%s; dead-lettering it for group %r", error, self._group)
        delivery = Tracker(0)
        delivery.dead(error)
        return delivery

    def _mismatch(self, entry_id: bytes, hint: bytes, type_: str) -> None:
        pair = (hint, type_)
        if pair in self._mismatches or len(self._mismatches) >= _MISMATCHES_TOLD:
            return
        self._mismatches.add(pair)
        logger.warning(
            "stream entry %s of %s has t=%r but its event's type (in field e) is %r: "
            "delivered as %r; fix the producer, which should write the same type in both "
            "(this is said once per pair of types)",
            entry_id.decode(),
            self._key,
            hint.decode(errors="replace"),
            type_,
            type_,
        )

    async def hand_over(
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
        # the order they were woken, so one scheduling round is mostly enough; trio runs
        # each round's tasks in either order: a second round follows when the last entry
        # was not handled yet. A cancellation that arrives meanwhile is raised once the
        # entries are handed over.
        deferred: BaseException | None = None
        for _ in range(_ROUNDS):
            try:
                await anyio.lowlevel.checkpoint()
            except anyio.get_cancelled_exc_class() as exc:  # raised below, once handed over
                deferred = exc
                break
            if items[-1].delivery.pending <= 0:
                break
        await self.give(send, items)  # an error of its own wins over the cancellation
        if deferred is not None:
            raise deferred

    async def give_unwinding(
        self, send: MemoryObjectSendStream[list[Entry]], items: list[Entry]
    ) -> None:
        """Hand `items` over while an exception propagates: no yield, nothing raised instead."""
        if items:
            with anyio.CancelScope(shield=True):
                await self.give(send, items)

    async def give(self, send: MemoryObjectSendStream[list[Entry]], items: list[Entry]) -> None:
        """Settle the handled entries at once, pass the others to the acker task."""
        if self.acker is not None:
            items = self.acker.settle_finished(items)
            if not items:
                return
        # If the acker is gone, the entries stay pending and are delivered again.
        closed = (anyio.BrokenResourceError, anyio.ClosedResourceError)
        acker = self.acker
        if acker is not None:
            acker.handing(len(items))  # before the acker task can see them
        sent = False
        try:
            send.send_nowait(items)  # the usual case: room, so no wait to shield
            sent = True
        except anyio.WouldBlock:
            with anyio.move_on_after(_HAND_OVER_TIMEOUT, shield=True):
                with contextlib.suppress(*closed):
                    await send.send(items)
                    sent = True
        except closed:
            pass
        finally:
            if not sent and acker is not None:
                acker.handing(-len(items))


def _decode(raw: bytes | None, fields: dict[bytes, bytes], max_bytes: int) -> Envelope:
    if raw is None:
        msg = f"stream entry has no 'e' field (fields: {sorted(fields)!r})"
        raise DecodeError(msg)
    return decode(raw, max_bytes=max_bytes)
