"""Function subscribers (`Router`, `system.on`), `emit`, `@publish_result`, `@publish_call`.

SPEC §2: each function subscriber is its own actor; `emit(type, *args, **kwargs)` calls
unannotated subscribers as ``fn(*args, **kwargs)``; the decorators publish through
`current_system()` or an explicit ``system=``.
"""

import contextlib
import threading
from typing import Any

import anyio
import pytest

from actorbus import (
    Actor,
    ActorSystem,
    Envelope,
    Mailbox,
    Overflow,
    Router,
    Scope,
    SystemStarted,
    current_system,
    event,
    handle,
    publish_call,
    publish_result,
)

pytestmark = pytest.mark.anyio


@event("functions.order.created")
class OrderCreated:
    order_id: str
    amount: float = 0.0


@event("functions.order.shipped")
class OrderShipped:
    order_id: str


@event("functions.total")
class Total:
    value: float


def system(name: str = "functions", **kwargs: Any) -> ActorSystem:
    kwargs.setdefault("shutdown_timeout", 2.0)
    return ActorSystem(name, **kwargs)


# -- Router -----------------------------------------------------------------------------------


async def test_router_function_by_class() -> None:
    seen: list[Any] = []
    router = Router()

    @router.on(OrderCreated)
    async def on_created(event: OrderCreated) -> None:
        seen.append(event)

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1", 9.5))
        await sys.publish(OrderShipped("o-1"))
        await sys.drain()
    assert seen == [OrderCreated("o-1", 9.5)]


async def test_router_function_by_glob() -> None:
    seen: list[str] = []
    router = Router()

    @router.on("functions.order.*")
    async def audit(envelope: Envelope) -> None:
        seen.append(envelope.type)

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1"))
        await sys.publish(OrderShipped("o-1"))
        await sys.emit("functions.payment.processed", "p-1")
        await sys.drain()
    assert seen == ["functions.order.created", "functions.order.shipped"]


async def test_router_function_with_several_targets() -> None:
    seen: list[str] = []
    router = Router()

    @router.on(OrderCreated, "functions.payment.processed", "functions.user.*")
    async def audit(envelope: Envelope) -> None:
        seen.append(envelope.type)

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1"))
        await sys.emit("functions.payment.processed", "p-1", "success", 99.99)
        await sys.emit("functions.user.signed_up", "u-1")
        await sys.publish(OrderShipped("o-1"))
        await sys.drain()
    assert seen == [
        "functions.order.created",
        "functions.payment.processed",
        "functions.user.signed_up",
    ]


async def test_router_sync_function() -> None:
    seen: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()
    router = Router()

    @router.on(OrderCreated)
    def on_created(event: OrderCreated) -> None:
        seen.append((event.order_id, threading.get_ident() == loop_thread))

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1"))
        await sys.drain()
    assert seen == [("o-1", False)]  # run in a worker thread by default


async def test_router_on_returns_the_function_unchanged_in_behaviour() -> None:
    router = Router()

    @router.on(OrderCreated)
    async def double(event: OrderCreated) -> float:
        return event.amount * 2

    assert await double(OrderCreated("o", 2.0)) == 4.0


async def test_router_functions_with_no_annotation_or_target_are_rejected() -> None:
    router = Router()
    with pytest.raises(TypeError):

        @router.on()
        async def unclear(event) -> None:  # type: ignore[no-untyped-def]
            pass


async def test_router_function_with_an_impossible_signature_is_rejected_at_once() -> None:
    router = Router()
    with pytest.raises(TypeError):

        @router.on(OrderCreated)
        async def two_events(first: OrderCreated, second: OrderCreated) -> None:
            pass


async def test_router_function_without_target_uses_its_annotation() -> None:
    seen: list[Any] = []
    router = Router()

    @router.on()
    async def on_shipped(event: OrderShipped) -> None:
        seen.append(event)

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1"))
        await sys.publish(OrderShipped("o-2"))
        await sys.drain()
    assert seen == [OrderShipped("o-2")]


