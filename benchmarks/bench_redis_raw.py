"""Single Redis commands: coredis, actorbus's own client and redis-py, in the same run.

This is the ceiling the Redis transport can reach on a machine: whatever actorbus adds on top
(envelopes, encoding, dispatch) is measured against these numbers, and it records why the
bridge has a client of its own (``benchmarks/README.md``, "Ninth round"). It measures, on
each anyio backend:

* ``xadd_rtt``        one awaited XADD at a time: round-trip latency p50/p99.
* ``e2e``             XADD in one task until a second task, blocked in XREADGROUP BLOCK,
                      receives the entry; one message in flight: latency p50/p99.
* ``xadd_pipelined``  XADD in non-transactional pipelines of 100: messages per second.
* ``consume``         XREADGROUP COUNT 500, then one XACK per batch: messages per second.
* ``xadd_concurrent`` 100 tasks each awaiting its own XADDs on one shared client (coredis
                      multiplexes them onto one connection): messages per second.
* ``actorbus_xadd_rtt``   ``xadd_rtt`` on actorbus's own connection (a
                          ``DedicatedConnection``, which the bridge uses for publishing,
                          reading and acknowledging: the calling task writes the command
                          and reads the reply itself).
* ``actorbus_pooled_rtt`` the same through ``Client.call`` (a pooled connection per
                          command: the bridge's control plane).
* ``actorbus_pipelined``  ``xadd_pipelined`` on a dedicated connection.
* ``actorbus_e2e``        ``e2e`` on two dedicated connections.
* ``redispy_xadd_rtt``, ``redispy_e2e``  the same on redis-py's asyncio client (with
                          hiredis), in a worker thread with its own asyncio loop (uvloop's
                          for the uvloop run): redis-py has no trio support.

Every row also reports the client process's CPU time per operation (``cpu µs/op``). On a
shared or virtual machine that figure is steadier than wall-clock rates, and when it is close
to the latency the client, not Redis or the network, is the bottleneck.

Usage::

    python benchmarks/bench_redis_raw.py                 # both backends, own redis-server
    python benchmarks/bench_redis_raw.py --quick         # well under a minute
    python benchmarks/bench_redis_raw.py --backend trio --url redis://:pw@127.0.0.1:6379/0
    python benchmarks/bench_redis_raw.py --backend asyncio --uvloop --json results.json

Without ``--url`` the script starts a private ``redis-server`` on a free loopback port (using
``tests/redis_support.py``) and stops it afterwards. With ``--url`` it only touches keys named
``bench:raw:*`` and deletes them when done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio
import coredis
from _common import redis_url

from actorbus.redis._client import Client
from actorbus.redis._config import redact_url
from actorbus.redis._endpoint import endpoint
from actorbus.redis._tls import tls_context

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BATCH = 100
READ_COUNT = 500
CONCURRENCY = 100
GROUP = "bench"


@dataclass
class Settings:
    messages: int
    samples: int
    payload: int
    warmup: int


@dataclass
class Metric:
    """One measurement. Latencies in microseconds; ``rate`` in operations per second."""

    name: str
    ops: int
    seconds: float
    cpu_us_per_op: float
    rate: float
    p50_us: float | None = None
    p99_us: float | None = None
    mean_us: float | None = None
    max_us: float | None = None


@dataclass
class BackendResult:
    backend: str
    metrics: list[Metric] = field(default_factory=list)


class Clock:
    """Wall and process-CPU time of one measured section."""

    def __enter__(self) -> Self:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def metric(self, name: str, ops: int, latencies_ns: list[int] | None = None) -> Metric:
        metric = Metric(
            name=name,
            ops=ops,
            seconds=self.wall,
            cpu_us_per_op=self.cpu / ops * 1e6,
            rate=ops / self.wall,
        )
        if latencies_ns:
            ordered = sorted(latencies_ns)

            def pct(p: float) -> float:
                return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] / 1e3

            metric.p50_us, metric.p99_us = pct(50), pct(99)
            metric.mean_us, metric.max_us = statistics.fmean(ordered) / 1e3, ordered[-1] / 1e3
        return metric


def payload(s: Settings) -> dict[str, bytes]:
    return {"data": b"x" * s.payload}


async def measure_xadd_rtt(client: coredis.Redis[bytes], key: str, s: Settings) -> Metric:
    fields = payload(s)
    for _ in range(s.warmup):
        await client.xadd(key, fields)
    latencies: list[int] = []
    with Clock() as clock:
        for _ in range(s.samples):
            start = time.perf_counter_ns()
            await client.xadd(key, fields)
            latencies.append(time.perf_counter_ns() - start)
    return clock.metric("xadd_rtt", s.samples, latencies)


async def measure_e2e(client: coredis.Redis[bytes], key: str, s: Settings) -> Metric:
    await client.xgroup_create(key, GROUP, "$", mkstream=True)
    send, receive = anyio.create_memory_object_stream[int](1)
    total = s.warmup + s.samples
    latencies: list[int] = []

    async def consumer() -> None:
        async with send:
            seen = 0
            while seen < total:
                reply = await client.xreadgroup(GROUP, "e2e", {key: ">"}, count=10, block=1000)
                now = time.perf_counter_ns()
                for entry in reply[key.encode()] if reply else ():
                    await send.send(now - int(entry.field_values[b"t"]))
                    seen += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        async with receive:
            for _ in range(s.warmup):
                await client.xadd(key, {"t": str(time.perf_counter_ns())})
                await receive.receive()
            with Clock() as clock:
                for _ in range(s.samples):
                    await client.xadd(key, {"t": str(time.perf_counter_ns())})
                    latencies.append(await receive.receive())
    return clock.metric("e2e", s.samples, latencies)


async def measure_pipelined(client: coredis.Redis[bytes], key: str, s: Settings) -> Metric:
    fields = payload(s)
    with Clock() as clock:
        for sent in range(0, s.messages, BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(min(BATCH, s.messages - sent)):
                    pipe.xadd(key, fields)
    return clock.metric("xadd_pipelined", s.messages)


async def measure_consume(client: coredis.Redis[bytes], key: str, expected: int) -> Metric:
    """Read *expected* entries through a group created at ``0``, acking each batch."""
    await client.xgroup_create(key, GROUP, "0")
    received = 0
    with Clock() as clock:
        while received < expected:
            reply = await client.xreadgroup(GROUP, "consumer", {key: ">"}, count=READ_COUNT)
            if not reply:
                break
            entries = reply[key.encode()]
            await client.xack(key, GROUP, [entry.identifier for entry in entries])
            received += len(entries)
    if received < expected:
        raise RuntimeError(f"consumed only {received} of {expected} entries from {key}")
    return clock.metric("consume", received)


async def measure_concurrent(client: coredis.Redis[bytes], key: str, s: Settings) -> Metric:
    fields = payload(s)
    per_task = max(1, s.messages // CONCURRENCY)

    async def producer() -> None:
        for _ in range(per_task):
            await client.xadd(key, fields)

    with Clock() as clock:
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(producer)
    return clock.metric("xadd_concurrent", per_task * CONCURRENCY)


def actorbus_client(url: str) -> Client:
    """actorbus's client for `url`, as a transport makes it."""
    return Client(endpoint(url, tls_context(url), redact_url(url)), timeout=10)


