"""Redis bridge benchmarks: actorbus end to end beside raw coredis and redis-py, in the same run.

Run ``python benchmarks/bench_redis.py --help``. Two systems of one application run in
this process, connected through a private redis-server (or ``--url``): system A
publishes APP-scope events, system B handles them with a member of group ``bench``
(each instance also has its broadcast group, as in production; neither has a subscriber
outside a group, so neither reads it).
Every figure is measured `RUNS` times on each backend (asyncio, asyncio with uvloop when
it is installed, trio) and the median is reported next to
its baseline, measured the same way in the same process, interleaved with it:

- (g) ``redis e2e throughput``: N events published from 64 concurrent tasks in A until B
  handled the last one (concurrent publishes are coalesced into pipelines by the
  transport). Baseline: plain coredis, one task XADDs in
  non-transactional pipelines of 100 while another reads with XREADGROUP COUNT 500 and
  XACKs each batch. Target: ratio >= 0.70.
- (g) ``redis e2e throughput, publish_batch``: the same, published by one task with
  ``publish_batch``, `BATCH` events per call (the batch API). Same baseline and target.
- ``redis cpu per event``: this process's CPU time (user + system) per event in that
  run: the publishers, B's consumer of group ``bench`` and the handler all share one
  process, so on a small machine this bounds the throughput. Baseline: the same for the
  raw run.
- (g) ``redis latency p50`` / ``p99``: publish→handle latency with events published at a
  paced 1,000 per second. Baseline: coredis XADD at the same pace, read by a blocked
  XREADGROUP. Target: p99 <= 3 ms.
- (h) ``redis round trip p50`` / ``p99``: publish→handle with one event in flight (publish,
  wait until it was handled, publish the next). Baseline: a raw **redis-py** (asyncio
  client) XADD → blocked XREADGROUP round trip, one in flight, run in a worker thread with
  its own asyncio loop (redis-py has no trio support; on the uvloop backend, a uvloop
  loop) between the actorbus runs; redis-py
  parses with hiredis when it is installed, as it is with ``actorbus[redis]``. Target:
  p50 ratio <= 1.5 (since issue 20: one client stack of actorbus's own, a few tens of µs
  dearer than the two it replaced). redis-py and coredis are benchmark-only dependencies
  (``pip install -r benchmarks/requirements-bench.txt``); without redis-py those entries
  report an error. ``coredis round trip p50`` is the same round trip on coredis (information).
  All three round trips keep one deadline for the whole figure rather than one per round
  trip. Publisher and handler share this process: A's XADD reply wakes A in the same
  scheduling round in which B's read wakes B's reader, so what A does after its publish
  returns runs before B's actor is reached and is counted in the latency (the baselines
  stop their clock in the reader, before A runs). In a deployment A and B are separate
  processes; a cancel scope per round trip cost actorbus 8-17 % of its p50 here.

Every benchmark checks its own result (each event handled once, in the group) and reports
an error instead of a figure when the check fails. ``--quick`` takes about a minute.
"""

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import coredis
from _common import (
    RUNS,
    BenchError,
    Entry,
    argument_parser,
    check,
    each_backend,
    finish,
    machine_info,
    median,
    now,
    percentile,
    redis_url,
)

from actorbus import ActorSystem, Envelope, Scope, event, handle
from actorbus._wire import encode
from actorbus.redis import RedisTransport

CONCURRENCY = 64
BATCH = 1000
"""Events per `publish_batch` call in the batch figure."""
PIPELINE = 100
READ_COUNT = 500
RATE = 1000.0
"""Events per second of the latency runs."""
WARMUP = 200
FIGURE_TIMEOUT = 300.0
ROUND_TRIPS_TIMEOUT = 60.0
"""For all of a figure's round trips (2,000 take well under a second): a lost event fails soon."""


@event("bench.tick", scope=Scope.APP)
class Tick:
    seq: int
    t: int