async def test_one_router_can_be_bound_to_two_systems() -> None:
    seen: list[tuple[str, str]] = []
    router = Router()

    @router.on(OrderCreated)
    async def on_created(event: OrderCreated) -> None:
        seen.append((current_system().name, event.order_id))

    async with system("one", routers=[router]) as one, system("two", routers=[router]) as two:
        await one.publish(OrderCreated("a"))
        await two.publish(OrderCreated("b"))
        await one.drain()
        await two.drain()
    assert sorted(seen) == [("one", "a"), ("two", "b")]


async def test_include_binds_a_router_later() -> None:
    seen: list[Any] = []
    router = Router()

    @router.on(OrderCreated)
    async def on_created(event: OrderCreated) -> None:
        seen.append(event.order_id)

    async with system() as sys:
        await sys.publish(OrderCreated("before"))
        await sys.include(router)
        await sys.publish(OrderCreated("after"))
        await sys.drain()
    assert seen == ["after"]


async def test_async_callable_object_is_an_async_subscriber() -> None:
    seen: list[Any] = []

    class Collector:
        __name__ = "collector"

        async def __call__(self, event: OrderCreated) -> None:
            seen.append(event.order_id)

    router = Router()
    router.on(OrderCreated)(Collector())
    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1"))
        await sys.drain()
    assert seen == ["o-1"]


# -- system.on ----------------------------------------------------------------------------------


async def test_system_on_subscribes_at_once() -> None:
    seen: list[Any] = []
    async with system() as sys:

        @sys.on(OrderCreated, "functions.note")
        async def on_created(envelope: Envelope) -> None:
            seen.append(envelope.type)

        await sys.publish(OrderCreated("o-1"))
        await sys.emit("functions.note", "hello")
        await sys.drain()
    assert seen == ["functions.order.created", "functions.note"]


async def test_system_on_with_a_name() -> None:
    async with system() as sys:

        @sys.on(OrderCreated, name="audit")
        async def on_created(event: OrderCreated) -> None:
            pass

        await sys.publish(OrderCreated("o-1"))
        await sys.drain()
        assert sys.stats()["audit"].processed == 1
        assert sys.actor("audit").name == "audit"


async def test_system_on_returns_the_function() -> None:
    async with system() as sys:

        @sys.on(OrderCreated)
        def amount(event: OrderCreated) -> float:
            return event.amount

        assert amount(OrderCreated("o-1", 3.0)) == 3.0


# -- emit -------------------------------------------------------------------------------------


async def test_emit_calls_an_unannotated_function_with_the_arguments() -> None:
    seen: list[tuple[Any, ...]] = []
    router = Router()

    @router.on("functions.payment.processed")
    def on_payment(payment_id, status, amount):  # type: ignore[no-untyped-def]
        seen.append((payment_id, status, amount))

    async with system(routers=[router]) as sys:
        await sys.emit("functions.payment.processed", "p-1", "success", 99.99)
        await sys.drain()
    assert seen == [("p-1", "success", 99.99)]


async def test_emit_passes_keyword_arguments() -> None:
    seen: list[tuple[Any, ...]] = []
    router = Router()

    @router.on("functions.user.*")
    async def on_user(user_id, *, plan="free", **extra):  # type: ignore[no-untyped-def]
        seen.append((user_id, plan, extra))

    async with system(routers=[router]) as sys:
        await sys.emit("functions.user.signed_up", "u-1", plan="pro", referrer="ad")
        await sys.emit("functions.user.signed_up", "u-2")
        await sys.drain()
    assert seen == [("u-1", "pro", {"referrer": "ad"}), ("u-2", "free", {})]


async def test_emit_with_a_single_argument_to_an_unannotated_function() -> None:
    seen: list[Any] = []
    router = Router()

    @router.on("functions.single")
    async def on_single(value):  # type: ignore[no-untyped-def]
        seen.append(value)

    async with system(routers=[router]) as sys:
        await sys.emit("functions.single", {"a": 1})
        await sys.emit("functions.single", 7)
        await sys.drain()
    assert seen == [{"a": 1}, 7]


async def test_emit_returns_the_envelope() -> None:
    async with system("shop") as sys:
        envelope = await sys.emit("functions.payment.processed", "p-1", 5, currency="EUR")
    assert envelope.type == "functions.payment.processed"
    assert envelope.source == "shop"
    assert envelope.data == {"args": ["p-1", 5], "kwargs": {"currency": "EUR"}}
    assert envelope.scope is Scope.PROCESS  # ad-hoc events are always local