async def measure_actorbus_rtt(url: str, key: str, s: Settings) -> Metric:
    """One awaited XADD at a time on an actorbus `DedicatedConnection` (the publisher's)."""
    connection = actorbus_client(url).dedicated(key)
    command = (b"XADD", key, b"*", *(part for pair in payload(s).items() for part in pair))
    try:
        for _ in range(s.warmup):
            await connection.call(*command, timeout=5)
        latencies: list[int] = []
        with Clock() as clock:
            for _ in range(s.samples):
                start = time.perf_counter_ns()
                await connection.call(*command, timeout=5)
                latencies.append(time.perf_counter_ns() - start)
    finally:
        await connection.close()
    return clock.metric("actorbus_xadd_rtt", s.samples, latencies)


async def measure_actorbus_pooled(url: str, key: str, s: Settings) -> Metric:
    """`measure_actorbus_rtt` through `Client.call`: a pooled connection per command."""
    client = actorbus_client(url)
    command = (b"XADD", key, b"*", *(part for pair in payload(s).items() for part in pair))
    try:
        for _ in range(s.warmup):
            await client.call(*command)
        latencies: list[int] = []
        with Clock() as clock:
            for _ in range(s.samples):
                start = time.perf_counter_ns()
                await client.call(*command)
                latencies.append(time.perf_counter_ns() - start)
    finally:
        await client.aclose()
    return clock.metric("actorbus_pooled_rtt", s.samples, latencies)


