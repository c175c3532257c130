"""Sharded entities (SPEC §7): activation, one entity per key, state, passivation, routing.

Without a transport (the state lives in memory), and over `LoopbackTransport`
(`entity_support.py`), which plays a partitioned transport's part: it owns partitions,
fences deliveries, saves `Tracker.commit` with the acknowledgement and calls `release`.
Virtual time on both backends: passivation waits cost nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import anyio
import attrs
import pytest
from click.testing import CliRunner
from entity_support import LoopbackTransport

from actorbus import (
    Actor,
    ActorbusError,
    ActorSystem,
    Backoff,
    DecodeError,
    EntityRef,
    Outcome,
    Policy,
    Scope,
    Shard,
    Sharding,
    ShardStats,
    Supervision,
    cli,
    event,
    handle,
)
from actorbus._declared import subscriptions
from actorbus._keys import partition_of
from actorbus.testing import MemoryBroker, autojump_backends

pytestmark = pytest.mark.anyio


@pytest.fixture(params=autojump_backends(), ids=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends, on virtual time."""
    return request.param


@event("entities.deposited", scope=Scope.APP, key="account")
class Deposited:
    account: str
    amount: int
    fail: str = ""  # "once": raise the first time, "always": raise every time


@event("entities.balance", scope=Scope.APP)
class GetBalance:
    pass


@event("entities.note", scope=Scope.APP, key="account")
class Note:
    account: str
    text: str


@event("entities.deposits")
class GetDeposits:
    pass


@attrs.define
class Balance:
    amount: int = 0
    deposits: list[int] = attrs.Factory(list)


_NO_WAIT = Backoff(initial=0.0, maximum=0.0, jitter=0.0)
log: list[tuple[str, ...]] = []
failed_once: set[int] = set()


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    log.clear()
    failed_once.clear()


class Account(Actor):
    sharding = Sharding(state=Balance, passivate_after=60.0)

    def __init__(self, key: str) -> None:
        self.key = key
        log.append(("init", key, repr(self.state)))

    async def on_start(self) -> None:
        log.append(("start", self.key))

    async def on_stop(self) -> None:
        log.append(("stop", self.key, str(self.state.amount)))

    @handle()
    async def deposit(self, event: Deposited) -> None:
        self.state.amount += event.amount
        self.state.deposits.append(event.amount)
        if event.fail == "always" or (event.fail == "once" and event.amount not in failed_once):
            failed_once.add(event.amount)
            raise ValueError(f"deposit {event.amount} failed")

    @handle()
    async def balance(self, query: GetBalance) -> int:
        return self.state.amount

    @handle()
    async def deposits(self, query: GetDeposits) -> list[int]:
        return list(self.state.deposits)


def account_kind(policy: Policy, **options: Any) -> type[Account]:
    class Supervised(Account):
        sharding = Sharding(state=Balance, passivate_after=60.0, name="Supervised")
        supervision = Supervision(policy, backoff=_NO_WAIT, **options)

    return Supervised


# -- hosting and refusals -----------------------------------------------------------------------


async def test_an_entity_is_built_on_demand_for_its_key_and_keeps_its_state() -> None:
    async with ActorSystem("bank") as system:
        shard = await system.shard(Account)
        assert isinstance(shard, Shard)
        assert shard.kind is Account
        assert shard.entities == frozenset()
        assert shard.partitions == frozenset({0})
        await system.publish(Deposited("a", 10))
        await system.publish(Deposited("b", 1))
        await system.publish(Deposited("a", 5))
        await system.drain()
        assert shard.entities == {"a", "b"}
        assert await system.entity(Account, "a").ask(GetBalance()) == 15
        assert await system.entity(Account, "b").ask(GetBalance()) == 1
    assert sorted(entry for entry in log if entry[0] == "init") == [
        ("init", "a", "Balance(amount=0, deposits=[])"),
        ("init", "b", "Balance(amount=0, deposits=[])"),
    ]
    assert sorted(entry for entry in log if entry[0] == "stop") == [
        ("stop", "a", "15"),
        ("stop", "b", "1"),
    ]


async def test_kinds_named_at_start_up_are_hosted() -> None:
    async with ActorSystem("bank", actors=[Account]) as system:
        await system.entity(Account, "a").tell(Deposited("a", 3))
        assert await system.entity(Account, "a").ask(GetBalance()) == 3
        shard = await system.shard(Account)  # hosting again gives the same kind
        assert shard.entities == {"a"}


