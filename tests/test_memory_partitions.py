"""MemoryTransport with partitions: ownership, per-key order, rebalancing, a crash."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actorbus import Actor, ActorSystem, Scope, event, handle
from actorbus.testing import MemoryBroker, MemoryTransport, autojump_backends

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

KEYS = [f"acc-{n}" for n in range(12)]


@event("mp.deposited", scope=Scope.APP, key="account")
class Deposited:
    account: str
    seq: int


class Ledger(Actor):
    group = "ledger"

    def __init__(self, log: list[tuple[str, str, int]], instance: str) -> None:
        self.log = log
        self.instance = instance

    @handle()
    async def deposit(self, event: Deposited) -> None:
        self.log.append((self.instance, event.account, event.seq))
        await anyio.sleep(0.001)


@contextlib.asynccontextmanager
async def member(
    broker: MemoryBroker, name: str, log: list[tuple[str, str, int]], partitions: int = 8
) -> AsyncIterator[tuple[ActorSystem, MemoryTransport]]:
    transport = broker.transport(instance=name, partitions=partitions, lease=5.0)
    async with ActorSystem("bank", transport=transport, shutdown_timeout=30.0) as system:
        await system.spawn(Ledger, log, name)
        yield system, transport


async def publish_rounds(system: ActorSystem, first: int, last: int) -> None:
    for seq in range(first, last):
        for account in KEYS:
            await system.publish(Deposited(account, seq))


def per_key(log: list[tuple[str, str, int]]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for _, account, seq in log:
        found[account].append(seq)
    return found


def assert_in_order_without_gaps(log: list[tuple[str, str, int]], rounds: int) -> None:
    for account, seqs in per_key(log).items():
        first_seen = list(dict.fromkeys(seqs))  # a redelivered event counts once
        assert first_seen == list(range(rounds)), account
        assert seqs == sorted(seqs), account  # never an older event after a newer one


async def test_partitions_are_shared_within_one_and_every_one_is_owned() -> None:
    broker = MemoryBroker()
    log: list[tuple[str, str, int]] = []
    async with (
        member(broker, "a", log) as (_, a),
        member(broker, "b", log) as (_, b),
        member(broker, "c", log) as (_, c),
    ):
        await broker.drain()
        owned = [t.owned("ledger") for t in (a, b, c)]
        assert sorted(len(o) for o in owned) == [2, 3, 3]
        assert frozenset().union(*owned) == frozenset(range(8))
        assert sum(len(o) for o in owned) == 8


async def test_a_member_joining_and_one_leaving_keep_per_key_order_and_lose_nothing() -> None:
    broker = MemoryBroker()
    log: list[tuple[str, str, int]] = []
    async with member(broker, "a", log) as (system, _):
        await publish_rounds(system, 0, 10)
        async with member(broker, "b", log) as (_, b):
            await publish_rounds(system, 10, 20)
            await broker.drain()
            assert b.owned("ledger")  # b took its share
        await publish_rounds(system, 20, 30)  # b left: a owns everything again
        await broker.drain()
    assert_in_order_without_gaps(log, 30)
    assert len(log) == 30 * len(KEYS)  # graceful moves: no redelivery
    assert {instance for instance, _, _ in log} == {"a", "b"}


@pytest.fixture(params=autojump_backends(), ids=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


async def test_a_crashed_members_partitions_are_taken_over_after_its_lease() -> None:
    broker = MemoryBroker()
    log: list[tuple[str, str, int]] = []
    async with member(broker, "a", log) as (system, _), member(broker, "b", log) as (_, b):
        await publish_rounds(system, 0, 10)
        await anyio.sleep(0.002)  # some handled, some waiting
        owned = b.owned("ledger")
        b.crash()
        await publish_rounds(system, 10, 20)
        await broker.drain()
        assert len(per_key([e for e in log if e[0] == "a"])) < len(KEYS)  # b's keys wait
        await anyio.sleep(5.0)  # b's lease runs out: its partitions are taken over
        await broker.drain()
        assert len(per_key([e for e in log if e[0] == "a"])) == len(KEYS)
    moved = {account for account in KEYS if any(e[1] == account and e[0] == "b" for e in log)}
    assert moved  # b had keys, and a handles them now
    assert owned
    assert_in_order_without_gaps(log, 20)


async def test_an_instance_with_another_number_of_partitions_is_refused() -> None:
    broker = MemoryBroker()
    log: list[tuple[str, str, int]] = []
    async with member(broker, "a", log, partitions=8):
        with pytest.raises(ValueError, match="must use the same number"):
            async with member(broker, "b", log, partitions=4):
                pass


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_partitions_must_be_a_positive_integer(bad: Any) -> None:
    with pytest.raises(ValueError, match="partitions must be an integer >= 1"):
        MemoryTransport(partitions=bad)
