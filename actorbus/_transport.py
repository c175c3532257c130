"""`Transport`: what carries APP-scope envelopes between the instances of an application.

The system talks to its transport through this small interface, and the transport talks
back through `TransportHost` (implemented by `ActorSystem`). Implementations: the
in-memory `actorbus.testing.MemoryTransport` for tests, and the Redis Streams bridge
`actorbus.redis.RedisTransport` (the `actorbus[redis]` extra).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import anyio.abc

    from ._envelope import Envelope
    from ._message import Delivery

__all__ = ["GroupStatus", "PartitionOwner", "StreamStatus", "Transport", "TransportHost"]


@attrs.frozen
class GroupStatus:
    """One consumer group of a stream, as the transport sees it now.

    Attributes:
        name: The group's name in the transport (``b:<instance>``, ``g:<group>`` on Redis).
        consumers: Consumers that joined it.
        pending: Entries delivered to it and not acknowledged yet.
        lag: Entries of the stream not delivered to it yet (None when unknown).
    """

    name: str
    consumers: int
    pending: int
    lag: int | None


@attrs.frozen
class StreamStatus:
    """One stream of the application (its events, its dead letters) and its groups."""

    name: str
    length: int
    groups: tuple[GroupStatus, ...] = ()


@attrs.frozen
class PartitionOwner:
    """Who owns one partition of one group now, as the transport sees it.

    Attributes:
        instance: The owning instance's name; None while nobody owns the partition.
        token: The owner's fencing token (its tenure's epoch; greater than every earlier
            owner's); None while nobody owns it, or when the transport has none.
    """

    instance: str | None
    token: int | None = None


class TransportHost(Protocol):
    """The side of an `ActorSystem` a transport sees."""

    @property
    def name(self) -> str:
        """The application name: systems with the same name are instances of one app."""
        ...

    def groups(self) -> set[str]:
        """The competing-consumer groups local subscribers belong to now."""
        ...

    def broadcasts(self) -> bool:
        """Whether some local subscriber is in no group: `deliver(..., None)` may reach it.

        While False, a transport need not receive the broadcast at all.
        """
        ...

    async def deliver(
        self, envelope: Envelope, group: str | None, fence: Callable[[], bool] | None = None
    ) -> Delivery:
        """Put a received envelope in the local subscribers' mailboxes.

        `group` None delivers to the broadcast subscribers; a group name to one local
        member of that group. `fence`, if given, becomes the delivery's `Tracker.fence`
        before any actor can see the message. Waits while mailboxes are full
        (backpressure) and returns once the envelope is in every one, so the caller can
        read on while handlers run:
        ``await delivery.wait()``, then ``delivery.outcome`` says whether to acknowledge
        (HANDLED, DEAD_LETTERED) or leave it for redelivery (NOT_HANDLED), and
        ``delivery.result()`` gives the first handler's reply. Never raises for bad
        data: undecodable envelopes are dead-lettered (`Outcome.DEAD_LETTERED`).
        """
        ...

    def subscribed(self, type_: str, group: str | None) -> bool:
        """Whether a received event of `type_` could reach a local subscriber of `group`.

        `group` None asks about the broadcast subscribers. False means `deliver` would
        hand it to nobody and report it handled: the transport may acknowledge it
        without decoding it.
        """
        ...

    async def answer(self, envelope: Envelope, timeout: float) -> Any:
        """Handle a request locally with one handler and return its reply (or raise)."""
        ...

    async def release(self, group: str, partitions: frozenset[int]) -> None:
        """This instance no longer owns `partitions` of `group`: stop what keeps their state.

        A partitioned transport calls it before it hands partitions over (a rebalance, a
        graceful stop) and once it lost them (a lease it could not renew). The system
        stops whatever holds state for keys of those partitions — the entities of an
        entity kind's group — and returns once they stopped; deliveries of those
        partitions still waiting are left unhandled (their `Tracker.fence` says so).
        """
        ...


class Transport(abc.ABC):
    """Carries APP-scope envelopes to every instance of the application.

    Life cycle, driven by the system: `open` (connect, with any long-lived tasks — such
    as the one owning a client connection — started in the system's task group; a
    failure aborts start-up) →
    `add_group` for each group as subscribers appear → `start` (consume, once the
    start-up actors run) → `publish` / `request` while running → `stop_intake` (at
    shutdown, before mailboxes drain) → `close`.
    """

    @abc.abstractmethod
    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:
        """Connect and prepare the instance's own subscription."""

    @abc.abstractmethod
    async def add_group(self, group: str) -> None:
        """Make sure events published from now on reach `group` (before `spawn` returns)."""

    @abc.abstractmethod
    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start consuming, with the consumer tasks in `task_group`."""

    @abc.abstractmethod
    async def publish(self, envelope: Envelope) -> None:
        """Send `envelope`; return only once the transport has accepted it."""

    async def publish_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Send `envelopes` in order; return only once the transport accepted all of them.

        By default, `publish` for each in turn, stopping at the first error (the ones
        before it were sent). A transport that can check them all first (encoding, size)
        or send several at once overrides it, as `RedisTransport` and `MemoryTransport` do.
        """
        for envelope in envelopes:
            await self.publish(envelope)

    @abc.abstractmethod
    async def request(self, envelope: Envelope, timeout: float) -> Any:
        """Send a request and return the one reply; `AskTimeout` when none comes."""

    @abc.abstractmethod
    async def stop_intake(self) -> None:
        """Stop taking new messages; unfinished ones stay for redelivery."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Called once, after the actors stopped."""

    partitions: int = 1
    """How many partitions the application's APP events are split into (see `partition_of`
    in `actorbus._keys`); 1 for a transport without partitions."""

    def owned(self, group: str) -> Mapping[int, int]:
        """The partitions of `group` that this instance owns now, each with its fencing token.

        A partition is owned by one instance at a time, and every new tenure (an
        acquisition after another owner, or after a loss) has a greater fencing token than
        the tenures before it. An entity kind's shard builds entities only for keys of
        these partitions (see `partition_of` in `actorbus._keys`), and records each
        activation with the token. By default every partition, with token 0: a transport
        without ownership gives each group's events to any member.
        """
        del group
        return dict.fromkeys(range(self.partitions), 0)

    async def load_state(self, namespace: str, key: str) -> bytes | None:
        """The durable state last committed for `key` in `namespace` (an entity kind).

        None when there is none. A state is committed with the acknowledgement of the
        message that produced it (`Tracker.commit`), only by the owner of the key's
        partition. By default a transport keeps no state, and this raises.

        Raises:
            TypeError: This transport keeps no durable state.
        """
        del key
        msg = (
            f"{type(self).__qualname__} keeps no durable state (for {namespace!r}): "
            "use a transport that does (RedisTransport, MemoryTransport), or no transport"
        )
        raise TypeError(msg)

    async def streams(self) -> tuple[StreamStatus, ...]:
        """The application's streams with their length, and their groups' pending and lag.

        For the dashboard; by default a transport has no streams to show (``()``).
        """
        return ()

    async def partition_owners(self) -> dict[str, dict[int, PartitionOwner]] | None:
        """Who owns each partition of each group: group → partition → owner, for the dashboard.

        The groups are named as the application names them (``billing``,
        ``entity:Account``), and every partition of each is there. None (the default)
        means the transport has no partitions to show.
        """
        return None

    async def report(self, status: bytes, ttl: float) -> bool:
        """Publish this instance's status for ``actorbus dashboard``, kept for `ttl` seconds.

        Called about once a second while the instance runs; a report not renewed within
        `ttl` disappears, so an instance that is gone shows nowhere. By default a
        transport has nowhere to put it: False (not reported).
        """
        del status, ttl
        return False

    def set_instance(self, name: str) -> None:
        """Run under the durable instance name `name` (before the system starts).

        ``actorbus run --workers N`` calls it to give each worker's transport its own
        stable name, ``<instance>-<i>``. By default a transport has no instance names, and
        this raises.

        Raises:
            TypeError: This transport cannot be given an instance name.
            ValueError: `name` is not a valid instance name for this transport.
        """
        msg = (
            f"{type(self).__qualname__} cannot be given an instance name ({name!r}), so "
            "`actorbus run --workers` cannot run it: implement Transport.set_instance"
        )
        raise TypeError(msg)
