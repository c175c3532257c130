"""Targets for the worker pool tests (`actorbus run pool_targets:... --workers N`).

Settings come from the environment, as a deployment's would:

- ``ACTORBUS_TEST_APP``: the application name (each test has its own);
- ``ACTORBUS_TEST_REDIS``: the Redis URL of the targets that build their own transport;
- ``ACTORBUS_TEST_RECORD``: a file where each worker appends one line per event it
  handled, and one when its actor starts and stops: ``<instance> <pid> <what>``;
- ``ACTORBUS_TEST_DELAY``: seconds each event takes (default 0.02).
"""

import os

import anyio
import anyio.abc

from actorbus import (
    Actor,
    ActorSystem,
    Envelope,
    Scope,
    Transport,
    TransportHost,
    current_system,
    event,
    handle,
)
from actorbus.redis import RedisTransport
from actorbus.testing import MemoryTransport


@event("pool.job", scope=Scope.APP)
class Job:
    n: int


def _record(what: str) -> None:
    transport = current_system().transport
    instance = getattr(transport, "instance", None) or "-"
    line = f"{instance} {os.getpid()} {what}\n"
    # One short write with O_APPEND: the workers' lines never mix.
    fd = os.open(os.environ["ACTORBUS_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class Recorder(Actor):
    """A member of group "work": records each job it handled."""

    group = "work"

    async def on_start(self) -> None:
        _record("started")

    async def on_stop(self) -> None:
        _record("stopped")

    @handle()
    async def job(self, job: Job) -> None:
        await anyio.sleep(float(os.environ.get("ACTORBUS_TEST_DELAY", "0.02")))
        _record(f"job {job.n}")


def _transport(**settings: object) -> RedisTransport:
    # One entry in flight per worker, so that a burst is shared between the workers.
    return RedisTransport(os.environ["ACTORBUS_TEST_REDIS"], batch=1, **settings)  # type: ignore[arg-type]


def make_system() -> ActorSystem:
    """The target's own transport, anonymous: the pool names it."""
    return ActorSystem(os.environ["ACTORBUS_TEST_APP"], transport=_transport(), actors=[Recorder])


def make_named_system() -> ActorSystem:
    """The target's own transport, with a durable name: the base of the workers' names."""
    transport = _transport(instance="own")
    return ActorSystem(os.environ["ACTORBUS_TEST_APP"], transport=transport, actors=[Recorder])


def make_bare_system() -> ActorSystem:
    """No transport: for ``--redis``, or to be refused."""
    return ActorSystem(os.environ.get("ACTORBUS_TEST_APP", "pool-bare"), actors=[Recorder])


class Broken(Actor):
    async def on_start(self) -> None:
        raise RuntimeError("broken at start: the warehouse is down")


def make_crashing() -> ActorSystem:
    """A system whose actor fails at start, every time: a crash loop."""
    return ActorSystem("pool-crashing", actors=[Broken])


def make_memory_system() -> ActorSystem:
    """An in-process bus: refused with more than one worker."""
    return ActorSystem("pool-memory", transport=MemoryTransport(), actors=[Recorder])


class Nameless(Transport):
    """A transport without instance names (`set_instance` is not implemented)."""

    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:
        pass

    async def add_group(self, group: str) -> None:
        pass

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        pass

    async def publish(self, envelope: Envelope) -> None:
        pass

    async def request(self, envelope: Envelope, timeout: float) -> None:
        pass

    async def stop_intake(self) -> None:
        pass

    async def close(self) -> None:
        pass


def make_nameless() -> ActorSystem:
    return ActorSystem("pool-nameless", transport=Nameless(), actors=[Recorder])


class GatedStop(Actor):
    """Its on_stop waits until the file ``ACTORBUS_TEST_GATE`` exists."""

    async def on_start(self) -> None:
        _record("started")

    async def on_stop(self) -> None:
        _record("stopping")
        while not await anyio.Path(os.environ["ACTORBUS_TEST_GATE"]).exists():  # noqa: ASYNC110 - a file
            await anyio.sleep(0.02)
        _record("stopped")


def make_gated_stop() -> ActorSystem:
    return ActorSystem("pool-gated", actors=[GatedStop], shutdown_timeout=60)
