"""The dispatcher (`actorbus._dispatch`): routes, their cache, and delivery to mailboxes.

The cells here are built and subscribed but never started: no loop takes from their
mailboxes, so what the dispatcher queued stays there to be read, and a full mailbox stays
full until the test takes a message out (`MailboxQueue.get_nowait`, as a loop would).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actorbus import (
    Actor,
    ActorStopped,
    Envelope,
    Mailbox,
    MailboxFull,
    Outcome,
    Overflow,
    event,
    handle,
)
from actorbus._actors import Actors
from actorbus._cell import Cell, Spawn
from actorbus._dispatch import REPLY_TO, TO_GROUP, Dispatcher
from actorbus._handlers import ANY_GROUP
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus._message import Message
from actorbus._runtime import Runtime

pytestmark = pytest.mark.anyio


@event("dispatch.order")
class Order:
    n: int


@event("dispatch.refund")
class Refund(Order):
    pass


@event("dispatch.shipped")
class Shipped:
    n: int


class Orders(Actor):
    @handle(Order)
    async def on_order(self, order: Order) -> None:
        pass


class Everything(Actor):
    @handle("dispatch.*")
    async def on_any(self, envelope: Envelope) -> None:
        pass


class Shipping(Actor):
    @handle(Shipped)
    async def on_shipped(self, shipped: Shipped) -> None:
        pass


class Workers(Orders):
    group = "workers"


class Auditors(Orders):
    group = "auditors"


class ShippingGroup(Shipping):
    group = "shipping"


class Nothing(Actor):
    """No handler: never subscribed."""


class Local:
    """A dispatcher with cells that are subscribed but never started."""

    def __init__(self) -> None:
        self.runtime = Runtime("dispatch", None, shutdown_timeout=1.0, max_dead_letters=100)
        self.dispatcher = Dispatcher(self.runtime)
        self.actors = Actors(self.runtime, self.dispatcher, None)

    def cell(
        self,
        target: type[Actor],
        name: str | None = None,
        mailbox: Mailbox | None = None,
        *,
        subscribe: bool = True,
    ) -> Cell:
        cell = self.actors.new_cell(Spawn(target, name=name, mailbox=mailbox))
        if subscribe:
            self.dispatcher.subscribe(cell)
        return cell


def order(n: int, **headers: str) -> Envelope:
    return Envelope(type="dispatch.order", data=Order(n), source="elsewhere", headers=headers)


def queued(cell: Cell) -> list[Any]:
    """The events waiting in `cell`'s mailbox, oldest first."""
    return [
        item.data if type(item) is Envelope else item.event if type(item) is Message else item
        for item in cell.queue.items
    ]


def one_full(local: Local, target: type[Actor], overflow: Overflow, name: str) -> Cell:
    """A subscribed cell whose mailbox of one is full."""
    cell = local.cell(target, name, Mailbox(1, overflow))
    assert cell.queue.append(Order(-1))
    local.runtime.inflight += 1
    return cell


# -- routes and their cache ---------------------------------------------------------------


def test_a_route_is_resolved_once_and_kept() -> None:
    local = Local()
    orders, everything = local.cell(Orders), local.cell(Everything)
    local.cell(Shipping)
    route = local.dispatcher.route(Order, "dispatch.order")
    assert route.broadcast == (orders, everything)
    assert local.dispatcher.route(Order, "dispatch.order") is route
    assert local.dispatcher.route(Refund, "dispatch.refund").broadcast == (orders, everything)
    assert local.dispatcher.route(None, "dispatch.order").broadcast == (everything,)  # a glob
    assert not local.dispatcher.route(None, "other.type")


def test_subscribing_drops_only_the_routes_the_new_cell_is_in() -> None:
    local = Local()
    orders = local.cell(Orders)
    order_route = local.dispatcher.route(Order, "dispatch.order")
    shipped_route = local.dispatcher.route(Shipped, "dispatch.shipped")
    generation = local.dispatcher.generation
    shipping = local.cell(Shipping)
    assert local.dispatcher.generation == generation + 1
    assert local.dispatcher.route(Order, "dispatch.order") is order_route  # kept
    assert local.dispatcher.route(Shipped, "dispatch.shipped").broadcast == (shipping,)
    assert shipped_route.broadcast == ()
    local.cell(Nothing)  # no handler: nothing changes
    assert local.dispatcher.generation == generation + 1
    assert len(local.dispatcher) == 2
    assert local.dispatcher.route(Order, "dispatch.order").broadcast == (orders,)


