"""A one-instance transport with the durable-state contract, for the entity tests.

`LoopbackTransport` plays the part a partitioned transport plays for entities: it owns
some partitions (`held`, changed with `lose` and `take`, each taking a new fencing token),
delivers every APP envelope back to this instance, through
the wire format, one delivery at a time per group, with a `Tracker.fence` that holds
while the envelope's partition is owned, and saves each delivery's `Tracker.commit`
with its "acknowledgement" only while the fence holds. Its states outlive a system
(pass one `states` dict to two transports), as Redis's would. Requests travel as
deliveries too (with ``replyto``), so the state an ask changes is saved like any other.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from actorbus import Transport
from actorbus._dispatch import REPLY_TO, TO_GROUP
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus._message import Outcome, Tracker
from actorbus._wire import decode, encode

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from actorbus import Envelope, TransportHost


class _Answer:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.delivery: Tracker | None = None


_Item = tuple["Envelope", str | None, _Answer | None]


class LoopbackTransport(Transport):
    def __init__(
        self, partitions: int = 4, states: dict[tuple[str, str], bytes] | None = None
    ) -> None:
        self.partitions = partitions
        self.states: dict[tuple[str, str], bytes] = {} if states is None else states
        self.held: set[int] = set(range(partitions))
        self.tokens: dict[int, int] = dict.fromkeys(range(partitions), 1)
        self.outcomes: list[tuple[str, Outcome]] = []
        """(event id, outcome) of each delivery, in the order they finished."""
        self.refused_commits = 0
        self.host: TransportHost | None = None
        self._started = False
        self._groups: set[str] = set()
        send, receive = anyio.create_memory_object_stream[_Item](math.inf)
        self._send: MemoryObjectSendStream[_Item] = send
        self._receive: MemoryObjectReceiveStream[_Item] = receive

    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:
        self.host = host

    async def add_group(self, group: str) -> None:
        self._groups.add(group)

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._started = True
        task_group.start_soon(self._consume)

    def partition(self, envelope: Envelope) -> int:
        key = envelope.headers.get(PARTITION_KEY)
        return 0 if key is None else partition_of(key, self.partitions)

    async def publish(self, envelope: Envelope) -> None:
        assert self.host is not None
        wire = decode(encode(envelope))
        for group in sorted(self.host.groups()):
            self._send.send_nowait((wire, group, None))
        if self.host.broadcasts():
            self._send.send_nowait((wire, None, None))
        await anyio.lowlevel.checkpoint()

    async def _consume(self) -> None:
        with self._receive:
            await self._consume_from()

    async def _consume_from(self) -> None:
        async for envelope, group, asker in self._receive:
            delivery = await self._deliver(envelope, group)
            if asker is not None:
                asker.delivery = delivery
                asker.done.set()

    async def _deliver(self, envelope: Envelope, group: str | None) -> Tracker:
        assert self.host is not None
        partition = self.partition(envelope)
        if group is not None and partition not in self.held:
            return await self._unowned(envelope)
        token = self.tokens[partition]
        delivery = await self.host.deliver(envelope, group)
        delivery.fence = lambda: partition in self.held and self.tokens[partition] == token
        await delivery.wait()
        if delivery.commit is not None:
            if delivery.fence():
                namespace, key, state = delivery.commit
                self.states[namespace, key] = state
            else:
                self.refused_commits += 1
        self.outcomes.append((envelope.id, delivery.outcome))
        return delivery

    async def _unowned(self, envelope: Envelope) -> Tracker:
        await anyio.lowlevel.checkpoint()
        self.outcomes.append((envelope.id, Outcome.NOT_HANDLED))
        return Tracker(0)

    async def request(self, envelope: Envelope, timeout: float) -> Any:
        # Through the queue, after what was published before it, as through a stream.
        asking = attrs.evolve(envelope, headers={**envelope.headers, REPLY_TO: "loopback"})
        answer = _Answer()
        self._send.send_nowait((decode(encode(asking)), envelope.headers.get(TO_GROUP), answer))
        with anyio.fail_after(timeout):
            await answer.done.wait()
        assert answer.delivery is not None
        return answer.delivery.result()

    async def load_state(self, namespace: str, key: str) -> bytes | None:
        await anyio.lowlevel.checkpoint()
        return self.states.get((namespace, key))

    def owned(self, group: str) -> dict[int, int]:
        return {partition: self.tokens[partition] for partition in sorted(self.held)}

    def lose(self, partitions: set[int]) -> None:
        self.held -= partitions

    def take(self, partitions: set[int]) -> None:
        for partition in partitions - self.held:
            self.tokens[partition] += 1
        self.held |= partitions

    async def stop_intake(self) -> None:
        pass

    async def close(self) -> None:
        self._send.close()
        if not self._started:
            self._receive.close()
