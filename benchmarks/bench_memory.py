"""Memory under overload: peak RSS while N events are published at a slow actor.

Run ``python benchmarks/bench_memory.py --help``. One actor with a bounded mailbox
(capacity `CAPACITY`) handles ``Ping`` events slowly: its handler yields to the scheduler
once per event, so it handles one event per scheduling round while the publisher, which
yields every 64 publishes, pushes 64. N events are published with ``system.publish`` and
the process's **peak** resident set size (``ru_maxrss``) is compared with:

- the baseline: the same process (same imports, the system started, the actor spawned)
  publishing nothing;
- the same case with N / 10 events: a bounded mailbox keeps the peak independent of N.

Cases (one fresh process each, so peaks never mix):

- ``block``: `Overflow.BLOCK`, the publisher waits for room (backpressure); every event
  is handled.
- ``drop_newest`` / ``drop_oldest``: the publisher never waits; a full mailbox drops the
  incoming / the oldest waiting event (counted and dead-lettered; the system keeps only
  the last 1,000 dead letters).
- ``unbounded`` (reference, no target): a BLOCK mailbox with capacity N + 1, i.e. no
  bound: what the bound saves.

Every run checks its own result (handled + dropped = N, the checksum of what a BLOCK actor
handled, which end a DROP policy kept, the dead-letter list bounded) and reports an error
instead of a figure when a check fails.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from _common import (
    BACKENDS,
    BenchError,
    Entry,
    check,
    failed,
    fmt,
    format_markdown,
    machine_info,
    median,
    now,
    write_json,
)

from actorbus import Actor, ActorSystem, Mailbox, Overflow, event, handle

CAPACITY = 1000
MODES = ("block", "drop_newest", "drop_oldest", "unbounded")
TARGET = "ratio <= 1.10"
"""Peak RSS with N events over the peak with N / 10: bounded means about 1."""
CHILD_TIMEOUT = 1800.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    large: int
    small: int
    runs: int


QUICK = Sizes(large=20_000, small=2_000, runs=1)
FULL = Sizes(large=1_000_000, small=100_000, runs=1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@event("bench.memory.ping")
class Ping:
    n: int


class Seen:
    """What the slow actor handled: count, checksum, first and last event numbers."""

    __slots__ = ("count", "first", "last", "total")

    def __init__(self) -> None:
        self.count = self.total = 0
        self.first = self.last = -1


class Slow(Actor):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @handle(Ping)
    async def on_ping(self, ping: Ping) -> None:
        seen = self.seen
        if seen.count == 0:
            seen.first = ping.n
        seen.count += 1
        seen.total += ping.n
        seen.last = ping.n
        await anyio.lowlevel.checkpoint()  # slow: one event per scheduling round


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mailbox_for(mode: str, n: int) -> Mailbox:
    if mode in {"baseline", "block"}:
        return Mailbox(CAPACITY, Overflow.BLOCK)
    if mode == "unbounded":
        return Mailbox(n + 1, Overflow.BLOCK)
    return Mailbox(CAPACITY, Overflow[mode.upper()])


async def overload(mode: str, n: int) -> dict[str, Any]:
    """Publish n events at the slow actor; return what happened and the peak RSS."""
    seen = Seen()
    async with ActorSystem("bench-memory") as system:
        ref = await system.spawn(Slow, seen, name="slow", mailbox=mailbox_for(mode, n))
        started = now()
        for i in range(n):
            await system.publish(Ping(i))
        pushed = now() - started
        await system.drain()
        elapsed = now() - started
        stats = ref.stats
        dead_letters = len(system.dead_letters)
    peak = peak_rss()
    handled, dropped = stats.processed, stats.dropped
    check(seen.count == handled, f"{mode}: the handler ran {seen.count} times, stats {handled}")
    check(handled + dropped == n, f"{mode}: {handled} handled + {dropped} dropped != {n}")
    check(dead_letters <= CAPACITY, f"{mode}: {dead_letters} dead letters kept (bound 1000)")
    if mode in {"block", "unbounded"}:
        check(
            dropped == 0 and seen.total == n * (n - 1) // 2,
            f"{mode}: {dropped} dropped, checksum {seen.total} (expected {n * (n - 1) // 2})",
        )
    elif n:
        check(dropped > 0, f"{mode}: nothing was dropped: the actor was not overloaded")
        if mode == "drop_newest":
            check(seen.first == 0, f"drop_newest: the first event handled was {seen.first}")
        else:
            check(seen.last == n - 1, f"drop_oldest: the last event handled was {seen.last}")
    return {
        "peak": peak,
        "push_seconds": pushed,
        "seconds": elapsed,
        "handled": handled,
        "dropped": dropped,
    }


def child(backend: str, mode: str, n: int) -> None:
    """Body of a ``--child`` process: one case, reported as one JSON line on stdout."""
    name, options = BACKENDS[backend]

    async def main() -> dict[str, Any]:
        if backend == "uvloop":
            import asyncio  # noqa: PLC0415

            loop = type(asyncio.get_running_loop())
            check(loop.__module__.startswith("uvloop"), f"uvloop requested, got {loop}")
        return await overload(mode, n)

    result = anyio.run(main, backend=name, backend_options=options)
    print(json.dumps(result), flush=True)
    os._exit(0)  # report the peak as measured; skip interpreter teardown


def run_child(backend: str, mode: str, n: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", backend, mode, str(n)]
    done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        command, stdout=subprocess.PIPE, text=True, timeout=CHILD_TIMEOUT
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        msg = f"{backend} {mode} N={n:,} failed with status {done.returncode}"
        raise BenchError(msg)
    return json.loads(lines[-1])


def measure_backend(backend: str, sizes: Sizes) -> list[Entry]:
    """Every case on one backend; each run of each case in a fresh process."""
    entries: list[Entry] = []
    try:
        base = [run_child(backend, "baseline", 0)["peak"] for _ in range(sizes.runs)]
    except BenchError as exc:
        log(f"  [{backend}] FAILED: {exc}")
        return [Entry("mem.baseline", backend, None, "MiB", error=str(exc))]
    baseline = median(base) / MIB
    entries.append(
        Entry("mem.baseline", backend, baseline, "MiB", extra={"what": "system + actor, no event"})
    )
    log(f"  [{backend}] baseline peak RSS {baseline:.1f} MiB")
    for mode in MODES:
        figure = f"mem.{mode}"
        try:
            found: dict[int, list[dict[str, Any]]] = {sizes.small: [], sizes.large: []}
            for _ in range(sizes.runs):
                for n, results in found.items():
                    results.append(run_child(backend, mode, n))
        except BenchError as exc:
            log(f"  [{backend}] {mode} FAILED: {exc}")
            entries.append(Entry(figure, backend, None, "MiB", error=str(exc)))
            continue
        peaks = {n: median([r["peak"] for r in rs]) / MIB for n, rs in found.items()}
        big = found[sizes.large][len(found[sizes.large]) // 2]
        small_growth = peaks[sizes.small] - baseline
        large_growth = peaks[sizes.large] - baseline
        log(
            f"  [{backend}] {mode}: peak {peaks[sizes.small]:.1f} MiB at {sizes.small:,}, "
            f"{peaks[sizes.large]:.1f} MiB at {sizes.large:,} "
            f"({big['handled']:,} handled, {big['dropped']:,} dropped, "
            f"{big['push_seconds']:.1f}s to publish)"
        )
        entries.append(
            Entry(
                figure,
                backend,
                peaks[sizes.large],
                "MiB",
                baseline_name=f"{figure} with {sizes.small:,} events",
                baseline_value=peaks[sizes.small],
                target=None if mode == "unbounded" else TARGET,
                extra={
                    "events": sizes.large,
                    "capacity": "N + 1" if mode == "unbounded" else CAPACITY,
                    "baseline_peak_mib": baseline,
                    "growth_mib": large_growth,
                    "growth_mib_small": small_growth,
                    "handled": big["handled"],
                    "dropped": big["dropped"],
                    "publish_seconds": big["push_seconds"],
                    "seconds": big["seconds"],
                    "runs": sizes.runs,
                },
            )
        )
    return entries


def markdown(entries: list[Entry], sizes: Sizes) -> str:
    """The README table: one row per case and backend."""
    small, large = f"{sizes.small:,}", f"{sizes.large:,}"
    lines = [
        (
            f"| case | backend | peak RSS, {small} events | peak RSS, {large} events "
            f"| growth over baseline ({small} / {large}) | ratio "
            f"| handled / dropped ({large}) | publish time ({large}) |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for e in entries:
        if e.error is not None:
            lines.append(f"| {e.figure} | {e.backend} | error: {e.error} | | | | | |")
            continue
        if e.figure == "mem.baseline":
            lines.append(f"| baseline | {e.backend} | {fmt(e.value)} MiB | | | | | |")
            continue
        x = e.extra
        verdict = "" if e.met is None else (" met" if e.met else " **MISSED**")
        lines.append(
            f"| {e.figure.removeprefix('mem.')} | {e.backend} | {fmt(e.baseline_value)} MiB "
            f"| {fmt(e.value)} MiB | {x['growth_mib_small']:+.1f} / {x['growth_mib']:+.1f} MiB "
            f"| {e.ratio:.2f}{verdict} | {x['handled']:,} / {x['dropped']:,} "
            f"| {x['publish_seconds']:.1f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 vs 2,000 events")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--runs", type=int, help="runs per case (median); default 1")
    parser.add_argument("--events", type=int, help="N (the small case is N / 10)")
    parser.add_argument("--json", metavar="PATH", help="write the entries as JSON to PATH")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        backend, mode, n = args.child
        child(backend, mode, int(n))
        return 0  # not reached: the child leaves with os._exit
    sizes = QUICK if args.quick else FULL
    if args.events:
        sizes = Sizes(args.events, args.events // 10, sizes.runs)
    if args.runs:
        sizes = Sizes(sizes.large, sizes.small, args.runs)
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    info = machine_info()
    log(
        f"memory under overload: {sizes.large:,} vs {sizes.small:,} events, mailbox "
        f"{CAPACITY}, {sizes.runs} run(s) per case, each in a fresh process"
    )
    log("  " + ", ".join(f"{key} {value}" for key, value in info.items()))
    entries: list[Entry] = []
    begin = now()
    for backend in backends:
        if backend == "uvloop":
            try:
                import uvloop  # noqa: F401, PLC0415
            except ImportError:
                log("  [uvloop] skipped: uvloop is not installed (pip install uvloop)")
                continue
        entries.extend(measure_backend(backend, sizes))
    log(f"  ({now() - begin:.0f}s)")
    if args.json:
        write_json(args.json, entries)
    print(markdown(entries, sizes))
    print()
    print(format_markdown(entries))
    return 1 if failed(entries) else 0


if __name__ == "__main__":
    sys.exit(main())