@dataclass
class Sizes:
    events: int
    samples: int
    round_trips: int


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
        self.handled = anyio.Event()  # set by each event (round trips replace it)

    def handler(self) -> Callable[..., Awaitable[None]]:
        @handle(Tick, group="bench")
        async def sink(tick: Tick) -> None:
            if tick.seq < 0:
                return  # warm-up
            self.latencies.append(time.perf_counter_ns() - tick.t)
            check(not self.seen[tick.seq], f"event {tick.seq} handled twice")
            self.seen[tick.seq] = 1
            self.count += 1
            self.handled.set()
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
    """(events/s handled end to end, CPU µs per event) for n events from 64 tasks."""

    async def publish_all(a: ActorSystem) -> None:
        async def producer(first: int) -> None:
            for seq in range(first, n, CONCURRENCY):
                await a.publish(Tick(seq, time.perf_counter_ns()))

        async with anyio.create_task_group() as tg:
            for first in range(CONCURRENCY):
                tg.start_soon(producer, first)

    return await timed_handling(url, n, publish_all)


async def actorbus_batch_throughput(url: str, n: int) -> tuple[float, float]:
    """As `actorbus_throughput`, one task publishing with `publish_batch`, BATCH at a time."""

    async def publish_all(a: ActorSystem) -> None:
        for first in range(0, n, BATCH):
            stamp = time.perf_counter_ns()
            await a.publish_batch(Tick(seq, stamp) for seq in range(first, min(first + BATCH, n)))

    return await timed_handling(url, n, publish_all)


async def timed_handling(
    url: str, n: int, publish_all: Callable[[ActorSystem], Awaitable[None]]
) -> tuple[float, float]:
    """(events/s, CPU µs per event) from the start of `publish_all` to the nth handled."""
    sink = Sink(n)
    async with two_instances(url, sink) as a:
        await anyio.sleep(0.2)  # let the warm-up drain
        start, cpu = now(), time.process_time()
        await publish_all(a)
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


async def actorbus_round_trip(url: str, samples: int) -> list[int]:
    """Publish→handle latencies with one event in flight."""
    sink = Sink(samples)
    async with two_instances(url, sink) as a:
        await anyio.sleep(0.2)
        # One deadline for the whole figure, not one per round trip: A and B share this
        # process, so whatever A does once `publish` returns runs before B's actor does
        # (module docs); a cancel scope per round trip would be timed as B's latency.
        with anyio.fail_after(ROUND_TRIPS_TIMEOUT):
            for seq in range(samples):
                sink.handled = anyio.Event()
                await a.publish(Tick(seq, time.perf_counter_ns()))
                await sink.handled.wait()
    check(sink.count == samples, f"handled {sink.count} of {samples}")
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


async def coredis_round_trip(url: str, samples: int) -> list[int]:
    """XADD → blocked XREADGROUP on coredis, one entry in flight."""
    key = f"bench:redis:{secrets.token_hex(4)}"
    latencies: list[int] = []
    send, receive = anyio.create_memory_object_stream[int](1)
    async with coredis.Redis.from_url(url) as client, coredis.Redis.from_url(url) as reader:
        await client.xgroup_create(key, "bench", identifier="$", mkstream=True)

        async def consume() -> None:
            while True:
                found = await reader.xreadgroup(
                    "bench", "c", streams={key: ">"}, count=10, block=1000
                )
                arrived = time.perf_counter_ns()
                for entry in found[key.encode()] if found else ():
                    await send.send(arrived - int(entry.field_values[b"t"]))

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.sleep(0.1)
                with anyio.fail_after(ROUND_TRIPS_TIMEOUT):
                    for _ in range(WARMUP + samples):
                        await client.xadd(key, {b"t": str(time.perf_counter_ns())})
                        latencies.append(await receive.receive())
                tg.cancel_scope.cancel()
        finally:
            await client.delete([key])
    return latencies[WARMUP:]


# -- raw redis-py (asyncio only: run in a thread with its own event loop) ---------------------


