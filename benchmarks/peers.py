"""actorbus beside its Python peers: one typed event to one subscriber, end to end.

Run ``python benchmarks/peers.py --help`` in the peers' own environment::

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install -e '.[trio,redis,uvloop]' -r benchmarks/requirements-peers.txt
    /work/peers-venv/bin/python benchmarks/peers.py            # full, markdown table on stdout
    /work/peers-venv/bin/python benchmarks/peers.py --quick    # under 2 minutes

Every case publishes N typed events, one at a time, through the peer's documented public
API to one subscriber whose handler counts them and adds up their numbers, until the
subscriber has handled all N (end to end, like ``b.publish`` in ``bench_core.py``):

- actorbus: ``await system.publish(Ping(i))`` to one actor, then ``await system.drain()``
  (and ``await ref.tell(Ping(i))``, for reference);
- pyee: ``AsyncIOEventEmitter.emit`` (``TrioEventEmitter`` on trio) to an async handler,
  then ``wait_for_complete()`` (on trio: leaving the emitter's nursery);
- blinker: ``await signal.send_async(...)`` to an async receiver, and ``signal.send(...)``
  to a sync one (both call the receiver inline);
- bubus: ``bus.dispatch(event)`` in batches of 50 (its default queue holds 50 and it
  refuses more than 100 pending events), awaiting the last event of each batch;
- faststream: ``TestRedisBroker(broker).publish(msg, channel=...)`` (in-process test
  broker); and a real Redis stream subscriber in a consumer group against a private
  ``redis-server``, beside actorbus's APP-scope figure from ``bench_redis.py``
  (``actorbus_throughput``: 64 concurrent publishers, one group member) in the same run;
- opensecflow-eventbus: ``await bus.publish(event)`` (PROCESS scope, ``AsyncQueueBroker``);
- pykka: ``ref.tell(msg)`` to a ``ThreadingActor`` (threads, no event loop).

Each backend runs in a fresh process; within it every case is warmed up once, then run
`RUNS` times, interleaved (run 1 of every case, then run 2, ...), and the median is
reported. pykka and blinker's sync ``send`` run inside the asyncio process (they need no
loop) so that they are interleaved with actorbus's asyncio runs. Every run checks the
subscriber's count and checksum and reports an error instead of a figure when they are
wrong. The ratio is actorbus ``publish`` on the same backend in the same process divided
by the peer's events/s; the issue's target is >= 3 for every in-process peer that delivers
through a queue, a task or a thread.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from _common import (
    BACKENDS,
    RUNS,
    BenchError,
    Entry,
    check,
    failed,
    fmt,
    machine_info,
    median,
    now,
    read_json,
    redis_url,
    write_json,
)
from bench_core import Counter, Ping, Tally

from actorbus import ActorSystem

TARGET = "ratio >= 3.0"
CHILD_TIMEOUT = 1800.0
INSTALL_HINT = "pip install -r benchmarks/requirements-peers.txt"

Timing = tuple[float, float]
"""(wall seconds, CPU seconds of the whole process) of one run."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def collect() -> None:
    gc.collect()


class Clock:
    """Wall and process CPU time of one measured stretch."""

    __slots__ = ("cpu", "wall")

    def __init__(self) -> None:
        collect()
        self.wall = now()
        self.cpu = time.process_time()

    def stop(self) -> Timing:
        return now() - self.wall, time.process_time() - self.cpu


class Done:
    """A tally that also signals when the n-th event was handled.

    Threaded peers (pykka) wait on the `threading.Event`; peers running in the event loop
    await `wait`, whose `anyio.Event` is made in the loop and set from it.
    """

    __slots__ = ("event", "expected", "in_loop", "tally")

    def __init__(self, expected: int) -> None:
        self.tally = Tally()
        self.expected = expected
        self.event = threading.Event()
        self.in_loop: anyio.Event | None = None

    def add(self, number: int) -> None:
        tally = self.tally
        tally.count += 1
        tally.total += number
        if tally.count == self.expected:
            self.event.set()
            if self.in_loop is not None:
                self.in_loop.set()

    async def wait(self, what: str) -> None:
        if not self.event.is_set():
            self.in_loop = anyio.Event()
            with anyio.fail_after(120):
                await self.in_loop.wait()
        self.tally.verify(self.expected, what)


