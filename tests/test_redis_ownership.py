"""A member process of a partitioned group killed (``kill -9``) or paused (SIGSTOP) mid-stream.

The member runs in a process of its own (`partition_worker.py`, which journals each
event as it starts and ends handling it); the other member and the publisher run here.
What is checked: every event is handled (at least once), the events of each key are
handled in their order (counting each event's first handling), and a member paused past
its lease neither handles nor acknowledges anything once it resumes — Redis refuses its
acknowledgements (its fenced counter), and it starts no handler.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import anyio
import pytest
from redis_support import new_app
from worker_support import Workers, ready

from actorbus import ActorSystem, Scope, event, handle
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from redis_support import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PARTITIONS = 4
LEASE = 1.0
KEYS = 8


@event("part.step", scope=Scope.APP, key="order")
class Step:
    order: str
    n: int


Journal = list[tuple[str, str, str, int, int]]
"""(member, "start" or "end", key, n, monotonic ns)."""


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls what handlers and files record
            await anyio.sleep(0.02)


def read_journal(path: Path, name: str) -> Journal:
    found: Journal = []
    for line in path.read_text().splitlines():
        what, *rest = line.split()
        if what in {"start", "end"}:
            key, n, at = rest
            found.append((name, what, key, int(n), int(at)))
    return found


def ended(journal: Journal) -> set[tuple[str, int]]:
    """The events whose handling ended, as (key, n)."""
    return {(key, n) for _, what, key, n, _ in journal if what == "end"}


def stats_of(path: Path) -> tuple[int, int, int]:
    """(fenced, lost, acquired) that the worker wrote as it stopped."""
    (line,) = [line for line in path.read_text().splitlines() if line.startswith("stats ")]
    fenced, lost, acquired = (int(word) for word in line.split()[1:])
    return fenced, lost, acquired


def check(journal: Journal, expected: int) -> int:
    """Every event handled, each key in order by first handling; return the duplicates."""
    first: dict[tuple[str, int], int] = {}
    handled = 0
    for _, what, key, n, at in journal:
        if what == "end":
            handled += 1
        if what == "start" and (key, n) not in first:
            first[(key, n)] = at
    ended = {(key, n) for _, what, key, n, _ in journal if what == "end"}
    assert len(ended) == expected, f"{expected - len(ended)} events never handled"
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (key, n), at in first.items():
        by_key[key].append((at, n))
    for key, started in by_key.items():
        order = [n for _, n in sorted(started)]
        assert order == sorted(order), f"key {key} out of order: {order}"
    return handled - len(ended)


@pytest.fixture
def worker(
    redis_server: RedisServer, tmp_path: Path, anyio_backend: str
) -> Iterator[Callable[[str, float], tuple[subprocess.Popen[bytes], Path]]]:
    workers = Workers(redis_server.url, tmp_path)

    def start(app: str, delay: float) -> tuple[subprocess.Popen[bytes], Path]:
        return workers.start(
            "partition_worker.py", app, str(delay), str(LEASE), str(PARTITIONS), anyio_backend
        )

    yield start
    workers.close()


def local_member(journal: Journal) -> Callable[..., object]:
    @handle(Step, group="work")
    async def work(step: Step) -> None:
        journal.append(("here", "start", step.order, step.n, time.monotonic_ns()))
        await anyio.sleep(0.005)
        journal.append(("here", "end", step.order, step.n, time.monotonic_ns()))

    return work


@contextlib.asynccontextmanager
async def member_beside(
    url: str, app: str, journal: Journal
) -> AsyncIterator[tuple[ActorSystem, RedisTransport]]:
    """A member in this process (see `local_member`), once it owns half of the partitions.

    The worker owns the other half.
    """
    transport = RedisTransport(url, partitions=PARTITIONS, lease=LEASE, block=0.2)
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(local_member(journal))
        await eventually(lambda: len(transport.owned("work")) == PARTITIONS // 2)
        yield system, transport


async def publish(system: ActorSystem, numbers: range, pause: float) -> None:
    for n in numbers:
        await system.publish(Step(f"o-{n % KEYS}", n))
        await anyio.sleep(pause)


async def test_a_member_killed_mid_stream_loses_nothing_and_keeps_each_key_in_order(
    redis_server: RedisServer, worker: Callable[[str, float], tuple[subprocess.Popen[bytes], Path]]
) -> None:
    app = new_app()
    process, path = worker(app, 0.005)
    await ready(process)
    here: Journal = []
    async with member_beside(redis_server.url, app, here) as (system, transport):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(publish, system, range(400), 0.005)
            await eventually(lambda: len(read_journal(path, "there")) >= 100)
            process.send_signal(signal.SIGKILL)
        killed = read_journal(path, "there")
        await eventually(lambda: len(transport.owned("work")) == PARTITIONS)
        await eventually(lambda: len(ended(here) | ended(killed)) == 400)
    assert transport.stats().acquired >= PARTITIONS
    check(killed + here, 400)


async def test_a_member_paused_past_its_lease_neither_handles_nor_acknowledges_after(
    redis_server: RedisServer, worker: Callable[[str, float], tuple[subprocess.Popen[bytes], Path]]
) -> None:
    """The fencing test: the new owner handles everything; Redis refuses the old one."""
    app = new_app()
    process, path = worker(app, 0.2)  # slow: a pause lands in the middle of a handler
    await ready(process)
    here: Journal = []
    async with member_beside(redis_server.url, app, here) as (system, transport):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(publish, system, range(200), 0.01)
            await eventually(lambda: len(read_journal(path, "there")) >= 6)
            process.send_signal(signal.SIGSTOP)
            stopped = time.monotonic_ns()
            at_pause = read_journal(path, "there")
            # Its lease expires; this member takes its partitions over and their backlog.
            await eventually(lambda: len(transport.owned("work")) == PARTITIONS)
            await anyio.sleep(LEASE)
            process.send_signal(signal.SIGCONT)
        await eventually(lambda: len(ended(here) | ended(read_journal(path, "there"))) == 200)
        process.send_signal(signal.SIGTERM)
        await anyio.to_thread.run_sync(process.wait)
    there = read_journal(path, "there")
    # Resumed, it finishes the handler it was in, then rejoins the group and may own
    # partitions again (handed back gracefully), but it starts nothing that this member took.
    taken = {(key, n) for _, what, key, n, _ in here if what == "start"}
    after = [entry for entry in there[len(at_pause) :] if entry[1] == "start"]
    assert not [entry for entry in after if (entry[2], entry[3]) in taken]
    assert all(at > stopped for *_, at in there[len(at_pause) :])
    fenced, lost, _ = stats_of(path)
    assert lost >= 1  # it found out that it had lost its partitions...
    assert fenced >= 1  # ...and Redis refused the acknowledgement of the one it was handling
    check(there + here, 200)
