"""Targets for the CLI tests (`actorbus run worker_targets:...`)."""

import os
from pathlib import Path

import anyio

from actorbus import Actor, ActorSystem, Policy, Router, Scope, Supervision, event, handle


@event("targets.tick", scope=Scope.APP)
class Tick:
    n: int


class Ticker(Actor):
    """Writes a marker file when started and when stopped, so a test can see both."""

    supervision = Supervision(Policy.RESTART, max_restarts=5, within=30.0)
    group = "tickers"

    async def on_start(self) -> None:
        _mark("started")

    async def on_stop(self) -> None:
        _mark("stopped")

    @handle()
    async def tick(self, tick: Tick) -> None:
        pass

    @handle("targets.*")
    async def audit(self, tick: Tick) -> None:
        pass


class Fragile(Actor):
    supervision = Supervision(Policy.FAIL_FAST)

    async def on_start(self) -> None:
        await self.ref.tell(Tick(1))

    @handle()
    async def tick(self, tick: Tick) -> None:
        raise RuntimeError(f"fragile broke on tick {tick.n}")


def _mark(what: str) -> None:
    path = os.environ.get("ACTORBUS_TEST_MARKS")
    if path:
        with Path(path).open("a", encoding="utf-8") as marks:
            marks.write(what + "\n")


router = Router()


@router.on("payment.*")
def paid(*args: object) -> None:
    pass


system = ActorSystem("targets", actors=[Ticker], routers=[router])


def make_system() -> ActorSystem:
    return ActorSystem("targets-factory", actors=[Ticker])


async def make_system_async() -> ActorSystem:
    return ActorSystem("targets-async", actors=[Ticker])


def make_failing() -> ActorSystem:
    return ActorSystem("targets-failing", actors=[Fragile])


not_a_system = 42


class SlowToStop(Actor):
    """Its on_stop takes far longer than a test waits: only a second signal ends it."""

    async def on_start(self) -> None:
        _mark("started")

    async def on_stop(self) -> None:
        _mark("stopping")
        await anyio.sleep(120)


def make_slow_to_stop() -> ActorSystem:
    return ActorSystem("targets-slow", actors=[SlowToStop], shutdown_timeout=120)
