"""`actorbus.contrib.prometheus`: the exposition text shows each actor's statistics."""

from __future__ import annotations

import contextlib
import gc
import weakref

import anyio
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actorbus import (
    Actor,
    ActorSystem,
    Backoff,
    Mailbox,
    Overflow,
    Policy,
    Supervision,
    event,
    handle,
)
from actorbus.contrib.prometheus import collector

pytestmark = pytest.mark.anyio


@event("prom.job")
class Job:
    n: int


class Gate(Actor):
    """Holds each job until `release` is set; at most two jobs wait, more are dropped."""

    mailbox = Mailbox(2, Overflow.DROP_NEWEST)

    def __init__(self, started: anyio.Event, release: anyio.Event) -> None:
        self.started = started
        self.release = release

    @handle()
    async def hold(self, job: Job) -> None:
        self.started.set()
        await self.release.wait()


class Hopeless(Actor):
    supervision = Supervision(
        Policy.RETRY, max_retries=2, backoff=Backoff(initial=0, jitter=0), then=Policy.DEAD_LETTER
    )

    @handle()
    async def work(self, job: Job) -> None:
        raise ValueError(job.n)


class Crashy(Actor):
    supervision = Supervision(Policy.RESTART)

    @handle()
    async def work(self, job: Job) -> None:
        raise ConnectionError(job.n)


def scrape(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """{(sample name, actor or actor/quantile): value} from the exposition text."""
    text = generate_latest(registry).decode()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = "/".join(
                sample.labels[label] for label in ("actor", "quantile") if label in sample.labels
            )
            values[sample.name, key] = sample.value
    return values


async def test_counters_depth_and_latency_per_actor() -> None:
    registry = CollectorRegistry()
    started, release = anyio.Event(), anyio.Event()
    async with ActorSystem("shop") as system:
        collector(system, registry=registry)
        gate = await system.spawn(Gate, started, release)
        hopeless = await system.spawn(Hopeless)
        crashy = await system.spawn(Crashy)
        await hopeless.tell(Job(5))
        await crashy.tell(Job(6))
        await system.drain()
        await gate.tell(Job(1))
        await started.wait()  # job 1 is being handled: the next two wait, the fourth drops
        for n in (2, 3, 4):
            await gate.tell(Job(n))

        holding = scrape(registry)
        assert holding["actorbus_mailbox_depth", "Gate"] == 2
        assert holding["actorbus_messages_dropped_total", "Gate"] == 1
        assert holding["actorbus_messages_dead_lettered_total", "Gate"] == 1
        assert holding["actorbus_messages_processed_total", "Gate"] == 0

        release.set()
        await system.drain()
        done = scrape(registry)
        stats = system.stats()

    assert done["actorbus_mailbox_depth", "Gate"] == 0
    assert done["actorbus_messages_processed_total", "Gate"] == 3
    assert done["actorbus_messages_processed_total", "Hopeless"] == 1
    assert done["actorbus_handler_failures_total", "Hopeless"] == 3
    assert done["actorbus_handler_retries_total", "Hopeless"] == 2
    assert done["actorbus_messages_dead_lettered_total", "Hopeless"] == 1
    assert done["actorbus_actor_restarts_total", "Crashy"] == 1
    assert done["actorbus_handler_failures_total", "Crashy"] == 1
    assert done["actorbus_actor_restarts_total", "Hopeless"] == 0
    for actor in ("Gate", "Hopeless", "Crashy"):
        record = stats[actor]
        assert done["actorbus_handling_seconds_count", actor] == record.processed
        assert done["actorbus_handling_seconds_sum", actor] == record.handling_time
        assert done["actorbus_handling_seconds", f"{actor}/0.5"] == record.handling_p50
        assert done["actorbus_handling_seconds", f"{actor}/0.99"] == record.handling_p99
    assert done["actorbus_handling_seconds_sum", "Gate"] > 0


async def test_stopped_actors_and_systems_have_no_series() -> None:
    registry = CollectorRegistry()
    system = ActorSystem("shop")
    collector(system, registry=registry)  # before the start: registration reads nothing
    assert scrape(registry) == {}
    async with system:
        crashy = await system.spawn(Crashy)
        assert ("actorbus_messages_processed_total", "Crashy") in scrape(registry)
        await crashy.stop()
        assert scrape(registry) == {}
    assert scrape(registry) == {}


@pytest.mark.parametrize("running", [False, True], ids=["not started yet", "running"])
async def test_one_collector_per_registry_while_its_system_may_run(running: bool) -> None:
    registry = CollectorRegistry()
    one = ActorSystem("one")
    async with contextlib.AsyncExitStack() as stack:
        if running:
            await stack.enter_async_context(one)
        collector(one, registry=registry)
        with pytest.raises(ValueError, match="actorbus_messages_processed"):
            collector(ActorSystem("two"), registry=registry)


async def test_a_stopped_systems_collector_is_replaced() -> None:
    registry = CollectorRegistry()
    async with ActorSystem("one") as one:
        first = collector(one, registry=registry)
        await one.spawn(Crashy, name="old")
    async with ActorSystem("two") as two:
        second = collector(two, registry=registry)
        await two.spawn(Crashy, name="new")
        assert ("actorbus_messages_processed_total", "new") in scrape(registry)
        assert ("actorbus_messages_processed_total", "old") not in scrape(registry)
    with pytest.raises(KeyError):
        registry.unregister(first)  # replaced: no longer registered
    registry.unregister(second)
    assert scrape(registry) == {}


def test_a_registry_does_not_keep_its_system_alive() -> None:
    registry = CollectorRegistry()
    system = ActorSystem("gone")
    found = collector(system, registry=registry)
    alive = weakref.ref(system)
    del system
    gc.collect()
    assert alive() is None
    assert found.system is None
    assert scrape(registry) == {}  # no series, and the scrape does not fail
    replacement = ActorSystem("new")
    assert collector(replacement, registry=registry).system is replacement


def test_the_default_registry_and_no_registry() -> None:
    system = ActorSystem("shop")
    registered = collector(system)
    try:
        assert b"# TYPE actorbus_mailbox_depth gauge" in generate_latest(REGISTRY)
    finally:
        REGISTRY.unregister(registered)
    assert b"actorbus_mailbox_depth" not in generate_latest(REGISTRY)
    unregistered = collector(system, registry=None)
    assert [family.name for family in unregistered.describe()][:2] == [
        "actorbus_messages_processed",
        "actorbus_handler_failures",
    ]


def test_a_registry_without_weak_references_still_registers() -> None:
    class Registry:
        """A registry-like object that cannot be weakly referenced."""

        __slots__ = ("collectors",)

        def __init__(self) -> None:
            self.collectors: list[object] = []

        def register(self, found: object) -> None:
            self.collectors.append(found)

        def unregister(self, found: object) -> None:
            self.collectors.remove(found)

    registry = Registry()
    system = ActorSystem("shop")
    found = collector(system, registry=registry)  # type: ignore[arg-type]
    assert registry.collectors == [found]
