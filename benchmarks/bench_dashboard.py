"""The cost of being observed: (a) tell and (b) publish with the dashboard on vs off.

Run ``python benchmarks/bench_dashboard.py --help``. Both variants run a system with a
`RedisTransport` (on a redis-server this script starts, or ``--url``) holding the
benchmark's one counting actor and `IDLE` idle actors, and send it `messages` messages
with ``tell`` (a) or ``publish`` (b), PROCESS scope, as ``bench_core.py`` does:

- off: nothing observes the system;
- on: `actorbus.dashboard.observe` runs beside it as ``actorbus run --dashboard`` starts
  it: it samples the system every second, serves the page on a loopback port with one
  live-update client connected (reading every state), and reports the instance's status
  to Redis every second.

Target: on / off >= 0.95 for each. The variants alternate within each run (so that
machine load affects them alike); the median of `RUNS` runs is reported. Each run is
long enough (several seconds) to contain several samples and reports; ``--quick`` runs
shorter ones. Each run checks that the handler saw every message and, for "on", that
states reached the client and reports reached Redis.
"""

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from functools import partial

import anyio
from _common import (
    BACKENDS,
    RUNS,
    BenchError,
    Entry,
    check,
    format_table,
    median,
    now,
    redis_url,
    write_json,
)

from actorbus import Actor, ActorSystem, event, handle
from actorbus.dashboard import listen, observe
from actorbus.redis import RedisTransport
from actorbus.redis._status import StatusReader

IDLE = 100
"""Idle actors beside the counting one: the sampler reads them all every second."""


@event("bench.dash.ping")
class Ping:
    n: int


class Counter(Actor):
    def __init__(self) -> None:
        self.count = 0

    @handle()
    async def on_ping(self, event: Ping) -> None:
        del event
        self.count += 1


@event("bench.dash.other")
class Other:
    n: int


class Idle(Actor):
    @handle()
    async def never(self, event: Other) -> None:  # subscribed elsewhere, as real actors are
        del event


class Reader:
    """One live-update client of the page: reads every state the server sends."""

    def __init__(self) -> None:
        self.states = 0

    async def run(self, port: int) -> None:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            while True:
                self.states += (await stream.receive()).count(b"\ndata: ")


@contextlib.asynccontextmanager
async def system_under_test(
    url: str, *, observed: bool
) -> AsyncIterator[tuple[ActorSystem, Reader]]:
    transport = RedisTransport(url, instance=f"bench-{'on' if observed else 'off'}")
    reader = Reader()
    async with ActorSystem("benchdash", transport=transport) as system:
        for index in range(IDLE):
            await system.spawn(Idle, name=f"idle-{index}")
        async with anyio.create_task_group() as tasks:
            if observed:
                sock = listen("127.0.0.1:0")
                port = sock.getsockname()[1]
                tasks.start_soon(partial(observe, system, listen=sock, every=1.0))
                await anyio.sleep(0.3)  # the server is up
                tasks.start_soon(reader.run, port)
            yield system, reader
            tasks.cancel_scope.cancel()


async def one_run(url: str, figure: str, n: int, *, observed: bool) -> float:
    async with system_under_test(url, observed=observed) as (system, reader):
        ref = await system.spawn(Counter, name="counter")
        await anyio.sleep(1.2)  # one sample and report before the clock starts
        started = now()
        if figure == "tell":
            for i in range(n):
                await ref.tell(Ping(i))
        else:
            for i in range(n):
                await system.publish(Ping(i))
        await system.drain()
        elapsed = now() - started
        check(ref.stats.processed == n, f"{figure}: processed {ref.stats.processed} of {n}")
        if observed:
            check(reader.states >= 1, f"{figure}: the live client received no state")
            status = StatusReader(url, "benchdash")
            try:
                check(await status.reports(), f"{figure}: no report reached Redis")
            finally:
                await status.aclose()
    return n / elapsed


async def measure(url: str, backend: str, n: int, runs: int) -> list[Entry]:
    entries: list[Entry] = []
    for figure, label in (("tell", "(a) tell"), ("publish", "(b) publish")):
        on: list[float] = []
        off: list[float] = []
        for _ in range(runs):
            off.append(await one_run(url, figure, n, observed=False))
            on.append(await one_run(url, figure, n, observed=True))
        entries.append(
            Entry(
                f"{label}, dashboard on",
                backend,
                median(on),
                "msgs/s",
                baseline_name=f"{label}, dashboard off",
                baseline_value=median(off),
                target="ratio >= 0.95",
                extra={"messages": n, "idle_actors": IDLE, "runs_on": on, "runs_off": off},
            )
        )
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about a minute)")
    parser.add_argument("--json", metavar="PATH", help="write the entries as JSON")
    parser.add_argument("--url", help="a Redis URL instead of a redis-server of our own")
    parser.add_argument("--backend", choices=sorted(BACKENDS), action="append")
    args = parser.parse_args(argv)
    n = 300_000 if args.quick else 2_000_000
    runs = 1 if args.quick else RUNS
    entries: list[Entry] = []
    with redis_url(args.url) as url:
        for label in args.backend or ["asyncio", "trio"]:
            backend, options = BACKENDS[label]
            try:
                entries += anyio.run(
                    measure, url, label, n, runs, backend=backend, backend_options=options
                )
            except (BenchError, TimeoutError) as exc:
                entries.append(Entry("dashboard on vs off", label, None, "", error=str(exc)))
    if args.json:
        write_json(args.json, entries)
    print(format_table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
