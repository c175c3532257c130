"""Partition benchmarks: keyed group throughput and rebalance times, against a real redis-server.

Run ``python benchmarks/bench_partitions.py --help``. Figures, each on every backend
(asyncio, asyncio with uvloop when it is installed, trio), medians of `RUNS` runs:

- ``keyed group throughput, 8 partitions``: as figure (g) of ``bench_redis.py`` — two
  instances in this process, A publishing N events from 64 concurrent tasks, B's member of
  a group handling them — but the events have keys (1,000 of them) and the transport
  ``partitions=8``: B owns all 8 partitions, so it reads 8 streams, and every
  acknowledgement is a script that checks the lease. Baseline: the unkeyed group with one
  partition (g), measured the same way in the same run, interleaved. Target: ratio >= 0.8.
- ``rebalance after a join``: B owns the 8 partitions; C starts and spawns its member.
  From when C's member exists (``spawn`` returned) until each instance owns its 4
  partitions and one event published to each partition then was handled. Baseline: two
  renewal periods (``2 * lease / 3``); target: ratio <= 1.
- ``rebalance after a graceful leave``: C stops (leaves its ``async with``): from then until B
  owns the 8 partitions and one event per partition published then was handled. Same
  baseline and target.
- ``rebalance after kill -9``: C is a process of its own (``tests/partition_worker.py``)
  owning 4 partitions; it is killed with SIGKILL. From the kill until B owns the 8 and one
  event per partition was handled. Baseline: ``lease`` + one renewal period; target:
  ratio <= 1.

``--lease`` sets the lease (10 s, the default of `RedisTransport`; ``--quick`` uses 3 s
and fewer events). Every figure checks its own result (each event handled once) and
reports an error instead of a figure when the check fails.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from _common import (
    RUNS,
    BenchError,
    Entry,
    argument_parser,
    check,
    each_backend,
    finish,
    machine_summary,
    median,
    now,
    redis_url,
)

from actorbus import ActorSystem, Scope, event, handle
from actorbus._keys import partition_of
from actorbus.redis import RedisTransport

HERE = Path(__file__).resolve().parent
WORKER = HERE.parent / "tests" / "partition_worker.py"
PARTITIONS = 8
CONCURRENCY = 64
KEYS = 1000
WARMUP = 200
FIGURE_TIMEOUT = 300.0


@event("bench.keyed", scope=Scope.APP, key="key")
class Keyed:
    seq: int
    key: str


@event("bench.unkeyed", scope=Scope.APP)
class Unkeyed:
    seq: int
    key: str


@event("part.step", scope=Scope.APP, key="order")
class Step:
    """What `tests/partition_worker.py` handles: the rebalance figures' events."""

    order: str
    n: int


@dataclass
class Sizes:
    events: int
    rebalances: int


def new_app() -> str:
    return f"bench-{secrets.token_hex(4)}"


def one_key_per_partition() -> list[str]:
    """A key of each partition (partition 0 first)."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < PARTITIONS:
        keys.setdefault(partition_of(f"k{n}", PARTITIONS), f"k{n}")
        n += 1
    return [keys[p] for p in range(PARTITIONS)]


# -- throughput -----------------------------------------------------------------------------


class Sink:
    """B's group member: counts events, checks each arrives once."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.count = 0
        self.done = anyio.Event()

    def handler(self, cls: type) -> Callable[..., Awaitable[None]]:
        @handle(cls, group="bench")
        async def sink(tick: Keyed | Unkeyed) -> None:
            if tick.seq < 0:
                return  # warm-up
            check(not self.seen[tick.seq], f"event {tick.seq} handled twice")
            self.seen[tick.seq] = 1
            self.count += 1
            if self.count == self.expected:
                self.done.set()

        return sink


