"""Entities with durable state over Redis (SPEC §7): exactly once through every failure.

Each entity's state is loaded from its key's partition when it is built and saved with
each message's acknowledgement by the fenced script. The tests check the states in
Redis after handler errors (RETRY, RESTART), a handover, a simulated loss of saves (what
a restart with ``appendfsync everysec`` or a failover can do), a real Redis restart
with AOF, and an instance paused past its lease (SIGSTOP) that had kept states in
memory: every message changes the state exactly once. On a single server and on the
three-master cluster, with one partition (an entity kind's group is owned even then)
and with several.
"""

from __future__ import annotations

import json
import logging
import signal
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from entity_worker import GROUP, Add, Ledger, Seqs
from redis_support import RedisServer, new_app, raw_client
from worker_support import Workers, ready

from actorbus import (
    ActorSystem,
    Backoff,
    Policy,
    Scope,
    Sharding,
    Supervision,
    event,
    handle,
)
from actorbus._keys import partition_of
from actorbus.redis import RedisTransport
from actorbus.redis._config import Keys

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from cluster_support import RedisCluster

pytestmark = pytest.mark.anyio

KEYS = [f"acc-{n}" for n in range(10)]
_NO_WAIT = Backoff(initial=0.0, maximum=0.0, jitter=0.0)


@event("redis.entities.ledger", scope=Scope.APP)
class GetSeqs:
    pass


class Asked(Ledger):
    """`Ledger` that also answers what its state holds (another kind name: its own group)."""

    sharding = Sharding(state=Seqs, name="AskedLedger")

    @handle()
    async def seqs(self, _query: GetSeqs) -> list[int]:
        return list(self.state.seqs)


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls what other tasks, processes and Redis change
            await anyio.sleep(0.02)


async def stored(url: str, app: str, partitions: int, kind: str, key: str) -> list[int] | None:
    """The seqs of `key`'s state as Redis holds it (None: no state)."""
    state_key = Keys("actorbus", app, partitions).state(partition_of(key, partitions), kind, key)
    async with raw_client(url) as raw:
        found = await raw("GET", state_key)
    return None if found is None else list(json.loads(found)["seqs"])


async def wait_stored(
    url: str, app: str, partitions: int, kind: str, expected: dict[str, list[int]]
) -> None:
    """Wait until Redis holds `expected` for each key (the saves go after the handling)."""
    with anyio.fail_after(30):
        while True:
            found = {key: await stored(url, app, partitions, kind, key) for key in expected}
            if found == expected:
                return
            await anyio.sleep(0.05)


def transport_for(url: str, partitions: int, **options: Any) -> RedisTransport:
    return RedisTransport(url, partitions=partitions, lease=2.0, block=0.2, **options)


# -- where the states live ----------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 4])
async def test_each_key_has_one_live_entity_and_its_state_is_saved_in_its_partition(
    redis_any: RedisServer | RedisCluster, partitions: int
) -> None:
    """On a cluster, no command spans slots (`redis_any` checks CROSSSLOT), even with P=1."""
    app, url = new_app(), redis_any.url
    first, second = transport_for(url, partitions), transport_for(url, partitions)
    async with (
        ActorSystem(app, transport=first, actors=[Asked]) as a,
        ActorSystem(app, transport=second, actors=[Asked]) as b,
        ActorSystem(app, transport=transport_for(url, partitions)) as client,
    ):
        group = "entity:AskedLedger"
        await eventually(
            lambda: sorted([*first.owned(group), *second.owned(group)]) == list(range(partitions))
        )
        for seq in range(3):
            for key in KEYS:
                await client.publish(Add(key, seq))
        for key in KEYS:
            await client.entity(Asked, key).tell(Add(key, 3))
        for key in KEYS:
            assert await client.entity(Asked, key).ask(GetSeqs(), timeout=10.0) == [0, 1, 2, 3]
        live = [(await a.shard(Asked)).entities, (await b.shard(Asked)).entities]
        assert not live[0] & live[1]  # one live entity per key
        assert live[0] | live[1] == set(KEYS)
        if partitions == 1:  # the single partition is owned by one instance
            assert sorted(len(entities) for entities in live) == [0, len(KEYS)]
        await wait_stored(url, app, partitions, "AskedLedger", {key: [0, 1, 2, 3] for key in KEYS})
    # A new instance builds each entity from the state in Redis.
    async with ActorSystem(app, transport=transport_for(url, partitions), actors=[Asked]) as c:
        for key in KEYS:
            await c.entity(Asked, key).tell(Add(key, 4))
        for key in KEYS:
            assert await c.entity(Asked, key).ask(GetSeqs(), timeout=10.0) == [0, 1, 2, 3, 4]


