"""Which handlers get an event, and what they are given (SPEC §2 "Actors", `publish`).

The conftest resets the event registry after each test: module-level `@event` classes keep
their type and scope, but only classes declared inside a test can be rebuilt from dict data
by their registered type.
"""

import dataclasses
from typing import Any

import anyio
import attrs
import pytest

from actorbus import (
    Actor,
    ActorSystem,
    DecodeError,
    Envelope,
    Mailbox,
    MailboxFull,
    Overflow,
    Scope,
    event,
    handle,
)
from actorbus.testing import MemoryTransport

pytestmark = pytest.mark.anyio


@event("routing.order.created")
class OrderCreated:
    order_id: str
    amount: float = 0.0


@event("routing.order.priority")
class PriorityOrder(OrderCreated):
    pass


@event("routing.order.shipped")
class OrderShipped:
    order_id: str


@event("routing.payment.processed")
class PaymentProcessed:
    payment_id: str


@attrs.frozen
class Shape:
    """Not registered with @event: converted only through handler annotations."""

    sides: int
    name: str


class Log(list[Any]):
    """What an actor saw, as (handler, value) pairs."""


def system() -> ActorSystem:
    return ActorSystem("routing", shutdown_timeout=2.0)


# -- by class -------------------------------------------------------------------------------