def redispy_round_trip(
    url: str, samples: int, *, pure_python: bool = False, use_uvloop: bool = False
) -> list[int]:
    """XADD → blocked XREADGROUP on redis-py's asyncio client, one entry in flight.

    redis-py parses with hiredis when it is installed; `pure_python` makes it use its
    own parser instead (what it does without hiredis). `use_uvloop` runs it on a uvloop
    loop (the baseline of the uvloop backend), else on asyncio's own.
    """
    try:
        import redis.asyncio  # noqa: PLC0415 - a benchmark-only dependency
    except ImportError as exc:
        msg = "redis-py is not installed: pip install -r benchmarks/requirements-bench.txt"
        raise BenchError(msg) from exc

    async def main() -> list[int]:
        key = f"bench:redis:{secrets.token_hex(4)}"
        latencies: list[int] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        options: dict[str, Any] = {}
        if pure_python:
            from redis._parsers import _AsyncRESP2Parser  # noqa: PLC0415

            options["parser_class"] = _AsyncRESP2Parser
        client = redis.asyncio.Redis.from_url(url, **options)
        reader = redis.asyncio.Redis.from_url(url, **options)
        await client.xgroup_create(key, "bench", id="$", mkstream=True)

        stopping = False

        async def consume() -> None:
            # Stopped by a flag, not cancelled: redis-py may retry a cancelled blocking read.
            while not stopping:
                found = await reader.xreadgroup("bench", "c", {key: ">"}, count=10, block=100)
                arrived = time.perf_counter_ns()
                for _, entries in found or ():
                    for _, fields in entries:
                        queue.put_nowait(arrived - int(fields[b"t"]))

        task = asyncio.create_task(consume())
        try:
            await asyncio.sleep(0.1)
            async with asyncio.timeout(ROUND_TRIPS_TIMEOUT):
                for _ in range(WARMUP + samples):
                    await client.xadd(key, {b"t": str(time.perf_counter_ns())})
                    latencies.append(await queue.get())
        finally:
            stopping = True
            await task
            await client.delete(key)
            await client.aclose()
            await reader.aclose()
        return latencies[WARMUP:]

    if not use_uvloop:
        return asyncio.run(main())
    import uvloop  # noqa: PLC0415 - the uvloop backend's baseline only

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


# -- the suite ------------------------------------------------------------------------------