# -- handler failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [Policy.RETRY, Policy.RESTART])
async def test_a_failed_message_changes_nothing_in_redis(
    redis_server: RedisServer, policy: Policy
) -> None:
    failed: set[int] = set()
    built: list[str] = []

    class Flaky(Ledger):
        sharding = Sharding(state=Seqs, name="Flaky")
        supervision = Supervision(policy, backoff=_NO_WAIT)

        async def on_start(self) -> None:
            built.append(self.key)

        @handle()
        async def add(self, item: Add) -> None:
            self.state.seqs.append(item.seq)
            if item.seq == 2 and item.key not in failed:
                failed.add(item.key)
                raise ValueError("once")

    app, url = new_app(), redis_server.url
    async with ActorSystem(app, transport=transport_for(url, 2), actors=[Flaky]) as system:
        for seq in range(5):
            for key in KEYS[:3]:
                await system.publish(Add(key, seq))
        # RETRY handles the failed message again on the last save; RESTART builds the
        # entity again from the last save, and the failed message ends there.
        expected = [0, 1, 2, 3, 4] if policy is Policy.RETRY else [0, 1, 3, 4]
        await wait_stored(url, app, 2, "Flaky", dict.fromkeys(KEYS[:3], expected))
    assert sorted(built) == sorted(KEYS[:3] * (2 if policy is Policy.RESTART else 1))


# -- handover -----------------------------------------------------------------------------------


async def test_a_handover_moves_the_entities_and_handles_nothing_twice(
    redis_server: RedisServer,
) -> None:
    app, url = new_app(), redis_server.url
    handled: list[tuple[str, int]] = []

    class Counted(Ledger):
        sharding = Sharding(state=Seqs, name="Counted")

        @handle()
        async def add(self, item: Add) -> None:
            self.state.seqs.append(item.seq)
            handled.append((item.key, item.seq))

    group = "entity:Counted"
    first = transport_for(url, 4)
    async with ActorSystem(app, transport=first, actors=[Counted]) as a:
        for seq in range(3):
            for key in KEYS:
                await a.publish(Add(key, seq))
        second = transport_for(url, 4)
        async with ActorSystem(app, transport=second, actors=[Counted]):
            await eventually(lambda: len(second.owned(group)) == 2 == len(first.owned(group)))
            for seq in range(3, 6):
                for key in KEYS:
                    await a.publish(Add(key, seq))
            await wait_stored(url, app, 4, "Counted", {key: list(range(6)) for key in KEYS})
        # The second instance left: the first owns everything again.
        for seq in range(6, 9):
            for key in KEYS:
                await a.publish(Add(key, seq))
        await wait_stored(url, app, 4, "Counted", {key: list(range(9)) for key in KEYS})
    assert sorted(handled) == sorted((key, seq) for key in KEYS for seq in range(9))


# -- Redis losing saves, and restarting ---------------------------------------------------------


