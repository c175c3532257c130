"""Bounded mailboxes: capacity, overflow policies, backpressure, drops (SPEC §2 "Mailboxes").

Most tests hold an actor busy on its first message (job 0) behind a gate, so that what
follows waits in its mailbox and the overflow policy decides.
"""

import anyio
import pytest

from actorbus import (
    Actor,
    ActorbusError,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    DeadLetter,
    Mailbox,
    MailboxFull,
    Overflow,
    event,
    handle,
)

pytestmark = pytest.mark.anyio


@event("mailbox.job")
class Job:
    n: int


class Gate:
    """Holds the actor inside its first handler call until `open()`."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.opened = anyio.Event()

    def open(self) -> None:
        self.opened.set()


class Worker(Actor):
    def __init__(self, gate: Gate, seen: list[int]) -> None:
        self.gate = gate
        self.seen = seen

    @handle(Job)
    async def work(self, job: Job) -> int:
        self.seen.append(job.n)
        if job.n == 0:
            self.gate.entered.set()
            await self.gate.opened.wait()
        return job.n


class DeadLetterLog(Actor):
    def __init__(self, records: list[DeadLetter]) -> None:
        self.records = records

    @handle(DeadLetter)
    async def record(self, letter: DeadLetter) -> None:
        self.records.append(letter)


def system() -> ActorSystem:
    # A short shutdown timeout keeps a failing test from hanging on a closed gate.
    return ActorSystem("mailbox", shutdown_timeout=2.0)


async def busy_worker(
    system: ActorSystem, gate: Gate, seen: list[int], mailbox: Mailbox | None
) -> ActorRef:
    """A worker that is handling job 0 (held by `gate`), with an empty mailbox."""
    ref = await system.spawn(Worker, gate, seen, mailbox=mailbox)
    await ref.tell(Job(0))
    with anyio.fail_after(5):
        await gate.entered.wait()
    assert ref.stats.depth == 0
    return ref


async def send(how: str, system: ActorSystem, ref: ActorRef, n: int) -> None:
    if how == "publish":
        await system.publish(Job(n))
    else:
        await ref.tell(Job(n))


SENDERS = pytest.mark.parametrize("how", ["publish", "tell"])


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_at_least_one(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(capacity)


def test_capacity_of_one_is_fine() -> None:
    assert Mailbox(1).capacity == 1


def test_overflow_defaults_to_block() -> None:
    assert Mailbox(10).overflow is Overflow.BLOCK


def test_default_mailbox() -> None:
    """The actors guide: an actor without settings gets 1000 waiting messages, BLOCK."""
    assert Mailbox() == Mailbox(1000, Overflow.BLOCK)


def test_overflow_has_the_four_policies() -> None:
    assert {o.name for o in Overflow} == {"BLOCK", "DROP_NEWEST", "DROP_OLDEST", "FAIL"}


def test_mailbox_full_is_an_actorbus_error() -> None:
    assert issubclass(MailboxFull, ActorbusError)


def test_actor_mailbox_attribute_must_be_a_mailbox() -> None:
    with pytest.raises(TypeError, match="Mailbox"):

        class Wrong(Actor):
            mailbox = 10  # type: ignore[assignment]


# -- capacity counts the waiting messages -----------------------------------------------------


@SENDERS
async def test_capacity_counts_waiting_messages_not_the_one_being_handled(how: str) -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(2, Overflow.FAIL))
        await send(how, sys, ref, 1)
        await send(how, sys, ref, 2)  # two wait while job 0 is handled: still room
        assert ref.stats.depth == 2
        with pytest.raises(MailboxFull):
            await send(how, sys, ref, 3)
        gate.open()
        await sys.drain()
    assert seen == [0, 1, 2]


# -- BLOCK --------------------------------------------------------------------------------------


@SENDERS
async def test_block_makes_the_sender_wait_then_resume(how: str) -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(1, Overflow.BLOCK))
        await send(how, sys, ref, 1)  # fills the mailbox, returns at once
        delivered = anyio.Event()

        async def sender() -> None:
            await send(how, sys, ref, 2)
            delivered.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await anyio.wait_all_tasks_blocked()
            assert not delivered.is_set(), "the sender must wait while the mailbox is full"
            assert ref.stats.depth == 1
            gate.open()
            with anyio.fail_after(5):
                await delivered.wait()
        await sys.drain()
        stats = ref.stats
    assert seen == [0, 1, 2]
    assert stats.dropped == 0
    assert sys.dead_letters == ()


async def test_block_wakes_waiting_publishers_in_fifo_order() -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        await busy_worker(sys, gate, seen, Mailbox(1, Overflow.BLOCK))
        await sys.publish(Job(1))
        async with anyio.create_task_group() as tg:
            for n in (2, 3, 4, 5):
                tg.start_soon(sys.publish, Job(n))
                await anyio.wait_all_tasks_blocked()  # n waits before n + 1 starts
            gate.open()
        await sys.drain()
    assert seen == [0, 1, 2, 3, 4, 5]


async def test_block_publisher_can_be_cancelled_and_others_still_get_through() -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        await busy_worker(sys, gate, seen, Mailbox(1, Overflow.BLOCK))
        await sys.publish(Job(1))
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sys.publish, Job(2))
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        assert scope.cancelled_caught
        gate.open()
        with anyio.fail_after(5):
            await sys.publish(Job(3))
            await sys.drain()
    assert seen == [0, 1, 3]


@pytest.mark.parametrize(
    ("overflow", "error", "timeout"),
    [(Overflow.BLOCK, AskTimeout, 0.05), (Overflow.FAIL, MailboxFull, 30)],
    ids=["block: it times out waiting for room", "fail: MailboxFull at once"],
)
async def test_an_ask_that_finds_the_mailbox_full(
    overflow: Overflow, error: type[Exception], timeout: float
) -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(1, overflow))
        await ref.tell(Job(1))
        with anyio.fail_after(5), pytest.raises(error):
            await ref.ask(Job(2), timeout=timeout)
        gate.open()
        await sys.drain()
    assert seen == [0, 1]


# -- DROP_NEWEST, DROP_OLDEST, FAIL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overflow", "capacity", "sent", "handled", "dropped"),
    [
        (Overflow.DROP_NEWEST, 1, [1, 2, 3], [0, 1], [2, 3]),
        # Job 0 was being handled: never the one dropped.
        (Overflow.DROP_OLDEST, 2, [1, 2, 3, 4], [0, 3, 4], [1, 2]),
        (Overflow.FAIL, 1, [1, 2], [0, 1], [2]),
    ],
    ids=["drop newest: the incoming one", "drop oldest: the oldest waiting", "fail: raised"],
)
@SENDERS
async def test_a_full_mailbox_drops_and_dead_letters_as_its_overflow_says(
    how: str,
    overflow: Overflow,
    capacity: int,
    sent: list[int],
    handled: list[int],
    dropped: list[int],
) -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(capacity, overflow))
        for n in sent:
            if overflow is Overflow.FAIL and n in dropped:
                with pytest.raises(MailboxFull, match=ref.name):
                    await send(how, sys, ref, n)
            else:
                await send(how, sys, ref, n)  # no error for the sender: dropped
        assert ref.stats.depth == capacity
        gate.open()
        await sys.drain()
        stats = ref.stats
    assert seen == handled
    assert stats.dropped == len(dropped)
    letters = sys.dead_letters
    assert [letter.envelope.data for letter in letters] == [Job(n) for n in dropped]
    assert all(letter.actor == ref.name for letter in letters)
    assert all(isinstance(letter.error, MailboxFull) for letter in letters)
    assert all(letter.envelope.type == "mailbox.job" for letter in letters)


@SENDERS
async def test_messages_waiting_when_the_actor_stops_are_dead_lettered(how: str) -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(10))
        for n in (1, 2, 3):
            await send(how, sys, ref, n)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ref.stop)  # waits for job 0, which waits for the gate
                await anyio.wait_all_tasks_blocked()
                gate.open()
        letters = sys.dead_letters
    assert seen == [0]
    assert [letter.envelope.data for letter in letters] == [Job(1), Job(2), Job(3)]
    assert all(letter.envelope.type == "mailbox.job" for letter in letters)
    assert all(isinstance(letter.error, ActorStopped) for letter in letters)


# -- FAIL ----------------------------------------------------------------------------------------


async def test_fail_on_one_actor_does_not_keep_the_event_from_the_others() -> None:
    gate, seen, others = Gate(), [], []
    async with system() as sys:
        await busy_worker(sys, gate, seen, Mailbox(1, Overflow.FAIL))
        await sys.spawn(Worker, Gate(), others)
        await sys.publish(Job(1))
        with pytest.raises(MailboxFull):
            await sys.publish(Job(2))
        gate.open()
        await sys.drain()
    assert seen == [0, 1]
    assert sorted(others) == [1, 2]


# -- settings from the class and from spawn ---------------------------------------------------


class SmallWorker(Worker):
    mailbox = Mailbox(1, Overflow.FAIL)


@pytest.mark.parametrize(
    ("mailbox", "capacity"),
    [(None, 1), (Mailbox(3, Overflow.FAIL), 3)],
    ids=["the class attribute by default", "spawn's overriding it"],
)
async def test_the_mailbox_comes_from_the_class_unless_spawn_gives_one(
    mailbox: Mailbox | None, capacity: int
) -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await sys.spawn(SmallWorker, gate, seen, mailbox=mailbox)
        await ref.tell(Job(0))
        with anyio.fail_after(5):
            await gate.entered.wait()
        for n in range(1, capacity + 1):
            await ref.tell(Job(n))
        with pytest.raises(MailboxFull):
            await ref.tell(Job(capacity + 1))
        gate.open()
        await sys.drain()
    assert seen == list(range(capacity + 1))


# -- drops are dead letters -------------------------------------------------------------------


async def test_drops_are_published_as_dead_letters() -> None:
    gate, seen, records = Gate(), [], []
    async with system() as sys:
        await sys.spawn(DeadLetterLog, records)
        ref = await busy_worker(sys, gate, seen, Mailbox(1, Overflow.DROP_NEWEST))
        await sys.publish(Job(1))
        dropped = await sys.publish(Job(2))
        gate.open()
        await sys.drain()
    assert [(r.envelope.id, r.actor) for r in records] == [(dropped.id, ref.name)]
    assert isinstance(records[0].error, MailboxFull)


async def test_dead_letters_are_kept_oldest_first() -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        await busy_worker(sys, gate, seen, Mailbox(1, Overflow.DROP_NEWEST))
        await sys.publish(Job(1))
        ids = [(await sys.publish(Job(n))).id for n in (2, 3, 4)]
        gate.open()
        await sys.drain()
    assert [letter.envelope.id for letter in sys.dead_letters] == ids


async def test_depth_is_the_number_of_waiting_messages() -> None:
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(10))
        for n in (1, 2, 3):
            await ref.tell(Job(n))
        assert ref.stats.depth == 3
        assert sys.stats()[ref.name].depth == 3
        gate.open()
        await sys.drain()
        assert ref.stats.depth == 0


# -- a full mailbox whose actor stops -----------------------------------------------------------


async def test_sender_blocked_on_a_full_mailbox_gets_actor_stopped_when_the_actor_stops() -> None:
    gate, seen = Gate(), []
    errors: list[BaseException] = []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(1, Overflow.BLOCK))
        await ref.tell(Job(1))

        async def blocked_tell() -> None:
            try:
                await ref.tell(Job(2))
            except Exception as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(blocked_tell)
                await anyio.wait_all_tasks_blocked()
                assert errors == []
                tg.start_soon(ref.stop)  # waits for job 0, which waits for the gate
                await anyio.wait_all_tasks_blocked()
                gate.open()
    assert [type(e) for e in errors] == [ActorStopped]
    assert seen == [0]


async def test_publisher_blocked_on_a_full_mailbox_returns_when_the_actor_stops() -> None:
    """publish never fails because one subscriber stopped: the event is dead-lettered."""
    gate, seen = Gate(), []
    async with system() as sys:
        ref = await busy_worker(sys, gate, seen, Mailbox(1, Overflow.BLOCK))
        await sys.publish(Job(1))
        published: list[str] = []

        async def blocked_publish() -> None:
            published.append((await sys.publish(Job(2))).id)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(blocked_publish)
                await anyio.wait_all_tasks_blocked()
                assert published == []
                tg.start_soon(ref.stop)
                await anyio.wait_all_tasks_blocked()
                gate.open()
    assert seen == [0]
    letters = {letter.envelope.data: letter for letter in sys.dead_letters}
    assert set(letters) == {Job(1), Job(2)}
    assert all(isinstance(letter.error, ActorStopped) for letter in letters.values())
    assert letters[Job(2)].envelope.id == published[0]


async def test_dropped_asks_each_get_their_own_error() -> None:
    gate = Gate()
    async with ActorSystem() as system:
        ref = await system.spawn(Worker, gate, [], mailbox=Mailbox(1, Overflow.DROP_NEWEST))
        await ref.tell(Job(0))  # held inside its handler
        await gate.entered.wait()
        await ref.tell(Job(1))  # waiting: the mailbox is full from here on
        errors: list[BaseException] = []
        for n in range(3):
            with pytest.raises(MailboxFull) as raised:
                await ref.ask(Job(2 + n), timeout=1)
            errors.append(raised.value)
        gate.open()
        await system.drain()
    # a shared error would collect every asker's traceback
    assert len({id(error) for error in errors}) == len(errors)
    assert all("is full" in str(error) for error in errors)


class HeldOnDeadLetters(Actor):
    """A FAIL mailbox of one, held in its first handler: the next notices are dropped."""

    mailbox = Mailbox(1, Overflow.FAIL)

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    @handle(DeadLetter)
    async def hold(self, letter: DeadLetter) -> None:
        self.gate.entered.set()
        await self.gate.opened.wait()


async def test_a_notice_a_full_fail_mailbox_drops_is_one_dead_letter() -> None:
    gate, worker_gate = Gate(), Gate()
    async with system() as sys:
        held = await sys.spawn(HeldOnDeadLetters, gate)
        full = await sys.spawn(Worker, worker_gate, [], mailbox=Mailbox(1, Overflow.DROP_NEWEST))
        await full.tell(Job(0))  # held in its handler until the end
        await anyio.wait_all_tasks_blocked()
        for n in range(1, 5):  # one waits, the next three are dropped: three dead letters
            await full.tell(Job(n))
        await anyio.wait_all_tasks_blocked()
        about_held = [d for d in sys.dead_letters if d.actor == held.name]
        assert held.stats.dropped == held.stats.dead_lettered == len(about_held) > 0
        gate.open()
        worker_gate.open()
