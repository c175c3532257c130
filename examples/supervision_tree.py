"""A supervision tree: a station actor supervises two sensor children.

A sensor uses FAIL_FAST: a failure escalates to its parent. The station's own policy,
RESTART, decides what that means: the station restarts with its whole subtree (both
sensors stop, the station gets a fresh instance, whose `on_start` spawns fresh sensors).
The station allows one restart per minute; the second escalation exceeds that, so the
station escalates in turn. It has no parent, so the system stops and `async with`
raises the sensor's original exception, caught here with ``except*``.

Run it with ``python examples/supervision_tree.py`` (add ``--backend trio`` for trio, with the
trio extra installed: ``pip install -e '.[trio]'``).
"""

from __future__ import annotations

import argparse
import logging

import anyio

from actorbus import Actor, ActorSystem, Policy, Supervision, event, handle


@event("plant.reading")
class Reading:
    sensor: str
    value: float


@event("plant.status")
class StatusQuery:
    """Ask the station how it is doing."""


class SensorFault(Exception):
    """A sensor saw a value it cannot trust."""


class Sensor(Actor):
    """Averages readings; an impossible value is a fault that its parent must handle."""

    supervision = Supervision(Policy.FAIL_FAST)  # escalate to the parent

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.readings: list[float] = []

    async def on_start(self) -> None:
        print(f"  {self.name}: started (station generation {self.generation})")

    async def on_stop(self) -> None:
        print(f"  {self.name}: stopped after {len(self.readings)} reading(s)")

    @handle()
    async def read(self, reading: Reading) -> None:
        if reading.sensor != self.name:
            return
        if reading.value < 0:
            msg = f"{self.name} read {reading.value} kelvin"
            raise SensorFault(msg)
        self.readings.append(reading.value)
        average = sum(self.readings) / len(self.readings)
        print(f"  {self.name}: {reading.value} (average {average:.1f})")


class Station(Actor):
    """The parent: it owns the sensors, and its supervision decides about their failures."""

    supervision = Supervision(Policy.RESTART, max_restarts=1, within=60.0)
    generations = 0  # counts fresh instances across restarts, for the printout

    async def on_start(self) -> None:
        Station.generations += 1
        self.generation = Station.generations
        print(f"station: generation {self.generation} starting its sensors")
        # Children spawned in on_start come back with every restart of the station.
        await self.spawn(Sensor, self.generation, name="sensor-a")
        await self.spawn(Sensor, self.generation, name="sensor-b")

    async def on_stop(self) -> None:
        print(f"station: generation {self.generation} stopped (its sensors stopped first)")

    @handle()
    async def status(self, _: StatusQuery) -> str:
        return f"generation {self.generation}"


async def main() -> None:
    Station.generations = 0
    try:
        async with ActorSystem("plant") as system:
            station = await system.spawn(Station, name="station")
            for value in (290.0, 300.0):
                await system.publish(Reading("sensor-a", value))
                await system.publish(Reading("sensor-b", value + 5))
            await system.drain()

            print("-- sensor-a reads an impossible value: it escalates to the station")
            first_a = system.actor("sensor-a")
            await system.publish(Reading("sensor-a", -1.0))
            await first_a.wait_stopped()
            # The station handles the escalation before any later message, so by the time
            # it answers, its restart (and the fresh sensors) are complete.
            print(f"main: station answers {await station.ask(StatusQuery(), timeout=5.0)}")
            await system.publish(Reading("sensor-b", 310.0))
            await system.drain()

            print("-- a second fault within a minute: the station gives up and escalates")
            await system.publish(Reading("sensor-b", -2.0))
            stopped = await station.wait_stopped()
            print(f"main: the station stopped ({stopped.reason!r}); leaving `async with` raises")
    except* SensorFault as failure:
        print(f"main: the system stopped with {failure.exceptions[0]!r}")


class _OneLine(logging.Formatter):
    """Library log records on one line each (the tracebacks would drown the story)."""

    def formatException(self, ei: object) -> str:  # noqa: ARG002, N802 - logging's API
        return ""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine("  log %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.ERROR, handlers=[handler])
    anyio.run(main, backend=parser.parse_args().backend)
