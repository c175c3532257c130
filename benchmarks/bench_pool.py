"""Worker pool benchmark: a CPU-bound group over Redis under ``actorbus run --workers N``.

Run ``python benchmarks/bench_pool.py --help``. Each figure starts ``actorbus run
pool_target:make_system`` in a subprocess (on the backend measured: asyncio,
asyncio with ``--uvloop``, trio), waits until it runs, then this process publishes `events`
``Job`` events with ``publish_batch`` and polls the group's progress in Redis (XINFO
GROUPS: every entry read and none pending) until all are handled; the figure is events
per second from the first publish to that moment (start-up is not counted). Each event
costs the handler about `WORK_US` µs of pure-Python work (calibrated here, at start-up),
so the run is CPU-bound. Three variants, interleaved within each run so that machine load
affects them alike, median of `RUNS` runs (one in ``--quick``):

- ``pool cpu-bound, --workers 2``: two worker processes. Baseline: ``--workers 1`` in the
  same run. Target: ratio >= 1.6 on a 2-core machine (the publisher, this process's poll
  and redis-server share the cores with the workers).
- ``pool cpu-bound, --workers 1``: the supervised pool of one. Baseline: a plain
  ``actorbus run`` (no supervisor) under the same durable instance name. Target: ratio >=
  0.95 (the pool must cost nothing once it runs).
- ``pool cpu per event, --workers 1``: the CPU time (user + system) the worker process
  used per event in that run, beside the plain run's (information; unlike events/s it
  hardly depends on what else the machine runs).

The group is keyed: `pool_target.Job`'s account is its key, over 8 partitions (every
partition owned by one worker at a time). Each run checks that every event was read once
by the group and acknowledged,
and that the worker stopped with status 0 on SIGTERM; a failed check is reported as an
error instead of a figure. ``--quick`` takes well under a minute.
"""

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import anyio
import coredis
from _common import (
    BACKENDS,
    RUNS,
    BenchError,
    Entry,
    argument_parser,
    check,
    each_backend,
    finish,
    loadavg,
    machine_summary,
    median,
    now,
    redis_url,
)
from pool_target import GROUP, Job, burn

from actorbus import ActorSystem
from actorbus.redis import RedisTransport
from actorbus.redis._config import member_group

HERE = Path(__file__).resolve().parent
WORK_US = 200.0
"""The handler's pure-Python work per event, in µs."""
ACCOUNTS = 64
"""Distinct accounts: the keys."""
PARTITIONS = 8
READY_TIMEOUT = 60.0
RUN_TIMEOUT = 600.0
# The target's transport is the durable instance "bench"; a pool's workers are
# "bench-0", "bench-1".
VARIANTS = {
    "plain": [],
    "workers 1": ["--workers", "1"],
    "workers 2": ["--workers", "2"],
}
VARIANTS_PROCESSES = {"plain": 1, "workers 1": 1, "workers 2": 2}
_READY = {
    "plain": re.compile(r"system '[^']+' running with"),
    "pool": re.compile(r"workers? of 'pool_target:make_system' running \(supervisor pid"),
}


def calibrate(work_us: float) -> int:
    """Iterations of `burn` that take about `work_us` µs here (best of several tries)."""
    loops = 1000
    for _ in range(3):
        best = min(_timed(loops) for _ in range(20))
        loops = max(1, round(loops * work_us / (best * 1e6)))
    return loops