async def throughput(url: str, n: int, *, keyed: bool, lease: float) -> float:
    """Events/s handled end to end, n events from 64 tasks (see the module docs)."""
    cls: type[Keyed | Unkeyed] = Keyed if keyed else Unkeyed
    settings = {"partitions": PARTITIONS, "lease": lease} if keyed else {}
    sink = Sink(n)
    app = new_app()
    consumer = RedisTransport(url, **settings)  # type: ignore[arg-type]
    async with (
        ActorSystem(app, transport=consumer) as b,
        ActorSystem(app, transport=RedisTransport(url, **settings)) as a,  # type: ignore[arg-type]
    ):
        await b.spawn(sink.handler(cls))
        with anyio.fail_after(FIGURE_TIMEOUT):
            while keyed and len(consumer.owned("bench")) < PARTITIONS:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        for seq in range(-WARMUP, 0):
            await a.publish(cls(seq, f"k{seq % KEYS}"))
        await anyio.sleep(0.2)  # let the warm-up drain

        async def producer(first: int) -> None:
            for seq in range(first, n, CONCURRENCY):
                await a.publish(cls(seq, f"k{seq % KEYS}"))

        start = now()
        async with anyio.create_task_group() as tg:
            for first in range(CONCURRENCY):
                tg.start_soon(producer, first)
        with anyio.fail_after(FIGURE_TIMEOUT):
            await sink.done.wait()
        handled = now()
    check(sink.count == n, f"handled {sink.count} of {n}")
    if keyed:
        check(consumer.stats().lost == 0, "B lost a lease during the run")
    return n / (handled - start)


# -- rebalancing ----------------------------------------------------------------------------


class Flow:
    """B's member of group ``work``: notes which (key, n) it handled."""

    def __init__(self) -> None:
        self.handled: set[tuple[str, int]] = set()

    def handler(self) -> Callable[..., Awaitable[None]]:
        @handle(Step, group="work")
        async def work(step: Step) -> None:
            self.handled.add((step.order, step.n))

        return work


async def flows(publisher: ActorSystem, marker: int, *members: Flow) -> Callable[[], bool]:
    """Publish one event per partition; return a check that `members` handled them all."""
    expected = {(key, marker) for key in one_key_per_partition()}
    for key, n in sorted(expected):
        await publisher.publish(Step(key, n))
    return lambda: expected <= set().union(*(member.handled for member in members))


async def until(check_: Callable[[], bool], what: str, timeout: float = FIGURE_TIMEOUT) -> None:
    try:
        with anyio.fail_after(timeout):
            while not check_():  # noqa: ASYNC110 - polls what the transports and handlers see
                await anyio.sleep(0.005)
    except TimeoutError:
        raise BenchError(f"timed out waiting for {what}") from None


def shares(*transports: RedisTransport) -> Callable[[], bool]:
    """Whether the transports own the partitions between them, in equal shares."""
    share = PARTITIONS // len(transports)

    def even() -> bool:
        owned = [set(t.owned("work")) for t in transports]
        return all(len(o) == share for o in owned) and set().union(*owned) == set(range(PARTITIONS))

    return even


async def join_and_leave(url: str, lease: float) -> tuple[float, float]:
    """(seconds to rebalance after a join, after a graceful leave)."""
    app = new_app()
    staying, joining = Flow(), Flow()
    b = RedisTransport(url, partitions=PARTITIONS, lease=lease)
    c = RedisTransport(url, partitions=PARTITIONS, lease=lease)
    async with ActorSystem(app, transport=b) as first:
        await first.spawn(staying.handler())
        await until(shares(b), "B to own every partition")
        async with ActorSystem(app, transport=c) as second:
            await second.spawn(joining.handler())
            joined = now()
            await until(shares(b, c), "B and C to share the partitions")
            await until(await flows(first, 1, staying, joining), "events to flow after the join")
            join = now() - joined
            left = now()
        await until(shares(b), "B to own every partition again")
        await until(await flows(first, 2, staying), "events to flow after the leave")
        leave = now() - left
    return join, leave


