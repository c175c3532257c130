"""Partitions on a Redis Cluster: per-key order across instances, and through a failover."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from redis_support import new_app

from actorbus import ActorSystem, Scope, event, handle
from actorbus._keys import partition_of
from actorbus.redis import RedisTransport
from actorbus.redis._slots import hash_slot, partition_tag

if TYPE_CHECKING:
    from cluster_support import RedisCluster

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

KEYS = [f"acc-{n}" for n in range(24)]
PARTITIONS = 6


@event("clusterparts.deposit", scope=Scope.APP, key="account")
class Deposit:
    account: str
    seq: int


def transport(cluster: RedisCluster, name: str) -> RedisTransport:
    return RedisTransport(
        cluster.url,
        instance=name,
        partitions=PARTITIONS,
        lease=3.0,
        claim_after=2.0,
        publish_timeout=10.0,
    )


async def eventually(check: Any, timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls what the consumers record
            await anyio.sleep(0.02)


def first_handled_in_order(log: list[tuple[str, int]], published: dict[str, int]) -> None:
    """Every published event handled; per key, never an older one after a newer one."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for account, seq in log:
        by_key[account].append(seq)
    for account, count in published.items():
        seqs = by_key[account]
        assert list(dict.fromkeys(seqs)) == list(range(count)), account
        assert seqs == sorted(seqs), account


async def run_keyed_stream(cluster: RedisCluster, *, fail_over: bool) -> None:
    app = new_app()
    log: list[tuple[str, int]] = []

    @handle(Deposit, group="ledger")
    async def ledger(deposit: Deposit) -> None:
        log.append((deposit.account, deposit.seq))
        await anyio.lowlevel.checkpoint()

    published: dict[str, int] = dict.fromkeys(KEYS, 0)
    a_master = cluster.master_of(hash_slot("{" + partition_tag(app, 0, PARTITIONS) + "}"))
    async with (
        ActorSystem(app, transport=transport(cluster, "one"), actors=[ledger]),
        ActorSystem(app, transport=transport(cluster, "two"), actors=[ledger]),
        ActorSystem(app, transport=transport(cluster, "producer")) as producer,
    ):
        for round_ in range(40):
            for account in KEYS:
                await producer.publish(Deposit(account, round_))
                published[account] += 1
            if fail_over and round_ == 15:
                await anyio.to_thread.run_sync(cluster.failover, a_master)
        await eventually(lambda: len({(a, s) for a, s in log}) == 40 * len(KEYS))
    first_handled_in_order(log, published)
    assert {partition_of(k, PARTITIONS) for k in KEYS} == set(range(PARTITIONS))


async def test_keyed_events_keep_their_order_across_instances_on_a_cluster(
    redis_cluster: RedisCluster,
) -> None:
    await run_keyed_stream(redis_cluster, fail_over=False)


async def test_a_master_failover_mid_stream_keeps_per_key_order_and_loses_nothing(
    redis_cluster_replicas: RedisCluster,
) -> None:
    await run_keyed_stream(redis_cluster_replicas, fail_over=True)
