"""Redis Cluster: detection, routing, redirections, failover and spread, on real clusters.

The clusters are the session's (`cluster_support`): three masters, and three masters with
a replica each. Tests that move a slot move it back; failover tests leave a healthy
cluster with roles swapped. Both backends.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from cluster_support import RedisCluster
from redis_support import find_free_port, new_app, raw_client, send_raw

from actorbus import (
    Actor,
    ActorSystem,
    Policy,
    Scope,
    Supervision,
    TransportError,
    event,
    handle,
)
from actorbus.redis import RedisTransport
from actorbus.redis._client import Client
from actorbus.redis._config import redact_url
from actorbus.redis._endpoint import endpoint
from actorbus.redis._errors import CrossSlot, Redirected, reply_error
from actorbus.redis._protocol import pack
from actorbus.redis._slots import hash_slot, partition_tag
from actorbus.redis._tls import tls_context

if TYPE_CHECKING:
    from redis_support import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@event("cluster.job", scope=Scope.APP)
class Job:
    n: int


def client(url: str, timeout: float = 5.0) -> Client:
    return Client(endpoint(url, None, redact_url(url)), timeout=timeout)


async def started(url: str, cluster: bool | None = None, timeout: float = 5.0) -> Client:
    shared = client(url, timeout)
    await shared.start(cluster, timeout=timeout)
    return shared


def key_on(cluster: RedisCluster, master: RedisServer, prefix: str = "k") -> str:
    """A fresh key whose slot `master` serves."""
    ranges = [r for r in cluster.slots() if r.master == master.port]
    while True:
        key = f"{prefix}:{secrets.token_hex(4)}"
        if any(r.first <= hash_slot(key) <= r.last for r in ranges):
            return key


def other_master(cluster: RedisCluster, master: RedisServer) -> RedisServer:
    return next(node for node in cluster.masters() if node.port != master.port)


async def eventually(check: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls state that tasks and Redis change
            await anyio.sleep(0.01)


# -- finding out --------------------------------------------------------------------------------


async def test_the_client_finds_a_cluster_and_routes_every_key_to_its_master(
    redis_cluster: RedisCluster,
) -> None:
    shared = await started(redis_cluster.url)
    try:
        assert shared.cluster is not None
        masters = redis_cluster.masters()
        keys = [key_on(redis_cluster, master) for master in masters for _ in range(3)]
        # One pipeline over three nodes: one write each, the replies back in order.
        replies = await shared.pipeline([(b"SET", key, key) for key in keys])
        assert replies == [b"OK"] * len(keys)
        assert await shared.pipeline([(b"GET", key) for key in keys]) == [k.encode() for k in keys]
        # Split per node, each node's commands in their order.
        lists = [f"{key}:list" for key in keys]
        pushes = [(b"RPUSH", name, n) for n in range(3) for name in lists]
        assert await shared.pipeline(pushes) == [n for n in (1, 2, 3) for _ in lists]
        for name in lists:
            assert await shared.call(b"LRANGE", name, 0, -1) == [b"0", b"1", b"2"]
        for master in masters:  # each key is on its master: no redirection was needed
            mine = [key for key in keys if redis_cluster.master_of(hash_slot(key)) == master]
            assert [redis_cluster.send(master.port, "EXISTS", key) for key in mine] == [1] * 3
            assert shared.node_for(mine[0]).port == master.port
    finally:
        await shared.aclose()


async def test_a_single_server_is_no_cluster(redis_server: RedisServer) -> None:
    shared = await started(redis_server.url)
    assert shared.cluster is None
    assert await shared.call(b"DEL", b"a-key", b"another-key") == 0  # several slots: fine here
    await shared.aclose()


async def test_the_transport_detects_the_mode_and_refuses_a_wrong_one(
    redis_cluster: RedisCluster, redis_server: RedisServer
) -> None:
    async with ActorSystem(new_app(), transport=RedisTransport(redis_cluster.url)) as system:
        transport = system.transport
        assert isinstance(transport, RedisTransport)
        assert transport._opened().client.cluster is not None
    with pytest.raises(TransportError, match=r"is not a Redis Cluster node .* cluster=True"):
        async with ActorSystem(new_app(), transport=RedisTransport(redis_server.url, cluster=True)):
            pass
    with pytest.raises(TransportError, match=r"is a node of a Redis Cluster.*cluster=False"):
        async with ActorSystem(
            new_app(), transport=RedisTransport(redis_cluster.url, cluster=False)
        ):
            pass


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cluster": "yes"}, r"cluster=\.\.\.\) must be None, True or False"),
        ({"seeds": ["nohost"]}, "not a cluster node address: 'nohost'"),
        ({"seeds": ["h:99999"]}, "not a cluster node address"),
        ({"seeds": "h:1"}, "must be a list of 'host:port' strings"),
        ({"seeds": ["h:1"], "cluster": False}, "cluster=None or True"),
    ],
)
def test_bad_cluster_settings_are_refused_at_once(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RedisTransport("redis://localhost:6379/0", **kwargs)


async def test_seeds_are_asked_when_the_urls_node_cannot_be_reached(
    redis_cluster: RedisCluster,
) -> None:
    gone = unreachable_url(redis_cluster)
    node = redis_cluster.nodes[1]
    handled = anyio.Event()

    @handle(Job)
    async def on_job(job: Job) -> None:
        handled.set()

    transport = RedisTransport(gone, seeds=[f"{node.host}:{node.port}"])
    async with ActorSystem(new_app(), transport=transport) as system:
        await system.spawn(on_job)
        await system.publish(Job(1))
        with anyio.fail_after(10):
            await handled.wait()


def unreachable_url(cluster: RedisCluster) -> str:
    """The cluster's URL with the port of a node that does not exist."""
    first = cluster.nodes[0]
    return first.url.replace(f":{first.port}/", f":{find_free_port()}/")