# -- actorbus ---------------------------------------------------------------------------------


async def actorbus_publish(n: int) -> Timing:
    tally = Tally()
    async with ActorSystem("bench") as system:
        ref = await system.spawn(Counter, tally)
        clock = Clock()
        for i in range(n):
            await system.publish(Ping(i))
        await system.drain()
        timing = clock.stop()
        check(ref.stats.processed == n, f"publish: stats.processed is {ref.stats.processed}")
    tally.verify(n, "actorbus publish")
    return timing


async def actorbus_tell(n: int) -> Timing:
    tally = Tally()
    async with ActorSystem("bench") as system:
        ref = await system.spawn(Counter, tally)
        clock = Clock()
        for i in range(n):
            await ref.tell(Ping(i))
        await system.drain()
        timing = clock.stop()
    tally.verify(n, "actorbus tell")
    return timing


# -- pyee -------------------------------------------------------------------------------------


async def pyee_asyncio(n: int) -> Timing:
    from pyee.asyncio import AsyncIOEventEmitter  # noqa: PLC0415

    tally = Tally()
    emitter = AsyncIOEventEmitter()

    @emitter.on("ping")
    async def on_ping(event: Ping) -> None:
        tally.count += 1
        tally.total += event.n

    clock = Clock()
    for i in range(n):
        emitter.emit("ping", Ping(i))
    await emitter.wait_for_complete()
    timing = clock.stop()
    tally.verify(n, "pyee")
    return timing


async def pyee_trio(n: int) -> Timing:
    from pyee.trio import TrioEventEmitter  # noqa: PLC0415

    tally = Tally()
    clock = Clock()
    async with TrioEventEmitter() as emitter:

        @emitter.on("ping")
        async def on_ping(event: Ping) -> None:
            tally.count += 1
            tally.total += event.n

        for i in range(n):
            emitter.emit("ping", Ping(i))
    timing = clock.stop()  # leaving the nursery waited for every handler task
    tally.verify(n, "pyee trio")
    return timing


# -- blinker ----------------------------------------------------------------------------------


async def blinker_send_async(n: int) -> Timing:
    from blinker import Signal  # noqa: PLC0415

    tally = Tally()
    signal = Signal()

    async def receiver(_sender: object, event: Ping) -> None:
        tally.count += 1
        tally.total += event.n

    signal.connect(receiver)  # a weak reference: `receiver` lives until the end
    clock = Clock()
    for i in range(n):
        await signal.send_async(None, event=Ping(i))
    timing = clock.stop()
    tally.verify(n, "blinker send_async")
    return timing


async def blinker_send(n: int) -> Timing:
    from blinker import Signal  # noqa: PLC0415

    tally = Tally()
    signal = Signal()

    def receiver(_sender: object, event: Ping) -> None:
        tally.count += 1
        tally.total += event.n

    signal.connect(receiver)
    clock = Clock()
    for i in range(n):
        signal.send(None, event=Ping(i))
    timing = clock.stop()
    tally.verify(n, "blinker send")
    return timing


# -- bubus ------------------------------------------------------------------------------------

BUBUS_BATCH = 50
"""bubus's default queue holds 50 events and dispatch raises past 100 pending."""

_bubus_event: type[Any] | None = None


def bubus_event() -> type[Any]:
    global _bubus_event  # noqa: PLW0603 - one pydantic class, made on first use
    if _bubus_event is None:
        from bubus import BaseEvent  # noqa: PLC0415

        class BubusPing(BaseEvent[None]):
            n: int

        _bubus_event = BubusPing
    return _bubus_event


