"""Redis Cluster benchmark: the bridge end to end on a 3-master cluster beside one server.

Run ``python benchmarks/bench_cluster.py --help``. It starts a private redis-server and a
private Redis Cluster of three masters (``tests/cluster_support.py``: no replicas, all on
this machine) and runs the same load on each, interleaved, `RUNS` times per backend
(asyncio, asyncio with uvloop when installed, trio), median reported:

- (c) ``cluster e2e throughput``: N events published from 64 concurrent tasks until the
  last one was handled by a member of group ``bench`` in another system. Baseline: the
  same load on the single server, in the same run. Target: ratio >= 0.8. On one machine
  the three masters share the cores with the one Python process that publishes and
  handles everything, so the cluster cannot be faster here; the figure shows what
  routing costs (see ``benchmarks/README.md`` for what more machines give).
- (c) ``cluster commands per master, spread``: the largest deviation, in percent, of the
  commands one master served in that run (``INFO commandstats``, reset before it) from
  the masters' mean. Target: value <= 25. It is the evidence that the load spreads.

**How the load is spread.** One application's events live in one stream, so on one
master. Until partitioned streams exist (``RedisTransport(partitions=P)``, issue 22),
the load is ``APPS_PER_MASTER`` applications per master, each a publishing system and a
consuming system, their events streams chosen to fall on every master alike
(``--spread apps``, the default). ``--spread partitions`` is the place for one
partitioned application (P = 4 x masters, keyed events) once the transport takes
``partitions=``; until then it reports an error. Every run checks that each event was
handled once; a failed check is reported as an error instead of a figure. ``--quick``
takes about a minute.
"""

import contextlib
import inspect
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
from _common import (
    RUNS,
    TESTS,
    BenchError,
    Entry,
    argument_parser,
    check,
    each_backend,
    finish,
    machine_summary,
    median,
    now,
)

from actorbus import ActorSystem, Scope, event, handle
from actorbus.redis import RedisTransport
from actorbus.redis._slots import hash_slot

sys.path.insert(0, str(TESTS))
from cluster_support import RedisCluster
from redis_support import RedisServer

CONCURRENCY = 64
APPS_PER_MASTER = 2
MASTERS = 3
WARMUP = 50
FIGURE_TIMEOUT = 300.0
SPREAD_TARGET = 25.0


@event("bench.cluster", scope=Scope.APP, key="account")
class Tick:
    seq: int
    account: str


@dataclass
class Deployment:
    """Where a run goes: a URL, and the masters whose commands are counted."""

    name: str
    url: str
    masters: list[Any]  # each has .port; empty: not counted

    def reset_stats(self, cluster: RedisCluster | None) -> None:
        for master in self.masters:
            assert cluster is not None
            cluster.send(master.port, "CONFIG", "RESETSTAT")

    def calls(self, cluster: RedisCluster | None) -> list[int]:
        assert cluster is not None
        return [cluster.command_calls(master) for master in self.masters]