async def test_saves_that_redis_lost_are_found_and_the_entities_rebuilt_from_redis(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """What a restart with ``appendfsync everysec`` (or a failover) can do, made exact.

    Redis loses the last save of a partition (its state and its count of saves), while
    the instance still holds the newer state in memory and keeps its lease. Its next
    save names the count it expects; Redis holds another, and refuses: the instance gives
    the partition up and builds the entity again from what Redis holds.
    """
    caplog.set_level(logging.WARNING, logger="actorbus.redis")
    app, url = new_app(), redis_server.url
    keys = Keys("actorbus", app, 1)
    transport = transport_for(url, 1)
    async with ActorSystem(app, transport=transport, actors=[Ledger]) as system:
        await system.publish(Add("k", 0))
        await wait_stored(url, app, 1, "WorkerLedger", {"k": [0]})
        async with raw_client(url) as raw:
            before = await raw("GET", keys.saves(0, f"g:{GROUP}"))
            await system.publish(Add("k", 1))
            await wait_stored(url, app, 1, "WorkerLedger", {"k": [0, 1]})
            token = transport.owned(GROUP)[0]
            # Redis forgets the last save: the state and the count go back.
            await raw("SET", keys.state(0, "WorkerLedger", "k"), b'{"seqs":[0]}')
            await raw("SET", keys.saves(0, f"g:{GROUP}"), before)
        await system.publish(Add("k", 2))
        await wait_stored(url, app, 1, "WorkerLedger", {"k": [0, 2]})  # not [0, 1, 2]
        assert transport.owned(GROUP)[0] > token  # a new tenure
    refused = [
        r.getMessage() for r in caplog.records if "does not hold the states" in r.getMessage()
    ]
    assert len(refused) == 1


@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
async def test_after_a_redis_restart_with_aof_each_message_changed_the_state_once(
    appendfsync: str,
) -> None:
    """Redis is killed (SIGKILL) while the entities work through a backlog, and restarted.

    Everything was published (and made durable) seconds before; the saves of the last
    second may be lost with ``everysec``: the instance finds out at its next save and
    builds the entities again from Redis, so the states are exact either way.
    """

    class Slow(Ledger):
        sharding = Sharding(state=Seqs, name="Slow")

        @handle()
        async def add(self, item: Add) -> None:
            self.state.seqs.append(item.seq)
            await anyio.sleep(0.01)

    app = new_app()
    server = RedisServer(appendonly=True, extra_config={"appendfsync": appendfsync})
    with server:
        url = server.url
        async with ActorSystem(app, transport=transport_for(url, 2), actors=[Slow]) as system:
            await system.publish_batch([Add(key, seq) for seq in range(40) for key in KEYS[:5]])
            await anyio.sleep(1.5)  # everything in the AOF; about half of it handled
            await anyio.to_thread.run_sync(server.kill)
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(server.start)
            await wait_stored(url, app, 2, "Slow", {key: list(range(40)) for key in KEYS[:5]})


# -- a pause past the lease, and the states kept in memory --------------------------------------


@pytest.fixture
def worker(
    redis_server: RedisServer, tmp_path: Path, anyio_backend: str
) -> Iterator[Callable[[str, int], tuple[subprocess.Popen[bytes], Path]]]:
    workers = Workers(redis_server.url, tmp_path)

    def start(app: str, partitions: int) -> tuple[subprocess.Popen[bytes], Path]:
        return workers.start("entity_worker.py", app, str(partitions), "1.0", anyio_backend)

    yield start
    workers.close()


def handled_there(journal: Path) -> list[tuple[str, int]]:
    return [
        (key, int(seq))
        for _, key, seq in (line.split() for line in journal.read_text().splitlines())
    ]


@pytest.mark.slow
async def test_an_instance_paused_past_its_lease_never_uses_the_states_it_kept(
    redis_server: RedisServer,
    worker: Callable[[str, int], tuple[subprocess.Popen[bytes], Path]],
) -> None:
    """The kept states of passivated entities belong to the tenure that committed them.

    The worker handles a key, passivates it (keeping its newest state in memory), and
    is paused (SIGSTOP) past its lease. This instance takes the partitions over and
    handles more of the key, then leaves. Resumed, the worker finds its lease lost,
    takes the partitions again, and builds the key's entity from Redis, not from the
    state it kept.
    """
    app, url = new_app(), redis_server.url
    process, journal = worker(app, 2)
    await ready(process)
    async with ActorSystem(app, transport=transport_for(url, 2)) as client:
        for seq in range(5):
            await client.publish(Add("k", seq))
        await wait_stored(url, app, 2, "WorkerLedger", {"k": list(range(5))})
        await eventually(lambda: handled_there(journal) == [("k", n) for n in range(5)])
        await anyio.sleep(1.0)  # passivated: its state is kept in the worker's memory
        process.send_signal(signal.SIGSTOP)
        here = transport_for(url, 2)
        async with ActorSystem(app, transport=here, actors=[Ledger]):
            await eventually(lambda: len(here.owned(GROUP)) == 2)  # the worker's lease expired
            for seq in range(5, 10):
                await client.publish(Add("k", seq))
            await wait_stored(url, app, 2, "WorkerLedger", {"k": list(range(10))})
        process.send_signal(signal.SIGCONT)
        for seq in range(10, 15):
            await client.publish(Add("k", seq))
        await wait_stored(url, app, 2, "WorkerLedger", {"k": list(range(15))})
    # The worker handled the last ones, on the state this instance had saved.
    assert [seq for key, seq in handled_there(journal) if key == "k"][-5:] == list(range(10, 15))
    process.send_signal(signal.SIGTERM)
    await anyio.to_thread.run_sync(process.wait)
