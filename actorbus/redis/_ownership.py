"""`Ownership`: this instance's part in one partitioned group — membership, leases, consumers.

Every partition of a partitioned group is owned by one live member at a time, which alone
reads it. Each member runs an `Ownership` per group; one round (`tick`) every
``renew_every`` (``lease / 3``) seconds:

1. **Announce and renew.** One pipeline: the member's heartbeat in the group's member set
   (``…:members:{group}``, a sorted set of expiry times on Redis's clock, ``lease``
   seconds ahead; the script drops the expired members and answers the live ones), and
   the renewal of each lease it owns (`actorbus.redis._scripts.renew`). A renewal extends
   the lease's fence (`Lease`); one that Redis refuses means the lease is gone.
2. **Compute the target.** `actorbus.redis._assignment.assign` over the live members:
   every member computes the same one.
3. **Hand over** what it owns and should not (a member joined): stop reading the
   partition, let what was delivered be handled and acknowledged, call
   `TransportHost.release`, then delete the lease. Nothing is delivered twice.
4. **Acquire** what it should own and nobody holds (`actorbus.redis._scripts.acquire`),
   and start a `GroupConsumer` for it, which first takes over what the partition's earlier
   owners left pending. A partition still held by its old owner (handing it over, or
   silent until its lease expires) is tried again every ``renew_every / 6`` seconds.
   With `shared_reads` (one server), the group's `SharedReader` reads every partition
   owned here at once and feeds the consumers.

A lease whose fence turns False (renewals failed for ``lease - lease_margin`` seconds,
Redis refused one, or an acknowledgement found that it holds other states than ours:
`actorbus.redis._acker`) is **lost**: its consumer stops reading at once, the deliveries
still waiting are left unhandled (`Tracker.fence`), the acknowledgements already due are
sent (Redis refuses them if the lease is gone), `TransportHost.release` is called, and
the lease is deleted if Redis still holds it for us (so the partition's next tenure
starts at once).

A graceful leave (`stop_intake`, then `leave` from the transport's `close`) withdraws the
member from the set at once — the others start asking for its partitions — and, once the
system has drained its mailboxes and the acknowledgements are sent, releases everything
together. A member whose group has no local subscriber any more leaves it the same way.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from actorbus._assignment import assign
from actorbus.redis._consumer import GroupConsumer
from actorbus.redis._errors import TRANSIENT, RedisError, ReplyError
from actorbus.redis._health import logger
from actorbus.redis._lease import Lease, clock
from actorbus.redis._scripts import acquire, members, release, renew
from actorbus.redis._shared import SharedReader

if TYPE_CHECKING:
    from collections.abc import Iterable

    from actorbus._transport import TransportHost
    from actorbus.redis._context import Context
    from actorbus.redis._protocol import Command

__all__ = ["Ownership"]

_ABSENT_POLL: Final = 0.1
"""Seconds between checks while the group has no local subscriber (nothing is owned)."""
_QUICK: Final = 6
"""A round is tried again after ``renew_every / _QUICK`` seconds while it could not finish."""


class _Owned:
    """A partition owned here: its lease and its consumer."""

    __slots__ = ("consumer", "lease", "leaving")

    def __init__(self, lease: Lease, consumer: GroupConsumer) -> None:
        self.lease = lease
        self.consumer = consumer
        self.leaving = False  # being handed over (or dropped): nothing else to do with it


class Ownership:
    """Owns this instance's share of the partitions of one group (module docs).

    Args:
        context: The transport's shared state.
        host: The system receiving the events.
        group: The Redis consumer group (``g:{group}``).
        local_group: The local group's name.
        shared_reads: Read the partitions owned here with one command (one server only:
            a cluster refuses a command over several slots).
    """

    def __init__(
        self,
        context: Context,
        host: TransportHost,
        group: str,
        local_group: str,
        *,
        shared_reads: bool = True,
    ) -> None:
        self._context = context
        self._host = host
        self.group = group
        self._local_group = local_group
        self._settings = context.settings
        self._keys = context.keys
        self._instance = context.instance
        self._owned: dict[int, _Owned] = {}
        self._members: tuple[str, ...] = ()
        self._assigned: tuple[tuple[str, ...], frozenset[int]] = ((), frozenset())
        self._joined = False  # whether our heartbeat is (as far as we know) in the member set
        self._leaving = False
        self._tasks: anyio.abc.TaskGroup | None = None
        self._reader = SharedReader(context, group) if shared_reads else None
        self._wake = anyio.Event()
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()

    def owned(self) -> dict[int, int]:
        """The partitions owned here now, each with its fencing token."""
        return {
            partition: owned.lease.token
            for partition, owned in sorted(self._owned.items())
            if owned.lease.valid()
        }

    @property
    def members(self) -> tuple[str, ...]:
        """The group's live members, as last read."""
        return self._members

    async def run(self) -> None:
        """Take part in the group until cancelled through `scope` (or `leave`)."""
        try:
            with self.scope:
                async with anyio.create_task_group() as tasks:
                    self._tasks = tasks
                    if self._reader is not None:
                        tasks.start_soon(self._reader.run)
                    while True:
                        wait = await self.tick()
                        with anyio.move_on_after(wait):
                            await self._wake.wait()
                        self._wake = anyio.Event()
        finally:
            self.finished.set()

    def stop_intake(self) -> None:
        """Stop reading every partition and withdraw from the group (see `leave`)."""
        self._leaving = True
        for owned in self._owned.values():
            owned.consumer.stop_reading()
        self._wake.set()

    async def leave(self, timeout: float) -> None:
        """Release every partition at once, and stop: a graceful leave.

        Waits up to `timeout` seconds for the consumers to acknowledge what was handled
        (the leases are renewed meanwhile), stops them, calls `TransportHost.release` for
        every partition, deletes the leases and withdraws from the member set. Entries
        still unhandled then stay pending, for the next owners.
        """
        self.stop_intake()
        everything = list(self._owned.items())
        with anyio.move_on_after(timeout):
            for _, owned in everything:
                await owned.consumer.finished.wait()
        for _, owned in everything:
            owned.leaving = True
            owned.lease.revoke()
            owned.consumer.scope.cancel()
        for _, owned in everything:
            await owned.consumer.finished.wait()
        if everything:
            await self._release_here(frozenset(partition for partition, _ in everything))
        commands = [release(owned.lease.key, owned.lease.value) for _, owned in everything]
        if self._joined or commands:
            commands.append(self._heartbeat(live=False))
        try:
            if commands:
                await self._context.client.pipeline(commands, timeout=self._settings.renew_every)
        except RedisError as exc:
            logger.warning(
                "could not release the partitions of group %r on Redis at %s (%s); they "
                "are taken over once their leases expire, within lease=%ss",
                self.group,
                self._context.where,
                self._context.health.describe(exc),
                self._settings.lease,
            )
        for partition, _ in everything:
            self._owned.pop(partition, None)
        self.scope.cancel()

    # -- one round ----------------------------------------------------------------------------

    async def tick(self) -> float:
        """One round (module docs); return the seconds until the next one."""
        settings = self._settings
        period = settings.renew_every
        quick = period / _QUICK
        self._drop_expired()
        present = not self._leaving and self._local_group in self._host.groups()
        renewing = [
            (partition, owned.lease)
            for partition, owned in self._owned.items()
            if not owned.lease.lost
        ]
        commands = [renew(lease.key, lease.value, settings.lease_ms) for _, lease in renewing]
        beating = present or self._joined
        if beating:
            commands.insert(0, self._heartbeat(live=present))
        if not commands:
            return period if self._leaving else _ABSENT_POLL
        sent = clock()
        replies = await self._send(commands)
        if replies is None:
            return min(quick, self._next_fence(period))
        if beating:
            beat = replies.pop(0)
            if isinstance(beat, ReplyError):
                self._refused("announce this member", beat)
            else:
                self._members = tuple(sorted(name.decode() for name in beat))
                self._joined = present
        complete = self._renewed(renewing, replies, sent)
        if not present:
            if not self._leaving and self._owned:
                self._hand_over(list(self._owned))  # the group has no subscriber here now
            return _ABSENT_POLL if not self._leaving else period
        target = self._target()
        self._hand_over([partition for partition in self._owned if partition not in target])
        wanted = [partition for partition in sorted(target) if partition not in self._owned]
        if wanted and not await self._acquire(wanted):
            complete = False
        return self._next_fence(period if complete else quick)

    def _renewed(self, renewing: list[tuple[int, Lease]], replies: list[Any], sent: float) -> bool:
        """Note the renewals' replies; whether every one was answered."""
        complete = True
        for (partition, lease), reply in zip(renewing, replies, strict=True):
            if isinstance(reply, ReplyError):
                complete = False  # not renewed this time: the fence keeps its time
                self._refused(f"renew the lease on partition {partition}", reply)
            elif reply == 1:
                lease.renewed(sent)
            else:
                self._drop(partition, "its lease was taken over (it had expired)")
        return complete

    def _heartbeat(self, *, live: bool) -> Command:
        key = self._keys.members(self.group)
        return members(key, self._instance, self._settings.lease_ms, live=live)

    def _target(self) -> frozenset[int]:
        """The partitions this member should own, for the members last read."""
        if self._assigned[0] != self._members:
            targets = assign(self.group, self._members, self._keys.partitions)
            self._assigned = (self._members, targets.get(self._instance, frozenset()))
        return self._assigned[1]

    def _next_fence(self, wait: float) -> float:
        """`wait`, or less: the next round comes when the first fence turns."""
        for owned in self._owned.values():
            if not owned.leaving and not owned.lease.lost:
                wait = min(wait, owned.lease.remaining() + 0.001)
        return wait

    async def _send(self, commands: list[Command]) -> list[Any] | None:
        """The pipeline's replies (an error reply in its place), or None if Redis is away."""
        context = self._context
        try:
            replies = await context.client.pipeline(commands, timeout=self._settings.renew_every)
        except TRANSIENT as exc:
            context.health.failed(exc)
            return None
        except ReplyError as exc:  # refused while connecting (credentials)
            self._refused("reach Redis", exc)
            return None
        transient = next((reply for reply in replies if isinstance(reply, TRANSIENT)), None)
        if transient is None:
            context.health.succeeded()
        else:
            context.health.failed(transient)
        return replies

    def _refused(self, what: str, error: ReplyError) -> None:
        if isinstance(error, TRANSIENT):
            return  # (an outage: logged by `Health`)
        logger.error(
            "group %r could not %s on Redis at %s: %s (check the ACL user's permissions)",
            self.group,
            what,
            self._context.where,
            self._context.health.describe(error),
        )

    # -- acquiring --------------------------------------------------------------------------

    async def _acquire(self, wanted: list[int]) -> bool:
        """Try to take the leases of `wanted`, start their consumers; whether all were taken."""
        settings = self._settings
        keys = self._keys
        nonce = secrets.token_hex(4)
        commands = [
            acquire(
                keys.lease(partition, self.group),
                keys.epoch(partition, self.group),
                keys.saves(partition, self.group),
                self._instance,
                nonce,
                settings.lease_ms,
            )
            for partition in wanted
        ]
        sent = clock()
        replies = await self._send(commands)
        if replies is None:
            return False
        every = True
        for partition, reply in zip(wanted, replies, strict=True):
            if isinstance(reply, ReplyError):
                self._refused(f"acquire the lease on partition {partition}", reply)
                every = False
            elif reply[0] != 1:
                every = False  # held: its owner hands it over, or its lease expires
            else:
                key = keys.lease(partition, self.group)
                value = reply[1].decode()
                self._start(Lease(key, partition, value, sent, settings, saves=reply[2]))
        return every

    def _start(self, lease: Lease) -> None:
        """Consume a partition just acquired."""
        assert self._tasks is not None  # noqa: S101 - running
        consumer = GroupConsumer(
            self._context,
            self._host,
            self.group,
            self._local_group,
            resume=False,
            stream=self._keys.stream(lease.partition),
            partition=lease.partition,
            lease=lease,
            fed=None if self._reader is None else self._reader.wake,
        )
        if self._reader is not None:
            self._reader.add(consumer)
        self._owned[lease.partition] = _Owned(lease, consumer)
        self._context.counters.acquired += 1
        logger.info(
            "instance %r owns partition %d of group %r (fencing token %d)",
            self._instance,
            lease.partition,
            self.group,
            lease.token,
        )
        self._tasks.start_soon(consumer.run)

    # -- letting go -------------------------------------------------------------------------

    def _hand_over(self, partitions: Iterable[int]) -> None:
        """Hand `partitions` over, each in a task of its own (the rounds go on meanwhile)."""
        assert self._tasks is not None  # noqa: S101 - running
        for partition in partitions:
            owned = self._owned[partition]
            if not owned.leaving:
                owned.leaving = True
                self._tasks.start_soon(self._handing_over, partition, owned)

    async def _handing_over(self, partition: int, owned: _Owned) -> None:
        """Finish the partition's work, release it here, then in Redis."""
        consumer = owned.consumer
        consumer.stop_reading()
        # What was delivered is handled and acknowledged (the lease is renewed meanwhile);
        # a handler that takes longer than a lease leaves the rest to the next owner.
        with anyio.move_on_after(self._settings.lease):
            await consumer.finished.wait()
        owned.lease.revoke()
        consumer.scope.cancel()
        await consumer.finished.wait()
        await self._release_here(frozenset({partition}))
        with contextlib.suppress(RedisError):  # (then it expires within `lease`)
            await self._context.client.call(
                *release(owned.lease.key, owned.lease.value), timeout=self._settings.renew_every
            )
        self._owned.pop(partition, None)
        logger.info(
            "instance %r handed partition %d of group %r over",
            self._instance,
            partition,
            self.group,
        )

    def _drop_expired(self) -> None:
        """Drop the partitions whose fence turned False: their leases may expire any time."""
        for partition, owned in list(self._owned.items()):
            if not owned.leaving and not owned.lease.valid():
                self._drop(partition, "its lease could not be renewed in time")

    def _drop(self, partition: int, reason: str) -> None:
        """The lease on `partition` is lost: stop using it now (in a task of its own)."""
        owned = self._owned[partition]
        if owned.leaving:
            return
        owned.leaving = True
        owned.lease.revoke()
        owned.consumer.stop_intake()
        self._context.counters.lost += 1
        logger.warning(
            "instance %r lost partition %d of group %r (fencing token %d): %s; stopped "
            "handling it, and its next owner handles again what was not acknowledged",
            self._instance,
            partition,
            self.group,
            owned.lease.token,
            reason,
        )
        assert self._tasks is not None  # noqa: S101 - running
        self._tasks.start_soon(self._dropped, partition, owned)

    async def _dropped(self, partition: int, owned: _Owned) -> None:
        # The acknowledgements already due go out (briefly): Redis may still hold the lease
        # for up to `lease_margin`, and if not, it refuses them.
        with anyio.move_on_after(self._settings.lease_margin):
            await owned.consumer.finished.wait()
        owned.consumer.scope.cancel()
        await owned.consumer.finished.wait()
        await self._release_here(frozenset({partition}))
        # If Redis still holds the lease for us (the fence turned first, or Redis refused
        # a save: its states differ from ours), free it so that the partition is taken
        # again at once, by its next owner or by us, reading its states from Redis.
        with contextlib.suppress(RedisError):
            await self._context.client.call(
                *release(owned.lease.key, owned.lease.value), timeout=self._settings.renew_every
            )
        self._owned.pop(partition, None)

    async def _release_here(self, partitions: frozenset[int]) -> None:
        """`TransportHost.release`: what keeps state for `partitions` stops."""
        try:
            await self._host.release(self._local_group, partitions)
        except Exception:
            logger.exception(
                "releasing partitions %s of group %r in the system failed",
                sorted(partitions),
                self.group,
            )
