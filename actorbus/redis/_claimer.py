"""Claiming for one consumer group: pending entries of silent consumers, and our own.

- Every ``claim_after / 2`` seconds the **claim loop** refreshes the entries still being
  handled here (so a live but slow consumer keeps them) and claims the entries left
  idle for ``claim_after`` by silent consumers (XPENDING + XCLAIM), dead-lettering those
  already delivered ``max_deliveries`` times.
- A durable instance, resuming after a restart, first **takes back** its own pending
  entries (`Claimer.take_back_own`), which it had read but not acknowledged.

In a partitioned group only the partition's owner reads and claims, and every claim is a
script that checks its lease (`actorbus.redis._scripts.claim`): a member that lost the
lease cannot take entries from the new owner. A new owner first **takes over** every
entry pending in the partition (`Claimer.take_over`: the old owner's, in id order, however
recently delivered), before reading new ones; then the claim loop only takes back what
was left pending here (an actor that stopped first), without refreshing anything: nobody
else claims from a live owner.

One claim at a time (the take-back, the claim loop): each sees what the other holds, so
no entry is claimed and delivered twice here. Claimed entries go to the acker like read
ones (`Intake.hand_over`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import anyio

from actorbus._exceptions import ActorbusError
from actorbus._message import Tracker
from actorbus.redis._acker import Entry
from actorbus.redis._errors import TRANSIENT, NoGroup, ReplyError
from actorbus.redis._health import logger
from actorbus.redis._protocol import fields_of
from actorbus.redis._scripts import FENCED, claim

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

    from actorbus.redis._context import Context
    from actorbus.redis._health import Retry
    from actorbus.redis._intake import Intake
    from actorbus.redis._lease import Lease
    from actorbus.redis._protocol import Command

__all__ = ["Claimer"]

_MAX_FENCED_CLAIM: Final = 1000
"""Entries a fenced claim takes at most (a script's arguments are unpacked in Lua)."""


class Claimer:
    """Claims the pending entries of consumer group `group` for this instance.

    Args:
        context: The transport's shared state.
        group: The Redis consumer group.
        intake: Where claimed entries go.
        stream: The stream (default: the application's one events stream).
        lease: The partition's lease, for a partitioned group: claims check it.
    """

    def __init__(
        self,
        context: Context,
        group: str,
        intake: Intake,
        *,
        stream: str | None = None,
        lease: Lease | None = None,
    ) -> None:
        self._context = context
        self._client = context.client
        self._settings = context.settings
        self._key = stream or context.keys.events
        self._group = group
        self._consumer = context.instance
        self._intake = intake
        self._lease = lease
        self._page = context.settings.batch
        if lease is not None:
            self._page = min(self._page, _MAX_FENCED_CLAIM)
        self.lock = anyio.Lock(fast_acquire=True)
        """Held while claimed or read entries are delivered and handed over, so that the
        acker gets them in the order the actors do."""
        self._taken_over = anyio.Event()  # the claim loop of a partition waits for it
        if lease is None:
            self._taken_over.set()
        self._stopped = anyio.Event()

    def stop(self) -> None:
        """Stop claiming once the claim under way (if any) is processed (see `run`)."""
        self._stopped.set()

    async def run(self, send: MemoryObjectSendStream[list[Entry]]) -> None:
        """Refresh and claim every ``claim_after / 2`` seconds until cancelled or `stop`."""
        health = self._context.health
        with send:
            # The take-over first: claiming what became idle meanwhile would hand over
            # entries out of their order.
            await self._taken_over.wait()
            while not self._stopped.is_set():
                try:
                    if self._lease is None:
                        await self._refresh()
                    await self._claim(send, min_idle=self._settings.claim_after_ms)
                except NoGroup:
                    pass  # the reader recreates the group
                except TRANSIENT as exc:
                    health.failed(exc)
                except ReplyError as exc:
                    refused(self._context, "claiming", self._group, exc, self._key)
                else:
                    health.succeeded()
                with anyio.move_on_after(self._settings.claim_after / 2):
                    await self._stopped.wait()

    async def take_back_own(self, send: MemoryObjectSendStream[list[Entry]], retry: Retry) -> None:
        """Process again what this consumer had read but not acknowledged before a restart."""
        start = b"-"
        while True:
            try:
                last = await self._claim(send, min_idle=0, start=start, own=True)
            except NoGroup:
                return  # no group yet: nothing to take back
            except TRANSIENT as exc:
                self._context.health.failed(exc)
                await retry.sleep()
                continue
            except ReplyError as exc:
                refused(self._context, "resuming", self._group, exc, self._key)
                return
            if last is None:
                return
            start = b"(" + last

    async def take_over(self, send: MemoryObjectSendStream[list[Entry]], retry: Retry) -> None:
        """Take every entry pending in the partition, in id order, and process it.

        The partition was just acquired: what is pending was read by its earlier owners
        and not acknowledged. Returns once none is left, or the lease was lost.
        """
        try:
            await self._take_over(send, retry)
        finally:
            self._taken_over.set()

    async def _take_over(self, send: MemoryObjectSendStream[list[Entry]], retry: Retry) -> None:
        start = b"-"
        lease = self._lease
        while lease is not None and lease.valid():
            try:
                last = await self._claim(send, min_idle=0, start=start)
            except NoGroup:
                return  # (the reader recreates the group: nothing was pending in it)
            except TRANSIENT as exc:
                self._context.health.failed(exc)
                await retry.sleep()
                continue
            except ReplyError as exc:
                refused(self._context, "taking over", self._group, exc, self._key)
                await retry.sleep()
                continue
            if last is None:
                return
            start = b"(" + last

    async def _refresh(self) -> None:
        """Reset the idle time of entries still being handled here, so nobody claims them.

        Runs every ``claim_after / 2`` and refreshes entries older than a quarter of it,
        so a live entry is never idle for more than about three quarters of
        ``claim_after``. The XCLAIM's own minimum idle time keeps an entry another
        instance took over in the meantime from being taken back.
        """
        quarter = self._settings.claim_after / 4
        now = anyio.current_time()
        inflight = self._intake.inflight
        stale = [entry for entry, since in inflight.items() if now - since >= quarter]
        min_idle = round(quarter * 500)  # ms: half the quarter, below what it must have
        batch = self._settings.batch
        for start in range(0, len(stale), batch):
            chunk = stale[start : start + batch]
            await self._client.call(
                b"XCLAIM", self._key, self._group, self._consumer, min_idle, *chunk, b"JUSTID"
            )
            for entry in chunk:
                if entry in inflight:
                    inflight[entry] = now

    async def _claim(
        self,
        send: MemoryObjectSendStream[list[Entry]],
        *,
        min_idle: int,
        start: bytes = b"-",
        own: bool = False,
    ) -> bytes | None:
        """Claim up to `batch` pending entries idle for `min_idle` ms and process them.

        Returns the last pending id looked at when a full page was found (more may
        follow), else None.
        """
        async with self.lock:
            return await self._claim_now(send, min_idle=min_idle, start=start, own=own)

    async def _claim_now(
        self,
        send: MemoryObjectSendStream[list[Entry]],
        *,
        min_idle: int,
        start: bytes,
        own: bool,
    ) -> bytes | None:
        # XPENDING's extended form: [entry id, consumer, idle ms, deliveries] per entry.
        command: tuple[bytes | str | int, ...] = (b"XPENDING", self._key, self._group)
        if min_idle:
            command += (b"IDLE", min_idle)
        command += (start, b"+", self._page)
        if own:
            command += (self._consumer,)
        pending: list[list[Any]] = await self._client.call(*command)
        if not pending:
            return None
        inflight = self._intake.inflight
        found = {info[0]: info for info in pending if info[0] not in inflight}
        if found:
            claimed: list[Any] | int = await self._client.call(*self._xclaim(min_idle, found))
            if claimed == FENCED:
                assert self._lease is not None  # noqa: S101 - only a lease's claim is fenced
                self._lease.revoke()
                return None
            assert not isinstance(claimed, int)  # noqa: S101 - (for the type checker)
            # Each claimed entry: [id, [field, value, ...]]. An entry deleted meanwhile
            # is left out (Redis 7) or has no fields (6.2).
            entries = [entry for entry in claimed if entry is not None]
            self._intake.hold(entry[0] for entry in entries)
            items: list[Entry] = []
            try:
                for entry_id, values in entries:
                    info = found[entry_id]
                    if info[1] != self._consumer.encode():
                        self._context.counters.claimed += 1
                    items.append(await self._process(entry_id, values or [], int(info[3])))
            except BaseException:
                await self._intake.give_unwinding(send, items)
                raise
            await self._intake.hand_over(send, items)
        last: bytes = pending[-1][0]
        return last if len(pending) >= self._page else None

    def _xclaim(self, min_idle: int, entry_ids: dict[bytes, Any]) -> Command:
        """XCLAIM of `entry_ids`, or for a partitioned group, the script that checks the lease."""
        lease = self._lease
        if lease is None:
            return (b"XCLAIM", self._key, self._group, self._consumer, min_idle, *entry_ids)
        return claim(
            lease.key, lease.value, self._key, self._group, self._consumer, min_idle, [*entry_ids]
        )

    async def _process(self, entry_id: bytes, values: list[bytes], delivered: int) -> Entry:
        limit = self._settings.max_deliveries
        fields = fields_of(values)
        if delivered < limit:
            if self._intake.is_unwanted(fields):
                return Entry(entry_id, fields[b"e"], None, self._intake.unwanted, delivered + 1)
            return await self._intake.entry(entry_id, fields, delivered + 1)
        error = ActorbusError(
            f"entry {entry_id.decode()} was delivered {delivered} times without being "
            f"acknowledged (max_deliveries={limit})"
        )
        logger.warning("%s in group %r; dead-lettering it", error, self._group)
        delivery = Tracker(0)
        delivery.dead(error)
        return Entry(entry_id, fields.get(b"e", b""), None, delivery, delivered)


def refused(
    context: Context, what: str, group: str, error: ReplyError, stream: str | None = None
) -> None:
    """Log that Redis refused a command of `group`'s consumer (an ACL, most likely)."""
    logger.error(
        "%s group %r of %s failed: %s (check the ACL user's permissions); retrying",
        what,
        group,
        stream or context.keys.events,
        context.health.describe(error),
    )