class ByClass(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @handle(OrderCreated)
    async def created(self, event: OrderCreated) -> None:
        self.log.append(("created", event))


async def published_to(actor: type[Actor], *events: object, args: tuple[Any, ...] = ()) -> None:
    """Publish `events` to one `actor` (spawned with `args`) and wait until it handled them."""
    async with system() as sys:
        await sys.spawn(actor, *args)
        for published in events:
            await sys.publish(published)
        await sys.drain()


@pytest.mark.parametrize(
    ("published", "handled"),
    [
        (OrderCreated("o-1", 9.5), [OrderCreated("o-1", 9.5)]),
        (PriorityOrder("o-2"), [PriorityOrder("o-2")]),
        (OrderShipped("o-1"), []),
    ],
    ids=["its class: the event object", "a subclass, by isinstance", "another class: ignored"],
)
async def test_class_handler_matches_the_event_by_isinstance(
    published: object, handled: list[object]
) -> None:
    log = Log()
    await published_to(ByClass, published, args=(log,))
    assert log == [("created", event) for event in handled]
    assert [type(event) for _, event in log] == [type(event) for event in handled]


# -- by glob --------------------------------------------------------------------------------


class ByGlob(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @handle("routing.order.*")
    async def orders(self, envelope: Envelope) -> None:
        self.log.append(("orders", envelope.type))

    @handle("routing.payment.processed")
    async def exact(self, envelope: Envelope) -> None:
        self.log.append(("exact", envelope.type))


async def test_glob_handler_matches_the_envelope_type() -> None:
    log = Log()
    async with system() as sys:
        await sys.spawn(ByGlob, log)
        await sys.publish(OrderCreated("o-1"))
        await sys.publish(OrderShipped("o-1"))
        await sys.publish(PaymentProcessed("p-1"))
        await sys.publish(Envelope(type="routing.invoice.sent"))
        await sys.publish(Envelope(type="routing.order.cancelled", data={"id": 1}))
        await sys.drain()
    assert log == [
        ("orders", "routing.order.created"),
        ("orders", "routing.order.shipped"),
        ("exact", "routing.payment.processed"),
        ("orders", "routing.order.cancelled"),
    ]


@pytest.mark.parametrize(
    ("glob", "matching"),
    [
        ("routing.order.?reated", ["routing.order.created"]),
        ("routing.order.[cs]*", ["routing.order.created", "routing.order.shipped"]),
        ("routing.*.created", ["routing.order.created"]),
        ("*", ["routing.order.created", "routing.order.shipped", "routing.payment.processed"]),
    ],
)
async def test_glob_syntax(glob: str, matching: list[str]) -> None:
    seen: list[str] = []

    class Globbing(Actor):
        @handle(glob)
        async def any_event(self, envelope: Envelope) -> None:
            if envelope.type.startswith("routing."):
                seen.append(envelope.type)

    async with system() as sys:
        await sys.spawn(Globbing)
        await sys.publish(OrderCreated("o"))
        await sys.publish(OrderShipped("o"))
        await sys.publish(PaymentProcessed("p"))
        await sys.drain()
    assert seen == matching


async def test_class_and_glob_in_one_decorator() -> None:
    log = Log()

    class Both(Actor):
        @handle(OrderShipped, "routing.payment.*")
        async def either(self, envelope: Envelope) -> None:
            log.append(envelope.type)

    async with system() as sys:
        await sys.spawn(Both)
        await sys.publish(OrderShipped("o-1"))
        await sys.publish(PaymentProcessed("p-1"))
        await sys.publish(OrderCreated("o-1"))
        await sys.drain()
    assert log == ["routing.order.shipped", "routing.payment.processed"]


async def test_glob_handler_gets_the_event_object_of_a_class_event() -> None:
    log = Log()

    class Globbing(Actor):
        @handle("routing.order.*")
        async def any_order(self, event: OrderCreated | OrderShipped) -> None:
            log.append(event)

    async with system() as sys:
        await sys.spawn(Globbing)
        await sys.publish(OrderCreated("o-1"))
        await sys.publish(OrderShipped("o-2"))
        await sys.drain()
    assert log == [OrderCreated("o-1"), OrderShipped("o-2")]


# -- @handle() infers the class from the annotation -------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "handled"),
    [
        (OrderShipped, [OrderShipped("o-1")]),
        (OrderCreated, [OrderCreated("o-1"), PriorityOrder("o-9")]),
        (OrderShipped | PaymentProcessed, [OrderShipped("o-1"), PaymentProcessed("p-1")]),
    ],
    ids=["a class", "a class and its subclasses", "a union"],
)
async def test_handle_without_argument_uses_the_annotation(
    annotation: Any, handled: list[object]
) -> None:
    log = Log()

    class Inferred(Actor):
        @handle()
        async def on(self, event: annotation) -> None:  # type: ignore[valid-type]
            log.append(event)

    everything = [OrderShipped("o-1"), PaymentProcessed("p-1"), OrderCreated("o-1")]
    await published_to(Inferred, *everything, PriorityOrder("o-9"))
    assert log == handled
    assert [type(event) for event in log] == [type(event) for event in handled]


def test_handle_rejects_targets_that_are_neither_classes_nor_globs() -> None:
    with pytest.raises(TypeError):
        handle(42)  # type: ignore[arg-type]


# -- several handlers of one actor ------------------------------------------------------------


class Several(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @handle("routing.order.*")
    async def audit(self, envelope: Envelope) -> str:
        self.log.append(("audit", envelope.id))
        return "audit"

    @handle(OrderCreated)
    async def reserve(self, event: OrderCreated) -> str:
        self.log.append(("reserve", event.order_id))
        return "reserve"

    @handle()
    async def bill(self, event: OrderCreated) -> str:
        self.log.append(("bill", event.order_id))
        return "bill"


async def test_several_matching_handlers_get_one_message_in_declaration_order() -> None:
    log = Log()
    async with system() as sys:
        ref = await sys.spawn(Several, log)
        envelope = await sys.publish(OrderCreated("o-1"))
        await sys.drain()
        stats = ref.stats
    assert log == [("audit", envelope.id), ("reserve", "o-1"), ("bill", "o-1")]
    assert stats.processed == 1


async def test_several_matching_handlers_take_one_mailbox_slot() -> None:
    log = Log()
    entered, opened = anyio.Event(), anyio.Event()

    class Blocker(Several):
        @handle(OrderShipped)
        async def hold(self, event: OrderShipped) -> None:
            entered.set()
            await opened.wait()

    async with system() as sys:
        ref = await sys.spawn(Blocker, log, mailbox=Mailbox(1, Overflow.FAIL))
        await ref.tell(OrderShipped("o-0"))
        with anyio.fail_after(5):
            await entered.wait()
        await sys.publish(OrderCreated("o-1"))  # three handlers, one slot
        assert ref.stats.depth == 1
        with pytest.raises(MailboxFull):
            await sys.publish(OrderCreated("o-2"))
        opened.set()
        await sys.drain()
    assert [entry[0] for entry in log] == ["audit", "audit", "reserve", "bill"]


async def test_ask_replies_with_the_first_matching_handler() -> None:
    log = Log()
    async with system() as sys:
        ref = await sys.spawn(Several, log)
        with anyio.fail_after(5):
            assert await ref.ask(OrderCreated("o-1")) == "audit"
    assert [entry[0] for entry in log] == ["audit", "reserve", "bill"]


class TwoFailing(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @handle(OrderCreated)
    async def first(self, event: OrderCreated) -> str:
        self.log.append("first")
        if event.order_id in ("both", "first"):
            raise ValueError("first failed")
        return "first"

    @handle(OrderCreated)
    async def second(self, event: OrderCreated) -> str:
        self.log.append("second")
        if event.order_id in ("both", "second"):
            raise KeyError("second failed")
        return "second"


async def test_a_failing_handler_does_not_keep_the_message_from_the_next_one() -> None:
    """Supervision applies to each handler call (here the default, LOG_AND_CONTINUE)."""
    log = Log()
    async with system() as sys:
        ref = await sys.spawn(TwoFailing, log)
        await sys.publish(OrderCreated("both"))
        await sys.drain()
        stats = ref.stats
    assert log == ["first", "second"]
    assert stats.processed == 1  # one message...
    assert stats.failed == 2  # ...two handler calls that raised


async def test_ask_gets_the_first_handler_outcome_whatever_the_others_do() -> None:
    log = Log()
    async with system() as sys:
        ref = await sys.spawn(TwoFailing, log)
        with anyio.fail_after(5):
            assert await ref.ask(OrderCreated("second")) == "first"
            with pytest.raises(ValueError, match="first failed"):
                await ref.ask(OrderCreated("first"))
    assert log == ["first", "second", "first", "second"]


async def test_handlers_of_a_base_actor_class_are_inherited() -> None:
    log = Log()

    class Child(ByClass):
        @handle(OrderShipped)
        async def shipped(self, event: OrderShipped) -> None:
            self.log.append(("shipped", event))

    async with system() as sys:
        await sys.spawn(Child, log)
        await sys.publish(OrderCreated("o-1"))
        await sys.publish(OrderShipped("o-1"))
        await sys.drain()
    assert log == [("created", OrderCreated("o-1")), ("shipped", OrderShipped("o-1"))]


async def test_inherited_handlers_come_first_and_overrides_keep_their_place() -> None:
    log = Log()

    class Base(Actor):
        @handle(OrderCreated)
        async def a(self, event: OrderCreated) -> None:
            log.append("Base.a")

        @handle(OrderCreated)
        async def b(self, event: OrderCreated) -> None:
            log.append("Base.b")

        @handle(OrderCreated)
        async def c(self, event: OrderCreated) -> None:
            log.append("Base.c")

    class Child(Base):
        @handle(OrderCreated)
        async def own(self, event: OrderCreated) -> None:
            log.append("Child.own")

        @handle(OrderCreated)
        async def b(self, event: OrderCreated) -> None:  # replaces Base.b in its place
            log.append("Child.b")

        async def c(self, event: OrderCreated) -> None:  # not decorated: removes Base.c
            log.append("Child.c")

    async with system() as sys:
        await sys.spawn(Child)
        await sys.publish(OrderCreated("o"))
        await sys.drain()
    assert log == ["Base.a", "Child.b", "Child.own"]


# -- what a handler is given --------------------------------------------------------------------


async def test_envelope_parameter_receives_the_envelope() -> None:
    seen: list[Envelope] = []

    class Audit(Actor):
        @handle(OrderCreated)
        async def audit(self, envelope: Envelope) -> None:
            seen.append(envelope)

    async with system() as sys:
        await sys.spawn(Audit)
        published = await sys.publish(OrderCreated("o-1"), subject="o-1")
        await sys.drain()
    [envelope] = seen
    assert isinstance(envelope, Envelope)
    assert envelope.id == published.id
    assert envelope.type == "routing.order.created"
    assert envelope.subject == "o-1"
    assert envelope.source == "routing"
    assert envelope.data == OrderCreated("o-1")


async def test_event_and_envelope_parameters_in_either_order() -> None:
    seen: list[tuple[str, object, object]] = []

    class Pairs(Actor):
        @handle(OrderCreated)
        async def event_first(self, event: OrderCreated, envelope: Envelope) -> None:
            seen.append(("event_first", event, envelope))

        @handle(OrderCreated)
        async def envelope_first(self, envelope: Envelope, event: OrderCreated) -> None:
            seen.append(("envelope_first", event, envelope))

    async with system() as sys:
        await sys.spawn(Pairs)
        published = await sys.publish(OrderCreated("o-1"))
        await sys.drain()
    assert [name for name, _, _ in seen] == ["event_first", "envelope_first"]
    for _, event_, envelope in seen:
        assert event_ == OrderCreated("o-1")
        assert isinstance(envelope, Envelope)
        assert envelope.id == published.id


async def test_envelope_given_to_tell_reaches_handlers_as_itself() -> None:
    seen: list[Envelope] = []

    class Audit(Actor):
        @handle("routing.*")
        async def audit(self, envelope: Envelope) -> None:
            seen.append(envelope)

    async with system() as sys:
        ref = await sys.spawn(Audit)
        sent = Envelope(type="routing.note", data={"text": "hi"}, subject="s-1")
        await ref.tell(sent)
        await sys.drain()
    [envelope] = seen
    assert (envelope.id, envelope.type, envelope.subject) == (sent.id, "routing.note", "s-1")
    assert envelope.data == {"text": "hi"}


async def test_star_args_handler_receives_emitted_arguments() -> None:
    seen: list[tuple[Any, ...]] = []

    class Spread(Actor):
        @handle("routing.adhoc.*")
        async def spread(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            seen.append((args, kwargs))

    async with system() as sys:
        await sys.spawn(Spread)
        await sys.emit("routing.adhoc.x", 1, "two", three=3)
        await sys.drain()
    assert seen == [((1, "two"), {"three": 3})]


@handle()
async def without_annotation(self, event) -> None:  # type: ignore[no-untyped-def]
    pass


@handle("routing.*")
async def two_envelopes(self: Actor, first: Envelope, second: Envelope) -> None:
    pass


@handle(OrderCreated)
async def three_parameters(
    self: Actor, event: OrderCreated, envelope: Envelope, extra: int
) -> None:
    pass


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (without_annotation, "no annotation to infer one from"),
        (two_envelopes, "exactly one of them must be annotated Envelope"),
        (three_parameters, "takes the event, the envelope"),
    ],
    ids=["@handle() without an annotation", "two envelopes", "three parameters"],
)
def test_a_handler_that_does_not_say_what_it_takes_is_a_type_error(
    handler: object, reason: str
) -> None:
    with pytest.raises(TypeError, match=reason):
        type("Unclear", (Actor,), {"handler": handler})


async def test_sync_handler_receives_the_event() -> None:
    log = Log()

    class Sync(Actor):
        @handle(OrderCreated)
        def created(self, event: OrderCreated) -> str:
            log.append(event)
            return event.order_id

    async with system() as sys:
        ref = await sys.spawn(Sync)
        await sys.publish(OrderCreated("o-1"))
        await sys.drain()
        with anyio.fail_after(5):
            assert await ref.ask(OrderCreated("o-2")) == "o-2"
    assert log == [OrderCreated("o-1"), OrderCreated("o-2")]


# -- dict data is converted to the annotated class --------------------------------------------


class Shapes(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @handle("routing.shape.*")
    async def on_shape(self, shape: Shape) -> Shape:
        self.log.append(shape)
        return shape


@dataclasses.dataclass
class Line:
    """A dataclass, not registered: converted only through handler annotations."""

    sku: str
    quantity: int


@pytest.mark.parametrize(
    ("data", "converted"),
    [({"sides": 3, "name": "tri"}, Shape(3, "tri")), ({"sku": "a", "quantity": 2}, Line("a", 2))],
    ids=["attrs class", "dataclass"],
)
async def test_dict_data_is_converted_to_the_annotated_class(
    data: dict[str, Any], converted: object
) -> None:
    seen: list[object] = []
    annotation = type(converted)

    class Converting(Actor):
        @handle("routing.data")
        async def on_data(self, value: annotation) -> None:  # type: ignore[valid-type]
            seen.append(value)

    await published_to(Converting, Envelope(type="routing.data", data=data))
    assert seen == [converted]
    assert type(seen[0]) is annotation


@pytest.mark.parametrize(
    ("data", "field"),
    [({"sides": "many", "name": "blob"}, "sides"), ({"sides": 3}, "name")],
    ids=["of the wrong type", "missing"],
)
async def test_dict_data_that_does_not_fit_is_a_decode_error_naming_actor_handler_and_field(
    data: dict[str, Any], field: str
) -> None:
    async with system() as sys:
        ref = await sys.spawn(Shapes, Log(), name="shapes")
        bad = Envelope(type="routing.shape.drawn", data=data)
        with anyio.fail_after(5), pytest.raises(DecodeError) as caught:
            await ref.ask(bad)
        message = str(caught.value)
        assert "shapes" in message
        assert "on_shape" in message
        assert field in message
        # The actor is fine afterwards.
        with anyio.fail_after(5):
            assert await ref.ask(
                Envelope(type="routing.shape.ok", data={"sides": 4, "name": "sq"})
            ) == Shape(4, "sq")


async def test_decode_error_in_a_handler_is_counted_as_a_failure() -> None:
    async with system() as sys:
        ref = await sys.spawn(Shapes, Log())
        await sys.publish(Envelope(type="routing.shape.drawn", data={"sides": "x", "name": "y"}))
        await sys.drain()
        assert ref.stats.failed == 1
        assert ref.stats.processed == 1


async def test_envelope_with_a_registered_type_is_routed_as_its_class() -> None:
    @event("routing.local.refund")
    class Refund:
        order_id: str
        amount: float

    log = Log()

    class Refunds(Actor):
        @handle(Refund)
        async def refund(self, event: Refund) -> None:
            log.append(event)

    async with system() as sys:
        await sys.spawn(Refunds)
        await sys.publish(
            Envelope(type="routing.local.refund", data={"order_id": "o-1", "amount": 3})
        )
        await sys.drain()
    assert log == [Refund("o-1", 3.0)]
    assert type(log[0]) is Refund


async def test_envelope_with_a_registered_type_and_bad_data_is_a_decode_error() -> None:
    @event("routing.local.strict")
    class Strict:
        count: int

    async with system() as sys:
        with pytest.raises(DecodeError, match="count"):
            await sys.publish(Envelope(type="routing.local.strict", data={"count": "many"}))


@pytest.mark.parametrize("annotation", [None, Any, object], ids=["none", "Any", "object"])
async def test_glob_handler_without_an_event_class_gets_plain_dict_data(annotation: Any) -> None:
    """No annotation, `Any` and `object` name no event class: the data is passed as it is."""
    seen: list[object] = []

    class Raw(Actor):
        if annotation is None:

            @handle("routing.raw.*")
            async def raw(self, data) -> None:  # type: ignore[no-untyped-def]
                seen.append(data)

        else:

            @handle("routing.raw.*")
            async def raw(self, data: annotation) -> None:  # type: ignore[valid-type]
                seen.append(data)

    await published_to(Raw, Envelope(type="routing.raw.x", data={"k": 1}))
    assert seen == [{"k": 1}]


# -- plain (unregistered) objects ---------------------------------------------------------------


class DomainEvent:
    """An in-process application event: a plain class, not registered."""

    def __init__(self, value: int) -> None:
        self.value = value


class SpecialDomainEvent(DomainEvent):
    pass


class Domain(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @handle(DomainEvent)
    async def on_domain(self, event: DomainEvent) -> None:
        self.log.append(event)


async def test_plain_object_is_dispatched_by_isinstance() -> None:
    log = Log()
    async with system() as sys:
        await sys.spawn(Domain, log)
        plain, special = DomainEvent(1), SpecialDomainEvent(2)
        first = await sys.publish(plain)
        second = await sys.publish(special)
        await sys.drain()
    assert log == [plain, special]  # the very objects: nothing is copied or converted
    assert first.type == DomainEvent.__qualname__
    assert second.type == SpecialDomainEvent.__qualname__
    assert first.scope is Scope.PROCESS


async def test_plain_object_is_matched_by_a_glob_over_its_qualified_name() -> None:
    seen: list[str] = []

    class ByName(Actor):
        @handle("DomainEvent")
        async def named(self, envelope: Envelope) -> None:
            seen.append(envelope.type)

    async with system() as sys:
        ref = await sys.spawn(ByName)
        await sys.publish(DomainEvent(1))
        await ref.tell(DomainEvent(2))
        await sys.publish(SpecialDomainEvent(3))  # another name: no match
        await sys.drain()
    assert seen == ["DomainEvent", "DomainEvent"]


@pytest.mark.parametrize("as_envelope", [False, True], ids=["the object", "in an envelope"])
async def test_plain_object_with_app_scope_is_a_clear_type_error(as_envelope: bool) -> None:
    log = Log()
    async with system() as sys:
        await sys.spawn(Domain, log)
        with pytest.raises(TypeError, match="@event"):
            if as_envelope:
                await sys.publish(
                    Envelope(type="routing.plain", data=DomainEvent(1), scope=Scope.APP)
                )
            else:
                await sys.publish(DomainEvent(1), scope=Scope.APP)
        await sys.drain()
    assert log == []


async def test_app_scope_event_is_delivered_locally_without_a_transport() -> None:
    @event("routing.app.wide", scope=Scope.APP)
    class Wide:
        value: int

    seen: list[Wide] = []

    class Listener(Actor):
        @handle(Wide)
        async def on_wide(self, event: Wide) -> None:
            seen.append(event)

    async with system() as sys:
        await sys.spawn(Listener)
        envelope = await sys.publish(Wide(1))
        await sys.drain()
    assert envelope.scope is Scope.APP
    assert seen == [Wide(1)]


# -- no subscriber; many subscribers -------------------------------------------------------------


async def test_event_without_subscriber_is_not_an_error() -> None:
    async with system() as sys:
        envelope = await sys.publish(OrderCreated("o-1"))
        await sys.publish(Envelope(type="routing.nobody"))
        await sys.drain()
    assert envelope.type == "routing.order.created"
    assert sys.dead_letters == ()


async def test_routing_with_many_subscriptions() -> None:
    """Many actors with overlapping class and glob handlers: each gets exactly its share."""
    got: dict[str, list[str]] = {}

    def make(index: int) -> type[Actor]:
        kind = index % 4

        class Sub(Actor):
            def __init__(self, box: list[str]) -> None:
                self.box = box

            if kind == 0:

                @handle(OrderCreated)
                async def h(self, event: OrderCreated) -> None:
                    self.box.append("created")

            elif kind == 1:

                @handle("routing.order.*")
                async def h(self, envelope: Envelope) -> None:
                    self.box.append(envelope.type.rsplit(".", 1)[1])

            elif kind == 2:

                @handle(OrderShipped, PaymentProcessed)
                async def h(self, envelope: Envelope) -> None:
                    self.box.append(envelope.type.rsplit(".", 1)[1])

            else:

                @handle(f"routing.only.{index}")
                async def h(self, envelope: Envelope) -> None:
                    self.box.append("only")

        return Sub

    async with system() as sys:
        for index in range(80):
            await sys.spawn(make(index), got.setdefault(f"sub-{index}", []))
        await sys.publish(OrderCreated("o"))
        await sys.publish(PriorityOrder("p"))
        await sys.publish(OrderShipped("o"))
        await sys.publish(PaymentProcessed("p"))
        await sys.publish(Envelope(type="routing.only.7"))
        await sys.publish(Envelope(type="routing.only.8"))  # kind 0: no glob, no match
        await sys.drain()

    for index in range(80):
        box = got[f"sub-{index}"]
        kind = index % 4
        if kind == 0:
            assert box == ["created", "created"], index
        elif kind == 1:
            assert box == ["created", "priority", "shipped"], index
        elif kind == 2:
            assert box == ["shipped", "processed"], index
        else:
            assert box == (["only"] if index == 7 else []), index


async def test_routes_follow_actors_that_start_and_stop() -> None:
    first, second = Log(), Log()
    async with system() as sys:
        one = await sys.spawn(ByClass, first)
        await sys.publish(OrderCreated("a"))
        await sys.drain()
        await sys.spawn(ByClass, second)
        await sys.publish(OrderCreated("b"))
        await sys.drain()
        await one.stop()
        await sys.publish(OrderCreated("c"))
        await sys.drain()
    assert [e.order_id for _, e in first] == ["a", "b"]
    assert [e.order_id for _, e in second] == ["b", "c"]


async def test_cached_routes_follow_actors_that_come_and_go() -> None:
    @event("routing.cache.ping")
    class CachePing:
        n: int

    seen: list[tuple[str, int]] = []

    class Listener(Actor):
        @handle()
        async def on(self, ping: CachePing) -> None:
            seen.append((self.name, ping.n))

    class Member(Actor):
        group = "workers"

        @handle()
        async def on(self, ping: CachePing) -> None:
            seen.append(("group:" + self.name, ping.n))

    async with system() as sys:
        first = await sys.spawn(Listener, name="first")
        await sys.publish(CachePing(1))  # the route is now cached
        await sys.spawn(Listener, name="second")
        await sys.spawn(Member, name="m1")
        await sys.publish(CachePing(2))
        await sys.drain()  # stop() dead-letters what is still waiting
        await first.stop()
        await sys.publish(CachePing(3))
        await sys.spawn(Member, name="m2")
        await sys.publish(CachePing(4))
        await sys.publish(CachePing(5))
        await sys.drain()
    assert sorted(n for name, n in seen if name == "first") == [1, 2]
    assert sorted(n for name, n in seen if name == "second") == [2, 3, 4, 5]
    grouped = sorted((n, name) for name, n in seen if name.startswith("group:"))
    assert [n for n, _ in grouped] == [2, 3, 4, 5]  # one member per event
    assert {name for n, name in grouped if n >= 4} == {"group:m1", "group:m2"}  # shared again


async def test_a_class_registered_after_it_was_told_is_told_by_its_event_type() -> None:
    @attrs.frozen
    class Late:
        n: int

    seen: list[str] = []

    class Any_(Actor):
        @handle("*")
        async def on_any(self, envelope: Envelope) -> None:
            seen.append(envelope.type)

    async with ActorSystem() as system:
        ref = await system.spawn(Any_)
        await ref.tell(Late(1))
        event("routing.late")(Late)  # registered only now
        await ref.tell(Late(2))
        await system.drain()
    told = [type_ for type_ in seen if not type_.startswith("actorbus.")]  # not lifecycle
    assert told == [Late.__qualname__, "routing.late"]


# -- what a transport may acknowledge unread ------------------------------------------------


async def test_subscribed_follows_subscriptions_and_registrations() -> None:
    """`subscribed` is cached per type: a new subscriber, a stop or a registration changes it."""
    transport = MemoryTransport()  # to ask the system's side that a transport sees
    async with ActorSystem("routing", transport=transport) as system:
        host = transport.host
        assert host is not None
        assert not host.subscribed("routing.order.created", None)

        class Orders(Actor):
            @handle(OrderCreated)
            async def on_order(self, order: OrderCreated) -> None:
                pass

        ref = await system.spawn(Orders)
        assert host.subscribed("routing.order.created", None)
        assert not host.subscribed("routing.order.late", None)

        @event("routing.order.late")
        class LateOrder(OrderCreated):  # a subclass: the handler of OrderCreated takes it
            pass

        assert host.subscribed("routing.order.late", None)
        assert host.subscribed("routing.order.late", "workers")  # no member here: leave it
        await ref.stop()
        assert not host.subscribed("routing.order.created", None)

        @system.on("routing.order.*")
        async def by_glob(data: Any) -> None:
            pass

        assert host.subscribed("routing.order.created", None)