async def bubus(n: int) -> Timing:
    from bubus import EventBus  # noqa: PLC0415

    ping = bubus_event()
    tally = Tally()
    bus = EventBus()

    async def on_ping(event: Any) -> None:
        tally.count += 1
        tally.total += event.n

    bus.on(ping, on_ping)
    clock = Clock()
    for first in range(0, n, BUBUS_BATCH):
        for i in range(first, min(n, first + BUBUS_BATCH)):
            last = bus.dispatch(ping(n=i))
        await last  # FIFO: every earlier event of the batch has been handled too
    timing = clock.stop()
    await bus.stop(clear=True)
    tally.verify(n, "bubus")
    return timing


# -- faststream -------------------------------------------------------------------------------

_pydantic_ping: type[Any] | None = None


def pydantic_ping() -> type[Any]:
    global _pydantic_ping  # noqa: PLW0603 - one pydantic class, made on first use
    if _pydantic_ping is None:
        import pydantic  # noqa: PLC0415

        class PydanticPing(pydantic.BaseModel):
            n: int

        _pydantic_ping = PydanticPing
    return _pydantic_ping


async def faststream_test_broker(n: int) -> Timing:
    from faststream.redis import RedisBroker, TestRedisBroker  # noqa: PLC0415

    ping = pydantic_ping()
    done = Done(n)
    broker = RedisBroker()

    @broker.subscriber("bench.ping")
    async def on_ping(event: ping) -> None:
        done.add(event.n)

    async with TestRedisBroker(broker) as test_broker:
        clock = Clock()
        for i in range(n):
            await test_broker.publish(ping(n=i), channel="bench.ping")
        await done.wait("faststream TestRedisBroker")
        return clock.stop()


# -- opensecflow-eventbus -----------------------------------------------------------------------

_opensecflow_event: type[Any] | None = None


def opensecflow_event() -> type[Any]:
    global _opensecflow_event  # noqa: PLW0603 - one pydantic class, made on first use
    if _opensecflow_event is None:
        from opensecflow.eventbus.event import EventScope, ScopedEvent  # noqa: PLC0415

        class OpensecflowPing(ScopedEvent):
            type: str = "bench.ping"
            n: int
            scope: EventScope = EventScope.PROCESS

        _opensecflow_event = OpensecflowPing
    return _opensecflow_event


async def opensecflow(n: int) -> Timing:
    from opensecflow.eventbus.eventbus import EventBus  # noqa: PLC0415
    from opensecflow.eventbus.memory_broker import AsyncQueueBroker  # noqa: PLC0415

    ping = opensecflow_event()
    done = Done(n)
    # Its queue drops silently when full (publish never waits); the default 1000 would
    # lose most events of a burst, so the queue is unbounded (max_queue_size=0).
    bus = EventBus(AsyncQueueBroker(max_queue_size=0), AsyncQueueBroker())

    async def on_ping(data: dict[str, Any]) -> None:
        done.add(data["n"])

    bus.subscribe("bench.ping", on_ping)
    await bus.start()
    try:
        clock = Clock()
        for i in range(n):
            await bus.publish(ping(source="bench", n=i))
        await done.wait("opensecflow-eventbus")
        return clock.stop()
    finally:
        await bus.stop()


# -- pykka (threads) --------------------------------------------------------------------------