def test_unsubscribing_drops_only_the_routes_the_cell_was_in() -> None:
    local = Local()
    orders, everything, shipping = local.cell(Orders), local.cell(Everything), local.cell(Shipping)
    order_route = local.dispatcher.route(Order, "dispatch.order")
    shipped_route = local.dispatcher.route(Shipped, "dispatch.shipped")
    local.dispatcher.unsubscribe(orders)
    assert local.dispatcher.route(Shipped, "dispatch.shipped") is shipped_route
    assert local.dispatcher.route(Order, "dispatch.order").broadcast == (everything,)
    assert order_route.broadcast == (orders, everything)  # the dropped route is not changed
    local.dispatcher.unsubscribe(everything)
    local.dispatcher.unsubscribe(everything)  # twice: nothing more happens
    assert not local.dispatcher.route(Order, "dispatch.order")
    assert local.dispatcher.route(Shipped, "dispatch.shipped").broadcast == (shipping,)
    assert len(local.dispatcher) == 1


def test_groups_and_broadcasting_follow_the_subscriptions() -> None:
    local = Local()
    assert local.dispatcher.groups() == frozenset()
    assert not local.dispatcher.broadcasting()
    worker = local.cell(Workers)
    assert local.dispatcher.groups() == {"workers"}
    assert not local.dispatcher.broadcasting()
    orders = local.cell(Orders)
    local.cell(Auditors)
    assert local.dispatcher.groups() == {"workers", "auditors"}
    assert local.dispatcher.broadcasting()
    local.dispatcher.unsubscribe(orders)
    local.dispatcher.unsubscribe(worker)
    assert local.dispatcher.groups() == {"auditors"}
    assert not local.dispatcher.broadcasting()


# -- one member per group --------------------------------------------------------------------


def test_a_group_takes_turns_and_a_key_picks_one_member_always() -> None:
    local = Local()
    members = tuple(local.cell(Workers, f"w{n}") for n in range(3))
    route = local.dispatcher.route(Order, "dispatch.order")
    assert route.groups == {"workers": members}
    assert [route.pick("workers") for _ in range(6)] == [*members, *members]
    for key in ("a", "b", "order-17", "ü"):
        member = members[partition_of(key, 3)]
        assert [route.pick("workers", key) for _ in range(3)] == [member] * 3
    assert len({route.pick("workers", f"k{n}") for n in range(30)}) == 3
    assert route.pick("nobody") is None
    assert route.pick("nobody", "a") is None


def test_targets_of_each_kind_of_delivery() -> None:
    local = Local()
    broadcast = local.cell(Orders, "broadcast")
    workers = [local.cell(Workers, f"w{n}") for n in range(2)]
    auditor = local.cell(Auditors, "auditor")
    route = local.dispatcher.route(Order, "dispatch.order")
    everyone = route.targets(ANY_GROUP)
    assert everyone == [(broadcast, None), (workers[0], "workers"), (auditor, "auditors")]
    assert route.targets(ANY_GROUP)[1] == (workers[1], "workers")  # the next in turn
    assert route.targets(None) == [(broadcast, None)]
    assert route.targets("auditors") == [(auditor, "auditors")]
    assert route.targets("workers", "k") == [(workers[partition_of("k", 2)], "workers")]
    assert route.targets("nobody") == []
    assert route.targets(object()) == []


def test_a_forwarding_member_hands_each_key_to_the_cell_of_the_key() -> None:
    local = Local()
    shard = local.cell(Workers, "shard")
    entities = {key: local.cell(Orders, f"entity-{key}", subscribe=False) for key in "ab"}
    asked: list[str | None] = []

    def forward(key: str | None) -> Cell:
        asked.append(key)
        return entities[key or "a"]

    shard.forward = forward
    route = local.dispatcher.route(Order, "dispatch.order")
    assert route.pick("workers", "b") is entities["b"]
    assert route.targets(ANY_GROUP, "a") == [(entities["a"], "workers")]
    assert route.pick("workers") is entities["a"]
    assert asked == ["b", "a", None]


# -- deliver -----------------------------------------------------------------------------------


