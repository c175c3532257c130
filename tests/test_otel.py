"""`actorbus.contrib.otel`: publish → handle spans that form one trace, on both backends.

Spans go to the OTel SDK's in-memory exporter through a tracer provider given to
`instrument()` explicitly: the global provider can be set only once per process, and no
test may leave the process instrumented (the fixture uninstruments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from actorbus import (
    Actor,
    ActorSystem,
    Envelope,
    Policy,
    Scope,
    Supervision,
    _tracing,
    event,
    handle,
)
from actorbus._ref import cell_of
from actorbus.contrib import otel
from actorbus.testing import MemoryBroker, Probe

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PARENT_TRACE = int("4bf92f3577b34da6a3ce929d0e0e4736", 16)
PARENT_SPAN = int("00f067aa0ba902b7", 16)


@event("otel.order")
class Order:
    n: int


@event("otel.reserved")
class Reserved:
    n: int


class Inventory(Actor):
    @handle()
    async def reserve(self, order: Order) -> None:
        await self.publish(Reserved(order.n))


class Shipping(Actor):
    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    @handle()
    async def ship(self, reserved: Reserved, envelope: Envelope) -> None:
        self.seen.append(envelope)


@event("otel.shipped", scope=Scope.APP)
class Shipped:
    n: int


class Remote(Actor):
    @handle()
    async def on(self, shipped: Shipped) -> None:
        pass


class Exploding(Actor):
    supervision = Supervision(Policy.STOP)

    @handle()
    async def reserve(self, order: Order) -> None:
        raise ValueError(f"no stock for order {order.n}")


class Flaky(Actor):
    """Fails on the first call of each order; the default policy logs and goes on."""

    @handle()
    async def reserve(self, order: Order) -> None:
        raise LookupError(f"order {order.n} unknown")


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    yield provider
    otel.uninstrument()
    provider.shutdown()
    assert _tracing.instrumentation is None


@pytest.fixture
def exporter(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)
    return exporter


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [span for span in exporter.get_finished_spans() if span.name == name]
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def run_chain() -> Shipping:
    async with ActorSystem("shop") as system:
        await system.spawn(Inventory)
        shipping = await system.spawn(Shipping)
        await system.publish(Order(1))
        await system.drain()
        instance: Shipping = cell_of(shipping).instance
    return instance


async def test_publish_and_handle_spans_chain_into_one_trace(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("checkout") as checkout:
        shipping = await run_chain()
    root = ids(named(exporter, "checkout"))
    publish_order = named(exporter, "publish otel.order")
    handle_order = named(exporter, "handle otel.order")
    publish_reserved = named(exporter, "publish otel.reserved")
    handle_reserved = named(exporter, "handle otel.reserved")
    chain = [publish_order, handle_order, publish_reserved, handle_reserved]
    assert {ids(span)[0] for span in chain} == {checkout.get_span_context().trace_id}
    # Each span is the child of the one before it: publish → handle → publish → handle.
    assert parent_of(publish_order) == root[1]
    assert parent_of(handle_order) == ids(publish_order)[1]
    assert parent_of(publish_reserved) == ids(handle_order)[1]
    assert parent_of(handle_reserved) == ids(publish_reserved)[1]
    assert [span.kind for span in chain] == [
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    ]
    # The envelope carries the producer span's context, in W3C form.
    trace_id, span_id = ids(publish_reserved)
    assert publish_reserved.context is not None
    flags = publish_reserved.context.trace_flags
    assert shipping.seen[0].headers["traceparent"] == (
        f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    )
    assert handle_reserved.attributes == {
        "messaging.system": "actorbus",
        "messaging.operation.type": "process",
        "messaging.operation.name": "handle",
        "messaging.destination.name": "otel.reserved",
        "messaging.message.id": shipping.seen[0].id,
        "actorbus.actor": "Shipping",
    }
    assert publish_reserved.attributes is not None
    assert publish_reserved.attributes["messaging.destination.name"] == "otel.reserved"


async def test_a_publish_outside_any_span_starts_a_trace(
    exporter: InMemorySpanExporter,
) -> None:
    await run_chain()
    publish_order = named(exporter, "publish otel.order")
    handle_reserved = named(exporter, "handle otel.reserved")
    assert publish_order.parent is None
    assert ids(handle_reserved)[0] == ids(publish_order)[0]


async def test_an_incoming_traceparent_is_the_parent(exporter: InMemorySpanExporter) -> None:
    async with ActorSystem("shop") as system:
        await system.spawn(Inventory)
        await system.publish(Order(1), headers={"traceparent": PARENT})
        await system.drain()
    handle_order = named(exporter, "handle otel.order")
    assert handle_order.parent is not None
    assert handle_order.parent.is_remote
    assert (ids(handle_order)[0], parent_of(handle_order)) == (PARENT_TRACE, PARENT_SPAN)
    # No producer span was opened: the publisher brought its own trace context.
    assert [s.name for s in exporter.get_finished_spans() if s.name == "publish otel.order"] == []


async def test_actorbus_context_is_the_parent_when_no_span_is_current(
    exporter: InMemorySpanExporter,
) -> None:
    async with ActorSystem("shop") as system:
        await system.spawn(Inventory)
        token = _tracing.current.set(PARENT)
        try:
            await system.publish(Order(1))
        finally:
            _tracing.current.reset(token)
        await system.drain()
    publish_order = named(exporter, "publish otel.order")
    assert (ids(publish_order)[0], parent_of(publish_order)) == (PARENT_TRACE, PARENT_SPAN)


async def test_the_trace_crosses_a_transport(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    broker = MemoryBroker()
    async with (
        ActorSystem("traced", transport=broker.transport()) as a,
        ActorSystem("traced", transport=broker.transport()) as b,
    ):
        await b.spawn(Remote)
        with provider.get_tracer("test").start_as_current_span("request"):
            await a.publish(Shipped(1))
        await broker.drain()
        await b.drain()
    publish = named(exporter, "publish otel.shipped")
    handled = named(exporter, "handle otel.shipped")
    assert ids(handled)[0] == ids(publish)[0]
    assert parent_of(handled) == ids(publish)[1]


@pytest.mark.parametrize(
    ("actor", "error", "message"),
    [
        (Exploding, "ValueError", "no stock for order 7"),
        (Flaky, "LookupError", "order 7 unknown"),
    ],
    ids=["one that stops the actor", "one supervision handled"],
)
async def test_an_exception_is_recorded_on_its_span(
    exporter: InMemorySpanExporter, actor: type[Actor], error: str, message: str
) -> None:
    async with ActorSystem("shop") as system:
        ref = await system.spawn(actor)
        await system.publish(Order(7))
        await system.drain()
        if actor is Exploding:
            await ref.wait_stopped()
    span = named(exporter, "handle otel.order")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"{error}: {message}"
    [raised] = span.events
    assert raised.name == "exception"
    assert raised.attributes is not None
    assert raised.attributes["exception.type"] == error
    assert raised.attributes["exception.message"] == message


async def test_successful_handling_leaves_the_status_unset(
    exporter: InMemorySpanExporter,
) -> None:
    await run_chain()
    assert named(exporter, "handle otel.order").status.status_code is StatusCode.UNSET
    assert named(exporter, "handle otel.order").events == ()


@pytest.mark.parametrize("without", ["uninstrumented", "no SDK"])
async def test_without_spans_the_trace_still_propagates(
    exporter: InMemorySpanExporter, without: str
) -> None:
    """After `uninstrument()`, or with the API alone (no SDK), no span: plain propagation."""
    if without == "uninstrumented":
        otel.uninstrument()
    else:
        otel.instrument(tracer_provider=NoOpTracerProvider())
    async with ActorSystem("shop") as system:
        probe = Probe(system, Reserved)
        await system.spawn(Inventory)
        await system.publish(Order(1), headers={"traceparent": PARENT})
        await system.publish(Order(2))
        traced = await probe.expect_envelope()
        untraced = await probe.expect_envelope()
    assert exporter.get_finished_spans() == ()
    _, trace_id, span_id, flags = traced.headers["traceparent"].split("-")
    assert (trace_id, flags) == (f"{PARENT_TRACE:032x}", "01")
    assert span_id != f"{PARENT_SPAN:016x}"  # a fresh span id per publish, as without OTel
    assert "traceparent" not in untraced.headers  # and none invented


def test_instrument_replaces_and_uninstrument_removes(provider: TracerProvider) -> None:
    first = otel.instrument(tracer_provider=provider)
    second = otel.instrument(tracer_provider=provider)
    assert _tracing.instrumentation is second is not first
    otel.uninstrument()
    assert _tracing.instrumentation is None
    otel.uninstrument()  # harmless when nothing is installed
