"""A member of a partitioned group, in a process of its own (killed or paused by the tests).

Usage: REDIS_URL=... python partition_worker.py APP OUTFILE DELAY LEASE PARTITIONS BACKEND

(The URL, which holds the password, comes from the environment so `ps` does not show it.)

Runs an instance of APP whose member of group "work" handles `part.step` events (keyed by
their ``order``): it writes ``start <order> <n> <time>`` to OUTFILE as it starts handling
one, sleeps DELAY seconds, then writes ``end <order> <n> <time>`` (times are
``time.monotonic_ns()``, which every process of the machine shares; each line is flushed
at once). Prints "ready" once it owns a partition. On SIGTERM it stops gracefully and
writes ``stats <fenced> <lost> <acquired>`` last.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import anyio

from actorbus import ActorSystem, Scope, event, handle
from actorbus.redis import RedisTransport


@event("part.step", scope=Scope.APP, key="order")
class Step:
    order: str
    n: int


async def main(
    url: str, app: str, outfile: Path, delay: float, lease: float, partitions: int
) -> None:
    with outfile.open("a") as out:

        def note(what: str, step: Step) -> None:
            out.write(f"{what} {step.order} {step.n} {time.monotonic_ns()}\n")
            out.flush()

        @handle(Step, group="work")
        async def work(step: Step) -> None:
            note("start", step)
            await anyio.sleep(delay)
            note("end", step)

        transport = RedisTransport(url, partitions=partitions, lease=lease, block=0.2)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with ActorSystem(app, transport=transport) as system:
                await system.spawn(work)
                while not transport.owned("work"):  # noqa: ASYNC110 - polls the transport
                    await anyio.sleep(0.01)
                sys.stdout.write("ready\n")
                sys.stdout.flush()
                async for _ in signals:
                    break
        stats = transport.stats()
        out.write(f"stats {stats.fenced} {stats.lost} {stats.acquired}\n")


if __name__ == "__main__":
    app, outfile, delay, lease, partitions, backend = sys.argv[1:7]
    anyio.run(
        main,
        os.environ["REDIS_URL"],
        app,
        Path(outfile),
        float(delay),
        float(lease),
        int(partitions),
        backend=backend,
    )