async def test_deliver_queues_at_once_when_every_mailbox_has_room() -> None:
    local = Local()
    cells = [local.cell(Orders), local.cell(Everything)]
    envelope = order(1)
    assert local.dispatcher.deliver(envelope, envelope.data, Order) is None  # no coroutine
    assert [list(cell.queue.items) for cell in cells] == [[envelope], [envelope]]  # shared
    assert local.runtime.inflight == 2
    # Data that is not the envelope's own (converted from a dict) travels in a Message.
    raw = Envelope(type="dispatch.order", data={"n": 2}, source="elsewhere")
    assert local.dispatcher.deliver(raw, Order(2), Order) is None
    assert [queued(cell) for cell in cells] == [[Order(1), Order(2)]] * 2
    assert cells[0].queue.items[1] is cells[1].queue.items[1]
    assert local.runtime.inflight == 4


async def test_deliver_waits_for_room_in_a_full_block_mailbox() -> None:
    local = Local()
    first = local.cell(Orders, "first")
    full = one_full(local, Orders, Overflow.BLOCK, "full")
    last = local.cell(Orders, "last")
    rest = local.dispatcher.deliver(order(1), Order(1), Order)
    assert rest is not None
    assert queued(first) == [Order(1)]  # queued before waiting
    assert queued(last) == []
    done = anyio.Event()

    async def finish() -> None:
        await rest
        done.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(finish)
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        assert full.queue.get_nowait() == Order(-1)  # the loop takes one: room again
        with anyio.fail_after(5):
            await done.wait()
    assert [queued(cell) for cell in (first, full, last)] == [[Order(1)]] * 3
    assert local.runtime.inflight == 4


async def test_deliver_to_groups_returns_the_rest_to_await() -> None:
    local = Local()
    broadcast = local.cell(Orders, "broadcast")
    workers = [local.cell(Workers, f"w{n}") for n in range(2)]
    for n in range(4):
        rest = local.dispatcher.deliver(order(n), Order(n), Order)
        assert rest is not None
        await rest
    assert queued(broadcast) == [Order(0), Order(1), Order(2), Order(3)]
    assert [queued(worker) for worker in workers] == [[Order(0), Order(2)], [Order(1), Order(3)]]
    assert all(item.group == "workers" for worker in workers for item in worker.queue.items)
    keyed = [order(n, **{PARTITION_KEY: "k"}) for n in (4, 5)]
    for envelope in keyed:
        await local.dispatcher.deliver(envelope, envelope.data, Order)  # type: ignore[misc]
    member = workers[partition_of("k", 2)]
    assert queued(member)[-2:] == [Order(4), Order(5)]
    assert local.runtime.inflight == 4 + 4 + 2 + 2


async def test_a_full_fail_mailbox_raises_after_the_others_got_the_event() -> None:
    local = Local()
    full = one_full(local, Orders, Overflow.FAIL, "full")
    after = local.cell(Orders, "after")
    worker = local.cell(Workers, "worker")
    rest = local.dispatcher.deliver(order(1), Order(1), Order)
    assert rest is not None
    with pytest.raises(MailboxFull, match="'full'"):
        await rest
    assert queued(full) == [Order(-1)]
    assert queued(after) == queued(worker) == [Order(1)]
    [letter] = local.runtime.dead_letters
    assert (letter.actor, letter.envelope.data) == ("full", Order(1))
    assert isinstance(letter.error, MailboxFull)
    assert local.runtime.inflight == 3


async def test_a_target_that_stopped_meanwhile_gets_a_dead_letter_and_the_others_the_event() -> (
    None
):
    local = Local()
    full = one_full(local, Orders, Overflow.BLOCK, "stopping")
    worker = local.cell(Workers, "worker")
    rest = local.dispatcher.deliver(order(1), Order(1), Order)
    assert rest is not None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: rest)
        await anyio.wait_all_tasks_blocked()
        full.queue.close()  # it stops while the delivery waits for room
    assert queued(worker) == [Order(1)]
    [letter] = local.runtime.dead_letters
    assert (letter.actor, letter.envelope.data) == ("stopping", Order(1))
    assert isinstance(letter.error, ActorStopped)


# -- offer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overflow", "error"),
    [(Overflow.BLOCK, MailboxFull), (Overflow.FAIL, MailboxFull), ("stopped", ActorStopped)],
)
async def test_offer_never_waits_a_mailbox_without_room_drops_the_event(
    overflow: Overflow | str, error: type[Exception]
) -> None:
    local = Local()
    if overflow == "stopped":
        refusing = local.cell(Orders, "refusing")
        refusing.queue.close()
    else:
        refusing = one_full(local, Orders, overflow, "refusing")  # type: ignore[arg-type]
    others = [local.cell(Orders, "other"), local.cell(Workers, "worker")]
    envelope = order(1)
    local.dispatcher.offer(envelope.data, envelope, Order, envelope.type)
    assert [queued(cell) for cell in others] == [[Order(1)], [Order(1)]]
    [letter] = local.runtime.dead_letters
    assert (letter.actor, letter.envelope.id) == ("refusing", envelope.id)
    assert isinstance(letter.error, error)


