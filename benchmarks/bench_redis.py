"""Redis bridge benchmarks: actorbus end to end beside raw coredis, in the same run.

Run ``python benchmarks/bench_redis.py --help``. Two systems of one application run in
this process, connected through a private redis-server (or ``--url``): system A
publishes APP-scope events, system B handles them with a member of group ``bench``
(each instance also has its broadcast consumer reading every event, as in production).
Every figure is measured `RUNS` times on each backend and the median is reported next to
its baseline, plain coredis measured the same way in the same process:

- ``redis e2e throughput``: N events published from 64 concurrent tasks in A until B
  handled the last one. Baseline: one task XADDs in non-transactional pipelines of 100
  while another reads with XREADGROUP COUNT 500 and XACKs each batch.
- ``redis cpu per event``: this process's CPU time (user + system) per event in that
  run: the publisher, three consumers (A's and B's broadcast groups, B's group ``bench``)
  and the handler all share one process, so on a small machine this bounds the
  throughput. Baseline: the same for the raw run.
- ``redis latency p50`` / ``p99``: publish→handle latency with events published at a paced
  1,000 per second. Baseline: XADD at the same pace, read by a blocked XREADGROUP.

Every benchmark checks its own result (each event handled once, in the group) and reports
an error instead of a figure when the check fails. ``--quick`` takes well under a minute.
"""

import argparse
import contextlib
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import coredis
from _common import (
    BACKENDS,
    RUNS,
    BenchError,
    Entry,
    check,
    failed,
    format_table,
    machine_info,
    median,
    now,
    percentile,
    write_json,
)

from actorbus import ActorSystem, Envelope, Scope, event, handle
from actorbus._wire import encode
from actorbus.redis import RedisTransport

CONCURRENCY = 64
PIPELINE = 100
READ_COUNT = 500
RATE = 1000.0
"""Events per second of the latency runs."""
WARMUP = 200
FIGURE_TIMEOUT = 300.0


@event("bench.tick", scope=Scope.APP)
class Tick:
    seq: int
    t: int


@dataclass
class Sizes:
    events: int
    samples: int


def payload() -> bytes:
    """What actorbus puts in each entry for a `Tick`: the baselines send the same bytes."""
    return encode(Envelope(type="bench.tick", data=Tick(0, time.perf_counter_ns()), source="a"))


def new_app() -> str:
    return f"bench-{secrets.token_hex(4)}"


# -- actorbus -------------------------------------------------------------------------------