# -- access control ---------------------------------------------------------------------------

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "redis.md"


def guide_acl(user: str, password: str, app: str) -> list[str]:
    """The Redis guide's ``ACL SETUSER`` line for this user, password and application."""
    (line,) = [line for line in GUIDE.read_text().splitlines() if line.startswith("ACL SETUSER ")]
    values = {"shop-worker": user, ">s3cret": f">{password}"}
    values["~actorbus:app:shop:*"] = f"~actorbus:app:{app}:*"
    return [values.get(word, word) for word in line.split()]


async def test_the_guides_acl_line_and_asking_are_what_a_cluster_needs(
    redis_cluster: RedisCluster,
) -> None:
    cluster = redis_cluster
    app = new_app()
    password = secrets.token_hex(8)
    full, short = f"full-{secrets.token_hex(3)}", f"short-{secrets.token_hex(3)}"
    node = cluster.nodes[0]
    for each in cluster.nodes:
        cluster.send(each.port, "ACL", "LOG", "RESET")
        cluster.send(each.port, *guide_acl(full, password, app), "+asking")
        without = [w for w in guide_acl(short, password, app) if w != "+cluster|slots"]
        cluster.send(each.port, *without)

    @handle(Job, group="work")
    async def work(job: Job) -> int:
        return job.n + 1

    try:
        url = f"redis://{full}:{password}@{node.host}:{node.port}/0"
        async with (
            ActorSystem(app, transport=RedisTransport(url, cluster=True)) as worker,
            ActorSystem(app, transport=RedisTransport(url)) as asker,
        ):
            await worker.spawn(work)
            assert await asker.request(Job(1), timeout=10) == 2
        assert [cluster.send(each.port, "ACL", "LOG") for each in cluster.nodes] == [[]] * 3
        # A user who may not read the slot map: clear advice when a cluster is expected.
        url = f"redis://{short}:{password}@{node.host}:{node.port}/0"
        with pytest.raises(TransportError, match=r"NOPERM on CLUSTER SLOTS.*\+cluster\|slots"):
            async with ActorSystem(app, transport=RedisTransport(url, cluster=True)):
                pass
    finally:
        for each in cluster.nodes:
            cluster.send(each.port, "ACL", "DELUSER", full, short)
            cluster.send(each.port, "ACL", "LOG", "RESET")


# -- the cross-slot guard -----------------------------------------------------------------------


