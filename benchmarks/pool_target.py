"""The target of ``bench_pool.py``: a CPU-bound member of group ``bench``, run by ``actorbus run``.

``actorbus run pool_target:make_system --redis URL [--workers N]`` from this directory.
Settings come from the environment: ``BENCH_POOL_APP`` (the application name) and
``BENCH_POOL_LOOPS`` (iterations of `burn` per event, calibrated by ``bench_pool.py`` to
about 200 µs).
"""

import os

from actorbus import Actor, ActorSystem, Scope, event, handle

GROUP = "bench"


# The issue asks for a *keyed* group. Keys arrive with issue 22 (partitions): then add
# ``key="account"`` here, and the publisher's distinct accounts spread the keys over the
# partitions; until then the group is plain and `account` is only carried along.
@event("bench.pool.job", scope=Scope.APP)
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
    return ActorSystem(os.environ["BENCH_POOL_APP"], actors=[Burner])