class Sink:
    """B's group member: counts events, records latencies, checks each arrives once."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.count = 0
        self.latencies: list[int] = []
        self.done = anyio.Event()

    def handler(self) -> Callable[..., Awaitable[None]]:
        @handle(Tick, group="bench")
        async def sink(tick: Tick) -> None:
            if tick.seq < 0:
                return  # warm-up
            self.latencies.append(time.perf_counter_ns() - tick.t)
            check(not self.seen[tick.seq], f"event {tick.seq} handled twice")
            self.seen[tick.seq] = 1
            self.count += 1
            if self.count == self.expected:
                self.done.set()

        return sink


@contextlib.asynccontextmanager
async def two_instances(url: str, sink: Sink) -> Any:
    app = new_app()
    async with (
        ActorSystem(app, transport=RedisTransport(url)) as b,
        ActorSystem(app, transport=RedisTransport(url)) as a,
    ):
        await b.spawn(sink.handler())
        for seq in range(-WARMUP, 0):
            await a.publish(Tick(seq, 0))
        yield a


async def actorbus_throughput(url: str, n: int) -> tuple[float, float]:
    """(events/s handled end to end, CPU µs per event) for n events."""
    sink = Sink(n)
    async with two_instances(url, sink) as a:
        await anyio.sleep(0.2)  # let the warm-up drain

        async def producer(first: int) -> None:
            for seq in range(first, n, CONCURRENCY):
                await a.publish(Tick(seq, time.perf_counter_ns()))

        start, cpu = now(), time.process_time()
        async with anyio.create_task_group() as tg:
            for first in range(CONCURRENCY):
                tg.start_soon(producer, first)
        with anyio.fail_after(FIGURE_TIMEOUT):
            await sink.done.wait()
        handled, cpu = now(), time.process_time() - cpu
    check(sink.count == n, f"handled {sink.count} of {n}")
    return n / (handled - start), cpu / n * 1e6


async def actorbus_latency(url: str, samples: int) -> list[int]:
    sink = Sink(samples)
    async with two_instances(url, sink) as a:
        await anyio.sleep(0.2)
        start = anyio.current_time()
        for seq in range(samples):
            await anyio.sleep_until(start + seq / RATE)
            await a.publish(Tick(seq, time.perf_counter_ns()))
        with anyio.fail_after(FIGURE_TIMEOUT):
            await sink.done.wait()
    return sink.latencies


# -- raw coredis ----------------------------------------------------------------------------


async def raw_throughput(url: str, n: int) -> tuple[float, float]:
    """Pipelined XADD in one task, XREADGROUP COUNT 500 + XACK in another, until all read."""
    key = f"bench:redis:{secrets.token_hex(4)}"
    fields = {b"e": payload()}
    received = 0
    async with coredis.Redis.from_url(url) as client:
        await client.xgroup_create(key, "bench", identifier="$", mkstream=True)

        async def consume() -> None:
            nonlocal received
            async with coredis.Redis.from_url(url) as reader:
                while received < n:
                    found = await reader.xreadgroup(
                        "bench", "c", streams={key: ">"}, count=READ_COUNT, block=1000
                    )
                    entries = found[key.encode()] if found else ()
                    if entries:
                        await reader.xack(key, "bench", [e.identifier for e in entries])
                        received += len(entries)

        try:
            start, cpu = now(), time.process_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                for sent in range(0, n, PIPELINE):
                    async with client.pipeline(transaction=False) as pipe:
                        for _ in range(min(PIPELINE, n - sent)):
                            pipe.xadd(key, fields)
            elapsed, cpu = now() - start, time.process_time() - cpu
        finally:
            await client.delete([key])
    check(received == n, f"raw consumer read {received} of {n}")
    return n / elapsed, cpu / n * 1e6


async def raw_latency(url: str, samples: int) -> list[int]:
    key = f"bench:redis:{secrets.token_hex(4)}"
    fields = {b"e": payload()}
    latencies: list[int] = []
    async with coredis.Redis.from_url(url) as client:
        await client.xgroup_create(key, "bench", identifier="$", mkstream=True)
        ready = anyio.Event()

        async def consume() -> None:
            async with coredis.Redis.from_url(url) as reader:
                ready.set()
                while len(latencies) < samples:
                    found = await reader.xreadgroup(
                        "bench", "c", streams={key: ">"}, count=READ_COUNT, block=1000
                    )
                    arrived = time.perf_counter_ns()
                    entries = found[key.encode()] if found else ()
                    latencies.extend(arrived - int(e.field_values[b"t"]) for e in entries)
                    if entries:
                        await reader.xack(key, "bench", [e.identifier for e in entries])

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await ready.wait()
                await anyio.sleep(0.2)
                start = anyio.current_time()
                for seq in range(samples):
                    await anyio.sleep_until(start + seq / RATE)
                    await client.xadd(key, {**fields, b"t": str(time.perf_counter_ns())})
        finally:
            await client.delete([key])
    check(len(latencies) == samples, f"raw consumer read {len(latencies)} of {samples}")
    return latencies


# -- the suite ------------------------------------------------------------------------------


async def measure(url: str, backend: str, sizes: Sizes) -> list[Entry]:
    runs: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        runs.setdefault(name, []).append(value)

    for _ in range(RUNS):
        rate, cpu = await actorbus_throughput(url, sizes.events)
        add("e2e", rate)
        add("cpu", cpu)
        rate, cpu = await raw_throughput(url, sizes.events)
        add("raw e2e", rate)
        add("raw cpu", cpu)
        ours = sorted(await actorbus_latency(url, sizes.samples))
        raw = sorted(await raw_latency(url, sizes.samples))
        for name, values in (("p50", ours), ("raw p50", raw)):
            add(name, percentile(values, 0.50) / 1e3)
        for name, values in (("p99", ours), ("raw p99", raw)):
            add(name, percentile(values, 0.99) / 1e3)
        print(f"  {backend}: run done", file=sys.stderr, flush=True)
    m = {name: median(values) for name, values in runs.items()}
    raw_e2e = "coredis XADD pipeline 100 + XREADGROUP 500 + XACK"
    raw_paced = "coredis XADD → XREADGROUP BLOCK"
    return [
        Entry("redis e2e throughput", backend, m["e2e"], "events/s", raw_e2e, m["raw e2e"],
              target="ratio >= 0.10"),
        Entry("redis cpu per event", backend, m["cpu"], "µs", raw_e2e, m["raw cpu"]),
        Entry("redis latency p50 @1000/s", backend, m["p50"], "µs", raw_paced, m["raw p50"],
              target="ratio <= 3.0"),
        Entry("redis latency p99 @1000/s", backend, m["p99"], "µs", raw_paced, m["raw p99"],
              target="ratio <= 5.0"),
    ]  # fmt: skip


async def run_backend(url: str, backend: str, sizes: Sizes) -> list[Entry]:
    try:
        return await measure(url, backend, sizes)
    except (BenchError, TimeoutError, coredis.exceptions.RedisError) as exc:
        what = f"{type(exc).__name__}: {exc}"
        return [Entry("redis benchmarks", backend, None, "", error=what)]


@contextlib.contextmanager
def redis_url(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from redis_support import RedisServer  # noqa: PLC0415 - only needed without --url

    with RedisServer() as server:
        yield server.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs (well under a minute)")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--url", help="Redis URL; default: start a private redis-server")
    parser.add_argument("--json", metavar="PATH", help="write the entries as JSON to PATH")
    args = parser.parse_args(argv)
    sizes = Sizes(events=3_000, samples=1_000) if args.quick else Sizes(20_000, 5_000)
    labels = ["asyncio", "trio"] if args.backend == "all" else [args.backend]
    entries: list[Entry] = []
    with redis_url(args.url) as url:
        for label in labels:
            backend, options = BACKENDS[label]
            print(f"measuring on {label} ...", file=sys.stderr, flush=True)
            entries += anyio.run(
                run_backend, url, label, sizes, backend=backend, backend_options=options
            )
    info = machine_info()
    print(
        f"{info['cpu']} x{info['nproc']}, Python {info['python']}, anyio {info['anyio']}, "
        f"trio {info['trio']}; {sizes.events} events, {sizes.samples} latency samples, "
        f"median of {RUNS} runs",
        file=sys.stderr,
    )
    if args.json:
        write_json(args.json, entries)
    print(format_table(entries))
    return 1 if failed(entries) else 0


if __name__ == "__main__":
    sys.exit(main())