class Sink:
    """Counts the events handled across every app, and checks each arrives once."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.count = 0
        self.done = anyio.Event()

    def handler(self) -> Any:
        @handle(Tick, group="bench")
        async def sink(tick: Tick) -> None:
            if tick.seq < 0:
                return  # warm-up
            check(not self.seen[tick.seq], f"event {tick.seq} handled twice")
            self.seen[tick.seq] = 1
            self.count += 1
            if self.count == self.expected:
                self.done.set()

        return sink


def spread_apps(cluster: RedisCluster) -> list[str]:
    """`APPS_PER_MASTER` application names per master: their events streams fall on each."""
    ranges = cluster.slots()
    wanted = {r.master: APPS_PER_MASTER for r in ranges}
    apps: list[str] = []
    while any(wanted.values()):
        app = f"bench-{secrets.token_hex(4)}"
        slot = hash_slot(f"actorbus:app:{app}:events")
        master = next(r.master for r in ranges if r.first <= slot <= r.last)
        if wanted[master]:
            wanted[master] -= 1
            apps.append(app)
    return apps


@contextlib.asynccontextmanager
async def publishers(url: str, apps: list[str], sink: Sink) -> AsyncIterator[list[ActorSystem]]:
    """Per app, a consuming system (group ``bench``) and a publishing one; yield the latter."""
    async with contextlib.AsyncExitStack() as stack:
        out: list[ActorSystem] = []
        for app in apps:
            consumer = await stack.enter_async_context(ActorSystem(app, transport=transport(url)))
            await consumer.spawn(sink.handler())
            out.append(await stack.enter_async_context(ActorSystem(app, transport=transport(url))))
        for seq in range(-WARMUP, 0):
            for system in out:
                await system.publish(Tick(seq, "warm-up"))
        yield out


def transport(url: str) -> RedisTransport:
    return RedisTransport(url)


def partitioned_transport(url: str) -> RedisTransport:
    """The place to switch to one partitioned application (issue 22's `partitions=`)."""
    if "partitions" not in inspect.signature(RedisTransport).parameters:
        msg = "RedisTransport has no partitions= yet: use --spread apps"
        raise BenchError(msg)
    return RedisTransport(url, partitions=4 * MASTERS)  # type: ignore[call-arg]


async def throughput(url: str, apps: list[str], n: int) -> float:
    """Events per second handled end to end, n events from `CONCURRENCY` tasks."""
    sink = Sink(n)
    async with publishers(url, apps, sink) as systems:
        await anyio.sleep(0.3)  # let the warm-up drain

        async def producer(first: int) -> None:
            for seq in range(first, n, CONCURRENCY):
                await systems[seq % len(systems)].publish(Tick(seq, f"account-{seq % 97}"))

        start = now()
        async with anyio.create_task_group() as tasks:
            for first in range(CONCURRENCY):
                tasks.start_soon(producer, first)
        with anyio.fail_after(FIGURE_TIMEOUT):
            await sink.done.wait()
        handled = now()
    check(sink.count == n, f"handled {sink.count} of {n}")
    return n / (handled - start)


@dataclass
class Load:
    """What every run does: its applications, events and runs."""

    apps: list[str]
    events: int
    runs: int


async def measure(
    single: Deployment, cluster: Deployment, redis_cluster: RedisCluster, label: str, load: Load
) -> list[Entry]:
    apps, n, runs = load.apps, load.events, load.runs
    rates: dict[str, list[float]] = {single.name: [], cluster.name: []}
    spreads: list[float] = []
    counts: list[list[int]] = []
    for run in range(runs):
        order = (single, cluster) if run % 2 == 0 else (cluster, single)
        for deployment in order:
            deployment.reset_stats(redis_cluster)
            rates[deployment.name].append(await throughput(deployment.url, apps, n))
            if deployment.masters:
                calls = deployment.calls(redis_cluster)
                mean = sum(calls) / len(calls)
                spreads.append(max(abs(c - mean) for c in calls) / mean * 100)
                counts.append(calls)
    loadavg = " ".join(f"{value:.2f}" for value in os.getloadavg())
    extra = {"apps": len(apps), "events": n, "runs": runs, "loadavg": loadavg}
    return [
        Entry(
            "cluster e2e throughput",
            label,
            median(rates[cluster.name]),
            "events/s",
            baseline_name="one server",
            baseline_value=median(rates[single.name]),
            target="ratio >= 0.8",
            extra=extra,
        ),
        Entry(
            "cluster commands per master, spread",
            label,
            median(spreads),
            "% from mean",
            target=f"value <= {SPREAD_TARGET:g}",
            extra={**extra, "calls per master": counts},
        ),
    ]


async def run_backend(
    single: Deployment, cluster: Deployment, redis_cluster: RedisCluster, label: str, load: Load
) -> list[Entry]:
    try:
        return await measure(single, cluster, redis_cluster, label, load)
    except (BenchError, TimeoutError) as exc:
        return [Entry("cluster benchmarks", label, None, "", error=f"{type(exc).__name__}: {exc}")]


@contextlib.contextmanager
def deployments() -> Iterator[tuple[Deployment, Deployment, RedisCluster]]:
    with RedisServer() as server, RedisCluster(masters=MASTERS) as cluster:
        single = Deployment("one server", server.url, [])
        yield single, Deployment("cluster", cluster.url, cluster.masters()), cluster


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__, "small runs (about a minute)", url=False)
    parser.add_argument("--spread", choices=["apps", "partitions"], default="apps")
    args = parser.parse_args(argv)
    if args.spread == "partitions":
        global transport  # noqa: PLW0603 - the one switch of the load's shape
        transport = partitioned_transport
    n, runs = (6_000, 1) if args.quick else (30_000, RUNS)
    entries: list[Entry] = []
    started = time.monotonic()
    with deployments() as (single, cluster, redis_cluster):
        # One partitioned application, or (until partitions exist) a few per master.
        apps = [f"bench-{secrets.token_hex(4)}"] if args.spread == "partitions" else []
        load = Load(apps or spread_apps(redis_cluster), n, runs)
        for label, backend, options in each_backend(args.backend):
            entries += anyio.run(
                run_backend,
                single,
                cluster,
                redis_cluster,
                label,
                load,
                backend=backend,
                backend_options=options,
            )
    print(
        f"{machine_summary()}; "
        f"{n} events, median of {runs} run(s), {time.monotonic() - started:.0f}s",
        file=sys.stderr,
    )
    return finish(entries, args.json)


if __name__ == "__main__":
    sys.exit(main())