async def measure(url: str, backend: str, sizes: Sizes) -> list[Entry]:
    if backend == "uvloop":
        loop = asyncio.get_running_loop()
        check(type(loop).__module__.startswith("uvloop"), f"uvloop requested, got {loop}")
    runs: dict[str, list[float]] = {}
    redispy_error: str | None = None

    def add(name: str, value: float) -> None:
        runs.setdefault(name, []).append(value)

    def add_percentiles(name: str, latencies: list[int]) -> None:
        ordered = sorted(latencies)
        add(f"{name} p50", percentile(ordered, 0.50) / 1e3)
        add(f"{name} p99", percentile(ordered, 0.99) / 1e3)

    for _ in range(RUNS):
        rate, cpu = await actorbus_throughput(url, sizes.events)
        add("e2e", rate)
        add("cpu", cpu)
        rate, cpu = await raw_throughput(url, sizes.events)
        add("raw e2e", rate)
        add("raw cpu", cpu)
        rate, cpu = await actorbus_batch_throughput(url, sizes.events)
        add("batch e2e", rate)
        add("batch cpu", cpu)
        add_percentiles("paced", await actorbus_latency(url, sizes.samples))
        add_percentiles("raw paced", await raw_latency(url, sizes.samples))
        add_percentiles("rt", await actorbus_round_trip(url, sizes.round_trips))
        add_percentiles("coredis rt", await coredis_round_trip(url, sizes.round_trips))
        try:
            rounds = sizes.round_trips
            redispy = partial(redispy_round_trip, use_uvloop=backend == "uvloop")
            latencies = await anyio.to_thread.run_sync(redispy, url, rounds)
        except BenchError as exc:
            redispy_error = str(exc)
        else:
            add_percentiles("redis-py rt", latencies)
            pure = partial(redispy, pure_python=True)
            add_percentiles("pure redis-py rt", await anyio.to_thread.run_sync(pure, url, rounds))
        print(f"  {backend}: run done", file=sys.stderr, flush=True)
    m = {name: median(values) for name, values in runs.items()}
    raw_e2e = "coredis XADD pipeline 100 + XREADGROUP 500 + XACK"
    raw_paced = "coredis XADD → XREADGROUP BLOCK"
    redispy_rt = "redis-py XADD → XREADGROUP BLOCK, one in flight"
    if backend == "uvloop":
        redispy_rt += ", on uvloop"
    entries = [
        Entry("redis e2e throughput", backend, m["e2e"], "events/s", raw_e2e, m["raw e2e"],
              target="ratio >= 0.70"),
        Entry("redis cpu per event", backend, m["cpu"], "µs", raw_e2e, m["raw cpu"]),
        Entry("redis e2e throughput, publish_batch", backend, m["batch e2e"], "events/s",
              raw_e2e, m["raw e2e"], target="ratio >= 0.70"),
        Entry("redis cpu per event, publish_batch", backend, m["batch cpu"], "µs", raw_e2e,
              m["raw cpu"]),
        Entry("redis latency p50 @1000/s", backend, m["paced p50"], "µs", raw_paced,
              m["raw paced p50"]),
        Entry("redis latency p99 @1000/s", backend, m["paced p99"], "µs", raw_paced,
              m["raw paced p99"], target="value <= 3000"),
    ]  # fmt: skip
    if redispy_error is None:
        entries += [
            Entry("redis round trip p50", backend, m["rt p50"], "µs", redispy_rt,
                  m["redis-py rt p50"], target="ratio <= 1.5"),
            Entry("redis round trip p99", backend, m["rt p99"], "µs", redispy_rt,
                  m["redis-py rt p99"]),
            Entry("redis round trip p50, pure-Python redis-py", backend, m["rt p50"], "µs",
                  f"{redispy_rt}, its own parser (no hiredis)", m["pure redis-py rt p50"]),
        ]  # fmt: skip
    else:
        entries.append(Entry("redis round trip p50", backend, None, "µs", error=redispy_error))
    entries += [
        Entry("coredis round trip p50", backend, m["coredis rt p50"], "µs", redispy_rt,
              m.get("redis-py rt p50")),
        Entry("coredis round trip p99", backend, m["coredis rt p99"], "µs", redispy_rt,
              m.get("redis-py rt p99")),
    ]  # fmt: skip
    return entries


async def run_backend(url: str, backend: str, sizes: Sizes) -> list[Entry]:
    try:
        return await measure(url, backend, sizes)
    except (BenchError, TimeoutError, coredis.exceptions.RedisError) as exc:
        what = f"{type(exc).__name__}: {exc}"
        return [Entry("redis benchmarks", backend, None, "", error=what)]


def main(argv: list[str] | None = None) -> int:
    args = argument_parser(__doc__, "small runs (well under a minute)").parse_args(argv)
    sizes = Sizes(3_000, 1_000, 300) if args.quick else Sizes(20_000, 5_000, 2_000)
    entries: list[Entry] = []
    with redis_url(args.url) as url:
        for label, backend, options in each_backend(args.backend):
            entries += anyio.run(
                run_backend, url, label, sizes, backend=backend, backend_options=options
            )
    info = machine_info()
    print(
        f"{info['cpu']} x{info['nproc']}, Python {info['python']}, anyio {info['anyio']}, "
        f"trio {info['trio']}; {sizes.events} events, {sizes.samples} paced latency samples, "
        f"{sizes.round_trips} round trips, median of {RUNS} runs",
        file=sys.stderr,
    )
    return finish(entries, args.json)


if __name__ == "__main__":
    sys.exit(main())