async def test_a_command_over_several_slots_is_refused_before_it_is_sent(
    redis_cluster: RedisCluster,
) -> None:
    shared = await started(redis_cluster.url)
    own = shared.dedicated(b"x")
    a, b = "cross:{a}", "cross:{b}"
    assert hash_slot(a) != hash_slot(b)
    before = redis_cluster.errors("CROSSSLOT")
    try:
        for send in (
            shared.call(b"DEL", a, b),
            shared.pipeline([(b"PING",), (b"EXISTS", a, b)]),
            own.call(b"DEL", a, b, timeout=5),
            own.pipeline([(b"EVALSHA", "0" * 40, 2, a, b)], timeout=5),
            shared.call(b"XREAD", b"STREAMS", a, b, b"0", b"0"),
        ):
            with pytest.raises(CrossSlot, match=r"different hash slots .* one hash tag"):
                await send
        # Keys with one hash tag share a slot: those commands go.
        assert await shared.call(b"DEL", "cross:{a}:1", "cross:{a}:2") == 0
    finally:
        await own.close()
        await shared.aclose()
    assert redis_cluster.errors("CROSSSLOT") == before  # none reached Redis


# -- redirections -------------------------------------------------------------------------------


PATHS = ["pool", "dedicated.call", "dedicated.send", "dedicated.send_each"]
"""The ways a command reaches Redis: each has its own way through redirections."""


async def xadd(shared: Client, path: str, key: str, n: int) -> Any:
    """XADD an entry to `key` the `path` way (`PATHS`); its reply."""
    command = (b"XADD", key, b"*", b"n", n)
    if path == "pool":
        return await shared.call(*command)
    own = shared.dedicated(key)
    try:
        if path == "dedicated.call":
            return await own.call(*command, timeout=5)
        if path == "dedicated.send":
            (reply,) = await own.send(pack([command]), 1, timeout=5)
            return reply
        (reply,) = await own.send_each([(key, pack([command]))], timeout=5)
        return reply
    finally:
        await own.close()


@pytest.mark.parametrize("path", PATHS)
async def test_commands_follow_a_slot_moved_to_another_master(
    redis_cluster: RedisCluster, path: str
) -> None:
    shared = await started(redis_cluster.url)
    key = key_on(redis_cluster, redis_cluster.masters()[0], "moved")
    slot = hash_slot(key)
    source = redis_cluster.master_of(slot)
    target = other_master(redis_cluster, source)
    try:
        await xadd(shared, path, key, 1)
        version = shared.cluster.version  # type: ignore[union-attr]
        await anyio.to_thread.run_sync(redis_cluster.move_slot, slot, target)
        assert shared.node_for(key).port == source.port  # the client does not know yet
        # MOVED: the slot's new master takes the command, and the client remembers.
        assert isinstance(await xadd(shared, path, key, 2), bytes)
        assert shared.node_for(key).port == target.port
        assert shared.cluster.version > version  # type: ignore[union-attr]
        assert redis_cluster.send(target.port, "XLEN", key) == 2
    finally:
        await shared.aclose()
        await anyio.to_thread.run_sync(redis_cluster.move_slot, slot, source)


async def test_moved_changes_the_slot_at_once(redis_cluster: RedisCluster) -> None:
    shared = await started(redis_cluster.url)
    cluster = shared.cluster
    assert cluster is not None
    first, second = redis_cluster.masters()[:2]
    slot = next(r.first for r in redis_cluster.slots() if r.master == first.port)
    moved = reply_error(f"MOVED {slot} {second.host}:{second.port}")
    assert isinstance(moved, Redirected)
    assert cluster.moved(moved, cluster.master(slot)).port == second.port
    assert cluster.master(slot).port == second.port  # before any reading of the map
    assert cluster.master(slot + 1).port == first.port
    await shared.aclose()


@pytest.mark.parametrize("path", PATHS)
async def test_a_key_already_migrated_is_asked_for_at_the_target_once(
    redis_cluster: RedisCluster, path: str
) -> None:
    shared = await started(redis_cluster.url)
    key = key_on(redis_cluster, redis_cluster.masters()[1], "asked")
    slot = hash_slot(key)
    source = redis_cluster.master_of(slot)
    target = other_master(redis_cluster, source)
    try:
        await xadd(shared, path, key, 1)
        await anyio.to_thread.run_sync(redis_cluster.begin_migration, slot, target)
        assert await anyio.to_thread.run_sync(redis_cluster.migrate_keys, slot, source, target)
        # The slot is still the source's, but the key is at the target: ASK, then ASKING.
        assert isinstance(await xadd(shared, path, key, 2), bytes)
        assert shared.node_for(key).port == source.port  # ASK does not change the map
        at_target = ("AUTH", redis_cluster.password), ("ASKING",), ("XLEN", key)
        assert send_raw(target.port, *at_target)[-1] == 2
    finally:
        await shared.aclose()
        await anyio.to_thread.run_sync(redis_cluster.finish_migration, slot, target)
        await anyio.to_thread.run_sync(redis_cluster.move_slot, slot, source)


