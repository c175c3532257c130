"""Core benchmarks: actorbus beside raw anyio measured in the same run, on every backend.

Run ``python benchmarks/bench_core.py --help``. Every figure is measured `RUNS` times and
the median is reported next to its baselines ("limits"), measured in the same process on
the same backend:

- direct: a loop of ``await handler(event)`` (no task switch at all);
- naive stream: an anyio memory object stream (buffer 1000) between two tasks,
  ``await send()`` / ``async for``;
- batched stream: the same stream, the producer uses ``send_nowait`` while there is room
  and awaits ``send`` only on `WouldBlock`, the consumer drains with ``receive_nowait``
  and awaits ``receive()`` only when the buffer is empty.

Every benchmark checks its own result (counts and checksums of the handled messages,
replies, actors alive) and reports an error instead of a figure when the check fails.
"""

import argparse
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import attrs
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
    rss_bytes,
    write_json,
)
from anyio import EndOfStream, WouldBlock, create_memory_object_stream, create_task_group
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actorbus import Actor, ActorSystem, event, handle

BUFFER = 1000
"""Stream buffer of the baselines; also actorbus's default mailbox capacity."""
FANOUT = 10
FIGURE_TIMEOUT = 1800.0
"""A hung benchmark becomes an error after this many seconds instead of hanging the run."""


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does per run."""

    messages: int  # (a), (b) and their baselines
    fanout_events: int  # (c): events published; deliveries are FANOUT times more
    asks: int  # (d): round trips per run
    spawn: tuple[int, ...]  # (e): actors per spawn run
    subs_events: int  # (f): events published per run
    warmup: int  # messages of the unmeasured warm-up run
    extras: bool  # informative extras: naive fan-out, start_soon spawn, shutdown of 10,000


QUICK = Sizes(20_000, 2_000, 3_000, (10_000,), 30_000, 1_000, extras=False)
FULL = Sizes(200_000, 20_000, 40_000, (10_000, 100_000), 200_000, 5_000, extras=True)
TEARDOWN_MAX = 10_000  # shutdown is measured up to this many actors (it is slow beyond)


def log(message: str) -> None:
    """Progress goes to stderr, so stdout keeps the table only."""
    print(message, file=sys.stderr, flush=True)


# -- events, handlers, actors ----------------------------------------------------------------


@event("bench.ping")
class Ping:
    n: int


@event("bench.query")
class Query:
    n: int


@event("bench.idle")
class Nothing:
    n: int


class Tally:
    """What a handler saw: a count and a checksum of the event numbers."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def reset(self) -> None:
        self.count = self.total = 0

    def verify(self, n: int, what: str) -> None:
        check(
            self.count == n and self.total == n * (n - 1) // 2,
            f"{what}: the handler saw {self.count} of {n} messages "
            f"(checksum {self.total}, expected {n * (n - 1) // 2})",
        )


def make_handler(tally: Tally) -> Callable[[Ping], Awaitable[None]]:
    """The baselines' handler: the same work as `Counter.on_ping`."""

    async def handler(event: Ping) -> None:
        tally.count += 1
        tally.total += event.n

    return handler


async def answer(query: Query) -> int:
    """The request/reply baseline's handler: the same work as `Echo.on_query`."""
    return query.n + 1


class Counter(Actor):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    @handle(Ping)
    async def on_ping(self, event: Ping) -> None:
        tally = self.tally
        tally.count += 1
        tally.total += event.n


class Echo(Actor):
    @handle(Query)
    async def on_query(self, query: Query) -> int:
        return query.n + 1


class Idle(Actor):
    @handle(Nothing)
    async def on_nothing(self, event: Nothing) -> None:
        pass


@attrs.frozen
class _OtherBase:
    n: int


_other_classes: list[type[Any]] = []


def other_classes(count: int) -> list[type[Any]]:
    """`count` registered event classes ("other.N") that nobody publishes (for (f))."""
    while len(_other_classes) < count:
        number = len(_other_classes)
        cls = type(f"Other{number}", (_OtherBase,), {"__module__": __name__})
        _other_classes.append(event(f"other.{number}")(cls))
    return _other_classes[:count]


unrelated_calls = 0


