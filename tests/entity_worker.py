"""An instance hosting an entity kind with durable state, in a process of its own.

Usage: REDIS_URL=... python entity_worker.py APP JOURNAL PARTITIONS LEASE BACKEND

(The URL, which holds the password, comes from the environment so `ps` does not show it.)

Hosts `Ledger` entities (kind ``WorkerLedger``, state `Seqs`, passivated after half a
second idle): each `Add` appends its ``seq`` to the key's state, and the worker writes
``handled <key> <seq>`` to JOURNAL (flushed at once). Prints "ready" once it owns a
partition of the kind's group. On SIGTERM it stops gracefully. The tests import the event
and the kind from here.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TextIO

import anyio
import attrs

from actorbus import Actor, ActorSystem, Scope, Sharding, event, handle
from actorbus.redis import RedisTransport

GROUP = "entity:WorkerLedger"
PASSIVATE_AFTER = 0.5


@event("worker.ledger.add", scope=Scope.APP, key="key")
class Add:
    key: str
    seq: int


@attrs.define
class Seqs:
    seqs: list[int] = attrs.Factory(list)


journal: TextIO | None = None


class Ledger(Actor):
    sharding = Sharding(state=Seqs, passivate_after=PASSIVATE_AFTER, name="WorkerLedger")

    @handle()
    async def add(self, item: Add) -> None:
        self.state.seqs.append(item.seq)
        if journal is not None:
            journal.write(f"handled {item.key} {item.seq}\n")
            journal.flush()


async def main(url: str, app: str, path: Path, partitions: int, lease: float) -> None:
    global journal
    with path.open("a") as journal:
        transport = RedisTransport(url, partitions=partitions, lease=lease, block=0.2)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with ActorSystem(app, transport=transport) as system:
                await system.shard(Ledger)
                while not transport.owned(GROUP):  # noqa: ASYNC110 - polls the transport
                    await anyio.sleep(0.01)
                sys.stdout.write("ready\n")
                sys.stdout.flush()
                async for _ in signals:
                    break


if __name__ == "__main__":
    app, path, partitions, lease, backend = sys.argv[1:6]
    anyio.run(
        main,
        os.environ["REDIS_URL"],
        app,
        Path(path),
        int(partitions),
        float(lease),
        backend=backend,
    )