async def test_tryagain_is_retried_within_the_commands_deadline(
    redis_cluster: RedisCluster,
) -> None:
    """A multi-key command whose keys are split by a migration: TRYAGAIN until it ends."""
    cluster = redis_cluster
    shared = await started(cluster.url)
    tag = secrets.token_hex(3)
    first, second = f"{{{tag}}}:1", f"{{{tag}}}:2"
    slot = hash_slot(first)
    source = cluster.master_of(slot)
    target = other_master(cluster, source)
    try:
        await shared.pipeline([(b"SET", first, b"1"), (b"SET", second, b"2")])
        tried = cluster.errors("TRYAGAIN")
        await anyio.to_thread.run_sync(cluster.begin_migration, slot, target)
        cluster.send(
            source.port, "MIGRATE", target.host, target.port, first, 0, 5000,
            "AUTH", cluster.password,
        )  # fmt: skip

        async def finish() -> None:
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(cluster.migrate_keys, slot, source, target)
            await anyio.to_thread.run_sync(cluster.finish_migration, slot, target)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(finish)
            # The source has one key and not the other: TRYAGAIN, then MOVED once done.
            assert await shared.call(b"DEL", first, second, timeout=10) == 2
        assert cluster.errors("TRYAGAIN") > tried
    finally:
        await shared.aclose()
        await anyio.to_thread.run_sync(cluster.move_slot, slot, source)


async def test_a_blocked_read_follows_its_stream_to_the_slots_new_master(
    redis_cluster: RedisCluster,
) -> None:
    shared = await started(redis_cluster.url, timeout=10)
    key = key_on(redis_cluster, redis_cluster.masters()[2], "blocked")
    slot = hash_slot(key)
    source = redis_cluster.master_of(slot)
    target = other_master(redis_cluster, source)
    reader = shared.dedicated(key)
    found: list[Any] = []

    async def read() -> None:
        found.append(
            await reader.call(
                *(b"XREADGROUP", b"GROUP", b"g", b"c", b"BLOCK", 8000),
                *(b"STREAMS", key, b">"),
                timeout=10,
            )
        )

    try:
        await shared.call(b"XGROUP", b"CREATE", key, b"g", b"$", b"MKSTREAM")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            await anyio.sleep(0.3)  # blocked on the source
            await anyio.to_thread.run_sync(redis_cluster.move_slot, slot, target)
            await anyio.sleep(0.3)  # ... and blocked again on the target
            entry = await shared.call(b"XADD", key, b"*", b"n", 1)
        ((stream, ((entry_id, _),)),) = found[0]
        assert (stream, entry_id) == (key.encode(), entry)
        assert shared.node_for(key).port == target.port
    finally:
        await reader.close()
        await shared.aclose()
        await anyio.to_thread.run_sync(redis_cluster.move_slot, slot, source)


# -- failover -----------------------------------------------------------------------------------


async def test_a_failover_mid_stream_loses_nothing_the_bridge_published(
    redis_cluster_replicas: RedisCluster,
) -> None:
    cluster = redis_cluster_replicas
    app = new_app()
    worked: list[int] = []
    heard: list[int] = []

    @handle(Job, group="work")
    async def work(job: Job) -> None:
        worked.append(job.n)

    @handle(Job)
    async def hear(job: Job) -> None:
        heard.append(job.n)

    published: list[int] = []
    stop = anyio.Event()
    master = cluster.master_of(hash_slot(events_key_of(app)))

    async def publish_all(producer: ActorSystem) -> None:
        n = 0
        while not stop.is_set():
            await producer.publish(Job(n))
            published.append(n)
            n += 1
            await anyio.sleep(0.002)

    def transport() -> RedisTransport:
        return RedisTransport(cluster.url, publish_timeout=10.0, claim_after=2.0)

    async with (
        ActorSystem(app, transport=transport()) as consumer,
        ActorSystem(app, transport=transport()) as producer,
    ):
        await consumer.spawn(work)
        await consumer.spawn(hear)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(publish_all, producer)
            await eventually(lambda: len(published) >= 100)
            new_master = await anyio.to_thread.run_sync(cluster.failover, master)
            after = len(published)
            await eventually(lambda: len(published) >= after + 100)
            stop.set()
        await eventually(lambda: set(worked) >= set(published) <= set(heard), timeout=30)
        async with raw_client(cluster.url) as raw:
            await eventually_async(lambda: pending(raw, app), 0)
        stats = consumer.transport.stats()  # type: ignore[union-attr]
    # Every publish returned (the client rode the failover out); each event was handled.
    assert published == list(range(len(published)))
    assert set(worked) == set(heard) == set(published)
    assert cluster.master_of(hash_slot(events_key_of(app))) == new_master
    assert stats.connected