def pykka_tell_sync(n: int) -> Timing:
    import pykka  # noqa: PLC0415

    done = Done(n)

    class Receiver(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> None:
            done.add(message.n)

    ref = Receiver.start()
    try:
        clock = Clock()
        for i in range(n):
            ref.tell(Ping(i))
        check(done.event.wait(120), f"pykka: {done.tally.count} of {n} handled in 120 s")
        timing = clock.stop()
    finally:
        ref.stop()
    done.tally.verify(n, "pykka")
    return timing


async def pykka_tell(n: int) -> Timing:
    return pykka_tell_sync(n)  # blocks the loop: nothing else runs meanwhile


# -- Redis: faststream stream subscriber vs actorbus APP scope -----------------------------------

REDIS_CONCURRENCY = 64
"""Concurrent publishing tasks, as in bench_redis.py's actorbus_throughput."""


async def faststream_redis_stream(url: str, n: int) -> Timing:
    import secrets  # noqa: PLC0415

    from faststream.redis import RedisBroker, StreamSub  # noqa: PLC0415

    ping = pydantic_ping()
    done = Done(n)
    # logger=None: faststream logs two INFO lines per message by default; its docs show
    # turning that off, and actorbus logs nothing per message either.
    broker = RedisBroker(url, logger=None)
    name = f"bench:peers:{secrets.token_hex(4)}"
    stream = StreamSub(name, group="bench", consumer="c1")

    @broker.subscriber(stream=stream)
    async def on_ping(event: ping) -> None:
        done.add(event.n)

    async with broker:
        await broker.start()
        await anyio.sleep(0.2)

        async def producer(first: int) -> None:
            for i in range(first, n, REDIS_CONCURRENCY):
                await broker.publish(ping(n=i), stream=name)

        clock = Clock()
        async with anyio.create_task_group() as tg:
            for first in range(REDIS_CONCURRENCY):
                tg.start_soon(producer, first)
        await done.wait("faststream Redis stream")
        return clock.stop()


async def actorbus_redis(url: str, n: int) -> Timing:
    from bench_redis import actorbus_throughput  # noqa: PLC0415

    rate, cpu_us = await actorbus_throughput(url, n)
    return n / rate, cpu_us * n / 1e6


# -- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str
    peer: str
    api: str
    size: str  # "fast", "slow" (bubus), "medium" (faststream's test broker)
    backends: tuple[str, ...]
    queued: bool  # delivers through a queue, a task or a thread: the 3x target applies
    short: str  # what the peer does less, in a few words (the table's column)
    less: str  # the same in full (the table below it)
    func: Callable[[int], Awaitable[Timing]] | None = field(default=None, repr=False)


ASYNCIO = ("asyncio", "uvloop")
ALL = ("asyncio", "uvloop", "trio")

CASES = [
    Case(
        "actorbus.publish",
        "actorbus",
        "`await system.publish(Ping(i))` → one actor, `drain()`",
        "fast",
        ALL,
        queued=False,
        short="(reference)",
        less="bounded mailbox with backpressure, an envelope per event, routing, supervision",
        func=actorbus_publish,
    ),
    Case(
        "actorbus.tell",
        "actorbus",
        "`await ref.tell(Ping(i))`, `drain()`",
        "fast",
        ALL,
        queued=False,
        short="(reference)",
        less="tell: no envelope, no routing (the same mailbox and actor loop as publish)",
        func=actorbus_tell,
    ),
    Case(
        "pyee",
        "pyee",
        "`AsyncIOEventEmitter.emit` → async handler, `wait_for_complete()`",
        "fast",
        ASYNCIO,
        queued=True,
        short="no bound, no backpressure, no ordering, no supervision",
        less="a new task per event, unbounded: emit never waits (no backpressure, no "
        "mailbox), handlers of successive events run concurrently (no ordering), errors go "
        "to an `error` event; no supervision; untyped (string event names)",
        func=pyee_asyncio,
    ),
    Case(
        "pyee.trio",
        "pyee",
        "`TrioEventEmitter.emit` → async handler (tasks in its nursery)",
        "fast",
        ("trio",),
        queued=True,
        short="no bound, no backpressure, no ordering, no supervision",
        less="as pyee on asyncio: a task per event, unbounded, no ordering, no supervision",
        func=pyee_trio,
    ),
    Case(
        "blinker.send_async",
        "blinker",
        "`await signal.send_async(None, event=...)` → async receiver",
        "fast",
        ALL,
        queued=False,
        short="inline await: no queue, no task",
        less="inline: the publisher awaits the receiver itself (no queue, no task, no "
        "concurrency between publisher and handler); a receiver's exception goes to the "
        "sender; weak references to receivers; no supervision",
        func=blinker_send_async,
    ),
    Case(
        "blinker.send",
        "blinker",
        "`signal.send(None, event=...)` → sync receiver",
        "fast",
        ("asyncio",),
        queued=False,
        short="inline sync call: no queue, no task",
        less="a plain synchronous function call per receiver: no async handlers, no queue",
        func=blinker_send,
    ),
    Case(
        "bubus",
        "bubus",
        "`bus.dispatch(event)` x 50, `await` the last (default `EventBus()`)",
        "slow",
        ASYNCIO,
        queued=True,
        short="no backpressure (raises when full), no supervision",
        less="no backpressure: dispatch raises past 100 pending events (queue 50); asyncio "
        "only; no supervision. It does *more* bookkeeping per event than actorbus (event "
        "history, per-handler result records, a timeout and a watchdog task per handler "
        "call, parent/child tracking, uuid7 ids)",
        func=bubus,
    ),
    Case(
        "faststream.test",
        "faststream",
        "`TestRedisBroker(broker).publish(msg, channel=...)` → `@broker.subscriber`",
        "medium",
        ASYNCIO,
        queued=True,
        short="inline call (a test double), no queue",
        less="a test double: publish runs the subscriber inline (no queue, no task) through "
        "its full stack (JSON encoding, pydantic validation, middlewares) and records every "
        "call in a `unittest.mock` (which deep-copies the arguments); asyncio only",
        func=faststream_test_broker,
    ),
    Case(
        "opensecflow",
        "opensecflow-eventbus",
        "`await bus.publish(event)` (PROCESS scope, `AsyncQueueBroker`)",
        "fast",
        ASYNCIO,
        queued=True,
        short="no backpressure (drops silently when full), untyped handler, no supervision",
        less="publish never waits: a full queue drops the event silently (default 1000; "
        "unbounded here so nothing is lost); the handler gets a dict, not the typed event; "
        "errors are printed; no supervision; asyncio only",
        func=opensecflow,
    ),
    Case(
        "pykka",
        "pykka",
        "`ref.tell(msg)` → `ThreadingActor.on_receive` (threads)",
        "fast",
        ("asyncio",),  # no loop needed: run beside actorbus's asyncio runs
        queued=True,
        short="unbounded mailbox, no backpressure, no pub/sub",
        less="one OS thread per actor, unbounded `queue.Queue` mailbox (tell never waits: "
        "no backpressure), no pub/sub (tell to a ref only); a failing actor stops "
        "(no restart policy)",
        func=pykka_tell,
    ),
]
REDIS_CASES = [
    Case(
        "actorbus.redis",
        "actorbus",
        "APP scope over Redis Streams (`bench_redis.py` (g): 64 publishing tasks, a group "
        "member handles)",
        "redis",
        (),
        queued=False,
        short="(reference)",
        less="two instances in one process (A publishes, B's group member handles); each also "
        "reads every event through its own broadcast group: three consumers decode each "
        "event; acknowledgements are grouped",
    ),
    Case(
        "faststream.redis",
        "faststream",
        "`RedisBroker.publish(msg, stream=...)` from 64 tasks → `StreamSub(group=...)` subscriber",
        "redis",
        (),
        queued=False,
        short="one consumer (actorbus's figure runs three)",
        less="one reader in one consumer group, one XACK per message (no broadcast consumers); "
        "`logger=None` (by default it logs two lines per message); asyncio only",
    ),
]
DESCRIPTIONS = {case.key: case for case in [*CASES, *REDIS_CASES]}


@dataclass(frozen=True)
class Sizes:
    fast: int
    medium: int
    slow: int
    redis: int
    redis_backends: tuple[str, ...]

    def of(self, case: Case) -> int:
        return int(getattr(self, case.size))


QUICK = Sizes(fast=20_000, medium=1_000, slow=300, redis=2_000, redis_backends=("asyncio",))
FULL = Sizes(fast=100_000, medium=10_000, slow=2_000, redis=20_000, redis_backends=ASYNCIO)


# -- child processes ----------------------------------------------------------------------------


def _check_loop(backend: str) -> None:
    if backend == "uvloop":
        import asyncio  # noqa: PLC0415

        loop = type(asyncio.get_running_loop())
        check(loop.__module__.startswith("uvloop"), f"uvloop requested, got {loop}")


def _error(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return f"not installed ({exc}): {INSTALL_HINT}"
    return f"{type(exc).__name__}: {exc}"


async def measure(
    funcs: dict[str, Callable[[int], Awaitable[Timing]]], sizes: dict[str, int]
) -> dict[str, Any]:
    """Warm every case up once, then run each `RUNS` times, interleaved."""
    results: dict[str, Any] = {key: {"n": sizes[key], "runs": []} for key in funcs}
    for key, func in funcs.items():
        try:
            await func(max(50, sizes[key] // 20))
        except Exception as exc:
            results[key]["error"] = _error(exc)
            log(f"    {key}: {results[key]['error']}")
    for number in range(RUNS):
        for key, func in funcs.items():
            if "error" in results[key]:
                continue
            try:
                with anyio.fail_after(CHILD_TIMEOUT / 4):
                    results[key]["runs"].append(await func(sizes[key]))
            except Exception as exc:
                results[key]["error"] = _error(exc)
                log(f"    {key}: {results[key]['error']}")
        log(f"    run {number + 1} of {RUNS} done")
    return results


def child(group: str, quick: bool) -> None:
    """Body of a ``--child`` process: every case of one backend, as one JSON line."""
    sizes = QUICK if quick else FULL
    if group.startswith("redis-"):
        backend = group.removeprefix("redis-")

        async def main() -> dict[str, Any]:
            _check_loop(backend)
            with redis_url(None) as url:
                funcs = {
                    "actorbus.redis": lambda n: actorbus_redis(url, n),
                    "faststream.redis": lambda n: faststream_redis_stream(url, n),
                }
                return await measure(funcs, dict.fromkeys(funcs, sizes.redis))

    else:
        backend = group

        async def main() -> dict[str, Any]:
            _check_loop(backend)
            cases = [c for c in CASES if backend in c.backends]
            return await measure(
                {c.key: c.func for c in cases if c.func}, {c.key: sizes.of(c) for c in cases}
            )

    name, options = BACKENDS[backend]
    result = anyio.run(main, backend=name, backend_options=options)
    print(json.dumps(result), flush=True)
    os._exit(0)  # leave without tearing the peers' leftovers down


def run_child(group: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", group]
    if quick:
        command.append("--quick")
    done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        command, stdout=subprocess.PIPE, text=True, timeout=CHILD_TIMEOUT
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        msg = f"{group} failed with status {done.returncode}"
        raise BenchError(msg)
    return json.loads(lines[-1])


# -- report -------------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    backend: str
    n: int
    rate: float | None
    cpu_us: float | None
    actorbus: float | None  # actorbus publish (or its Redis figure), same process
    tell: float | None
    error: str | None = None

    @property
    def about(self) -> Case:
        unknown = Case(self.case, self.case, "", "", (), queued=False, short="", less="")
        return DESCRIPTIONS.get(self.case, unknown)

    @property
    def ratio(self) -> float | None:
        if self.rate is None or self.actorbus is None:
            return None
        return self.actorbus / self.rate


def summarize(result: dict[str, Any]) -> tuple[int, float | None, float | None, str | None]:
    """(n, median events/s, median CPU µs/event, error) of one case's runs."""
    n = result["n"]
    runs = result["runs"]
    if "error" in result or not runs:
        return n, None, None, result.get("error", "no run")
    rate = median([n / wall for wall, _ in runs])
    cpu = median([cpu / n * 1e6 for _, cpu in runs])
    return n, rate, cpu, None


def rows_of(group: str, result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if group.startswith("redis-"):
        backend = group.removeprefix("redis-")
        n, ours, cpu, error = summarize(result["actorbus.redis"])
        rows.append(Row("actorbus.redis", backend, n, ours, cpu, None, None, error))
        n, rate, cpu, error = summarize(result["faststream.redis"])
        rows.append(Row("faststream.redis", backend, n, rate, cpu, ours, None, error))
        return rows
    backend = group
    _, publish, _, _ = summarize(result.get("actorbus.publish", {"n": 0, "runs": []}))
    _, tell, _, _ = summarize(result.get("actorbus.tell", {"n": 0, "runs": []}))
    for case in CASES:
        if case.key not in result:
            continue
        n, rate, cpu, error = summarize(result[case.key])
        label = "threads" if case.key == "pykka" else backend
        if case.key == "blinker.send":
            label = "sync"
        reference = case.key.startswith("actorbus.")
        rows.append(
            Row(
                case.key,
                label,
                n,
                rate,
                cpu,
                None if reference else publish,
                None if reference else tell,
                error,
            )
        )
    return rows


def entries_of(rows: list[Row]) -> list[Entry]:
    """JSON entries: actorbus's figure as the value, the peer as its baseline."""
    entries = []
    for row in rows:
        extra = {"events": row.n, "cpu_us_per_event": row.cpu_us, "api": row.about.api}
        if row.actorbus is None:  # actorbus's own figures
            entries.append(
                Entry(
                    f"peers.{row.case}",
                    row.backend,
                    row.rate,
                    "events/s",
                    error=row.error,
                    extra=extra,
                )
            )
            continue
        extra |= {"peer_does_less": row.about.less, "actorbus_tell": row.tell}
        if row.tell is not None and row.rate:
            extra["tell_ratio"] = row.tell / row.rate
        redis = row.case.endswith(".redis")
        entries.append(
            Entry(
                f"peers.vs.{row.case}",
                row.backend,
                row.actorbus if row.error is None else None,
                "events/s",
                baseline_name=f"peer {row.case}",
                baseline_value=row.rate,
                target=TARGET if row.about.queued else None,
                error=row.error,
                extra=extra | {"value_is": "actorbus Redis APP scope" if redis else "publish"},
            )
        )
    return entries


def markdown(rows: list[Row]) -> str:
    """The figures table, then what each peer does less, ready to paste in the README."""
    lines = [
        (
            "| peer | API (documented fast path) | backend | N / run | events/s | CPU µs/event "
            "| actorbus publish, same run | actorbus / peer (publish; tell) "
            "| by CPU µs (publish) | target >= 3 | what the peer does less |"
        ),
        "|---|---|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    # CPU per event of actorbus's figure that each row is compared with (same process).
    ours_cpu = {
        (row.case, row.backend): row.cpu_us
        for row in rows
        if row.case in {"actorbus.publish", "actorbus.redis"}
    }
    for row in rows:
        about = row.about
        if row.error is not None:
            lines.append(
                f"| {about.peer} | {about.api} | {row.backend} | {row.n:,} "
                f"| error: {row.error} | | | | | | {about.short} |"
            )
            continue
        ratio = verdict = by_cpu = ""
        redis = row.case.endswith(".redis")
        reference = ("actorbus.redis", row.backend) if redis else ("actorbus.publish", row.backend)
        if row.backend in {"threads", "sync"}:
            reference = ("actorbus.publish", "asyncio")  # run inside the asyncio process
        cpu = ours_cpu.get(reference)
        if row.actorbus is not None and cpu and row.cpu_us:
            by_cpu = f"{row.cpu_us / cpu:.2f}"

        if row.ratio is not None:
            ratio = f"{row.ratio:.2f}"
            if row.tell is not None and row.rate:
                ratio += f"; {row.tell / row.rate:.2f}"
            if about.queued:
                verdict = "met" if row.ratio >= 3.0 else "**MISSED**"
            else:
                verdict = "n/a (Redis)" if redis else "n/a (inline)"
        lines.append(
            f"| {about.peer} | {about.api} | {row.backend} | {row.n:,} | {fmt(row.rate)} "
            f"| {fmt(row.cpu_us)} | {fmt(row.actorbus) if row.actorbus else ''} | {ratio} "
            f"| {by_cpu} | {verdict} | {about.short} |"
        )
    lines += ["", "| case | what it does (less) |", "|---|---|"]
    seen = set()
    for row in rows:
        if row.case not in seen and row.case in DESCRIPTIONS:
            seen.add(row.case)
            lines.append(f"| {row.about.peer}: {row.about.api} | {row.about.less} |")
    return "\n".join(lines)


def rows_from_json(path: str) -> list[Row]:
    """Rebuild the rows from a ``--json`` file (to print its tables again)."""
    rows = []
    for entry in read_json(path):
        extra = entry.extra
        if entry.figure.startswith("peers.vs."):
            case = entry.figure.removeprefix("peers.vs.")
            rate, ours = entry.baseline_value, entry.value
        else:
            case, rate, ours = entry.figure.removeprefix("peers."), entry.value, None
        n, cpu, tell = extra.get("events", 0), extra.get("cpu_us_per_event"), None
        if entry.error is None:
            tell = extra.get("actorbus_tell")
        rows.append(Row(case, entry.backend, n, rate, cpu, ours, tell, entry.error))
    return rows


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    found = []
    for name in (
        "actorbus",
        "anyio",
        "trio",
        "uvloop",
        "pyee",
        "blinker",
        "bubus",
        "faststream",
        "redis",
        "coredis",
        "opensecflow-eventbus",
        "pykka",
        "pydantic",
    ):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 2 minutes)")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--no-redis", action="store_true", help="skip the real Redis case")
    parser.add_argument("--json", metavar="PATH", help="write the entries as JSON to PATH")
    parser.add_argument(
        "--from-json", metavar="PATH", help="print the tables of an earlier --json file"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.quick)
        return 0  # not reached: the child leaves with os._exit
    if args.from_json:
        print(markdown(rows_from_json(args.from_json)))
        return 0
    sizes = QUICK if args.quick else FULL
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    groups = list(backends)
    if not args.no_redis:
        groups += [f"redis-{b}" for b in sizes.redis_backends if b in backends]
    info = machine_info()
    log(f"actorbus vs peers ({'quick' if args.quick else 'full'} mode), median of {RUNS} runs")
    log("  " + ", ".join(f"{key} {value}" for key, value in info.items()))
    log("  " + versions())
    rows: list[Row] = []
    begin = now()
    for group in groups:
        if group.endswith("uvloop"):
            try:
                import uvloop  # noqa: F401, PLC0415
            except ImportError:
                log(f"  [{group}] skipped: uvloop is not installed (pip install uvloop)")
                continue
        log(f"  [{group}]")
        try:
            rows.extend(rows_of(group, run_child(group, args.quick)))
        except BenchError as exc:
            log(f"  [{group}] FAILED: {exc}")
            rows.append(Row(group, group, 0, None, None, None, None, str(exc)))
    log(f"  ({now() - begin:.0f}s)")
    entries = entries_of(rows)
    if args.json:
        write_json(args.json, entries)
    print(markdown(rows))
    return 1 if failed(entries) else 0


if __name__ == "__main__":
    sys.exit(main())