async def unrelated(_event: object) -> None:
    """The unrelated subscribers of (f): never called, or the benchmark fails."""
    global unrelated_calls  # noqa: PLW0603
    unrelated_calls += 1


# -- baselines: one consumer --------------------------------------------------------------


def collect(generation: int = 2) -> None:
    """Start every measured run with no garbage left from the previous one.

    With 10,000 actors alive a full collection takes about half a second: (f) collects
    the young generations only (its runs leave no cycles behind anyway).
    """
    gc.collect(generation)


async def base_direct(n: int) -> float:
    tally = Tally()
    handler = make_handler(tally)
    collect()
    started = now()
    for i in range(n):
        await handler(Ping(i))
    elapsed = now() - started
    tally.verify(n, "direct")
    return n / elapsed


async def _naive_consumer(
    receive: MemoryObjectReceiveStream[Ping],
    handler: Callable[[Ping], Awaitable[None]],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    async with receive:
        async for item in receive:
            await handler(item)


async def batched_consumer(
    receive: MemoryObjectReceiveStream[Ping],
    handler: Callable[[Ping], Awaitable[None]],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    with receive:
        while True:
            try:
                item = receive.receive_nowait()
            except WouldBlock:
                try:
                    item = await receive.receive()
                except EndOfStream:
                    return
            except EndOfStream:
                return
            await handler(item)


async def base_stream(n: int, *, batched: bool) -> float:
    tally = Tally()
    handler = make_handler(tally)
    send, receive = create_memory_object_stream[Ping](BUFFER)
    consumer = batched_consumer if batched else _naive_consumer
    collect()
    async with create_task_group() as tg:
        await tg.start(consumer, receive, handler)
        started = now()
        with send:
            if batched:
                for i in range(n):
                    item = Ping(i)
                    try:
                        send.send_nowait(item)
                    except WouldBlock:
                        await send.send(item)
            else:
                for i in range(n):
                    await send.send(Ping(i))
    elapsed = now() - started
    tally.verify(n, "batched stream" if batched else "naive stream")
    return n / elapsed


# -- baselines: fan-out to FANOUT consumers, one bare stream each ----------------------------


async def base_fanout_direct(n: int) -> float:
    tallies = [Tally() for _ in range(FANOUT)]
    handlers = [make_handler(t) for t in tallies]
    collect()
    started = now()
    for i in range(n):
        item = Ping(i)
        for handler in handlers:
            await handler(item)
    elapsed = now() - started
    for tally in tallies:
        tally.verify(n, "fan-out direct")
    return n * FANOUT / elapsed


async def base_fanout_stream(n: int, *, batched: bool) -> float:
    tallies = [Tally() for _ in range(FANOUT)]
    streams = [create_memory_object_stream[Ping](BUFFER) for _ in range(FANOUT)]
    sends = [send for send, _ in streams]
    consumer = batched_consumer if batched else _naive_consumer
    collect()
    async with create_task_group() as tg:
        for (_, receive), tally in zip(streams, tallies, strict=True):
            await tg.start(consumer, receive, make_handler(tally))
        started = now()
        if batched:
            for i in range(n):
                item = Ping(i)
                for send in sends:
                    try:
                        send.send_nowait(item)
                    except WouldBlock:
                        await send.send(item)
        else:
            for i in range(n):
                item = Ping(i)
                for send in sends:
                    await send.send(item)
        for send in sends:
            send.close()
    elapsed = now() - started
    for tally in tallies:
        tally.verify(n, "fan-out stream")
    return n * FANOUT / elapsed


# -- actorbus: (a) tell, (b) publish, (c) fan-out --------------------------------------------


async def ab_tell(n: int) -> float:
    tally = Tally()
    async with ActorSystem("bench") as system:
        ref = await system.spawn(Counter, tally)
        collect()
        started = now()
        for i in range(n):
            await ref.tell(Ping(i))
        await system.drain()
        elapsed = now() - started
        tally.verify(n, "tell")
        check(ref.stats.processed == n, f"tell: stats.processed is {ref.stats.processed}")
    return n / elapsed


async def ab_publish(n: int) -> float:
    tally = Tally()
    async with ActorSystem("bench") as system:
        ref = await system.spawn(Counter, tally)
        collect()
        envelope = None
        started = now()
        for i in range(n):
            envelope = await system.publish(Ping(i))
        await system.drain()
        elapsed = now() - started
        tally.verify(n, "publish")
        check(ref.stats.processed == n, f"publish: stats.processed is {ref.stats.processed}")
        check(
            envelope is not None and envelope.type == "bench.ping" and envelope.data == Ping(n - 1),
            f"publish returned {envelope!r}",
        )
    return n / elapsed


async def ab_fanout(n: int) -> float:
    tallies = [Tally() for _ in range(FANOUT)]
    async with ActorSystem("bench") as system:
        for tally in tallies:
            await system.spawn(Counter, tally)
        collect()
        started = now()
        for i in range(n):
            await system.publish(Ping(i))
        await system.drain()
        elapsed = now() - started
        for tally in tallies:
            tally.verify(n, "fan-out publish")
    return n * FANOUT / elapsed


# -- (d) ask latency -------------------------------------------------------------------------


async def _server(
    requests: MemoryObjectReceiveStream[Query],
    replies: MemoryObjectSendStream[int],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    async with requests, replies:
        async for query in requests:
            await replies.send(await answer(query))


async def base_request_reply(n: int) -> list[float]:
    request_send, request_receive = create_memory_object_stream[Query](BUFFER)
    reply_send, reply_receive = create_memory_object_stream[int](BUFFER)
    samples: list[float] = []
    wrong = 0
    collect()
    async with create_task_group() as tg:
        await tg.start(_server, request_receive, reply_send)
        async with request_send, reply_receive:
            for i in range(n):
                started = now()
                await request_send.send(Query(i))
                reply = await reply_receive.receive()
                samples.append(now() - started)
                wrong += reply != i + 1
    check(wrong == 0 and len(samples) == n, f"request/reply: {wrong} wrong replies")
    return samples


async def ab_ask(n: int) -> list[float]:
    samples: list[float] = []
    wrong = 0
    async with ActorSystem("bench") as system:
        ref = await system.spawn(Echo)
        collect()
        for i in range(n):
            started = now()
            reply = await ref.ask(Query(i))
            samples.append(now() - started)
            wrong += reply != i + 1
        check(ref.stats.processed == n, f"ask: stats.processed is {ref.stats.processed}")
    check(wrong == 0 and len(samples) == n, f"ask: {wrong} wrong replies")
    return samples


# -- (f) publish while many unrelated subscriptions exist -------------------------------------


class GCWatch:
    """Counts the garbage collections (per generation) and their time while enabled."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0
        self.enabled = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.enabled:
            return
        if phase == "start":
            self._started = now()
        else:
            self.seconds += now() - self._started
            self.collections[info["generation"]] += 1


@contextlib.asynccontextmanager
async def subscribed_system(unrelated_count: int) -> AsyncIterator[tuple[ActorSystem, Tally]]:
    """A system with one `Counter` of `Ping` beside `unrelated_count` unrelated subscriptions.

    Half are exact types of other registered classes, half globs such as ``other.7.*``;
    each is a function subscriber (its own actor, as `system.on` makes it).
    """
    classes = other_classes(unrelated_count // 2 + 1)
    tally = Tally()
    async with ActorSystem(f"bench-subs-{unrelated_count}") as system:
        await system.spawn(Counter, tally, name="target")
        for i in range(unrelated_count):
            target: type[Any] | str = classes[i // 2] if i % 2 == 0 else f"other.{i // 2}.*"
            system.on(target, name=f"unrelated-{i}")(unrelated)
        actors = len(system.stats())
        check(actors == unrelated_count + 1, f"subscriptions: {actors} actors")
        yield system, tally


async def publish_run(
    system: ActorSystem, tally: Tally, n: int, watch: GCWatch | None = None
) -> float:
    """Events/s publishing `n` events to the `Counter`, until all are handled."""
    tally.reset()
    collect(1)
    if watch is not None:
        watch.enabled = True
    started = now()
    for i in range(n):
        await system.publish(Ping(i))
    await system.drain()
    elapsed = now() - started
    if watch is not None:
        watch.enabled = False
    tally.verify(n, f"publish in {system.name}")
    return n / elapsed


async def subs_publish(
    n: int, runs: int, warmup: int, on_measured: Callable[[dict[str, Any]], None]
) -> None:
    """(f): publish beside 10 and beside 10,000 unrelated subscriptions.

    Both systems are alive together and their runs alternate (ABBA), so drift and noise
    from the machine hit both alike. Steady state: the warm-up run starts the subscribers'
    tasks and fills the route cache. Also measured (info): one `publish` right after a
    subscription change, which empties the route cache. `on_measured` gets the results
    while both systems still run (so a child process may leave without their shutdown).
    """
    watch = GCWatch()
    gc.callbacks.append(watch)
    calls_before = unrelated_calls
    rates: dict[int, list[float]] = {10: [], 10_000: []}
    after_change: dict[int, float] = {}
    try:
        async with subscribed_system(10) as few, subscribed_system(10_000) as many:
            systems = {10: few, 10_000: many}
            for system, tally in systems.values():
                await publish_run(system, tally, warmup)
            for number in range(runs):
                order = (10, 10_000) if number % 2 == 0 else (10_000, 10)
                for count in order:
                    rates[count].append(await publish_run(*systems[count], n, watch))
            for count, (system, tally) in systems.items():
                tally.reset()
                samples = []
                for i in range(20):
                    system.on("bench.nothing.*", name=f"late-{i}")(unrelated)
                    started = now()
                    await system.publish(Ping(i))
                    samples.append(now() - started)
                await system.drain()
                tally.verify(20, "publish after a subscription change")
                after_change[count] = median(samples)
            check(unrelated_calls == calls_before, "an unrelated subscriber got a Ping")
            on_measured(
                {
                    "rates": rates,
                    "after_change": after_change,
                    "gc_collections": watch.collections,
                    "gc_seconds": watch.seconds,
                }
            )
    finally:
        gc.callbacks.remove(watch)


# -- (e) spawn: each run in a fresh child process ----------------------------------------------


class _Started:
    __slots__ = ("all", "count", "expected")

    def __init__(self, expected: int) -> None:
        self.count = 0
        self.expected = expected
        self.all = anyio.Event()


async def _idle_task(
    receive: MemoryObjectReceiveStream[Nothing],
    started: _Started,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    started.count += 1
    if started.count == started.expected:
        started.all.set()
    task_status.started()
    async with receive:
        async for _ in receive:
            pass


async def _child_bare(k: int, *, soon: bool, teardown: bool) -> dict[str, float]:
    sends: list[MemoryObjectSendStream[Nothing]] = []
    started = _Started(k)
    result: dict[str, float] = {}
    async with create_task_group() as tg:
        collect()
        rss = rss_bytes()
        begin = now()
        for _ in range(k):
            send, receive = create_memory_object_stream[Nothing](BUFFER)
            if soon:
                tg.start_soon(_idle_task, receive, started)
            else:
                await tg.start(_idle_task, receive, started)
            sends.append(send)
        await started.all.wait()  # start_soon: until every task runs
        result["seconds"] = now() - begin
        collect()
        result["bytes"] = (rss_bytes() - rss) / k
        check(started.count == k, f"bare spawn: {started.count} of {k} tasks started")
        if not teardown:
            _child_done(result)
        begin = now()
        for send in sends:
            send.close()
    result["teardown"] = now() - begin
    return result


async def _child_actorbus(k: int, *, teardown: bool) -> dict[str, float]:
    result: dict[str, float] = {}
    async with ActorSystem("bench-spawn") as system:
        collect()
        rss = rss_bytes()
        begin = now()
        refs = [await system.spawn(Idle, name=f"idle-{i}") for i in range(k)]
        result["seconds"] = now() - begin
        collect()
        result["bytes"] = (rss_bytes() - rss) / k
        alive = sum(not ref.stopped for ref in refs)
        check(alive == k and len(system.stats()) == k, f"spawn: {alive} of {k} actors alive")
        if not teardown:
            _child_done(result)
        begin = now()
    result["teardown"] = now() - begin
    stopped = sum(ref.stopped for ref in refs)
    check(stopped == k, f"spawn: {stopped} of {k} actors stopped after the system")
    return result


def _child_done(result: object) -> None:
    """Report and leave at once: tearing 100,000 actors down is not what is measured."""
    print(json.dumps(result), flush=True)
    os._exit(0)


def spawn_child(backend: str, variant: str, k: int, teardown: bool) -> None:
    """Body of the ``--spawn-child`` process: one spawn run, reported as one JSON line."""
    name, options = BACKENDS[backend]
    if variant == "actorbus":
        body = functools.partial(_child_actorbus, k, teardown=teardown)
    else:
        body = functools.partial(_child_bare, k, soon=variant == "bare-soon", teardown=teardown)
    _child_done(anyio.run(body, backend=name, backend_options=options))


def run_spawn_child(backend: str, variant: str, k: int, teardown: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--spawn-child", backend, variant, str(k)]
    if teardown:
        command.append("--teardown")
    return _run_child(command)


# -- the suite ---------------------------------------------------------------------------------


class Suite:
    """Measures the figures of one backend and collects their entries."""

    def __init__(
        self, backend: str, sizes: Sizes, figures: set[str], *, leave_early: bool = False
    ) -> None:
        self.backend = backend
        self.sizes = sizes
        self.figures = figures
        self.entries: list[Entry] = []
        self.leave_early = leave_early
        self._step_began = now()

    def add(self, figure: str, value: float | None, unit: str, **kwargs: Any) -> Entry:
        entry = Entry(figure, self.backend, value, unit, **kwargs)
        self.entries.append(entry)
        return entry

    def fail(self, figures: list[tuple[str, str]], error: BaseException) -> None:
        log(f"  [{self.backend}] FAILED: {error!r}")
        for figure, unit in figures:
            self.add(figure, None, unit, error=f"{type(error).__name__}: {error}")

    async def measure(
        self, variants: dict[str, Callable[[int], Awaitable[Any]]], n: int
    ) -> dict[str, list[Any]]:
        """Warm every variant up once, then run each `RUNS` times, interleaved."""
        results: dict[str, list[Any]] = {name: [] for name in variants}
        for func in variants.values():
            await func(self.sizes.warmup)
        for _ in range(RUNS):
            for name, func in variants.items():
                results[name].append(await func(n))
        return results

    async def run(self) -> list[Entry]:
        steps = [
            ("ab", self.throughput, [("a.tell", "msgs/s"), ("b.publish", "events/s")]),
            ("c", self.fanout, [("c.fanout10", "deliveries/s")]),
            ("d", self.ask, [("d.ask.p50", "us")]),
            ("f", self.subscriptions, [("f.cost_ratio", "x")]),
        ]
        for key, step, figures in steps:
            if not self.figures & set(key):
                continue
            self._step_began = now()
            try:
                with anyio.fail_after(FIGURE_TIMEOUT):
                    await step()
            except Exception as exc:
                self.fail(figures, exc)
            log(f"  [{self.backend}]   ({now() - self._step_began:.1f}s)")
        return self.entries

    async def throughput(self) -> None:
        n = self.sizes.messages
        log(f"  [{self.backend}] (a)/(b) one consumer, {n:,} messages x {RUNS} runs")
        variants: dict[str, Callable[[int], Awaitable[Any]]] = {
            "direct": base_direct,
            "naive": lambda n: base_stream(n, batched=False),
            "batched": lambda n: base_stream(n, batched=True),
        }
        if "a" in self.figures:
            variants["tell"] = ab_tell
        if "b" in self.figures:
            variants["publish"] = ab_publish
        rates = {name: median(values) for name, values in (await self.measure(variants, n)).items()}
        batched = "base.stream.batched"
        self.add("base.direct", rates["direct"], "msgs/s")
        self.add("base.stream.naive", rates["naive"], "msgs/s")
        self.add(batched, rates["batched"], "msgs/s")
        if "tell" in rates:
            self.add(
                "a.tell",
                rates["tell"],
                "msgs/s",
                baseline_name=batched,
                baseline_value=rates["batched"],
                target="ratio >= 0.40",
                extra={"vs_direct": rates["tell"] / rates["direct"]},
            )
        if "publish" in rates:
            self.add(
                "b.publish",
                rates["publish"],
                "events/s",
                baseline_name=batched,
                baseline_value=rates["batched"],
                target="ratio >= 0.25",
                extra={"vs_direct": rates["publish"] / rates["direct"]},
            )

    async def fanout(self) -> None:
        n = self.sizes.fanout_events
        log(f"  [{self.backend}] (c) fan-out to {FANOUT}, {n:,} events x {RUNS} runs")
        variants: dict[str, Callable[[int], Awaitable[Any]]] = {
            "direct": base_fanout_direct,
            "naive": lambda n: base_fanout_stream(n, batched=False),
            "batched": lambda n: base_fanout_stream(n, batched=True),
            "publish": ab_fanout,
        }
        if not self.sizes.extras:
            del variants["naive"]  # the slowest baseline, and only informative
        rates = {name: median(values) for name, values in (await self.measure(variants, n)).items()}
        batched = "base.fanout10.batched"
        self.add("base.fanout10.direct", rates["direct"], "deliveries/s")
        if "naive" in rates:
            self.add("base.fanout10.naive", rates["naive"], "deliveries/s")
        self.add(batched, rates["batched"], "deliveries/s")
        self.add(
            "c.fanout10",
            rates["publish"],
            "deliveries/s",
            baseline_name=batched,
            baseline_value=rates["batched"],
            target="ratio >= 0.40",
        )
        self.add(
            "c.fanout10.events",
            rates["publish"] / FANOUT,
            "events/s",
            baseline_name=batched,
            baseline_value=rates["batched"] / FANOUT,
        )

    async def ask(self) -> None:
        n = self.sizes.asks
        log(f"  [{self.backend}] (d) ask round trips, {n:,} x {RUNS} runs")
        runs = await self.measure({"reqrep": base_request_reply, "ask": ab_ask}, n)
        figures: dict[str, dict[str, float]] = {}
        for name, all_samples in runs.items():
            p50s, p99s = [], []
            for samples in all_samples:
                ordered = sorted(samples)
                p50s.append(percentile(ordered, 0.50) * 1e6)
                p99s.append(percentile(ordered, 0.99) * 1e6)
            figures[name] = {"p50": median(p50s), "p99": median(p99s)}
        base, ask = figures["reqrep"], figures["ask"]
        self.add("base.reqrep.p50", base["p50"], "us")
        self.add("base.reqrep.p99", base["p99"], "us")
        self.add(
            "d.ask.p50",
            ask["p50"],
            "us",
            baseline_name="base.reqrep.p50",
            baseline_value=base["p50"],
            target="ratio <= 2.0",
        )
        self.add(
            "d.ask.p99",
            ask["p99"],
            "us",
            baseline_name="base.reqrep.p99",
            baseline_value=base["p99"],
        )

    async def subscriptions(self) -> None:
        n = self.sizes.subs_events
        log(f"  [{self.backend}] (f) publish beside 10 / 10,000 subscriptions, {n:,} x {RUNS}")
        await subs_publish(n, RUNS, self.sizes.warmup, self._subscriptions_measured)

    def _subscriptions_measured(self, found: dict[str, Any]) -> None:
        few, many = (median(found["rates"][count]) for count in (10, 10_000))
        gc_info = {
            "gc_collections_during_runs": found["gc_collections"],
            "gc_seconds_during_runs": found["gc_seconds"],
        }
        self.add("f.publish.10subs", few, "events/s")
        self.add(
            "f.publish.10000subs",
            many,
            "events/s",
            baseline_name="f.publish.10subs",
            baseline_value=few,
            extra=gc_info,
        )
        cost_ratio = few / many  # cost per event = 1 / rate
        self.add(
            "f.cost_ratio",
            cost_ratio,
            "x",
            baseline_name="cost(10,000 subs)/cost(10 subs)",
            ratio=cost_ratio,
            target="ratio <= 1.10",
        )
        late_few, late_many = (found["after_change"][count] * 1e6 for count in (10, 10_000))
        self.add("f.publish_after_subscribe.10subs", late_few, "us")
        self.add(
            "f.publish_after_subscribe.10000subs",
            late_many,
            "us",
            baseline_name="f.publish_after_subscribe.10subs",
            baseline_value=late_few,
        )
        if self.leave_early:
            # (f) is the last step: report now and skip the shutdown of 10,000 actors,
            # which is not what (f) measures and takes seconds.
            log(f"  [{self.backend}]   ({now() - self._step_began:.1f}s, without the shutdown)")
            _child_done([asdict(e) for e in self.entries])

    def spawn(self) -> None:
        """(e) Each run is a fresh child process: clean RSS, and no 100,000-actor shutdown."""
        for k in self.sizes.spawn:
            label = f"{k // 1000}k"
            teardown = self.sizes.extras and k <= TEARDOWN_MAX
            log(f"  [{self.backend}] (e) spawn {k:,} idle actors x {RUNS} runs (child processes)")
            figures = [(f"e.spawn{label}", "s"), (f"e.spawn{label}.bytes", "B/actor")]
            begin = now()
            try:
                variants = ["bare-start", "bare-soon", "actorbus"]
                if not self.sizes.extras:
                    variants.remove("bare-soon")
                runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
                for _ in range(RUNS):
                    for variant, results in runs.items():
                        results.append(run_spawn_child(self.backend, variant, k, teardown))
            except Exception as exc:
                self.fail(figures, exc)
                continue
            log(f"  [{self.backend}]   ({now() - begin:.1f}s)")
            figure = {
                variant: {key: median([r[key] for r in results]) for key in results[0]}
                for variant, results in runs.items()
            }
            bare, actors = figure["bare-start"], figure["actorbus"]
            soon = figure.get("bare-soon")
            base = f"base.spawn{label}"
            self.add(base, bare["seconds"], "s", extra={"how": "await tg.start() each"})
            if soon is not None:
                self.add(f"{base}.start_soon", soon["seconds"], "s")
            self.add(
                f"e.spawn{label}",
                actors["seconds"],
                "s",
                baseline_name=base,
                baseline_value=bare["seconds"],
                target="ratio <= 2.0" if k >= 100_000 else None,
                extra={"vs_start_soon": actors["seconds"] / soon["seconds"]} if soon else {},
            )
            self.add(f"{base}.bytes", bare["bytes"], "B/actor", extra={"method": "RSS delta"})
            self.add(
                f"e.spawn{label}.bytes",
                actors["bytes"],
                "B/actor",
                baseline_name=f"{base}.bytes",
                baseline_value=bare["bytes"],
                target="ratio <= 1.5",
                extra={"method": "RSS delta"},
            )
            if teardown:
                self.add(f"{base}.teardown", bare["teardown"], "s")
                self.add(
                    f"e.teardown{label}",
                    actors["teardown"],
                    "s",
                    baseline_name=f"{base}.teardown",
                    baseline_value=bare["teardown"],
                )


def suite_child(backend: str, sizes: Sizes, figures: set[str]) -> None:
    """Body of the ``--suite-child`` process: (a)-(d) and (f) on one backend, as JSON."""
    name, options = BACKENDS[backend]
    suite = Suite(backend, sizes, figures, leave_early=True)

    async def main() -> None:
        if backend == "uvloop":
            import asyncio  # noqa: PLC0415

            loop = type(asyncio.get_running_loop())
            check(loop.__module__.startswith("uvloop"), f"uvloop requested, got {loop}")
        await suite.run()

    anyio.run(main, backend=name, backend_options=options)
    _child_done([asdict(e) for e in suite.entries])


def _run_child(command: list[str]) -> Any:
    """Run a child process (progress on our stderr) and read its last stdout line as JSON."""
    done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        command, stdout=subprocess.PIPE, text=True, timeout=FIGURE_TIMEOUT * 4
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        msg = f"{' '.join(command[2:])} failed with status {done.returncode}"
        raise BenchError(msg)
    return json.loads(lines[-1])


def run_backend(backend: str, sizes: Sizes, figures: set[str], *, quick: bool) -> list[Entry]:
    """All figures of one backend: each backend runs in fresh child processes."""
    if backend == "uvloop":
        try:
            import uvloop  # noqa: F401, PLC0415
        except ImportError:
            log("  [uvloop] skipped: uvloop is not installed (pip install uvloop)")
            return []
    suite = Suite(backend, sizes, figures)
    in_process = "".join(sorted(figures & set("abcdf")))
    if in_process:
        command = [sys.executable, __file__, "--suite-child", backend, "--figures", in_process]
        if quick:
            command.append("--quick")
        try:
            suite.entries.extend(Entry(**item) for item in _run_child(command))
        except Exception as exc:
            suite.fail([("a-d, f", "-")], exc)
    if "e" in figures:
        suite.spawn()
    return suite.entries


FIGURE_ORDER = [
    "base.direct",
    "base.stream.naive",
    "base.stream.batched",
    "a.tell",
    "b.publish",
    "base.fanout10.direct",
    "base.fanout10.naive",
    "base.fanout10.batched",
    "c.fanout10",
    "c.fanout10.events",
    "base.reqrep.p50",
    "d.ask.p50",
    "base.reqrep.p99",
    "d.ask.p99",
]


def ordered(entries: list[Entry]) -> list[Entry]:
    """Figure by figure (each beside the same figure on the other backends)."""
    first_seen: dict[str, int] = {}
    for entry in entries:
        first_seen.setdefault(entry.figure, len(first_seen) + len(FIGURE_ORDER))
    rank = {figure: i for i, figure in enumerate(FIGURE_ORDER)}
    return sorted(entries, key=lambda e: rank.get(e.figure, first_seen[e.figure]))


# -- profiling -----------------------------------------------------------------------------


def profile(figure: str, backend: str, n: int, top: int) -> None:
    """Run (a) or (b) under cProfile and print where each message's time goes."""
    name, options = BACKENDS[backend]
    profiler = cProfile.Profile()

    async def main() -> float:
        tally = Tally()
        async with ActorSystem("bench") as system:
            ref = await system.spawn(Counter, tally)
            for i in range(1000):  # warm-up: caches, code paths
                await system.publish(Ping(i))
            await system.drain()
            tally.reset()
            collect()
            started = now()
            profiler.enable()
            if figure == "a":
                for i in range(n):
                    await ref.tell(Ping(i))
            else:
                for i in range(n):
                    await system.publish(Ping(i))
            await system.drain()
            profiler.disable()
            elapsed = now() - started
            tally.verify(n, f"profile {figure}")
        return elapsed

    elapsed = anyio.run(main, backend=name, backend_options=options)
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)
    print(
        f"profile of ({figure}) on {backend}: {n:,} messages, "
        f"{elapsed / n * 1e6:.2f} us/message under the profiler"
    )
    total = max(stats.total_tt, 1e-9)
    print(f"{'calls/msg':>9}  {'own us/msg':>10}  {'cum us/msg':>10}  {'cum %':>5}  function")
    for (filename, line, function), (_, calls, own, cumulative, _) in rows[:top]:
        where = f"{Path(filename).name}:{line}({function})" if line else function
        print(
            f"{calls / n:9.2f}  {own / n * 1e6:10.3f}  {cumulative / n * 1e6:10.3f}  "
            f"{cumulative / total * 100:5.1f}  {where}"
        )


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, spawn 10,000 only")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--json", metavar="PATH", help="write the entries as JSON to PATH")
    parser.add_argument(
        "--figures", default="abcdef", help="which figures to run (letters a-f), default all"
    )
    parser.add_argument(
        "--profile",
        choices=["a", "b"],
        help="instead of the benchmarks, profile (a) tell or (b) publish with cProfile",
    )
    parser.add_argument("--top", type=int, default=30, help="--profile: functions shown")
    parser.add_argument("--spawn-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--suite-child", choices=list(BACKENDS), help=argparse.SUPPRESS)
    parser.add_argument("--teardown", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.spawn_child:
        backend, variant, k = args.spawn_child
        spawn_child(backend, variant, int(k), args.teardown)
        return 0  # not reached: the child leaves with os._exit
    sizes = QUICK if args.quick else FULL
    if args.suite_child:
        suite_child(args.suite_child, sizes, set(args.figures))
        return 0  # not reached: the child leaves with os._exit
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    if args.profile:
        profile(args.profile, backends[0], sizes.messages, top=args.top)
        return 0

    info = machine_info()
    log(f"actorbus core benchmarks ({'quick' if args.quick else 'full'} mode), median of {RUNS}")
    log("  " + ", ".join(f"{key} {value}" for key, value in info.items()))
    figures = set(args.figures)
    entries: list[Entry] = []
    for backend in backends:
        log(f"backend {backend}")
        entries.extend(run_backend(backend, sizes, figures, quick=args.quick))
    entries = ordered(entries)
    if args.json:
        write_json(args.json, entries)
    print(format_table(entries))
    broken = failed(entries)
    missed = [e for e in entries if e.met is False]
    print(f"\n{len(missed)} target(s) missed, {len(broken)} benchmark(s) failed")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