def events_key_of(app: str) -> str:
    return f"actorbus:app:{app}:events"


async def pending(raw: Any, app: str) -> int:
    return int(await raw.pending(events_key_of(app), "g:work"))


async def eventually_async(read: Any, expected: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while await read() != expected:  # noqa: ASYNC110 - polls Redis
            await anyio.sleep(0.05)


# -- spread -------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_master", [4, 5, 8, 32])
def test_partitions_spread_evenly_over_the_masters(
    redis_cluster: RedisCluster, per_master: int
) -> None:
    ranges = redis_cluster.slots()
    masters = {r.master for r in ranges}
    partitions = per_master * len(masters)
    for app in ("shop", "billing", new_app()):
        served = dict.fromkeys(masters, 0)
        for partition in range(partitions):
            slot = hash_slot(partition_tag(app, partition, partitions))
            served[next(r.master for r in ranges if r.first <= slot <= r.last)] += 1
        fair = partitions / len(masters)
        assert max(served.values()) <= 2 * fair, served
        assert min(served.values()) >= fair / 2, served


# -- losing a node ------------------------------------------------------------------------------


async def test_a_lost_master_is_an_outage_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a replica to take over, its slots are down: publishing fails, nothing is lost."""
    caplog.set_level(logging.INFO)
    app = new_app()
    seen: list[int] = []

    @handle(Job)
    async def on_job(job: Job) -> None:
        seen.append(job.n)

    with RedisCluster(masters=3, node_timeout=1000) as cluster:
        master = cluster.master_of(hash_slot(events_key_of(app)))
        transport = RedisTransport(cluster.url, publish_timeout=1.0)
        async with ActorSystem(app, transport=transport) as system:
            await system.spawn(on_job)
            await system.publish(Job(1))
            await eventually(lambda: seen == [1])

            await anyio.to_thread.run_sync(master.kill)
            with pytest.raises(TransportError, match=r"within publish_timeout=1\.0s"):
                await system.publish(Job(2))
            await eventually(lambda: not transport.stats().connected)

            await anyio.to_thread.run_sync(master.start)
            await anyio.to_thread.run_sync(cluster.wait_healthy)
            await system.publish(Job(3))
            await eventually(lambda: 3 in seen, timeout=20)
            stats = transport.stats()
    assert seen == [1, 3]
    assert stats.outages >= 1
    assert stats.reconnects >= 1
    assert stats.connected
    messages = [r.getMessage() for r in caplog.records if r.name == "actorbus.redis"]
    assert any("lost the connection" in m for m in messages)
    assert any("reconnected" in m for m in messages)


async def test_a_master_killed_mid_stream_is_replaced_by_its_replica(
    redis_cluster_replicas: RedisCluster,
) -> None:
    """A crash failover: the replica takes over after the node timeout; publishes wait.

    Redis replicates asynchronously, so what a master acknowledged in the moment before
    it crashed can be lost; the test lets the replica catch up (``WAIT``) before the kill,
    then checks every event published during and after the failover.
    """
    cluster = redis_cluster_replicas
    app = new_app()
    worked: list[int] = []

    @handle(Job, group="work")
    async def work(job: Job) -> None:
        worked.append(job.n)

    master = cluster.master_of(hash_slot(events_key_of(app)))
    published: list[int] = []

    def transport() -> RedisTransport:
        return RedisTransport(cluster.url, publish_timeout=20.0, claim_after=2.0)

    try:
        async with (
            ActorSystem(app, transport=transport()) as consumer,
            ActorSystem(app, transport=transport()) as producer,
        ):
            await consumer.spawn(work)
            for n in range(50):
                await producer.publish(Job(n))
                published.append(n)
            await eventually(lambda: len(worked) >= 50)
            cluster.send(master.port, "WAIT", 1, 5000)
            other = key_on(cluster, master, "killed")
            shared = await started(cluster.url, timeout=20)
            await anyio.to_thread.run_sync(master.kill)
            # The client reads the map again (from the other nodes) until the replica took
            # over, within the command's deadline: the command does not fail.
            assert isinstance(await shared.call(b"XADD", other, b"*", b"n", 1), bytes)
            assert shared.node_for(other).port != master.port
            await shared.aclose()
            for n in range(50, 100):
                await producer.publish(Job(n))
                published.append(n)
            await eventually(lambda: set(worked) >= set(published), timeout=30)
    finally:
        await anyio.to_thread.run_sync(master.start)  # back, as a replica of the new master
        await anyio.to_thread.run_sync(cluster.wait_healthy)
    assert set(worked) == set(range(100))


# -- TLS and AUTH -------------------------------------------------------------------------------


async def test_tls_and_the_log_in_work_on_every_node_of_a_cluster(
    tls_redis_cluster: RedisCluster,
) -> None:
    cluster = tls_redis_cluster
    url = cluster.url
    assert url.startswith("rediss://")
    shared = await started_tls(url)
    try:
        keys = [key_on(cluster, master, "tls") for master in cluster.masters()]
        assert await shared.pipeline([(b"SET", key, b"1") for key in keys]) == [b"OK"] * 3
        assert len({shared.node_for(key) for key in keys}) == 3
    finally:
        await shared.aclose()
    app = new_app()
    answered = []

    @handle(Job, group="work")
    async def work(job: Job) -> int:
        answered.append(job.n)
        return job.n * 2

    async with (
        ActorSystem(app, transport=RedisTransport(url)) as worker,
        ActorSystem(app, transport=RedisTransport(url)) as asker,
    ):
        await worker.spawn(work)
        assert await asker.request(Job(21), timeout=10) == 42
    wrong = url.replace(cluster.password, "wrong")
    with pytest.raises(TransportError, match="check the user name and password"):
        async with ActorSystem(app, transport=RedisTransport(wrong)):
            pass


async def started_tls(url: str) -> Client:
    shared = Client(endpoint(url, tls_context(url, None), redact_url(url)), timeout=5)
    await shared.start(None, timeout=5)
    return shared


async def test_an_entry_is_acknowledged_only_once_its_dead_letter_is_written() -> None:
    """The dead-letter stream's master is away: the entry stays pending until it is back."""
    seen: list[int] = []

    class Fragile(Actor):
        supervision = Supervision(policy=Policy.DEAD_LETTER)

        @handle(Job, group="work")
        async def on_job(self, job: Job) -> None:
            seen.append(job.n)
            raise RuntimeError("dead-lettered")

    # A long node timeout: the cluster stays up while one master is away.
    with RedisCluster(masters=3, node_timeout=60_000) as cluster:
        app = next(
            name
            for name in (new_app() for _ in range(100))
            if cluster.master_of(hash_slot(events_key_of(name)))
            != cluster.master_of(hash_slot(f"actorbus:app:{name}:dead"))
        )
        dead_master = cluster.master_of(hash_slot(f"actorbus:app:{app}:dead"))
        events_master = cluster.master_of(hash_slot(events_key_of(app)))
        transport = RedisTransport(events_master.url, claim_after=30.0)
        async with (
            raw_client(events_master.url) as raw,
            ActorSystem(app, transport=transport, actors=[Fragile]) as system,
        ):
            await anyio.to_thread.run_sync(dead_master.kill)
            await system.publish(Job(1))
            await eventually(lambda: seen == [1])
            await anyio.sleep(1.0)  # the acker tries, and tries again
            assert await pending(raw, app) == 1  # not acknowledged without its dead letter
            await anyio.to_thread.run_sync(dead_master.start)
            await eventually(lambda: transport.stats().dead_lettered == 1, timeout=20)
            await eventually_async(lambda: pending(raw, app), 0)
            letters = cluster.send(dead_master.port, "XLEN", f"actorbus:app:{app}:dead")
    assert letters == 1
