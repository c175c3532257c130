"""actorbus.testing: Probe, MemoryTransport (multi-instance without Redis), fixtures."""

from typing import Any

import anyio
import pytest

from actorbus import Actor, ActorSystem, AskTimeout, Envelope, Scope, event, handle
from actorbus.testing import MemoryBroker, Probe

pytestmark = pytest.mark.anyio


@event("kit.order", scope=Scope.APP)
class Order:
    n: int


@event("kit.shipped")
class Shipped:
    n: int


@event("kit.price", scope=Scope.APP)
class PriceQuery:
    item: str


async def test_probe_expects_messages_in_order() -> None:
    async with ActorSystem() as system:
        probe = Probe(system, Order, "kit.ship*")
        await system.publish(Order(1))
        await system.publish(Shipped(1))
        assert await probe.expect(Order) == Order(1)
        assert await probe.expect("kit.shipped") == Shipped(1)
        await probe.expect_no_message(0.05)
        assert [e.type for e in probe.history] == ["kit.order", "kit.shipped"]


async def test_probe_reports_a_wrong_or_missing_message() -> None:
    async with ActorSystem() as system:
        probe = Probe(system)
        await system.publish(Shipped(2))
        with pytest.raises(AssertionError, match=r"expected Order, got 'kit.shipped'"):
            await probe.expect(Order)
        with pytest.raises(AssertionError, match="nothing arrived"):
            await probe.expect(Order, timeout=0.05)
        await system.publish(Shipped(3))
        with pytest.raises(AssertionError, match="expected no message"):
            await probe.expect_no_message(0.05)


async def test_probe_ref_receives_replies_from_actors() -> None:
    class Echo(Actor):
        @handle()
        async def on(self, order: Order) -> None:
            await self.system.actor("watcher").tell(Shipped(order.n))

    async with ActorSystem() as system:
        probe = Probe(system, Shipped, name="watcher")
        ref = await system.spawn(Echo)
        await ref.tell(Order(5))
        assert await probe.expect(lambda e: isinstance(e, Shipped) and e.n == 5) == Shipped(5)
        assert probe.ref.name == "watcher"


class Recorder(Actor):
    seen: list[tuple[str, int]]

    def __init__(self, seen: list[tuple[str, int]]) -> None:
        self.seen = seen

    @handle()
    async def on(self, order: Order) -> None:
        self.seen.append((self.system.name, order.n))


class Biller(Actor):
    group = "billing"

    def __init__(self, seen: list[tuple[str, int]], label: str) -> None:
        self.seen = seen
        self.label = label

    @handle()
    async def on(self, order: Order) -> None:
        self.seen.append((self.label, order.n))

    @handle()
    async def price(self, query: PriceQuery) -> str:
        return f"{query.item} from {self.label}"


async def test_memory_transport_broadcasts_and_shares_groups(memory_broker: MemoryBroker) -> None:
    broadcast: list[tuple[str, int]] = []
    billed: list[tuple[str, int]] = []
    async with (
        ActorSystem("shop", transport=memory_broker.transport()) as a,
        ActorSystem("shop", transport=memory_broker.transport()) as b,
        ActorSystem("other-app", transport=memory_broker.transport()) as other,
    ):
        for system, label in ((a, "a"), (b, "b")):
            await system.spawn(Recorder, broadcast, name="recorder")
            await system.spawn(Biller, billed, label)
        await other.spawn(Recorder, broadcast, name="recorder")
        for n in range(6):
            await a.publish(Order(n))
        await memory_broker.drain()
        await a.drain()
        await b.drain()
    # every instance of "shop" got every event; "other-app" got none
    assert sorted(broadcast) == sorted([("shop", n) for n in range(6)] * 2)
    # each event was billed exactly once, and both members took a share
    assert sorted(n for _, n in billed) == list(range(6))
    assert {label for label, _ in billed} == {"a", "b"}


async def test_memory_transport_request_reply(memory_broker: MemoryBroker) -> None:
    billed: list[Any] = []
    async with (
        ActorSystem("shop", transport=memory_broker.transport()) as a,
        ActorSystem("shop", transport=memory_broker.transport()) as b,
    ):
        await b.spawn(Biller, billed, "b")
        assert await a.request(PriceQuery("book"), timeout=1) == "book from b"


async def test_memory_transport_request_without_handler_times_out(
    memory_broker: MemoryBroker,
) -> None:
    async with ActorSystem("lonely", transport=memory_broker.transport()) as a:
        with pytest.raises(AskTimeout):
            await a.request(PriceQuery("book"), timeout=0.2)


async def test_memory_transport_round_trips_the_wire_format(memory_broker: MemoryBroker) -> None:
    got: list[Envelope] = []

    class Raw(Actor):
        @handle("kit.*")
        async def on(self, envelope: Envelope) -> None:
            got.append(envelope)

    async with (
        ActorSystem("wire", transport=memory_broker.transport()) as a,
        ActorSystem("wire", transport=memory_broker.transport()) as b,
    ):
        await b.spawn(Raw)
        sent = await a.publish(Order(7), headers={"traceparent": "00-abc-def-01"})
        await memory_broker.drain()
        await b.drain()
    (received,) = got
    assert received.id == sent.id
    assert received.data == Order(7)  # rebuilt from JSON into the registered class
    assert received.headers["traceparent"] == "00-abc-def-01"


async def test_actor_system_fixture(actor_system: ActorSystem) -> None:
    probe = Probe(actor_system, Shipped)
    await actor_system.publish(Shipped(1))
    await probe.expect(Shipped)
    with anyio.fail_after(1):
        await actor_system.drain()


async def test_a_request_over_a_transport_is_answered_by_one_handler_per_instance(
    memory_broker: MemoryBroker,
) -> None:
    calls: list[str] = []

    class Quoter(Actor):
        @handle()
        async def price(self, query: PriceQuery) -> str:
            calls.append(self.name)
            return self.name

    async with ActorSystem("quotes", transport=memory_broker.transport()) as a:
        await a.spawn(Quoter, name="q1")
        await a.spawn(Quoter, name="q2")
        assert await a.request(PriceQuery("book"), timeout=1) == "q1"
        await a.drain()
    assert calls == ["q1"]