async def test_emit_without_subscriber_is_not_an_error() -> None:
    async with system() as sys:
        envelope = await sys.emit("functions.nobody", 1)
        await sys.drain()
    assert envelope.type == "functions.nobody"


async def test_emit_reaches_class_actors_through_globs() -> None:
    seen: list[Envelope] = []

    class Audit(Actor):
        @handle("functions.payment.*")
        async def audit(self, envelope: Envelope) -> None:
            seen.append(envelope)

    async with system() as sys:
        await sys.spawn(Audit)
        sent = await sys.emit("functions.payment.processed", "p-1", "success")
        await sys.drain()
    assert [(e.id, e.type) for e in seen] == [(sent.id, "functions.payment.processed")]


async def test_emit_to_an_annotated_function_builds_the_annotated_class() -> None:
    """An unregistered type, but the subscriber names the class: args build it."""
    seen: list[Any] = []
    router = Router()

    @router.on("functions.adhoc.total")
    async def on_total(total: Total) -> None:
        seen.append(total)

    async with system(routers=[router]) as sys:
        await sys.emit("functions.adhoc.total", 12.5)
        await sys.emit("functions.adhoc.total", value=3.0)
        await sys.drain()
    assert seen == [Total(12.5), Total(3.0)]


async def test_emit_of_a_registered_type_builds_the_class() -> None:
    @event("functions.local.refund")
    class Refund:
        order_id: str
        amount: float

    seen: list[Any] = []
    router = Router()

    @router.on(Refund)
    async def on_refund(refund: Refund) -> None:
        seen.append(refund)

    class Refunds(Actor):
        @handle(Refund)
        async def refund(self, refund: Refund) -> None:
            seen.append(("actor", refund))

    async with system(routers=[router]) as sys:
        await sys.spawn(Refunds)
        envelope = await sys.emit("functions.local.refund", "o-1", amount=4.5)
        await sys.drain()
    assert envelope.data == Refund("o-1", 4.5)
    assert sorted(map(repr, seen)) == sorted(
        map(repr, [Refund("o-1", 4.5), ("actor", Refund("o-1", 4.5))])
    )


async def test_emit_of_a_registered_type_with_wrong_arguments_is_a_type_error() -> None:
    @event("functions.local.strict")
    class Strict:
        count: int

    async with system() as sys:
        with pytest.raises(TypeError, match=r"functions\.local\.strict"):
            await sys.emit("functions.local.strict", 1, 2, 3)


# -- each function is its own actor -------------------------------------------------------------


async def test_each_function_subscriber_is_its_own_actor() -> None:
    entered, opened, fast_done = anyio.Event(), anyio.Event(), anyio.Event()
    fast_seen: list[str] = []
    router = Router()

    @router.on(OrderCreated)
    async def slow(event: OrderCreated) -> None:
        entered.set()
        await opened.wait()

    @router.on(OrderCreated)
    async def fast(event: OrderCreated) -> None:
        fast_seen.append(event.order_id)
        if len(fast_seen) == 3:
            fast_done.set()

    async with system(routers=[router]) as sys:
        for order in ("a", "b", "c"):
            await sys.publish(OrderCreated(order))
        with anyio.fail_after(5):
            await entered.wait()
            await fast_done.wait()  # the slow one does not hold the fast one back
        stats = sys.stats()
        assert stats["slow"].depth == 2
        assert stats["fast"].processed == 3
        opened.set()
        await sys.drain()
        assert sys.stats()["slow"].processed == 3
    assert fast_seen == ["a", "b", "c"]


async def test_function_subscribers_have_their_own_counters_and_mailbox() -> None:
    entered, opened = anyio.Event(), anyio.Event()
    router = Router()

    @router.on(OrderCreated, mailbox=Mailbox(1, Overflow.DROP_NEWEST))
    async def tiny(event: OrderCreated) -> None:
        entered.set()
        await opened.wait()

    @router.on(OrderCreated)
    async def failing(event: OrderCreated) -> None:
        raise ValueError(event.order_id)

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("a"))
        with anyio.fail_after(5):
            await entered.wait()
        await sys.publish(OrderCreated("b"))
        await sys.publish(OrderCreated("c"))  # dropped by tiny's mailbox only
        opened.set()
        await sys.drain()
        stats = sys.stats()
    assert (stats["tiny"].processed, stats["tiny"].dropped, stats["tiny"].failed) == (2, 1, 0)
    assert (stats["failing"].processed, stats["failing"].dropped, stats["failing"].failed) == (
        3,
        0,
        3,
    )


