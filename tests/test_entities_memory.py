"""Entities with durable state over the testing kit's `MemoryTransport` (SPEC §7).

Several instances in one process, as over Redis: an entity kind's group is owned one
partition at a time even with one partition, so each key has one live entity, in the
instance that owns its partition; states are committed on the broker with each
delivery, only while the instance owns the partition; a graceful leave hands the
entities over, a crash leaves them to the next owner after the lease, and each new
tenure has a greater fencing token, which the shard records as it builds an entity.
Virtual time on both backends.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest

from actorbus import Actor, ActorSystem, Scope, Sharding, event, handle
from actorbus._assignment import assign
from actorbus._keys import partition_of
from actorbus.testing import MemoryBroker, MemoryTransport, autojump_backends

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

KEYS = [f"acc-{n}" for n in range(12)]


@pytest.fixture(params=autojump_backends(), ids=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends, on virtual time."""
    return request.param


@event("memory.deposited", scope=Scope.APP, key="account")
class Deposited:
    account: str
    seq: int
    amount: int = 1


@event("memory.balance", scope=Scope.APP)
class GetBalance:
    pass


@attrs.define
class Ledger:
    amount: int = 0
    seqs: list[int] = attrs.Factory(list)


GROUP = "entity:MemAccount"
handled: list[tuple[str, str, int]] = []
"""(instance, key, seq) of every deposit handled, committed or not."""
names: dict[int, str] = {}
"""The instance name of each running system, by id."""


@pytest.fixture(autouse=True)
def _fresh() -> None:
    handled.clear()


class Account(Actor):
    sharding = Sharding(state=Ledger, passivate_after=30.0, name="MemAccount")

    @handle()
    async def deposit(self, event: Deposited) -> None:
        self.state.amount += event.amount
        self.state.seqs.append(event.seq)
        handled.append((names[id(self.system)], self.key, event.seq))
        await anyio.sleep(0.01)  # long enough for a crash to land mid-stream

    @handle()
    async def balance(self, _query: GetBalance) -> int:
        return self.state.amount


@contextlib.asynccontextmanager
async def instance(
    broker: MemoryBroker, name: str, partitions: int
) -> AsyncIterator[tuple[ActorSystem, MemoryTransport]]:
    transport = broker.transport(instance=name, partitions=partitions, lease=5.0)
    async with ActorSystem("bank", transport=transport, actors=[Account]) as system:
        names[id(system)] = name
        yield system, transport


async def deposit_rounds(system: ActorSystem, first: int, last: int) -> None:
    for seq in range(first, last):
        for key in KEYS:
            await system.publish(Deposited(key, seq))


def stored(broker: MemoryBroker, key: str) -> Ledger:
    raw = broker.states[("bank", "MemAccount", key)]
    return Ledger(**json.loads(raw))


@pytest.mark.parametrize("partitions", [1, 4])
async def test_a_stateful_kind_has_one_live_entity_per_key_across_instances(
    partitions: int,
) -> None:
    """The refusal of phase 1 is gone: a kind with state runs on MemoryTransport."""
    broker = MemoryBroker()
    async with (
        instance(broker, "a", partitions) as (a, ta),
        instance(broker, "b", partitions) as (
            b,
            tb,
        ),
    ):
        await deposit_rounds(a, 0, 5)
        await broker.drain()
        shards = [await a.shard(Account), await b.shard(Account)]
        live = [shard.entities for shard in shards]
        assert not live[0] & live[1]  # never the same key in two instances
        assert live[0] | live[1] == set(KEYS)
        for transport, entities in zip((ta, tb), live, strict=True):
            owned = transport.owned(GROUP)
            assert {partition_of(key, partitions) for key in entities} <= set(owned)
        if partitions == 1:  # the one partition is owned by one instance: all keys there
            assert sorted(len(entities) for entities in live) == [0, len(KEYS)]
        for key in KEYS:
            assert await b.entity(Account, key).ask(GetBalance()) == 5
            assert stored(broker, key).seqs == list(range(5))


async def test_a_graceful_leave_hands_the_entities_over_with_their_state() -> None:
    broker = MemoryBroker()
    async with instance(broker, "a", 4) as (a, _):
        async with instance(broker, "b", 4) as (_, tb):
            await deposit_rounds(a, 0, 4)
            await broker.drain()
            assert tb.owned(GROUP)
            for key in KEYS:  # a request changes the state as an event does, and saves it
                await a.entity(Account, key).ask(Deposited(key, 4))
            assert all(stored(broker, key).seqs == list(range(5)) for key in KEYS)
        await deposit_rounds(a, 5, 10)  # b left: a owns every partition, and b's keys
        await broker.drain()
        assert (await a.shard(Account)).entities == set(KEYS)
        for key in KEYS:
            assert await a.entity(Account, key).ask(GetBalance()) == 10
            assert stored(broker, key).seqs == list(range(10))
    assert len(handled) == 10 * len(KEYS)  # a graceful move handles nothing twice


async def test_a_crashed_instance_commits_nothing_and_its_keys_resume_from_the_last_commit() -> (
    None
):
    broker = MemoryBroker()
    async with instance(broker, "a", 4) as (a, _), instance(broker, "b", 4) as (_, tb):
        await deposit_rounds(a, 0, 3)
        await broker.drain()
        b_keys = {key for key in KEYS if partition_of(key, 4) in tb.owned(GROUP)}
        assert b_keys
        await deposit_rounds(a, 3, 6)
        await anyio.sleep(0.015)  # b is in the middle of its deposits
        tb.crash()
        await deposit_rounds(a, 6, 8)
        await anyio.sleep(6.0)  # b's lease runs out: a takes its partitions over
        await broker.drain()
        for key in KEYS:
            assert await a.entity(Account, key).ask(GetBalance()) == 8
            assert stored(broker, key).seqs == list(range(8))  # each deposit exactly once
    redone = [entry for entry in handled if entry[0] == "a" and entry[1] in b_keys]
    assert redone  # a handled again what b had not committed
    assert len(handled) > 8 * len(KEYS)


async def test_each_tenure_has_a_greater_token_and_activations_record_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="actorbus.entity")
    # The instance that joins second is the one the single partition moves to.
    inner = next(name for name, parts in assign(GROUP, ["a", "b"], 1).items() if parts)
    outer = "b" if inner == "a" else "a"
    broker = MemoryBroker()
    async with instance(broker, outer, 1) as (x, tx):
        await x.publish(Deposited("k", 0))
        await broker.drain()
        first = tx.owned(GROUP)
        async with instance(broker, inner, 1) as (_, ty):
            await x.publish(Deposited("k", 1))
            await broker.drain()
            assert (tx.owned(GROUP), list(ty.owned(GROUP))) == ({}, [0])
            assert ty.owned(GROUP)[0] > first[0]
        await x.publish(Deposited("k", 2))
        await broker.drain()
        last = tx.owned(GROUP)
    assert stored(broker, "k").seqs == [0, 1, 2]
    assert [entry[0] for entry in handled] == [outer, inner, outer]
    records = [r for r in caplog.records if getattr(r, "entity_event", None) == "activated"]
    assert [(r.entity_key, r.partition) for r in records] == [("k", 0)] * 3  # type: ignore[attr-defined]
    tokens = [r.fencing_token for r in records]  # type: ignore[attr-defined]
    assert tokens[0] == first[0]
    assert tokens[-1] == last[0]
    assert tokens == sorted(set(tokens))  # one activation per tenure, each token greater
