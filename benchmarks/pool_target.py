"""The target of ``bench_pool.py``: a CPU-bound member of keyed group ``bench``.

``actorbus run pool_target:make_system [--workers N]`` from this directory. Settings come
from the environment: ``BENCH_POOL_URL`` (Redis), ``BENCH_POOL_APP`` (the application
name), ``BENCH_POOL_LOOPS`` (iterations of `burn` per event, calibrated by
``bench_pool.py`` to about 200 µs) and ``BENCH_POOL_PARTITIONS`` (8 by default). The
system builds its own `RedisTransport` with the partitions: the pool gives each worker's
transport its name, ``<instance>-<i>``.
"""

import os

from actorbus import Actor, ActorSystem, Scope, event, handle
from actorbus.redis import RedisTransport

GROUP = "bench"


# A keyed group: each account's jobs are handled in order, by the owner of its partition.
@event("bench.pool.job", scope=Scope.APP, key="account")
class Job:
    seq: int
    account: str


def burn(loops: int) -> int:
    """Pure-Python work: `loops` iterations of integer arithmetic."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


class Burner(Actor):
    group = GROUP

    def __init__(self) -> None:
        self.loops = int(os.environ["BENCH_POOL_LOOPS"])

    # An async handler on purpose: the work holds the worker's event loop, as CPU-bound
    # code in an async handler does (a sync handler would run in a thread).
    @handle()
    async def work(self, job: Job) -> None:  # noqa: ARG002 - the work does not depend on it
        burn(self.loops)


def make_system() -> ActorSystem:
    partitions = int(os.environ.get("BENCH_POOL_PARTITIONS", "8"))
    transport = RedisTransport(
        os.environ["BENCH_POOL_URL"], instance="bench", partitions=partitions
    )
    return ActorSystem(os.environ["BENCH_POOL_APP"], actors=[Burner], transport=transport)