@contextlib.asynccontextmanager
async def worker_process(
    url: str, app: str, lease: float, backend: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    journal = Path(os.devnull)
    command = [sys.executable, str(WORKER), app, str(journal), "0", str(lease), str(PARTITIONS)]
    command.append("trio" if backend == "trio" else "asyncio")
    process = subprocess.Popen(  # noqa: ASYNC220 - waited for with a deadline below
        command, stdout=subprocess.PIPE, env={**os.environ, "REDIS_URL": url}
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(120):
            line = await anyio.to_thread.run_sync(process.stdout.readline)
        check(line.strip() == b"ready", f"the worker process did not start: {line!r}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        await anyio.to_thread.run_sync(process.wait)
        if process.stdout is not None:
            process.stdout.close()


async def kill_9(url: str, lease: float, backend: str) -> float:
    """Seconds from SIGKILL of C (a process) until B owns everything and events flow."""
    app = new_app()
    flow = Flow()
    b = RedisTransport(url, partitions=PARTITIONS, lease=lease)
    async with (
        worker_process(url, app, lease, backend) as process,
        ActorSystem(app, transport=b) as system,
    ):
        await system.spawn(flow.handler())
        await until(lambda: len(b.owned("work")) == PARTITIONS // 2, "B to own its share")
        process.send_signal(signal.SIGKILL)
        killed = now()
        await until(shares(b), "B to own every partition after the kill")
        await until(await flows(system, 3, flow), "events to flow after the kill")
        return now() - killed


# -- the suite ------------------------------------------------------------------------------


async def measure(url: str, backend: str, sizes: Sizes, lease: float) -> list[Entry]:
    runs: dict[str, list[float]] = {}
    for _ in range(RUNS):
        runs.setdefault("keyed", []).append(
            await throughput(url, sizes.events, keyed=True, lease=lease)
        )
        runs.setdefault("unkeyed", []).append(
            await throughput(url, sizes.events, keyed=False, lease=lease)
        )
        print(f"  {backend}: throughput run done", file=sys.stderr, flush=True)
    for _ in range(sizes.rebalances):
        join, leave = await join_and_leave(url, lease)
        runs.setdefault("join", []).append(join)
        runs.setdefault("leave", []).append(leave)
        runs.setdefault("kill", []).append(await kill_9(url, lease, backend))
        print(f"  {backend}: rebalance run done", file=sys.stderr, flush=True)
    m = {name: median(values) for name, values in runs.items()}
    period = lease / 3
    extra = {"lease": lease, "runs": dict(runs.items())}
    return [
        Entry(f"keyed group throughput, {PARTITIONS} partitions", backend, m["keyed"],
              "events/s", "unkeyed group, 1 partition (g), same run", m["unkeyed"],
              target="ratio >= 0.8", extra={"keys": KEYS}),
        Entry("rebalance after a join", backend, m["join"], "s",
              f"2 renewal periods (lease {lease:g} s)", 2 * period, target="ratio <= 1",
              extra=extra),
        Entry("rebalance after a graceful leave", backend, m["leave"], "s",
              f"2 renewal periods (lease {lease:g} s)", 2 * period, target="ratio <= 1",
              extra=extra),
        Entry("rebalance after kill -9", backend, m["kill"], "s",
              f"lease + 1 renewal period (lease {lease:g} s)", lease + period,
              target="ratio <= 1", extra=extra),
    ]  # fmt: skip


async def run_backend(url: str, backend: str, sizes: Sizes, lease: float) -> list[Entry]:
    try:
        return await measure(url, backend, sizes, lease)
    except (BenchError, TimeoutError) as exc:
        what = f"{type(exc).__name__}: {exc}"
        return [Entry("partition benchmarks", backend, None, "", error=what)]


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__, "small runs, a 3 s lease")
    parser.add_argument("--lease", type=float, help="seconds (default: 10, quick: 3)")
    args = parser.parse_args(argv)
    sizes = Sizes(3_000, 1) if args.quick else Sizes(20_000, 3)
    lease = args.lease or (3.0 if args.quick else 10.0)
    entries: list[Entry] = []
    started = time.perf_counter()
    with redis_url(args.url) as url:
        for label, backend, options in each_backend(args.backend):
            entries += anyio.run(
                run_backend, url, label, sizes, lease, backend=backend, backend_options=options
            )
    print(
        f"{machine_summary()}; "
        f"{sizes.events} events, {sizes.rebalances} rebalance runs, lease {lease:g} s, "
        f"{time.perf_counter() - started:.0f} s in all",
        file=sys.stderr,
    )
    return finish(entries, args.json)


if __name__ == "__main__":
    sys.exit(main())
