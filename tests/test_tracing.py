"""W3C traceparent propagation from publisher to handler, and from handler to handler."""

import pytest

from actorbus import Actor, ActorSystem, Envelope, Scope, event, handle
from actorbus._tracing import child_of
from actorbus.testing import MemoryBroker, Probe

pytestmark = pytest.mark.anyio

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@event("trace.order")
class Order:
    n: int


@event("trace.reserved")
class Reserved:
    n: int


class Inventory(Actor):
    @handle()
    async def on(self, order: Order) -> None:
        await self.publish(Reserved(order.n))


def test_child_keeps_the_trace_id_and_flags_with_a_new_span() -> None:
    child = child_of(PARENT)
    assert child is not None
    version, trace_id, span_id, flags = child.split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span_id != "00f067aa0ba902b7"
    assert len(span_id) == 16
    assert child_of("garbage") is None


async def test_a_handler_publishing_continues_the_trace_of_its_message() -> None:
    async with ActorSystem() as system:
        probe = Probe(system, Reserved)
        await system.spawn(Inventory)
        await system.publish(Order(1), headers={"traceparent": PARENT})
        envelope = await probe.expect_envelope()
    traceparent = envelope.headers["traceparent"]
    assert traceparent.split("-")[1] == PARENT.split("-")[1]
    assert traceparent != PARENT


@pytest.mark.parametrize("then", ["publish", "tell"])
async def test_no_trace_is_invented_and_none_leaks_between_messages(then: str) -> None:
    async with ActorSystem() as system:
        probe = Probe(system, Reserved)
        inventory = await system.spawn(Inventory)
        await system.publish(Order(1), headers={"traceparent": PARENT})
        if then == "publish":
            await system.publish(Order(2))
        else:
            await inventory.tell(Order(2))
        first = await probe.expect_envelope()
        second = await probe.expect_envelope()
    assert "traceparent" in first.headers
    assert "traceparent" not in second.headers


class Parent(Actor):
    @handle()
    async def on(self, order: Order) -> None:
        child = await self.spawn(Inventory)  # its task starts in this traced context
        await child.tell(Order(order.n))


async def test_an_actor_spawned_while_handling_a_traced_message_starts_without_it() -> None:
    async with ActorSystem() as system:
        probe = Probe(system, Reserved)
        parent = await system.spawn(Parent)
        await parent.tell(
            Envelope(type="trace.order", data=Order(1), headers={"traceparent": PARENT})
        )
        envelope = await probe.expect_envelope()
    assert "traceparent" not in envelope.headers


async def test_the_trace_crosses_the_wire_format() -> None:
    broker = MemoryBroker()

    @event("trace.app", scope=Scope.APP)
    class AppOrder:
        n: int

    seen: list[Envelope] = []

    class Remote(Actor):
        @handle()
        async def on(self, order: AppOrder, envelope: Envelope) -> None:
            seen.append(envelope)

    async with (
        ActorSystem("traced", transport=broker.transport()) as a,
        ActorSystem("traced", transport=broker.transport()) as b,
    ):
        await b.spawn(Remote)
        await a.publish(AppOrder(1), headers={"traceparent": PARENT})
        await broker.drain()
        await b.drain()
    assert seen[0].headers["traceparent"] == PARENT