async def test_function_names_are_made_unique() -> None:
    def make() -> Any:
        async def handler(event: OrderCreated) -> None:
            pass

        return handler

    first, second = Router(), Router()
    first.on(OrderCreated)(make())
    second.on(OrderCreated)(make())  # another function with the same name

    async with system(routers=[first, second]) as sys:
        await sys.publish(OrderCreated("o"))
        await sys.drain()
        stats = sys.stats()
    assert len(stats) == 2
    assert all("handler" in name for name in stats)
    assert all(s.processed == 1 for s in stats.values())


async def test_spawn_of_a_handle_function() -> None:
    seen: list[Any] = []

    @handle(OrderCreated)
    async def on_created(event: OrderCreated) -> None:
        seen.append(event)

    async with system() as sys:
        ref = await sys.spawn(on_created, name="created")
        await sys.publish(OrderCreated("o-1"))
        await sys.drain()
        assert ref.stats.processed == 1
    assert seen == [OrderCreated("o-1")]


async def test_ask_a_function_actor() -> None:
    @handle(OrderCreated)
    def amount(event: OrderCreated) -> float:
        return event.amount * 2

    async with system() as sys:
        ref = await sys.spawn(amount)
        with anyio.fail_after(5):
            assert await ref.ask(OrderCreated("o", 2.5)) == 5.0


async def test_unannotated_function_receives_a_class_event_whole() -> None:
    seen: list[Any] = []
    router = Router()

    @router.on(OrderCreated)
    async def on_created(event):  # type: ignore[no-untyped-def]
        seen.append(event)

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o-1", 2.0))
        await sys.drain()
    assert seen == [OrderCreated("o-1", 2.0)]


async def test_function_without_parameters_is_called_for_each_event() -> None:
    calls: list[str] = []
    router = Router()

    @router.on("functions.tick")
    async def tick() -> None:
        calls.append("tick")

    async with system(routers=[router]) as sys:
        await sys.emit("functions.tick")
        await sys.emit("functions.tick", 1)
        await sys.drain()
    assert calls == ["tick", "tick"]


async def test_router_functions_receive_system_started() -> None:
    seen: list[Any] = []
    router = Router()

    @router.on(SystemStarted)
    async def started(event: SystemStarted) -> None:
        seen.append(event)

    async with system("shop", routers=[router]) as sys:
        await sys.drain()
    assert seen == [SystemStarted("shop")]


async def test_router_inline_sync_function_runs_on_the_loop() -> None:
    threads: list[int] = []
    router = Router()

    @router.on(OrderCreated, inline=True)
    def on_created(event: OrderCreated) -> None:
        threads.append(threading.get_ident())

    async with system(routers=[router]) as sys:
        await sys.publish(OrderCreated("o"))
        await sys.drain()
    assert threads == [threading.get_ident()]


# -- @publish_result ----------------------------------------------------------------------------


class Totals(Actor):
    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    @handle(Total)
    async def total(self, total: Total) -> None:
        self.seen.append(total)


async def test_publish_result_publishes_the_returned_event() -> None:
    @publish_result(Total)
    async def compute(a: float, b: float) -> Total:
        return Total(a + b)

    seen: list[Any] = []
    async with system() as sys:
        await sys.spawn(Totals, seen)
        assert await compute(1, 2) == Total(3)
        await sys.drain()
    assert seen == [Total(3)]


async def test_publish_result_builds_the_class_from_a_mapping_or_a_value() -> None:
    @publish_result(Total)
    async def from_mapping() -> dict[str, float]:
        return {"value": 1.5}

    @publish_result(Total)
    async def from_value() -> float:
        return 2.5

    seen: list[Any] = []
    async with system() as sys:
        await sys.spawn(Totals, seen)
        assert await from_mapping() == {"value": 1.5}
        assert await from_value() == 2.5
        await sys.drain()
    assert seen == [Total(1.5), Total(2.5)]