async def test_spawning_an_entity_kind_is_refused_with_the_way_to_host_it() -> None:
    async with ActorSystem("bank") as system:
        with pytest.raises(TypeError, match=r"system\.shard\(Account\)"):
            await system.spawn(Account)
        await system.shard(Account)
        with pytest.raises(TypeError, match=r"system\.entity\(Kind, key\)"):
            await system.actor("Account").tell(Deposited("a", 1))


async def test_what_is_not_an_entity_kind_is_refused() -> None:
    class Plain(Actor):
        @handle()
        async def on(self, event: Deposited) -> None:
            pass

    async with ActorSystem("bank") as system:
        with pytest.raises(TypeError, match="not an entity kind"):
            await system.shard(Plain)
        with pytest.raises(TypeError, match="not an entity kind"):
            system.entity(Plain, "a")
        with pytest.raises(ValueError, match="1 to 1024 characters"):
            system.entity(Account, "")
        with pytest.raises(TypeError, match=r"has no handler for 'entities\.note'"):
            await system.entity(Account, "a").tell(Note("a", "hi"))
        with pytest.raises(LookupError, match="not hosted"):
            await system.entity(Account, "a").tell(Deposited("a", 1))


def test_an_entity_kind_is_its_own_group() -> None:
    with pytest.raises(TypeError, match="an entity kind is its own group"):

        class Grouped(Actor):
            sharding = Sharding()

            @handle(group="mine")
            async def on(self, event: Deposited) -> None:
                pass

    with pytest.raises(TypeError, match="attrs class or a dataclass"):
        Sharding(state=dict)
    with pytest.raises(ValueError, match="seconds > 0"):
        Sharding(passivate_after=0)


# -- one entity per key, in order -----------------------------------------------------------------


async def test_messages_of_one_key_are_handled_in_order_by_one_entity() -> None:
    seen: dict[str, list[int]] = {}
    running: dict[str, int] = {}

    class Ordered(Actor):
        sharding = Sharding()

        def __init__(self, key: str) -> None:
            self.key = key

        @handle()
        async def on(self, event: Deposited) -> None:
            running[self.key] = running.get(self.key, 0) + 1
            assert running[self.key] == 1  # one message at a time
            await anyio.sleep(0.01 * (event.amount % 3))
            seen.setdefault(self.key, []).append(event.amount)
            running[self.key] -= 1

    async with ActorSystem("bank") as system:
        await system.shard(Ordered)
        refs = {key: system.entity(Ordered, key) for key in "xyz"}
        for n in range(60):
            key = "xyz"[n % 3]
            if n % 2:
                await system.publish(Deposited(key, n))
            else:
                await refs[key].tell(Deposited(key, n))
        await system.drain()
        assert (await system.shard(Ordered)).stats.activations == 3
    assert seen == {key: [n for n in range(60) if "xyz"[n % 3] == key] for key in "xyz"}


async def test_a_key_gets_a_new_entity_only_after_the_previous_one_stopped() -> None:
    stopping = anyio.Event()
    order: list[str] = []

    class Slow(Actor):
        sharding = Sharding(passivate_after=10.0)

        def __init__(self, key: str) -> None:
            self.key = key

        async def on_start(self) -> None:
            order.append("start")

        async def on_stop(self) -> None:
            order.append("stopping")
            stopping.set()
            await anyio.sleep(5)
            order.append("stopped")

        @handle()
        async def on(self, event: Deposited) -> None:
            order.append(f"deposit {event.amount}")

    async with ActorSystem("bank") as system:
        shard = await system.shard(Slow)
        await system.publish(Deposited("k", 1))
        await stopping.wait()  # idle for 10 s: passivated, and its on_stop takes 5 s
        await system.publish(Deposited("k", 2))
        await system.drain()
        assert shard.stats.activations == 2
    assert order[:6] == ["start", "deposit 1", "stopping", "stopped", "start", "deposit 2"]


# -- passivation ----------------------------------------------------------------------------------


