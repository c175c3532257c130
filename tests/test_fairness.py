"""Fair mailboxes and cooperative publishing: nobody jumps the queue or starves others."""

import anyio
import pytest

from actorbus import Actor, ActorSystem, Mailbox, event, handle
from actorbus._mailbox import FULL, QUEUED, MailboxQueue
from actorbus._runtime import YIELD_EVERY

pytestmark = pytest.mark.anyio


def queue(capacity: int) -> MailboxQueue[str]:
    return MailboxQueue(Mailbox(capacity), lambda *_: None)


async def test_a_freed_slot_goes_to_the_waiting_sender_not_a_newcomer() -> None:
    q = queue(1)
    assert q.offer("first", "a") is QUEUED
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.put, "waiting", "a")
        await anyio.wait_all_tasks_blocked()
        assert q.get_nowait() == "first"  # frees the slot and promises it to the waiter
        assert q.offer("newcomer", "a") is FULL  # the promised slot is not up for grabs
    assert q.get_nowait() == "waiting"
    assert q.offer("newcomer", "a") is QUEUED


async def test_a_cancelled_waiter_gives_up_its_place_in_the_queue() -> None:
    q = queue(1)
    q.offer("first", "a")
    scopes: list[anyio.CancelScope] = []

    async def put_cancellably(item: str) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await q.put(item, "a")

    async with anyio.create_task_group() as tg:
        tg.start_soon(put_cancellably, "second")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(put_cancellably, "third")
        await anyio.wait_all_tasks_blocked()
        scopes[0].cancel()
        await anyio.wait_all_tasks_blocked()
        assert q.get_nowait() == "first"  # the freed slot goes to "third"
    assert q.get_nowait() == "third"
    assert q.get_nowait() is None


async def test_blocked_senders_are_served_in_arrival_order() -> None:
    @event("fair.n")
    class N:
        n: int

    seen: list[int] = []
    gate = anyio.Event()

    class Slow(Actor):
        mailbox = Mailbox(capacity=1)

        @handle()
        async def take(self, item: N) -> None:
            await gate.wait()
            seen.append(item.n)

    async with ActorSystem() as system:
        ref = await system.spawn(Slow)
        await ref.tell(N(0))  # being handled (waits for the gate)
        await ref.tell(N(1))  # waits in the mailbox
        async with anyio.create_task_group() as tg:
            for n in range(2, 6):
                tg.start_soon(ref.tell, N(n))
                await anyio.wait_all_tasks_blocked()  # n is now queued behind n - 1
            gate.set()
        await system.drain()
    assert seen == [0, 1, 2, 3, 4, 5]


async def test_a_busy_publisher_does_not_starve_other_tasks() -> None:
    @event("fair.tick")
    class Tick:
        pass

    class Sink(Actor):
        mailbox = Mailbox(capacity=100_000)

        @handle()
        async def take(self, _: Tick) -> None:
            pass

    other_ran = 0
    done = False

    async def other_task() -> None:
        nonlocal other_ran
        while not done:
            other_ran += 1
            await anyio.lowlevel.checkpoint()

    async with ActorSystem() as system:
        await system.spawn(Sink)
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_task)
            before = other_ran
            for _ in range(10_000):  # never waits: the mailbox has room for all
                await system.publish(Tick())
            during = other_ran - before
            done = True
    # publish yields to the scheduler at least every 64 calls (the count is shared with the
    # start-up publishes, so the first yield may come one window late)
    assert during >= 10_000 // 64 - 1


@event("fair.c")
class C:
    pass


async def test_publish_notices_at_once_a_cancellation_made_while_it_waited() -> None:
    async with ActorSystem() as system, anyio.create_task_group() as tasks:
        woken = anyio.Event()
        with anyio.CancelScope() as scope:

            async def wake_then_cancel() -> None:
                woken.set()  # the publisher is woken first: its wait returns normally
                scope.cancel()

            tasks.start_soon(wake_then_cancel)
            await woken.wait()
            await system.publish(C())
            pytest.fail("publish did not notice the cancellation")  # pragma: no cover
        assert scope.cancelled_caught


async def test_a_scope_cancelled_by_the_publisher_itself_stops_it_within_a_yield_window() -> None:
    async with ActorSystem() as system:
        published = 0
        with anyio.CancelScope() as scope:
            scope.cancel()
            for _ in range(YIELD_EVERY + 1):
                await system.publish(C())
                published += 1
            pytest.fail("publish did not notice the cancellation")  # pragma: no cover
        assert scope.cancelled_caught
        assert published < YIELD_EVERY


@event("fair.d")
class D:
    n: int


class Keeper(Actor):
    def __init__(self) -> None:
        self.seen: list[int] = []

    @handle(D)
    async def on_d(self, event: D) -> None:
        self.seen.append(event.n)


async def test_tell_notices_at_once_a_cancellation_made_while_it_waited() -> None:
    async with ActorSystem() as system, anyio.create_task_group() as tasks:
        ref = await system.spawn(Keeper)
        for n in range(3):  # at every position of the yield window
            woken = anyio.Event()
            with anyio.CancelScope() as scope:

                async def wake_then_cancel(
                    woken: anyio.Event = woken, scope: anyio.CancelScope = scope
                ) -> None:
                    woken.set()
                    scope.cancel()

                await ref.tell(D(n))  # not cancelled yet: delivered
                tasks.start_soon(wake_then_cancel)
                await woken.wait()
                await ref.tell(D(-1))
                pytest.fail("tell did not notice the cancellation")  # pragma: no cover
            assert scope.cancelled_caught
        await system.drain()
        assert ref.stats.processed == 3


async def test_leaving_a_shield_into_a_cancelled_scope_stops_a_teller_soon() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Keeper)
        with anyio.CancelScope() as outer:
            with anyio.CancelScope(shield=True):
                outer.cancel()
                for n in range(YIELD_EVERY + 1):
                    await ref.tell(D(n))  # shielded: every one delivered
            for n in range(YIELD_EVERY + 1):
                await ref.tell(D(n))
            pytest.fail("tell did not notice the outer cancellation")  # pragma: no cover
        assert outer.cancelled_caught
        await system.drain()
        assert YIELD_EVERY + 1 <= ref.stats.processed < 2 * YIELD_EVERY + 1


async def test_a_cancellation_from_another_task_stops_a_busy_teller() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Keeper)
        sent = 0

        async def teller(scope_ready: anyio.Event, holder: list[anyio.CancelScope]) -> None:
            nonlocal sent
            with anyio.CancelScope() as scope:
                holder.append(scope)
                scope_ready.set()
                while True:
                    await ref.tell(D(sent))
                    sent += 1

        ready = anyio.Event()
        holder: list[anyio.CancelScope] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(teller, ready, holder)
            await ready.wait()
            await anyio.lowlevel.checkpoint()
            holder[0].cancel()
        stopped_at = sent
        await system.drain()
        assert ref.stats.processed == stopped_at
