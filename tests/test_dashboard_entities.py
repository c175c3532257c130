"""The dashboard's view of entity kinds and of the partition → owner map (in memory).

Entity kinds show their active entities, activations and passivations (`ShardStats`) and
are aggregated like actors; the in-memory transport's owners, with their fencing tokens,
make the partition map. Virtual time (`autojump_backends`) lets entities passivate at
once.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import anyio
import attrs
import pytest

from actorbus import Actor, ActorSystem, Scope, Sharding, event, handle
from actorbus._transport import PartitionOwner
from actorbus.dashboard._snapshot import ENTITY, SHARD, take, transport_status
from actorbus.dashboard._view import FOLD_OVER, TOP_PER_KIND, History, app_state, instance_view
from actorbus.testing import MemoryBroker, MemoryTransport, autojump_backends

pytestmark = pytest.mark.anyio

PASSIVATE_AFTER = 60.0


@pytest.fixture(params=autojump_backends(), ids=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@event("dashcart.added", scope=Scope.APP, key="cart")
class Added:
    cart: str
    sku: str


@attrs.define
class Contents:
    skus: list[str] = attrs.field(factory=list)


class Cart(Actor):
    sharding = Sharding(state=Contents, passivate_after=PASSIVATE_AFTER)

    @handle()
    async def add(self, item: Added) -> None:
        self.state.skus.append(item.sku)


class Ledger(Actor):
    group = "ledger"

    @handle()
    async def book(self, item: Added) -> None:
        del item


def view_of(system: ActorSystem, history: History | None = None) -> dict[str, Any]:
    history = history or History()
    snapshot = take(system)
    return instance_view(snapshot, history.add(snapshot), history)


async def test_an_entity_kind_shows_its_entities_activations_and_passivations() -> None:
    async with ActorSystem("dash-entities", actors=[Cart]) as system:
        for cart in ("a", "b", "c"):
            await system.entity(Cart, cart).tell(Added(cart, "book"))
        await system.entity(Cart, "a").tell(Added("a", "pen"))
        await system.drain()
        history = History()
        busy = view_of(system, history)
        await anyio.sleep(PASSIVATE_AFTER + 1)  # virtual time: every cart is idle
        idle = view_of(system, history)
    (kind,) = busy["entities"]
    assert kind["kind"] == "Cart"
    assert kind["group"] == "entity:Cart"
    assert (kind["active"], kind["activations"], kind["passivations"]) == (3, 3, 0)
    assert kind["processed"] == 4
    assert kind["partitions"] == [0]  # without a transport, the one partition is here
    kinds = {row["kind"]: row for row in busy["kinds"]}
    assert kinds["Cart"]["role"] == ENTITY
    assert kinds["Cart"]["count"] == 3
    assert {actor["name"] for actor in kinds["Cart"]["actors"]} == {"Cart/a", "Cart/b", "Cart/c"}
    assert "Cart (entity kind)" not in kinds  # the kind's own actor is in the tree only
    (shard,) = busy["tree"]
    assert (shard["name"], shard["role"]) == ("Cart", SHARD)
    assert [child["name"] for child in shard["children"]] == ["Cart/a", "Cart/b", "Cart/c"]
    assert {child["role"] for child in shard["children"]} == {ENTITY}
    (kind,) = idle["entities"]
    assert (kind["active"], kind["activations"], kind["passivations"]) == (0, 3, 3)
    assert kind["processed"] == 4  # the stopped entities' work still counts
    assert "Cart" not in {row["kind"] for row in idle["kinds"]}
    assert len(kind["spark"]) == 2


async def test_ten_thousand_entities_make_a_small_view() -> None:
    async with ActorSystem("dash-entities", actors=[Cart], shutdown_timeout=60.0) as system:
        for number in range(10_000):
            await system.entity(Cart, f"cart-{number}").tell(Added(f"cart-{number}", "book"))
        await system.drain()
        view = view_of(system)
    (kind,) = view["entities"]
    assert (kind["active"], kind["activations"], kind["processed"]) == (10_000, 10_000, 10_000)
    (entities,) = [row for row in view["kinds"] if row["kind"] == "Cart"]
    assert entities["count"] == 10_000
    assert len(entities["actors"]) == TOP_PER_KIND
    (shard,) = view["tree"]
    assert shard["children"] == [
        {"fold": "Cart", "role": ENTITY, "count": 10_000, "depth": 0, "children": 0}
    ]
    assert len(json.dumps(view)) < 20_000
    assert FOLD_OVER < 10_000


async def test_the_map_shows_each_partitions_owner_and_fencing_token() -> None:
    broker = MemoryBroker()
    async with AsyncExitStack() as stack:
        systems = [
            await stack.enter_async_context(
                ActorSystem(
                    "dash-map",
                    transport=MemoryTransport(broker, instance=name, partitions=4),
                    actors=[Cart, Ledger],
                )
            )
            for name in ("a", "b")
        ]
        await broker.drain()
        status = await transport_status(systems[0].transport)
        owned = {
            name: transport.owned(group)
            for name, transport in zip("ab", (s.transport for s in systems), strict=True)
            if isinstance(transport, MemoryTransport)
            for group in ("ledger",)
        }
        state = app_state("dash-map", [], status, source="process")
    assert status.partitions is not None
    assert set(status.partitions) == {"entity:Cart", "ledger"}
    ledger = status.partitions["ledger"]
    assert sorted(ledger) == [0, 1, 2, 3]
    for name, tokens in owned.items():  # the map agrees with each owner's own view
        assert {p: o.token for p, o in ledger.items() if o.instance == name} == tokens
    assert all(owner.token is not None and owner.token >= 1 for owner in ledger.values())
    groups = {group["group"]: group for group in state["partitions"]}
    assert groups["ledger"]["owners"] == [{"owner": "a", "count": 2}, {"owner": "b", "count": 2}]
    assert [p["partition"] for p in groups["entity:Cart"]["partitions"]] == [0, 1, 2, 3]


async def test_a_stopped_member_leaves_its_partitions_to_the_other_with_new_tokens() -> None:
    broker = MemoryBroker()
    a = MemoryTransport(broker, instance="a", partitions=4)
    async with ActorSystem("dash-map", transport=a, actors=[Ledger]):
        async with ActorSystem(
            "dash-map",
            transport=MemoryTransport(broker, instance="b", partitions=4),
            actors=[Ledger],
        ):
            await broker.drain()
            before = await a.partition_owners()
        await broker.drain()
        after = await a.partition_owners()
    assert before is not None
    assert after is not None
    assert {owner.instance for owner in before["ledger"].values()} == {"a", "b"}
    assert after["ledger"] == {
        p: PartitionOwner("a", owner.token) for p, owner in after["ledger"].items()
    }
    moved = [p for p, owner in before["ledger"].items() if owner.instance == "b"]
    for partition in moved:  # a new tenure: a greater token
        assert after["ledger"][partition].token > before["ledger"][partition].token  # type: ignore[operator]


async def test_one_partition_has_no_map() -> None:
    async with ActorSystem("dash-map", transport=MemoryTransport(), actors=[Ledger]) as system:
        status = await transport_status(system.transport)
    assert status.partitions is None
    assert app_state("dash-map", [], status, source="process")["partitions"] is None