async def measure_actorbus_pipelined(url: str, key: str, s: Settings) -> Metric:
    """XADD in pipelines of `BATCH` on a dedicated connection: messages per second."""
    connection = actorbus_client(url).dedicated(key)
    command = (b"XADD", key, b"*", *(part for pair in payload(s).items() for part in pair))
    try:
        with Clock() as clock:
            for sent in range(0, s.messages, BATCH):
                count = min(BATCH, s.messages - sent)
                await connection.pipeline([command] * count, timeout=10)
    finally:
        await connection.close()
    return clock.metric("actorbus_pipelined", s.messages)


async def measure_actorbus_e2e(url: str, key: str, s: Settings) -> Metric:
    """`measure_e2e` on two actorbus connections: XADD, then a blocked XREADGROUP gets it."""
    client = actorbus_client(url)
    writer, reader = client.dedicated(key), client.dedicated(key)
    await writer.call(b"XGROUP", b"CREATE", key, GROUP, b"$", b"MKSTREAM", timeout=5)
    send, receive = anyio.create_memory_object_stream[int](1)
    read = (b"XREADGROUP", b"GROUP", GROUP, b"e2e", b"COUNT", 10, b"BLOCK", 1000)
    read += (b"STREAMS", key, b">")
    total = s.warmup + s.samples
    latencies: list[int] = []

    async def consumer() -> None:
        async with send:
            seen = 0
            while seen < total:
                reply = await reader.call(*read, timeout=5)
                now = time.perf_counter_ns()
                for _, fields in reply[0][1] if reply else ():
                    await send.send(now - int(fields[1]))
                    seen += 1

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            async with receive:
                for _ in range(s.warmup):
                    await writer.call(b"XADD", key, b"*", b"t", time.perf_counter_ns(), timeout=5)
                    await receive.receive()
                with Clock() as clock:
                    for _ in range(s.samples):
                        now = time.perf_counter_ns()
                        await writer.call(b"XADD", key, b"*", b"t", now, timeout=5)
                        latencies.append(await receive.receive())
    finally:
        await writer.close()
        await reader.close()
    return clock.metric("actorbus_e2e", s.samples, latencies)


def redispy_metrics(url: str, key: str, s: Settings, *, use_uvloop: bool) -> list[Metric]:
    """redis-py's asyncio client (with hiredis): XADD round trip and e2e, in its own loop.

    redis-py has no trio support: it runs in a worker thread with its own asyncio (or
    uvloop) loop while the backend under test waits for it.
    """
    try:
        import redis.asyncio  # noqa: PLC0415 - a benchmark-only dependency
    except ImportError:
        print("redis-py is not installed: pip install -r benchmarks/requirements-bench.txt")
        return []

    async def main() -> list[Metric]:
        client = redis.asyncio.Redis.from_url(url)
        reader = redis.asyncio.Redis.from_url(url)
        fields = payload(s)
        try:
            for _ in range(s.warmup):
                await client.xadd(key, fields)  # type: ignore[arg-type]
            latencies: list[int] = []
            with Clock() as clock:
                for _ in range(s.samples):
                    start = time.perf_counter_ns()
                    await client.xadd(key, fields)  # type: ignore[arg-type]
                    latencies.append(time.perf_counter_ns() - start)
            rtt = clock.metric("redispy_xadd_rtt", s.samples, latencies)
            e2e_key = f"{key}:e2e"
            await client.xgroup_create(e2e_key, GROUP, id="$", mkstream=True)
            queue: asyncio.Queue[int] = asyncio.Queue()
            stopping = False

            async def consume() -> None:
                while not stopping:
                    found = await reader.xreadgroup(GROUP, "e2e", {e2e_key: ">"}, 10, 100)
                    arrived = time.perf_counter_ns()
                    for _, entries in found or ():
                        for _, entry in entries:
                            queue.put_nowait(arrived - int(entry[b"t"]))

            task = asyncio.create_task(consume())
            latencies = []
            try:
                for _ in range(s.warmup):
                    await client.xadd(e2e_key, {b"t": str(time.perf_counter_ns())})
                    await queue.get()
                with Clock() as clock:
                    for _ in range(s.samples):
                        await client.xadd(e2e_key, {b"t": str(time.perf_counter_ns())})
                        latencies.append(await queue.get())
            finally:
                stopping = True
                await task
                await client.delete(e2e_key)
            return [rtt, clock.metric("redispy_e2e", s.samples, latencies)]
        finally:
            await client.aclose()
            await reader.aclose()

    if not use_uvloop:
        return asyncio.run(main())
    import uvloop  # noqa: PLC0415

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