# -- deliver_received -----------------------------------------------------------------------


async def test_a_received_event_goes_to_the_broadcast_cells_or_one_member() -> None:
    local = Local()
    broadcast = local.cell(Orders, "broadcast")
    workers = [local.cell(Workers, f"w{n}") for n in range(2)]

    def fence() -> bool:
        return True

    to_all = await local.dispatcher.deliver_received(order(1), Order(1), Order, None, fence)
    assert (to_all.pending, to_all.fence) == (1, fence)
    to_one = await local.dispatcher.deliver_received(order(2), Order(2), Order, "workers")
    keyed = order(3, **{PARTITION_KEY: "k"})
    by_key = await local.dispatcher.deliver_received(keyed, Order(3), Order, "workers")
    assert to_one.pending == by_key.pending == 1
    assert queued(broadcast) == [Order(1)]
    first, second = workers
    assert queued(first) == [Order(2)] + ([Order(3)] if partition_of("k", 2) == 0 else [])
    assert queued(second) == ([Order(3)] if partition_of("k", 2) == 1 else [])
    assert [item.tracker for item in broadcast.queue.items] == [to_all]
    assert local.runtime.inflight == 3


@pytest.mark.parametrize(
    ("to", "delivered"),
    [("workers", True), ("auditors", False)],
    ids=["its own group", "another group"],
)
async def test_an_event_addressed_to_a_group_reaches_that_group_only(
    to: str, delivered: bool
) -> None:
    local = Local()
    worker, auditor = local.cell(Workers), local.cell(Auditors)
    broadcast = local.cell(Orders)
    envelope = order(1, **{TO_GROUP: to})
    for group in ("workers", None):
        tracker = await local.dispatcher.deliver_received(envelope, Order(1), Order, group)
        assert tracker.pending == (1 if delivered and group == "workers" else 0)
        assert tracker.outcome is Outcome.HANDLED
    assert queued(worker) == ([Order(1)] if delivered else [])
    assert queued(auditor) == queued(broadcast) == []


@pytest.mark.parametrize(
    ("targets", "answering"),
    [
        ((Everything, Orders), "Orders"),
        ((Everything, Everything), "Everything"),
    ],
    ids=["a handler naming the class", "else the first"],
)
async def test_a_request_goes_to_the_one_handler_that_answers_it(
    targets: tuple[type[Actor], ...], answering: str
) -> None:
    local = Local()
    cells = [local.cell(target) for target in targets]
    request = order(1, **{REPLY_TO: "requester"})
    tracker = await local.dispatcher.deliver_received(request, Order(1), Order, None)
    assert tracker.pending == 1
    assert [cell.name for cell in cells if cell.queue.items] == [answering]


@pytest.mark.parametrize(
    ("group", "outcome"),
    [("nobody", Outcome.NOT_HANDLED), ("shipping", Outcome.HANDLED)],
    ids=["a group with no member here", "a group here that does not take the type"],
)
async def test_a_group_without_a_target_here_leaves_the_event_or_has_handled_it(
    group: str, outcome: Outcome
) -> None:
    local = Local()
    local.cell(Orders)
    local.cell(ShippingGroup)
    tracker = await local.dispatcher.deliver_received(order(1), Order(1), Order, group)
    assert tracker.pending == 0
    assert tracker.outcome is outcome


async def test_a_received_event_waits_for_room_and_a_stopped_target_dead_letters_it() -> None:
    local = Local()
    full = one_full(local, Orders, Overflow.BLOCK, "full")
    stopped = local.cell(Orders, "stopped")
    one_full(local, Orders, Overflow.FAIL, "failing")
    stopped.queue.close()
    received: list[Any] = []

    async def receive() -> None:
        received.append(await local.dispatcher.deliver_received(order(1), Order(1), Order, None))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        assert received == []
        full.queue.get_nowait()
    [tracker] = received
    assert queued(full) == [Order(1)]
    assert sorted((letter.actor, type(letter.error)) for letter in local.runtime.dead_letters) == [
        ("failing", MailboxFull),
        ("stopped", ActorStopped),
    ]
    # Each dead letter finished its part of the tracker; the queued one is left.
    assert tracker.pending == 1
