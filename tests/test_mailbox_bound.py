"""A producer far faster than its actor never grows the mailbox past its capacity.

SPEC §2 "Mailboxes": capacity counts the messages waiting. Several producers push
thousands of messages at an actor that takes several scheduling rounds per message; after
every single send the depth is checked against the capacity (only a send can raise it),
and the counters must account for every message: handled, dropped or refused. For the
dropping policies, memory stays bounded too: the peak traced by tracemalloc is a
constant, far below what keeping every message would take. No wall-clock timing: the
actor is slow in scheduling rounds, not in seconds.
"""

from __future__ import annotations

import gc
import tracemalloc

import anyio
import anyio.lowlevel
import pytest

from actorbus import Actor, ActorRef, ActorSystem, Mailbox, MailboxFull, Overflow, event, handle

pytestmark = pytest.mark.anyio

CAPACITY = 16
PRODUCERS = 4
SLOWNESS = 3  # scheduling rounds per message; a producer sends up to 64 messages per round
DEAD_LETTERS_KEPT = 100


@event("bound.job")
class Job:
    producer: int
    n: int
    payload: bytes = b""


class Slow(Actor):
    def __init__(self, handled: list[tuple[int, int]]) -> None:
        self.handled = handled

    @handle(Job)
    async def work(self, job: Job) -> None:
        for _ in range(SLOWNESS):
            await anyio.lowlevel.checkpoint()
        self.handled.append((job.producer, job.n))


class Pressure:
    """Producers that send as fast as they can and check the bound after every send."""

    def __init__(self, ref: ActorRef, each: int, *, payload: int = 0, record: bool = True) -> None:
        self.ref = ref
        self.each = each
        self.payload = payload
        self.record = record
        self.sent: list[tuple[int, int]] = []  # in the order the mailbox took them
        self.refused = 0
        self.deepest = 0

    async def produce(self, producer: int) -> None:
        for n in range(self.each):
            # A fresh payload per message: keeping them would show in tracemalloc.
            job = Job(producer, n, bytes(self.payload) if self.payload else b"")
            try:
                await self.ref.tell(job)  # nothing awaits between queueing and returning
            except MailboxFull:
                self.refused += 1
            else:
                if self.record:
                    self.sent.append((producer, n))
            depth = self.ref.stats.depth
            assert depth <= CAPACITY, f"depth {depth} > capacity {CAPACITY} after message {n}"
            self.deepest = max(self.deepest, depth)

    async def run(self, producers: int = PRODUCERS) -> None:
        async with anyio.create_task_group() as tasks:
            for producer in range(producers):
                tasks.start_soon(self.produce, producer)


def is_subsequence(part: list[tuple[int, int]], whole: list[tuple[int, int]]) -> bool:
    remaining = iter(whole)
    return all(item in remaining for item in part)


def bound_system() -> ActorSystem:
    return ActorSystem("bound", max_dead_letters=DEAD_LETTERS_KEPT, shutdown_timeout=5.0)


@pytest.mark.parametrize("overflow", list(Overflow))
async def test_the_mailbox_never_holds_more_than_its_capacity(overflow: Overflow) -> None:
    # Under BLOCK the actor handles every message; elsewhere the producers outrun it.
    each = 1_500 if overflow is Overflow.BLOCK else 4_000
    total = PRODUCERS * each
    handled: list[tuple[int, int]] = []
    async with bound_system() as system:
        ref = await system.spawn(Slow, handled, mailbox=Mailbox(CAPACITY, overflow))
        pressure = Pressure(ref, each)
        await pressure.run()
        await system.drain()
        stats = ref.stats
    assert pressure.deepest == CAPACITY  # the producers did outrun the actor
    assert stats.processed == len(handled)
    assert is_subsequence(handled, pressure.sent)  # FIFO: handled in the order queued
    assert len(system.dead_letters) <= DEAD_LETTERS_KEPT
    if overflow is Overflow.BLOCK:  # backpressure: nothing lost
        assert handled == pressure.sent
        assert len(handled) == total
        assert stats.dropped == pressure.refused == 0
    elif overflow is Overflow.FAIL:  # every message handled or refused to its sender
        assert len(handled) + pressure.refused == total
        assert stats.dropped == pressure.refused > 0
    else:  # every message handled or dropped (and counted)
        assert pressure.refused == 0
        assert len(handled) + stats.dropped == total
        assert stats.dropped > total // 2
    if overflow is Overflow.DROP_OLDEST:  # the newest were kept
        assert handled[-CAPACITY:] == pressure.sent[-CAPACITY:]
    if overflow is Overflow.DROP_NEWEST:  # the oldest were kept
        assert handled[:CAPACITY] == pressure.sent[:CAPACITY]


EACH = 2_500
PAYLOAD = 2048
KEEP_EVERYTHING = 2 * EACH * PAYLOAD  # 10 MB: what an unbounded queue would hold
# What may stay: CAPACITY messages waiting, the recent dead letters with their errors, and
# the bookkeeping around them (measured: about 0.35 MB on either backend).
BOUND = 1024 * 1024


async def flood(overflow: Overflow) -> tuple[Pressure, int, int]:
    """Two producers flood a slow actor; (pressure, peak, left after a collection)."""
    handled: list[tuple[int, int]] = []
    async with bound_system() as system:
        ref = await system.spawn(Slow, handled, mailbox=Mailbox(CAPACITY, overflow))
        pressure = Pressure(ref, EACH, payload=PAYLOAD, record=False)
        gc.collect()
        tracemalloc.start()
        try:
            await pressure.run(producers=2)
            _, peak = tracemalloc.get_traced_memory()
            gc.collect()
            left, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await system.drain()
    assert pressure.deepest == CAPACITY
    return pressure, peak, left


@pytest.mark.parametrize("overflow", [Overflow.DROP_NEWEST, Overflow.DROP_OLDEST])
async def test_a_flood_at_a_dropping_mailbox_uses_bounded_memory(overflow: Overflow) -> None:
    _, peak, left = await flood(overflow)
    assert left <= peak < BOUND < KEEP_EVERYTHING // 5


async def test_a_flood_at_a_failing_mailbox_keeps_nothing() -> None:
    """What the refused messages hold is freed, at the latest by the cycle collector.

    Each `MailboxFull` raised carries a traceback whose frames hold the message, and the
    frame that raised it holds the error: a reference cycle. So the peak depends on when
    the collector runs, not only on the capacity; what is left after it runs does not.
    """
    pressure, _, left = await flood(Overflow.FAIL)
    assert pressure.refused > EACH
    assert left < BOUND < KEEP_EVERYTHING // 5
