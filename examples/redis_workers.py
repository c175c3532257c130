"""Workers sharing jobs through Redis: a competing-consumer group across processes.

Start Redis (``redis-server``, or ``docker run -p 6379:6379 redis:7``), then in three
terminals::

    pip install -e '.[redis]'        # the Redis extra; a redis-server >= 6.2 running
    python examples/redis_workers.py worker --name w1 --url redis://localhost:6379/0
    python examples/redis_workers.py worker --name w2 --url redis://localhost:6379/0
    python examples/redis_workers.py producer --count 20 --url redis://localhost:6379/0

Every job is rendered by exactly one worker (both are members of the group
``renderers``). Things to try:

- Stop a worker with Ctrl-C: it finishes the jobs it took, acknowledges them and exits.
- Kill one with ``kill -9`` while it works: after ``claim_after`` (5 s here) the other
  worker takes over the jobs it had not finished. A job the dead worker finished but had
  not acknowledged yet is rendered again — at-least-once delivery — which is why the
  worker skips ids it has already seen (a real worker would keep them in its database).
- Stop both workers, run the producer, then start a worker: the group is durable in
  Redis, so the jobs wait for it. ``--name`` also makes each worker a durable instance.

Each worker reads jobs in batches, so a short burst can land mostly on one of them; over
a longer run the group evens out.

The same worker also runs under ``actorbus run``, which adds the transport (and signal
handling, ``--status``, exit codes)::

    actorbus run examples.redis_workers:make_system --redis redis://localhost:6379/0 --instance w3

Add ``--backend trio`` to any command to run it on trio (with the trio extra:
``pip install -e '.[redis,trio]'``). ``demo(url)`` runs a producer and two workers in one
process; the test suite runs it against a private redis-server.
"""

from __future__ import annotations

import argparse
import secrets
import signal

import anyio

from actorbus import Actor, ActorSystem, Envelope, Scope, event, handle
from actorbus.redis import RedisTransport

APP = "redis-workers"


@event("example.render", scope=Scope.APP)
class Render:
    job: int
    pages: int


class Tally:
    """What the in-process demo's workers rendered, and an event set once all were."""

    def __init__(self, names: list[str], expected: int) -> None:
        self.done: dict[str, list[int]] = {name: [] for name in names}
        self.expected = expected
        self.complete = anyio.Event()

    def add(self, name: str, job: int) -> None:
        self.done[name].append(job)
        if sum(len(jobs) for jobs in self.done.values()) == self.expected:
            self.complete.set()


class Renderer(Actor):
    """A member of the group ``renderers``: each job goes to one member in the application."""

    group = "renderers"

    def __init__(self, tally: Tally | None = None) -> None:
        self.tally = tally
        self.seen: set[str] = set()  # idempotency: the envelope id identifies the job

    @handle(Render)
    async def render(self, job: Render, envelope: Envelope) -> None:
        if envelope.id in self.seen:
            print(f"{self.name}: job {job.job} again (redelivered), already done")
            return
        await anyio.sleep(job.pages * 0.01)
        self.seen.add(envelope.id)
        if self.tally is not None:
            self.tally.add(self.name, job.job)
        print(f"{self.name}: rendered job {job.job} ({job.pages} page{'s' * (job.pages > 1)})")


def make_system() -> ActorSystem:
    """The worker as a target for ``actorbus run``, which gives it ``--redis``'s transport."""
    return ActorSystem(APP, actors=[Renderer])


async def worker(url: str, name: str) -> None:
    """Run one worker until SIGINT or SIGTERM, then stop gracefully."""
    transport = RedisTransport(url, instance=name, claim_after=5.0)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with ActorSystem(APP, transport=transport) as system:
            await system.spawn(Renderer, name=name)
            print(f"{name}: waiting for jobs (Ctrl-C to stop)")
            async for _ in signals:
                break
            print(f"{name}: stopping")


async def producer(url: str, count: int) -> None:
    """Publish `count` jobs; each returns once Redis has it."""
    async with ActorSystem(APP, transport=RedisTransport(url)) as system:
        for job in range(count):
            await system.publish(Render(job, pages=1 + job % 5))
        print(f"producer: published {count} jobs")


async def demo(url: str) -> dict[str, list[int]]:
    """A producer and two workers in one process; returns the jobs each worker rendered."""
    app = f"{APP}-demo-{secrets.token_hex(3)}"
    tally = Tally(["w1", "w2"], expected=20)
    async with (
        ActorSystem(app, transport=RedisTransport(url)) as w1,
        ActorSystem(app, transport=RedisTransport(url)) as w2,
    ):
        await w1.spawn(Renderer, tally, name="w1")
        await w2.spawn(Renderer, tally, name="w2")
        async with ActorSystem(app, transport=RedisTransport(url)) as publisher:
            for job in range(20):
                await publisher.publish(Render(job, pages=1 + job % 5))
        await tally.complete.wait()
    # Its anonymous instances removed their own state from Redis as they stopped. The
    # application's events stream (and its group "renderers") stays, as it would for a
    # real application: `redis-cli DEL actorbus:app:redis-workers-demo-…:events`.
    return tally.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("role", choices=["worker", "producer", "demo"])
    parser.add_argument("--url", default="redis://localhost:6379/0")
    parser.add_argument("--name", default="w1", help="worker instance name (durable)")
    parser.add_argument("--count", type=int, default=20, help="jobs to publish")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    if args.role == "worker":
        anyio.run(worker, args.url, args.name, backend=args.backend)
    elif args.role == "producer":
        anyio.run(producer, args.url, args.count, backend=args.backend)
    else:
        print(anyio.run(demo, args.url, backend=args.backend))


if __name__ == "__main__":
    main()