def _timed(loops: int) -> float:
    start = now()
    burn(loops)
    return now() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by process `pid` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def worker(url: str, app: str, loops: int, label: str, variant: str) -> Iterator[list[int]]:
    """Run ``actorbus run`` for one variant; stop it with SIGTERM (status 0 checked).

    Yields the pids that do the work: the process itself, or the pool's workers.
    """
    options = ["--backend", BACKENDS[label][0], *(["--uvloop"] if label == "uvloop" else [])]
    env = {
        **os.environ,
        "BENCH_POOL_APP": app,
        "BENCH_POOL_LOOPS": str(loops),
        "BENCH_POOL_URL": url,  # out of the process list
    }
    command = [sys.executable, "-m", "actorbus", "run", "pool_target:make_system"]
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [*command, *options, *VARIANTS[variant]],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            ready = _READY["plain" if variant == "plain" else "pool"]
            deadline = now() + READY_TIMEOUT
            while not ready.search(_read(stderr)):
                check(process.poll() is None, f"{variant} exited: {_read(stderr)[-2000:]}")
                check(now() < deadline, f"{variant} did not start: {_read(stderr)[-2000:]}")
                time.sleep(0.02)  # outside any event loop
            yield [process.pid] if variant == "plain" else children(process.pid)
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
            check(code == 0, f"{variant} stopped with status {code}: {_read(stderr)[-2000:]}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()


async def publish_and_wait(url: str, app: str, events: int) -> float:
    """Publish `events` jobs; return events/s once the group has handled them all."""
    group = member_group(GROUP).encode()
    async with (
        ActorSystem(app, transport=RedisTransport(url, partitions=PARTITIONS)) as producer,
        coredis.Redis.from_url(url) as client,
    ):
        transport = producer.transport
        assert isinstance(transport, RedisTransport)
        streams = transport.keys.streams
        start = now()
        await producer.publish_batch(Job(n, f"acc-{n % ACCOUNTS}") for n in range(events))
        while True:
            read = pending = 0
            for key in streams:
                found = [g for g in await client.xinfo_groups(key) if g[b"name"] == group]
                check(len(found) <= 1, f"group {group!r} twice on {key}")
                if found:
                    read += found[0][b"entries-read"] or 0
                    pending += found[0][b"pending"]
            check(read <= events, f"the group read {read} entries, more than {events}")
            if read == events and pending == 0:
                elapsed = now() - start
                break
            check(now() - start < RUN_TIMEOUT, f"{events - read} not read, {pending} pending")
            await anyio.sleep(0.01)
        base = transport.keys.base
    async with coredis.Redis.from_url(url) as client:
        leftovers = [k async for k in client.scan_iter(match=f"{base}*")]
        if leftovers:
            await client.delete(leftovers)
    return events / elapsed


def measure(url: str, label: str, loops: int, events: int, runs: int) -> list[Entry]:
    load = loadavg()
    results: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for run in range(runs):
        for variant in VARIANTS:
            app = f"bench-pool-{secrets.token_hex(4)}"
            with worker(url, app, loops, label, variant) as pids:
                check(len(pids) == VARIANTS_PROCESSES[variant], f"{variant}: workers {pids}")
                before = sum(cpu_seconds(pid) for pid in pids)
                rate = anyio.run(publish_and_wait, url, app, events)
                used = sum(cpu_seconds(pid) for pid in pids) - before
            results[variant].append(rate)
            cpu[variant].append(used / events * 1e6)
            print(
                f"  [{label}] run {run + 1} {variant}: {rate:,.0f} events/s, "
                f"{cpu[variant][-1]:.0f} µs CPU per event",
                file=sys.stderr,
            )
    m = {variant: median(values) for variant, values in results.items()}
    c = {variant: median(values) for variant, values in cpu.items()}
    extra = {
        "events": events,
        "work_us": WORK_US,
        "loops": loops,
        "loadavg_before": load,
        "loadavg_after": loadavg(),
        "runs": results,
        "cpu_us_per_event": cpu,
    }
    return [
        Entry("pool cpu-bound, --workers 2", label, m["workers 2"], "events/s",
              "--workers 1", m["workers 1"], target="ratio >= 1.6", extra=extra),
        Entry("pool cpu-bound, --workers 1", label, m["workers 1"], "events/s",
              "plain actorbus run", m["plain"], target="ratio >= 0.95", extra=extra),
        Entry("pool cpu per event, --workers 1", label, c["workers 1"], "µs",
              "plain actorbus run", c["plain"], extra=extra),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = argument_parser(__doc__, "small runs (well under a minute)").parse_args(argv)
    events, runs = (2_000, 1) if args.quick else (30_000, RUNS)
    loops = calibrate(WORK_US)
    print(f"{loops} loops of burn() ≈ {WORK_US:.0f} µs", file=sys.stderr)
    entries: list[Entry] = []
    with redis_url(args.url) as url:
        for label, _, _ in each_backend(args.backend):  # the worker picks its own loop
            try:
                entries += measure(url, label, loops, events, runs)
            except (BenchError, TimeoutError, subprocess.TimeoutExpired) as exc:
                what = f"{type(exc).__name__}: {exc}"
                entries.append(Entry("pool benchmarks", label, None, "", error=what))
    print(
        f"{machine_summary()}; {events} events of {WORK_US:.0f} µs, median of {runs} run(s)",
        file=sys.stderr,
    )
    return finish(entries, args.json)


if __name__ == "__main__":
    sys.exit(main())