async def test_an_idle_entity_is_passivated_and_built_again_with_its_state() -> None:
    async with ActorSystem("bank") as system:
        shard = await system.shard(Account)
        ref = system.entity(Account, "a")
        await ref.tell(Deposited("a", 7))
        await system.drain()
        started = anyio.current_time()
        await anyio.sleep(59)
        assert shard.entities == {"a"}  # idle for less than passivate_after
        await ref.tell(Deposited("a", 1))  # a message starts the idle time again
        await anyio.sleep(59)
        assert shard.entities == {"a"}
        await anyio.sleep(2)
        assert shard.entities == frozenset()
        assert ("stop", "a", "8") in log
        assert anyio.current_time() - started == pytest.approx(120, abs=0.5)
        assert await ref.ask(GetBalance()) == 8  # built again, from the kept state
        stats = shard.stats
        assert (stats.active, stats.activations, stats.passivations) == (1, 2, 1)
    assert [entry[0] for entry in log] == ["init", "start", "stop", "init", "start", "stop"]
    assert log[3] == ("init", "a", "Balance(amount=8, deposits=[7, 1])")


async def test_an_entity_that_never_passivates() -> None:
    class Forever(Account):
        sharding = Sharding(state=Balance, passivate_after=math.inf)

    async with ActorSystem("bank") as system:
        shard = await system.shard(Forever)
        await system.entity(Forever, "a").tell(Deposited("a", 1))
        await anyio.sleep(10_000)
        assert shard.entities == {"a"}


# -- durable state through failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "options", "balance", "dead"),
    [
        # RETRY calls the handler again on the committed state: the deposit counts once.
        (Policy.RETRY, {"max_retries": 2}, 13, 0),
        # RESTART builds a fresh entity from the committed state: the deposit is lost.
        (Policy.RESTART, {}, 3, 0),
        (Policy.DEAD_LETTER, {}, 3, 1),
        (Policy.LOG_AND_CONTINUE, {}, 3, 0),
        (Policy.IGNORE, {}, 3, 0),
    ],
)
async def test_a_failed_message_changes_nothing(
    policy: Policy, options: dict[str, Any], balance: int, dead: int
) -> None:
    kind = account_kind(policy, **options)
    async with ActorSystem("bank") as system:
        shard = await system.shard(kind)
        ref = system.entity(kind, "a")
        await ref.tell(Deposited("a", 3))
        await ref.tell(Deposited("a", 10, fail="once"))
        assert await ref.ask(GetBalance()) == balance
        assert shard.stats.failed == 1
        assert shard.stats.dead_lettered == dead
        assert len(system.dead_letters) == dead
        deposits = await ref.ask(GetDeposits())
    assert deposits == ([3, 10] if balance == 13 else [3])
    starts = [entry for entry in log if entry[0] == "start"]
    assert len(starts) == (2 if policy is Policy.RESTART else 1)


async def test_a_message_whose_first_handler_failed_changes_nothing_in_later_ones() -> None:
    class Twice(Account):
        sharding = Sharding(state=Balance, name="Twice")

        @handle()
        async def deposit(self, event: Deposited) -> None:
            self.state.amount += event.amount
            if event.fail:
                raise ValueError(event.fail)

        @handle("entities.deposited")
        async def count(self, event: Deposited) -> None:
            self.state.deposits.append(event.amount)

    async with ActorSystem("bank") as system:
        await system.shard(Twice)
        ref = system.entity(Twice, "a")
        await ref.tell(Deposited("a", 1))
        await ref.tell(Deposited("a", 2, fail="always"))  # logged; its second handler runs
        assert await ref.ask(GetBalance()) == 1
        assert await ref.ask(GetDeposits()) == [1]


async def test_stop_passivates_the_entity_which_comes_back_with_its_committed_state() -> None:
    kind = account_kind(Policy.STOP)
    async with ActorSystem("bank") as system:
        shard = await system.shard(kind)
        ref = system.entity(kind, "a")
        await ref.tell(Deposited("a", 3))
        await ref.tell(Deposited("a", 10, fail="always"))
        await system.drain()
        assert shard.entities == frozenset()
        assert await ref.ask(GetBalance()) == 3
        assert shard.stats.passivations == 1
    assert [d.error for d in system.dead_letters if isinstance(d.error, ValueError)]