async def run_backend(url: str, label: str, s: Settings) -> BackendResult:
    result = BackendResult(label)
    prefix = f"bench:raw:{secrets.token_hex(4)}"
    steps: list[tuple[str, Callable[[coredis.Redis[bytes], str], Awaitable[Metric]]]] = [
        ("rtt", lambda c, k: measure_xadd_rtt(c, k, s)),
        ("e2e", lambda c, k: measure_e2e(c, k, s)),
        ("pipe", lambda c, k: measure_pipelined(c, k, s)),
        ("pipe", lambda c, k: measure_consume(c, k, s.messages)),
        ("conc", lambda c, k: measure_concurrent(c, k, s)),
        ("actorbus", lambda _, k: measure_actorbus_rtt(url, k, s)),
        ("actorbus-pooled", lambda _, k: measure_actorbus_pooled(url, k, s)),
        ("actorbus-pipe", lambda _, k: measure_actorbus_pipelined(url, k, s)),
        ("actorbus-e2e", lambda _, k: measure_actorbus_e2e(url, k, s)),
    ]
    async with coredis.Redis.from_url(url) as client:
        keys = sorted({f"{prefix}:{suffix}" for suffix, _ in steps} | {f"{prefix}:redispy"})
        keys.append(f"{prefix}:redispy:e2e")
        try:
            for suffix, step in steps:
                result.metrics.append(await step(client, f"{prefix}:{suffix}"))
            uvloop = label == "asyncio+uvloop"
            result.metrics += await anyio.to_thread.run_sync(
                partial(redispy_metrics, url, f"{prefix}:redispy", s, use_uvloop=uvloop)
            )
        finally:
            await client.delete(keys)
    return result


async def server_version(url: str) -> str:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        info = await client.info("server")
        return str(info.get("redis_version", "?"))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        **{
            name: metadata.version(name)
            for name in ("coredis", "redis", "hiredis", "anyio", "trio")
        },
    }


def print_table(results: list[BackendResult]) -> None:
    header = (
        f"{'backend':<15} {'metric':<16} {'p50 µs':>8} {'p99 µs':>8} {'ops/s':>9} {'cpu µs/op':>10}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        for m in result.metrics:
            p50 = f"{m.p50_us:8.0f}" if m.p50_us is not None else f"{'':8}"
            p99 = f"{m.p99_us:8.0f}" if m.p99_us is not None else f"{'':8}"
            print(
                f"{result.backend:<15} {m.name:<16} {p50} {p99} {m.rate:>9,.0f} "
                f"{m.cpu_us_per_op:>10.1f}"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    parser.add_argument("--url", help="Redis URL; default: start a private redis-server")
    parser.add_argument("--n", type=int, default=50_000, help="messages per throughput run")
    parser.add_argument("--samples", type=int, default=2_000, help="latency samples")
    parser.add_argument("--payload", type=int, default=256, help="payload bytes per entry")
    parser.add_argument("--uvloop", action="store_true", help="run asyncio on uvloop")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5000 messages and 500 samples, overriding --n/--samples (well under a minute)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    messages, samples = (5_000, 500) if args.quick else (args.n, args.samples)
    settings = Settings(messages=messages, samples=samples, payload=args.payload, warmup=100)
    backends = ["asyncio", "trio"] if args.backend == "all" else [args.backend]
    results: list[BackendResult] = []
    with redis_url(args.url) as url:
        version = anyio.run(server_version, url)
        for backend in backends:
            uvloop = backend == "asyncio" and args.uvloop
            label = "asyncio+uvloop" if uvloop else backend
            options = {"use_uvloop": True} if uvloop else {}
            results.append(
                anyio.run(
                    run_backend, url, label, settings, backend=backend, backend_options=options
                )
            )
    info = {**machine(), "redis": version, "settings": asdict(settings)}
    print(
        f"coredis {info['coredis']}, anyio {info['anyio']}, trio {info['trio']}, "
        f"redis {version}, Python {info['python']}, {info['cpu']} x{info['cpus']}; "
        f"{messages} messages, {samples} latency samples, {args.payload}-byte payload"
    )
    print_table(results)
    if args.json is not None:
        document = {"machine": info, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
