"""`MemoryTransport`: APP-scope semantics for several systems in one process, for tests.

Systems that share one `MemoryBroker` and one name are instances of one application:
APP events reach every running instance (broadcast), and each event reaches one member
of each competing-consumer group. Envelopes travel as CloudEvents JSON, exactly as they
do through Redis, so what works here round-trips through the wire format.

Differences from the Redis bridge: nothing is durable (an instance that is not running
misses events, and a stopped instance's unhandled events are lost rather than claimed),
there is no redelivery or dead-letter stream (dead-lettered events are kept in
`MemoryBroker.dead_letters`), and publishing never fails.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from actorbus._exceptions import AskTimeout, DecodeError
from actorbus._message import Outcome
from actorbus._transport import Transport, TransportHost
from actorbus._wire import decode, encode

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from actorbus._envelope import Envelope

__all__ = ["MemoryBroker", "MemoryTransport"]


class MemoryBroker:
    """The shared in-process "server" that `MemoryTransport` instances attach to."""

    def __init__(self) -> None:
        self._instances: dict[str, list[MemoryTransport]] = {}
        self._turns: dict[tuple[str, str], itertools.count[int]] = {}
        self.dead_letters: list[tuple[bytes, BaseException | None]] = []
        self.published: int = 0

    def transport(self, *, instance: str | None = None) -> MemoryTransport:
        """A new transport attached to this broker."""
        return MemoryTransport(self, instance=instance)

    def members(self, app: str) -> list[MemoryTransport]:
        """The transports attached as instances of application `app` (a live list)."""
        return self._instances.setdefault(app, [])

    def send(self, app: str, raw: bytes) -> None:
        """Hand one encoded event to every running instance of `app` and each group."""
        self.published += 1
        members = [m for m in self.members(app) if m.consuming]
        for member in members:
            member.inbox(raw, None)
        groups = {g for m in members for g in m.groups}
        for group in sorted(groups):
            candidates = [m for m in members if group in m.groups]
            turn = next(self._turns.setdefault((app, group), itertools.count()))
            candidates[turn % len(candidates)].inbox(raw, group)

    async def drain(self) -> None:
        """Wait until every attached instance has handled everything sent to it."""
        while True:
            busy = [m for ms in self._instances.values() for m in ms if m.pending]
            if not busy:
                return
            for member in busy:
                await member.idle()


class MemoryTransport(Transport):
    """An in-memory `Transport` (see the module docs for how it differs from Redis)."""

    def __init__(self, broker: MemoryBroker | None = None, *, instance: str | None = None) -> None:
        self.broker: MemoryBroker = broker or MemoryBroker()
        self.instance = instance
        self.groups: set[str] = set()
        self.consuming: bool = False
        self.pending: int = 0
        self._started = False
        self._host: TransportHost | None = None
        self._idle: anyio.Event | None = None
        send, receive = anyio.create_memory_object_stream[tuple[bytes, str | None]](math.inf)
        self._send: MemoryObjectSendStream[tuple[bytes, str | None]] = send
        self._receive: MemoryObjectReceiveStream[tuple[bytes, str | None]] = receive

    @property
    def host(self) -> TransportHost | None:
        """The system this transport is open for (None before `open`)."""
        return self._host

    def set_instance(self, name: str) -> None:
        """Name this instance (the name is informational: nothing here is durable)."""
        self.instance = name

    def _app(self) -> str:
        if self._host is None:
            msg = "MemoryTransport is not open: give it to ActorSystem(transport=...)"
            raise RuntimeError(msg)
        return self._host.name

    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:  # noqa: ARG002
        """Attach to the broker as an instance of `host`'s application (no tasks needed)."""
        self._host = host
        self.broker.members(host.name).append(self)

    async def add_group(self, group: str) -> None:
        """Join `group`: from now on this instance competes for the group's events."""
        self.groups.add(group)

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start the consumer task."""
        self.consuming = self._started = True
        task_group.start_soon(self._consume)

    def inbox(self, raw: bytes, group: str | None) -> None:
        """Queue one message for this instance (called by the broker)."""
        self.pending += 1
        self._send.send_nowait((raw, group))

    async def idle(self) -> None:
        """Wait until this instance handled everything queued for it."""
        if self.pending:
            self._idle = self._idle or anyio.Event()
            await self._idle.wait()

    async def _consume(self) -> None:
        assert self._host is not None  # noqa: S101 - opened
        with self._receive:
            await self._consume_from(self._host)

    async def _consume_from(self, host: TransportHost) -> None:
        async for raw, group in self._receive:
            try:
                envelope = decode(raw)
            except DecodeError as exc:
                self.broker.dead_letters.append((raw, exc))
            else:
                delivery = await host.deliver(envelope, group)
                await delivery.wait()
                if delivery.outcome is Outcome.DEAD_LETTERED:
                    self.broker.dead_letters.append((raw, None))
            self.pending -= 1
            if not self.pending and self._idle is not None:
                self._idle.set()
                self._idle = None

    async def publish(self, envelope: Envelope) -> None:
        """Send to every running instance of the application (and one member per group)."""
        self.broker.send(self._app(), encode(envelope))
        await anyio.lowlevel.checkpoint()

    async def publish_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Encode every envelope first (an error sends none), then send them in order."""
        app = self._app()
        for raw in [encode(envelope) for envelope in envelopes]:
            self.broker.send(app, raw)
        await anyio.lowlevel.checkpoint()

    async def request(self, envelope: Envelope, timeout: float) -> Any:
        """Ask the running instances in turn; the first one with a handler answers."""
        wire = decode(encode(envelope))
        with anyio.move_on_after(timeout):
            for member in list(self.broker.members(self._app())):
                if member.host is None or not member.consuming:
                    continue
                try:
                    return await member.host.answer(wire, timeout)
                except AskTimeout:
                    continue
        msg = f"no instance of {self._app()!r} answered {envelope.type!r} within {timeout}s"
        raise AskTimeout(msg)

    async def stop_intake(self) -> None:
        """Stop receiving: this instance leaves the broadcast and its groups."""
        self.consuming = False

    async def close(self) -> None:
        """Detach from the broker."""
        self._send.close()
        if not self._started:
            self._receive.close()
        if self._host is not None:
            members = self.broker.members(self._host.name)
            if self in members:
                members.remove(self)