async def test_restart_intensity_exceeded_leaves_the_entity_stopped_not_its_kind() -> None:
    kind = account_kind(Policy.RESTART, max_restarts=1, within=60.0)
    async with ActorSystem("bank") as system:
        shard = await system.shard(kind)
        ref, other = system.entity(kind, "a"), system.entity(kind, "b")
        await other.tell(Deposited("b", 1))
        for amount in (5, 6):
            await ref.tell(Deposited("a", amount, fail="always"))
        await system.drain()
        assert shard.entities == {"b"}  # "a" escalated and stays stopped; the kind runs on
        assert await other.ask(GetBalance()) == 1
        assert await ref.ask(GetBalance()) == 0  # built again on its next message


async def test_fail_fast_in_an_entity_fails_the_system() -> None:
    kind = account_kind(Policy.FAIL_FAST)
    with pytest.raises(ValueError, match="deposit 1 failed"):
        async with ActorSystem("bank") as system:
            await system.shard(kind)
            await system.entity(kind, "a").tell(Deposited("a", 1, fail="always"))
            await anyio.sleep(1)


async def test_an_ask_whose_state_cannot_be_saved_gets_the_error() -> None:
    @attrs.define
    class Loose:
        value: Any = None

    @event("entities.put", scope=Scope.APP)
    class Put:
        value: Any

    class Store(Actor):
        sharding = Sharding(state=Loose)

        @handle(Put)
        async def put(self, command: Any) -> str:
            self.state.value = command.value
            return "ok"

        @handle()
        async def get(self, query: GetBalance) -> Any:
            return self.state.value

    async with ActorSystem("bank") as system:
        await system.shard(Store)
        ref = system.entity(Store, "s")
        assert await ref.ask(Put([1, 2])) == "ok"
        with pytest.raises(TypeError, match=r"entity Store 's': cannot save its state"):
            await ref.ask(Put(object()))
        assert await ref.ask(GetBalance()) == [1, 2]
        assert isinstance(system.dead_letters[-1].error, TypeError)


async def test_a_stateless_kind_has_no_state_attribute_of_its_own() -> None:
    class Counter(Actor):
        sharding = Sharding()

        def __init__(self, key: str) -> None:
            self.count = 0

        @handle()
        async def on(self, event: Deposited) -> int:
            self.count += 1
            return self.count

    async with ActorSystem("bank") as system:
        await system.shard(Counter)
        ref = system.entity(Counter, "c")
        assert [await ref.ask(Deposited("c", 1)) for _ in range(3)] == [1, 2, 3]


async def test_an_entity_that_cannot_be_built_leaves_its_messages_unhandled() -> None:
    class Flaky(LoopbackTransport):
        failures = 1

        async def load_state(self, namespace: str, key: str) -> bytes | None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("redis went away")
            return await super().load_state(namespace, key)

    attempts: list[str] = []

    class Picky(Account):
        sharding = Sharding(state=Balance, name="Picky")

        async def on_start(self) -> None:
            attempts.append(self.key)
            if self.key == "never":
                raise RuntimeError("cannot start")

    transport = Flaky()
    async with ActorSystem("bank", transport=transport, actors=[Picky]) as system:
        first = await system.publish(Deposited("a", 1))  # loading its state fails
        second = await system.publish(Deposited("a", 2))
        third = await system.publish(Deposited("never", 3))
        assert await system.entity(Picky, "a").ask(GetBalance()) == 2
    outcomes = dict(transport.outcomes)
    assert outcomes[first.id] is Outcome.NOT_HANDLED  # delivered again by the transport
    assert outcomes[second.id] is Outcome.HANDLED
    assert outcomes[third.id] is Outcome.NOT_HANDLED
    assert attempts == ["a", "never"]


# -- messages that no entity may take --------------------------------------------------------------


async def test_a_message_without_a_key_is_dead_lettered() -> None:
    async with ActorSystem("bank") as system:
        await system.shard(Account)
        with pytest.raises(DecodeError, match="has no key"):
            await system.request(GetBalance())
        await system.drain()
        assert isinstance(system.dead_letters[-1].error, DecodeError)


# -- over a transport ----------------------------------------------------------------------------


async def test_over_a_transport_the_state_is_committed_with_the_acknowledgement() -> None:
    transport = LoopbackTransport()
    async with ActorSystem("bank", transport=transport, actors=[Account]) as system:
        await system.publish(Deposited("a", 4))
        ref = system.entity(Account, "a")
        await ref.tell(Deposited("a", 6))
        assert await ref.ask(GetBalance()) == 10
        await ref.tell(Deposited("a", 1, fail="always"))  # logged, its change discarded
        assert await ref.ask(GetBalance()) == 10
    assert transport.states == {("Account", "a"): b'{"amount":10,"deposits":[4,6]}'}
    assert {outcome for _, outcome in transport.outcomes} == {Outcome.HANDLED}


