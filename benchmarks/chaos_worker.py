"""One worker process of the chaos run: `benchmarks/chaos.py` starts, kills and replaces it.

Usage (the URL, which holds the password, comes from the environment so `ps` does not
show it)::

    REDIS_URL=redis://... python benchmarks/chaos_worker.py APP JOURNAL LEDGER \
        [--instance NAME] [--backend asyncio|trio] [--dead-maxlen N] \
        [--partitions P] [--lease SECONDS]

It runs one instance of application APP with two start-up actors:

- ``Everyone``, a broadcast subscriber: every instance gets every ``chaos.tick``;
- ``Worker``, a member of the competing-consumer group ``work``: one instance per event.

Each handler appends one line to JOURNAL before it returns (one ``write(2)`` on a file
opened with ``O_APPEND``: a SIGKILL after the handler returned but before the bridge
acknowledged the entry leaves the line in the file, and the entry is delivered again —
a duplicate, which is correct at-least-once delivery)::

    b <event id> <seq> <unix time>                    # broadcast delivery
    g <event id> <seq> <unix time> <applied> <key>    # group delivery; applied: 1, or 0 if
                                                      # skipped; key: the event's, or "-"

With ``--partitions`` > 1 the transport splits the events in that many partitions, and each
partition of group ``work`` is owned by one live worker at a time (a lease of ``--lease``
seconds): the chaos run then checks that each key's events were handled in order.

The group handler is idempotent the way a real one would be: before its side effect it
records the envelope id in LEDGER, a file shared by every worker process (a stand-in for
a unique key in a database, guarded by ``flock``), and skips the effect when the id is
already there. Poison events (``poison=True``) make both handlers raise every time;
supervision retries twice, then dead-letters them (the bridge writes them to the
dead-letter stream and acknowledges them).

Prints ``ready <instance>`` once the system runs (start-up actors subscribed, consumers
started). SIGTERM or SIGINT stops it gracefully (what it read is handled and acknowledged).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import time
from collections import deque

import anyio

from actorbus import (
    Actor,
    ActorSystem,
    Backoff,
    Envelope,
    Policy,
    Scope,
    Supervision,
    event,
    handle,
)
from actorbus.redis import RedisTransport

GROUP = "work"
TRANSPORT_SETTINGS = {
    # Short enough for a run of seconds: a killed member's entries are taken over after
    # 1 s, a killed anonymous instance's broadcast group is removed ~5 s after its last
    # heartbeat, and the stream is trimmed every second.
    "claim_after": 1.0,
    "trim_interval": 1.0,
    "stale_after": 5.0,
    "max_deliveries": 5,
    "block": 0.5,
}
SUPERVISION = Supervision(
    policy=Policy.RETRY,
    max_retries=2,
    backoff=Backoff(initial=0.01, maximum=0.02),
    then=Policy.DEAD_LETTER,
)


@event("chaos.tick", scope=Scope.APP)
class Tick:
    seq: int
    poison: bool = False
    key: str | None = None  # also the envelope's `partitionkey`, when set


class PoisonError(RuntimeError):
    """What a poison event's handler raises, every time."""


class Journal:
    """An append-only file of handled events, one unbuffered write per line."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        os.write(self._fd, line.encode())


class Ledger:
    """The ids whose side effect was applied, shared by all worker processes.

    `claim` takes an exclusive ``flock`` (released by the kernel if the process dies),
    reads what other processes appended since the last call, and appends the id unless
    it is already there. Blocking file I/O of a few microseconds: fine in a handler.

    It remembers the last `REMEMBER` ids only, as a unique key with a time to live would:
    redeliveries come within seconds, and the soak measures the workers' memory. An id
    applied twice would still show, as a duplicate line in the file.
    """

    REMEMBER = 50_000

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._offset = 0
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._partial = b""

    def _remember(self, event_id: str) -> None:
        self._seen.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.REMEMBER:
            self._seen.discard(self._order.popleft())

    def claim(self, event_id: str) -> bool:
        """Record `event_id`; False if some process had recorded it already."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(self._fd).st_size
            if size > self._offset:
                data = self._partial + os.pread(self._fd, size - self._offset, self._offset)
                self._offset = size
                *lines, self._partial = data.split(b"\n")
                for line in lines:
                    self._remember(line.decode())
            if event_id in self._seen:
                return False
            os.write(self._fd, f"{event_id}\n".encode())
            self._offset += len(event_id) + 1
            self._remember(event_id)
            return True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def actors(journal: Journal, ledger: Ledger) -> list[type[Actor]]:
    class Everyone(Actor):
        supervision = SUPERVISION

        @handle(Tick)
        async def on_tick(self, tick: Tick, envelope: Envelope) -> None:
            if tick.poison:
                raise PoisonError(f"poison event seq={tick.seq} (broadcast)")
            journal.write(f"b {envelope.id} {tick.seq} {time.time():.6f}\n")

    class Worker(Actor):
        group = GROUP
        supervision = SUPERVISION

        @handle(Tick)
        async def on_tick(self, tick: Tick, envelope: Envelope) -> None:
            if tick.poison:
                raise PoisonError(f"poison event seq={tick.seq} (group)")
            applied = ledger.claim(envelope.id)  # the idempotent side effect
            key = tick.key or "-"
            journal.write(f"g {envelope.id} {tick.seq} {time.time():.6f} {int(applied)} {key}\n")

    return [Everyone, Worker]


async def main(
    url: str,
    app: str,
    journal: str,
    ledger: str,
    instance: str | None,
    dead_maxlen: int,
    partitions: int,
    lease: float,
) -> None:
    settings = {**TRANSPORT_SETTINGS, "dead_maxlen": dead_maxlen}
    settings |= {"partitions": partitions, "lease": lease}
    transport = RedisTransport(url, instance=instance, **settings)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with ActorSystem(
            app, transport=transport, actors=actors(Journal(journal), Ledger(ledger))
        ):
            sys.stdout.write(f"ready {transport.instance}\n")
            sys.stdout.flush()
            async for _ in signals:
                break  # leaving the system stops it gracefully


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app")
    parser.add_argument("journal")
    parser.add_argument("ledger")
    parser.add_argument("--instance", default=None)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--dead-maxlen", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--lease", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    anyio.run(
        main,
        os.environ["REDIS_URL"],
        args.app,
        args.journal,
        args.ledger,
        args.instance,
        args.dead_maxlen,
        args.partitions,
        args.lease,
        backend=args.backend,
    )
