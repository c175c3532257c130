"""Event keys: `@event(key=...)`, `publish(key=...)`, their partition, and per-key order."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel
import pytest

from actorbus import Actor, ActorSystem, Envelope, Scope, event, handle
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus._message import Message, Outcome, Tracker
from actorbus.testing import MemoryBroker

pytestmark = pytest.mark.anyio


@event("keys.deposited", scope=Scope.APP, key="account_id")
class Deposited:
    account_id: str
    amount: int


@event("keys.shipped", key=lambda shipped: f"{shipped.region}/{shipped.order}")
class Shipped:
    region: str
    order: int


@event("keys.unkeyed")
class Unkeyed:
    n: int


# -- the partition function: its values must never change ---------------------------------


@pytest.mark.parametrize(
    ("key", "partitions", "expected"),
    [
        ("acc-42", 8, 0),
        ("acc-42", 16, 8),
        ("order-1", 2, 1),
        ("order-1", 8, 7),
        ("order-1", 16, 15),
        ("ü-key", 8, 4),
        ("anything", 1, 0),
    ],
)
def test_the_partition_of_a_key_is_crc32_of_its_utf8_modulo_the_partitions(
    key: str, partitions: int, expected: int
) -> None:
    assert partition_of(key, partitions) == expected


# -- where keys come from ------------------------------------------------------------------


async def test_the_key_travels_as_the_partitionkey_extension() -> None:
    async with ActorSystem("keys") as system:
        by_field = await system.publish(Deposited("acc-42", 10))
        by_function = await system.publish(Shipped("eu", 7))
        overridden = await system.publish(Deposited("acc-42", 10), key="acc-7")
        given = await system.publish(Unkeyed(1), key=12)  # type: ignore[arg-type]
        none = await system.publish(Unkeyed(2))
    assert by_field.headers[PARTITION_KEY] == "acc-42"
    assert by_function.headers[PARTITION_KEY] == "eu/7"
    assert overridden.headers[PARTITION_KEY] == "acc-7"
    assert given.headers[PARTITION_KEY] == "12"
    assert PARTITION_KEY not in none.headers
    assert by_field.to_cloudevent()[PARTITION_KEY] == "acc-42"


async def test_a_key_survives_the_wire() -> None:
    broker = MemoryBroker()
    seen: list[Envelope] = []

    @handle(Deposited)
    async def record(envelope: Envelope) -> None:
        seen.append(envelope)

    async with ActorSystem("keys", transport=broker.transport()) as system:
        await system.spawn(record)
        await system.publish(Deposited("acc-9", 1))
        await broker.drain()
    assert [e.headers[PARTITION_KEY] for e in seen] == ["acc-9"]


def test_a_key_naming_no_field_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="has no field 'acount_id'"):

        @event("keys.typo", key="acount_id")
        class Typo:
            account_id: str


def test_a_key_that_is_neither_a_name_nor_a_function_is_refused() -> None:
    with pytest.raises(TypeError, match="field name or a function"):
        event("keys.bad", key=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event_obj", "key", "error", "match"),
    [
        (Deposited(None, 1), None, TypeError, "its field 'account_id'"),  # type: ignore[arg-type]
        (Deposited("", 1), None, ValueError, "1 to 1024 characters"),
        (Unkeyed(1), 1.5, TypeError, r"publish\(key=...\) must be a string"),
        (Unkeyed(1), True, TypeError, "must be a string"),
    ],
)
async def test_a_bad_key_is_a_clear_error_and_nothing_is_published(
    event_obj: object, key: Any, error: type[Exception], match: str
) -> None:
    seen: list[object] = []

    @handle(Deposited, Unkeyed)
    async def record(event: object) -> None:
        seen.append(event)

    async with ActorSystem("keys") as system:
        await system.spawn(record)
        with pytest.raises(error, match=match):
            await system.publish(event_obj, key=key)
        await system.drain()
    assert seen == []


# -- per-key order inside one instance -----------------------------------------------------


class Teller(Actor):
    group = "tellers"

    def __init__(self, log: list[tuple[str, str, int]]) -> None:
        self.log = log

    @handle()
    async def deposit(self, event: Deposited) -> None:
        self.log.append((self.name, event.account_id, event.amount))
        await anyio.lowlevel.checkpoint()  # let the others run: order must hold anyway


async def test_the_events_of_one_key_go_to_one_member_of_a_local_group_in_order() -> None:
    log: list[tuple[str, str, int]] = []
    async with ActorSystem("keys") as system:
        for _ in range(4):
            await system.spawn(Teller, log)
        for amount in range(50):
            for account in ("a", "b", "c", "d", "e", "f"):
                await system.publish(Deposited(account, amount))
        await system.drain()
    members = {account: {name for name, acc, _ in log if acc == account} for account in "abcdef"}
    assert all(len(names) == 1 for names in members.values())
    assert len({next(iter(names)) for names in members.values()}) > 1  # the keys spread
    for account in "abcdef":
        assert [amount for _, acc, amount in log if acc == account] == list(range(50))


# -- a delivery whose partition is no longer this instance's is not handled ----------------


async def test_a_fenced_off_delivery_is_left_unhandled() -> None:
    seen: list[int] = []

    class Keeper(Actor):
        @handle()
        async def on(self, event: Unkeyed) -> None:
            seen.append(event.n)

    async with ActorSystem("keys") as system:
        ref = await system.spawn(Keeper)
        trackers: list[Tracker] = []
        for n, valid in ((1, True), (2, False), (3, True)):
            tracker = Tracker()
            tracker.fence = lambda valid=valid: valid
            trackers.append(tracker)
            envelope = Envelope(type="keys.unkeyed", data=Unkeyed(n), source="keys")
            await ref._cell.put(
                Message(Unkeyed(n), envelope, Unkeyed, envelope.type, None, tracker)
            )
        await system.drain()
    assert seen == [1, 3]
    assert [t.outcome for t in trackers] == [Outcome.HANDLED, Outcome.NOT_HANDLED, Outcome.HANDLED]