async def test_over_a_transport_an_entity_is_built_from_the_saved_state() -> None:
    states = {("Account", "a"): b'{"amount":100,"deposits":[]}'}
    async with ActorSystem("bank", transport=LoopbackTransport(states=states)) as system:
        await system.shard(Account)
        await system.entity(Account, "a").tell(Deposited("a", 1))
        assert await system.entity(Account, "a").ask(GetBalance()) == 101
    assert states[("Account", "a")] == b'{"amount":101,"deposits":[1]}'


async def test_a_state_that_no_longer_fits_is_a_decode_error_and_its_messages_dead_letters() -> (
    None
):
    states = {("Account", "bad"): b'{"amount":"lots"}'}
    transport = LoopbackTransport(states=states)
    async with ActorSystem("bank", transport=transport, actors=[Account]) as system:
        bad, good = system.entity(Account, "bad"), system.entity(Account, "good")
        first = await system.publish(Deposited("bad", 1))
        await bad.tell(Deposited("bad", 2))
        await good.tell(Deposited("good", 3))
        with pytest.raises(DecodeError, match=r"entity Account 'bad'.*Balance"):
            await bad.ask(GetBalance())
        assert await good.ask(GetBalance()) == 3
    assert states[("Account", "bad")] == b'{"amount":"lots"}'  # kept as it was
    dead = [d for d in system.dead_letters if isinstance(d.error, DecodeError)]
    assert len(dead) == 3
    assert "entity Account 'bad' (its stored state)" in str(dead[0].error)
    assert dead[0].envelope.id == first.id
    outcomes = dict(transport.outcomes)
    assert outcomes[first.id] is Outcome.DEAD_LETTERED


async def test_messages_of_an_entity_ref_reach_only_its_kind() -> None:
    others: list[int] = []

    class Audit(Actor):  # another subscriber of the same event type: a group and a broadcast
        @handle()
        async def on(self, event: Deposited) -> None:
            others.append(event.amount)

    class Grouped(Audit):
        group = "auditors"

    async with ActorSystem("bank", transport=LoopbackTransport(), actors=[Account]) as system:
        await system.spawn(Audit)
        await system.spawn(Grouped)
        await system.publish(Deposited("a", 1))  # an event: everyone
        await system.entity(Account, "a").tell(Deposited("a", 2))  # a message: the entity
        assert await system.entity(Account, "a").ask(GetBalance()) == 3
        await system.drain()
    assert others == [1, 1]


async def test_entity_messages_from_an_instance_that_does_not_host_the_kind() -> None:
    class Tally(Actor):
        sharding = Sharding()

        def __init__(self, key: str) -> None:
            self.total = 0

        @handle()
        async def add(self, event: Deposited) -> int:
            self.total += event.amount
            return self.total

    broker = MemoryBroker()
    async with (
        ActorSystem("bank", transport=broker.transport(), actors=[Tally]) as host,
        ActorSystem("bank", transport=broker.transport()) as client,
    ):
        ref = client.entity(Tally, "t")
        assert isinstance(ref, EntityRef)
        assert (ref.kind, ref.key) == (Tally, "t")
        await ref.tell(Deposited("t", 2))
        await broker.drain()  # MemoryTransport's requests do not queue behind its events
        assert await ref.ask(Deposited("t", 3), timeout=2.0) == 5
        assert (await host.shard(Tally)).entities == {"t"}