async def test_publish_result_condition() -> None:
    @publish_result(Total, condition=lambda result: result.value > 0)
    async def compute(value: float) -> Total:
        return Total(value)

    seen: list[Any] = []
    async with system() as sys:
        await sys.spawn(Totals, seen)
        await compute(-1)
        await compute(5)
        await sys.drain()
    assert seen == [Total(5)]


async def test_publish_result_with_a_registered_type_string() -> None:
    @event("functions.local.score")
    class Score:
        points: int

    @publish_result("functions.local.score")
    async def play() -> int:
        return 7

    seen: list[Any] = []
    async with system() as sys:

        @sys.on(Score)
        async def on_score(score: Score) -> None:
            seen.append(score)

        await play()
        await sys.drain()
    assert seen == [Score(7)]


async def test_publish_result_with_an_unregistered_type_string_emits_the_result() -> None:
    @publish_result("functions.computed")
    async def compute() -> int:
        return 42

    seen: list[Any] = []
    async with system() as sys:

        @sys.on("functions.computed")
        async def on_computed(value):  # type: ignore[no-untyped-def]
            seen.append(value)

        await compute()
        await sys.drain()
    assert seen == [42]


async def test_publish_result_uses_the_current_system_or_the_given_one() -> None:
    seen_one: list[Any] = []
    seen_two: list[Any] = []
    async with system("one") as one, system("two") as two:
        await one.spawn(Totals, seen_one)
        await two.spawn(Totals, seen_two)

        @publish_result(Total, system=one)
        async def to_one() -> Total:
            return Total(1)

        @publish_result(Total)
        async def to_current() -> Total:
            return Total(2)

        assert current_system() is two  # the innermost `async with`
        await to_one()
        await to_current()
        await one.drain()
        await two.drain()
    assert seen_one == [Total(1)]
    assert seen_two == [Total(2)]


@pytest.mark.parametrize(
    "beside_another", [False, True], ids=["alone", "beside another: the handler's own wins"]
)
async def test_publish_result_from_a_handler_uses_the_handler_system(beside_another: bool) -> None:
    """Two systems in one program (as with an in-memory transport) included."""
    seen_a: list[Any] = []
    seen_b: list[Any] = []

    @publish_result(Total)
    async def compute(order: OrderCreated) -> Total:
        return Total(order.amount)

    class Orders(Actor):
        @handle(OrderCreated)
        async def created(self, order: OrderCreated) -> None:
            await compute(order)

    async with system("a") as a, contextlib.AsyncExitStack() as stack:
        await a.spawn(Orders)
        await a.spawn(Totals, seen_a)
        running = [a]
        if beside_another:
            b = await stack.enter_async_context(system("b"))
            await b.spawn(Totals, seen_b)
            assert current_system() is b  # the innermost `async with`
            running.append(b)
        await a.publish(OrderCreated("o", 8.0))
        for each in running:
            await each.drain()
    assert seen_a == [Total(8.0)]
    assert seen_b == []


async def test_publish_result_outside_a_system_is_a_lookup_error() -> None:
    @publish_result(Total)
    async def compute() -> Total:
        return Total(1)

    with pytest.raises(LookupError):
        await compute()


async def test_publish_result_on_a_sync_function_called_from_a_sync_handler() -> None:
    @publish_result(Total)
    def compute(order: OrderCreated) -> Total:
        return Total(order.amount)

    seen: list[Any] = []

    class Orders(Actor):
        @handle(OrderCreated)
        def created(self, order: OrderCreated) -> None:  # in a worker thread
            compute(order)

    async with system() as sys:
        await sys.spawn(Orders)
        await sys.spawn(Totals, seen)
        await sys.publish(OrderCreated("o", 3.0))
        await sys.drain()
    assert seen == [Total(3.0)]


async def test_publish_result_on_a_sync_function_called_on_the_loop_is_a_clear_error() -> None:
    @publish_result(Total)
    def compute() -> Total:
        return Total(1)

    async with system():
        with pytest.raises(RuntimeError, match="async"):
            compute()


# -- @publish_call ----------------------------------------------------------------------------