async def test_release_stops_the_entities_of_released_partitions() -> None:
    transport = LoopbackTransport(partitions=8)
    keys = [f"k{n}" for n in range(12)]
    released = {partition_of(keys[0], 8)}
    async with ActorSystem("bank", transport=transport, actors=[Account]) as system:
        shard = await system.shard(Account)
        for key in keys:
            await system.entity(Account, key).tell(Deposited(key, 1))
        for key in keys:
            assert await system.entity(Account, key).ask(GetBalance()) == 1
        assert shard.entities == set(keys)
        transport.lose(released)
        assert transport.host is not None
        await transport.host.release(shard.group, frozenset(released))
        gone = {key for key in keys if partition_of(key, 8) in released}
        assert shard.entities == set(keys) - gone
        assert {entry[1] for entry in log if entry[0] == "stop"} == gone
        assert shard.partitions == frozenset(range(8)) - released
        # A message routed here locally for a partition owned elsewhere builds nothing.
        await system.publish(Deposited(keys[0], 1), scope=Scope.PROCESS)
        await system.drain()
        assert keys[0] not in shard.entities
        error = system.dead_letters[-1].error
        assert isinstance(error, ActorbusError)
        assert "owned by another instance" in str(error)
        # Another instance owned it meanwhile and saved a newer state; taken back, the
        # entity is built from that one, not from what this instance kept.
        transport.states["Account", keys[0]] = b'{"amount":50,"deposits":[1,49]}'
        transport.take(released)
        assert await system.entity(Account, keys[0]).ask(GetBalance()) == 50


async def test_a_fenced_off_delivery_commits_nothing() -> None:
    transport = LoopbackTransport(partitions=2)
    gate = anyio.Event()

    class Gated(Account):
        sharding = Sharding(state=Balance, name="Gated")

        @handle()
        async def deposit(self, event: Deposited) -> None:
            self.state.amount += event.amount
            await gate.wait()

    async with ActorSystem("bank", transport=transport, actors=[Gated]) as system:
        ref = system.entity(Gated, "a")
        await ref.tell(Deposited("a", 1))
        await ref.tell(Deposited("a", 2))
        await anyio.sleep(1)
        transport.lose(set(range(2)))  # the lease is lost while the first deposit runs
        gate.set()
        await anyio.sleep(1)
    assert transport.refused_commits == 1
    assert transport.states == {}
    assert [outcome for _, outcome in transport.outcomes] == [
        Outcome.HANDLED,  # handled, but its state was not saved: the fence was gone
        Outcome.NOT_HANDLED,  # left for the partition's new owner
    ]


# -- observability -------------------------------------------------------------------------------


async def test_stats_count_entities_activations_and_passivations_per_kind() -> None:
    async with ActorSystem("bank") as system:
        await system.shard(Account)
        for key in "abc":
            await system.entity(Account, key).tell(Deposited(key, 1))
        await system.drain()
        stats = system.stats()["Account"]
        assert isinstance(stats, ShardStats)
        assert (stats.active, stats.activations, stats.passivations) == (3, 3, 0)
        assert stats.processed == 3
        await anyio.sleep(61)
        stats = system.stats()["Account"]
        assert (stats.active, stats.activations, stats.passivations) == (0, 3, 3)
        assert stats.processed == 3  # the counters of stopped entities are kept


async def test_entities_are_children_of_their_kind_in_the_supervision_tree() -> None:
    async with ActorSystem("bank") as system:
        await system.shard(Account)
        await system.entity(Account, "a").tell(Deposited("a", 1))
        await system.drain()
        region = system.actor("Account")
        assert region.name == "Account"
        await region.stop()  # stopping the kind stops its entities first
        assert ("stop", "a", "1") in log
        assert "Account" not in system.stats()


def test_a_dataclass_state_works_too() -> None:
    @dataclasses.dataclass
    class Counted:
        n: int = 0

    assert Sharding(state=Counted).state is Counted


def test_actorbus_handlers_lists_entity_kinds() -> None:
    result = CliRunner().invoke(cli.main, ["handlers", "entity_targets:system", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["handler"]: row for row in json.loads(result.output)}
    deposit, audit = rows["Account.deposit"], rows["Auditor.audit"]
    assert deposit["actor"] == "Account"
    assert deposit["group"] == "entity:Account"
    assert deposit["entity"] == "entity kind: Balance, passivated after 30s idle"
    assert deposit["subscriptions"] == ["targets.entity.deposited"]
    assert audit["entity"] is None
    table = CliRunner().invoke(cli.main, ["handlers", "entity_targets:system"]).output
    assert "ENTITY" in table.splitlines()[0]
    assert "entity kind: Balance" in next(line for line in table.splitlines() if "deposit" in line)


def test_asyncapi_describes_an_entity_kind_as_its_group() -> None:
    from entity_targets import system  # noqa: PLC0415 - its @event types, in this test's registry

    found = {s.handler: s for s in subscriptions(system)}
    assert found["Account.deposit"].group == "entity:Account"
    assert found["Account.deposit"].actor == "Account"
    assert found["Auditor.audit"].group is None