async def test_publish_call_after_publishes_the_arguments_and_result() -> None:
    seen: list[Any] = []

    @publish_call("functions.reserved", timing="after")
    async def reserve(sku: str, quantity: int = 1) -> str:
        return f"{sku}x{quantity}"

    async with system() as sys:

        @sys.on("functions.reserved")
        def on_reserved(sku, quantity, result):  # type: ignore[no-untyped-def]
            seen.append((sku, quantity, result))

        assert await reserve("a", quantity=2) == "ax2"
        await reserve("b")  # defaults are part of the bound arguments
        await sys.drain()
    assert seen == [("a", 2, "ax2"), ("b", 1, "bx1")]


async def test_publish_call_before_publishes_the_arguments_first() -> None:
    order: list[str] = []

    async with system() as sys:

        @publish_call("functions.calling", timing="before")
        async def work(job: str) -> None:
            await sys.drain()  # the "before" event is already waiting, or handled
            order.append(f"work {job}")

        @sys.on("functions.calling")
        async def on_calling(**arguments):  # type: ignore[no-untyped-def]
            order.append(f"event {arguments}")

        await work("j")
        await sys.drain()
    assert order == ["event {'job': 'j'}", "work j"]


async def test_publish_call_both_publishes_before_and_after_with_subjects() -> None:
    seen: list[tuple[str | None, dict[str, Any]]] = []

    @publish_call("functions.both", timing="both")
    async def work(job: str) -> int:
        return len(job)

    async with system() as sys:

        @sys.on("functions.both")
        async def on_both(envelope: Envelope) -> None:
            seen.append((envelope.subject, envelope.data["kwargs"]))

        await work("abc")
        await sys.drain()
    assert seen == [("before", {"job": "abc"}), ("after", {"job": "abc", "result": 3})]


async def test_publish_call_with_an_explicit_system() -> None:
    seen: list[Any] = []
    async with system("target") as target:

        @target.on("functions.explicit")
        async def on_explicit(**arguments):  # type: ignore[no-untyped-def]
            seen.append(arguments)

        @publish_call("functions.explicit", timing="after", system=target)
        async def work(x: int) -> int:
            return x * 2

        async with system("other"):
            await work(4)
        await target.drain()
    assert seen == [{"x": 4, "result": 8}]


def test_publish_call_rejects_an_unknown_timing() -> None:
    with pytest.raises(ValueError, match="timing"):
        publish_call("functions.bad", timing="during")  # type: ignore[arg-type]


# -- current_system ---------------------------------------------------------------------------


async def test_current_system_inside_and_outside() -> None:
    with pytest.raises(LookupError):
        current_system()
    async with system() as sys:
        assert current_system() is sys
    with pytest.raises(LookupError):
        current_system()


async def test_current_system_inside_a_handler() -> None:
    found: list[Any] = []

    class Finder(Actor):
        @handle(OrderCreated)
        async def created(self, event: OrderCreated) -> None:
            found.append(current_system())

    async with system("outer") as outer, system("inner") as inner:
        await outer.spawn(Finder)
        await outer.publish(OrderCreated("o"))
        await outer.drain()
        assert current_system() is inner
    assert found == [outer]


async def test_emit_spreads_arguments_into_builtin_annotated_parameters() -> None:
    seen: list[tuple[str, str, float]] = []
    lines: list[list[str]] = []
    async with system() as sys:

        @sys.on("functions.paid")
        def record(payment_id: str, status: str, amount: float) -> None:
            seen.append((payment_id, status, amount))

        @sys.on("functions.lines")
        async def show(items: list[str]) -> None:
            lines.append(items)

        await sys.emit("functions.paid", "p-1", "success", 99.99)
        await sys.emit("functions.lines", ["a", "b"])
        await sys.drain()
    assert seen == [("p-1", "success", 99.99)]
    assert lines == [["a", "b"]]


async def test_request_prefers_a_class_handler_over_a_matching_glob() -> None:
    @event("functions.price")
    class Price:
        item: str

    class Auditor(Actor):
        @handle("functions.*")
        async def audit(self, envelope: Envelope) -> str:
            return "audit"

    class Pricer(Actor):
        @handle()
        async def price(self, query: Price) -> int:
            return 42

    async with system() as sys:
        await sys.spawn(Auditor)  # spawned first: first in the route
        await sys.spawn(Pricer)
        assert await sys.request(Price("book")) == 42
