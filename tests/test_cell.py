"""The actor loop (`actorbus._cell`), driven through the parts of a system without one.

Each test runs the parts a cell lives among (`parts_support`: a `Runtime`, a `Dispatcher`
and the `Actors` registry that spawns cells, without an `ActorSystem`), puts mailbox
items in a cell directly (a told object, a broadcast envelope, a `Message` with a tracker) and reads
what the loop did: the order it took them in, what each handler was given, the decisions
of supervision it carried out, its counters. Time is virtual on both backends, so the
delays of RETRY and RESTART are exact.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from parts_support import Gate, parts

from actorbus import (
    Actor,
    ActorStopped,
    Backoff,
    Envelope,
    Outcome,
    Policy,
    Supervision,
    Terminated,
    _cell,
    _tracing,
    event,
    handle,
)
from actorbus._cell import Life
from actorbus._handlers import ANY_GROUP, AdHoc
from actorbus._message import Message, Tracker, local_message
from actorbus._runtime import YIELD_EVERY
from actorbus.testing import autojump_backends

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.anyio

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(params=autojump_backends(), ids=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends, on virtual time: waits cost nothing and delays are exact."""
    return request.param  # type: ignore[no-any-return]


@event("cells.job")
class Job:
    n: int


class BoomError(Exception):
    pass


def broadcast(data: object) -> Envelope:
    """The mailbox item of a broadcast publish: the envelope, its data the event."""
    return Envelope(type="cells.job", data=data, source="cells")


def message(data: object, tracker: Tracker | None = None) -> Message:
    """A `Message` as a transport or `ask` queues it, with its envelope."""
    return Message(data, broadcast(data), type(data), "cells.job", ANY_GROUP, tracker)


class Recorder(Actor):
    """Logs every job and notice; job 0 waits at the gate, when there is one."""

    def __init__(self, log: list[Any], gate: Gate | None = None) -> None:
        self.log = log
        self.gate = gate

    @handle()
    async def job(self, job: Job) -> int:
        self.log.append(("job", job.n))
        if job.n == 0 and self.gate is not None:
            await self.gate.hold()
        return job.n

    @handle()
    async def terminated(self, notice: Terminated) -> None:
        self.log.append(("terminated", notice.name))


# -- the loop's order ------------------------------------------------------------------------


async def test_notices_come_before_the_waiting_messages_which_come_in_order() -> None:
    log: list[Any] = []
    gate = Gate()
    async with parts() as p:
        cell = await p.spawn(Recorder, log, gate)
        await cell.put(Job(0))
        await gate.reached()
        await cell.put(Job(1))
        await cell.put(broadcast(Job(2)))
        await cell.put(message(Job(3)))
        cell.notify(local_message(Terminated("a")))
        cell.notify(local_message(Terminated("b")))
        gate.opened.set()
        await p.drain()
    assert log == [
        ("job", 0),
        ("terminated", "a"),
        ("terminated", "b"),
        ("job", 1),
        ("job", 2),
        ("job", 3),
    ]


async def test_the_loop_yields_every_yield_every_messages() -> None:
    """Handlers that never wait still let other tasks in: the loop yields every 64."""
    log: list[Any] = []
    async with parts() as p:
        cell = await p.spawn(Recorder, log)
        schedule = p.runtime.backend.schedule

        async def scheduling_point() -> None:
            log.append("yield")
            await schedule()

        p.runtime.backend = p.runtime.backend._replace(schedule=scheduling_point)
        for n in range(1, 3 * YIELD_EVERY + 10):
            assert cell.queue.append(Job(n))  # all at once: the loop never waits between them
            p.runtime.inflight += 1
        await p.drain()
    streaks = [len(run) for run in "".join(" " if e == "yield" else "j" for e in log).split()]
    assert streaks == [YIELD_EVERY, YIELD_EVERY, YIELD_EVERY, 9]
    assert [entry for entry in log if entry != "yield"] == [
        ("job", n) for n in range(1, 3 * YIELD_EVERY + 10)
    ]


@pytest.mark.parametrize(
    ("lease", "handled"),
    [("none", True), ("kept", True), ("lost while waiting", False)],
)
async def test_a_message_whose_lease_was_lost_is_left_unhandled(lease: str, handled: bool) -> None:
    """The fence is read when the loop takes the message, not when it was queued."""
    log: list[Any] = []
    gate = Gate()
    owned = True
    tracker = Tracker()
    if lease != "none":
        tracker.fence = lambda: owned
    async with parts() as p:
        cell = await p.spawn(Recorder, log, gate)
        await cell.put(Job(0))
        await gate.reached()
        await cell.put(message(Job(1), tracker))
        if lease == "lost while waiting":
            owned = False
        gate.opened.set()
        await p.drain()
        assert p.runtime.inflight == 0
        processed = cell.processed
    assert tracker.pending == 0
    if handled:
        assert log == [("job", 0), ("job", 1)]
        assert tracker.outcome is Outcome.HANDLED
        assert tracker.result() == 1
        assert processed == 2
    else:
        assert log == [("job", 0)]
        assert tracker.outcome is Outcome.NOT_HANDLED
        assert processed == 1
    assert p.dead_letters == []


# -- one handler-call path, every argument shape ------------------------------------------------


class Shapes(Actor):
    """One handler of each shape for `Job`, in this order."""

    def __init__(self, seen: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.seen = seen

    @handle(Job)
    async def event_alone(self, job: Job) -> str:
        self.seen.append(("event_alone", (job,)))
        return "event_alone"

    @handle(Job)
    async def envelope_alone(self, envelope: Envelope) -> None:
        self.seen.append(("envelope_alone", (envelope,)))

    @handle(Job)
    async def event_envelope(self, job: Job, envelope: Envelope) -> None:
        self.seen.append(("event_envelope", (job, envelope)))

    @handle(Job)
    async def envelope_event(self, envelope: Envelope, job: Job) -> None:
        self.seen.append(("envelope_event", (envelope, job)))

    @handle(Job)
    async def nothing(self) -> None:
        self.seen.append(("nothing", ()))

    @handle(Job)
    async def spread(self, *args: Any, **kwargs: Any) -> None:
        self.seen.append(("spread", (*args, kwargs)))

    @handle(Job)
    def in_thread(self, job: Job) -> None:
        self.seen.append(("in_thread", (job,)))

    @handle(Job, inline=True)
    def inline(self, job: Job) -> None:
        self.seen.append(("inline", (job,)))


class Handling:
    """An `Instrumentation` that records the messages it wraps and the failures it sees."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, str]] = []
        self.failures: list[Exception] = []

    def inject(self, headers: Any, envelope_type: str) -> Any:
        return headers

    @contextlib.contextmanager
    def handling(self, envelope: Envelope, actor: str) -> Iterator[None]:
        self.handled.append((envelope.id, actor))
        yield

    def failed(self, error: Exception) -> None:
        self.failures.append(error)


@contextlib.contextmanager
def instrumented(hooks: Handling | None) -> Iterator[None]:
    _tracing.install(hooks)
    try:
        yield
    finally:
        _tracing.install(None)


ITEMS: dict[str, Callable[[Job, Tracker], object]] = {
    "told object": lambda job, tracker: job,
    "broadcast envelope": lambda job, tracker: broadcast(job),
    "message": message,
}


@pytest.mark.parametrize("instrumentation", [False, True], ids=["plain", "instrumented"])
@pytest.mark.parametrize("kind", list(ITEMS))
async def test_every_handler_shape_gets_its_arguments_for_every_kind_of_item(
    kind: str, instrumentation: bool
) -> None:
    seen: list[tuple[str, tuple[Any, ...]]] = []
    hooks = Handling() if instrumentation else None
    tracker = Tracker()
    item = ITEMS[kind](Job(7), tracker)
    with instrumented(hooks):
        async with parts() as p:
            cell = await p.spawn(Shapes, seen, name="shapes")
            await cell.put(item)
            # No deadline: virtual time jumps while a worker thread runs a sync handler.
            await p.runtime.drain()
            stats = cell.stats()
    assert [name for name, _ in seen] == [
        "event_alone",
        "envelope_alone",
        "event_envelope",
        "envelope_event",
        "nothing",
        "spread",
        "in_thread",
        "inline",
    ]
    given = dict(seen)
    job = Job(7)
    assert given["event_alone"] == given["in_thread"] == given["inline"] == (job,)
    assert given["nothing"] == ()
    assert given["spread"] == (job, {})
    envelopes = [given["envelope_alone"][0], given["event_envelope"][1], given["envelope_event"][0]]
    assert given["event_envelope"][0] == given["envelope_event"][1] == job
    # One envelope for the message, whichever handler asks, even when built on demand.
    assert len({envelope.id for envelope in envelopes}) == 1
    assert all(envelope.type == "cells.job" and envelope.data == job for envelope in envelopes)
    assert (stats.processed, stats.failed) == (1, 0)
    if kind == "message":
        assert tracker.result() == "event_alone"
    if hooks is not None:
        assert hooks.handled == [(envelopes[0].id, "shapes")]


async def test_emitted_arguments_are_spread_and_dict_data_is_converted() -> None:
    seen: list[Any] = []

    class Convert(Actor):
        @handle("cells.*")
        async def spread(self, *args: Any, **kwargs: Any) -> None:
            seen.append(("spread", args, kwargs))

        @handle("cells.*")
        async def converted(self, job: Job) -> None:
            seen.append(("converted", job))

    async with parts() as p:
        cell = await p.spawn(Convert)
        emitted = AdHoc((7,), {"n": 8})
        await cell.put(Message(emitted, None, AdHoc, "cells.emitted", ANY_GROUP))
        await cell.put(Envelope(type="cells.job", data={"n": 9}, source="cells"))
        await p.drain()
        stats = cell.stats()
    # Job(7, n=8) cannot be built: the conversion's DecodeError is a handler failure.
    assert seen == [
        ("spread", (7,), {"n": 8}),
        ("spread", ({"n": 9},), {}),
        ("converted", Job(9)),
    ]
    assert (stats.processed, stats.failed) == (2, 1)


# -- supervision carried out ----------------------------------------------------------------


class Failing(Actor):
    """`first` fails on the first `failures` calls; `second` logs every call."""

    def __init__(self, log: list[Any], failures: int) -> None:
        self.log = log
        self.failures = failures
        self.log.append("init")

    async def on_stop(self) -> None:
        self.log.append("on_stop")

    @handle()
    async def first(self, job: Job) -> str:
        self.log.append(("first", job.n, anyio.current_time()))
        if self.failures > 0:
            self.failures -= 1
            raise BoomError(job.n)
        return "first"

    @handle()
    async def second(self, job: Job) -> None:
        self.log.append(("second", job.n))


def calls(log: list[Any], name: str = "first") -> list[Any]:
    return [entry for entry in log if isinstance(entry, tuple) and entry[0] == name]


RETRY = Supervision(
    Policy.RETRY,
    max_retries=3,
    backoff=Backoff(initial=1.0, multiplier=2.0, maximum=100.0, jitter=0.0),
    then=Policy.DEAD_LETTER,
)


@pytest.mark.parametrize(
    ("failures", "outcome"),
    [(2, Outcome.HANDLED), (10, Outcome.DEAD_LETTERED)],
    ids=["succeeds on the third call", "gives up after three retries"],
)
async def test_retry_calls_the_handler_again_after_each_backoff_delay(
    failures: int, outcome: Outcome
) -> None:
    log: list[Any] = []
    tracker = Tracker()
    async with parts() as p:
        cell = await p.spawn(Failing, log, failures, supervision=RETRY)
        await cell.put(message(Job(1), tracker))
        await p.drain()
        stats = cell.stats()
    times = [time for _, _, time in calls(log)]
    expected = [1.0, 2.0, 4.0][: min(failures, 3)]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == expected
    assert calls(log, "second") == [("second", 1)]  # the next handler runs either way
    assert tracker.outcome is outcome
    assert (stats.processed, stats.failed, stats.retries) == (1, min(failures, 4), len(expected))
    if outcome is Outcome.HANDLED:
        assert tracker.result() == "first"
        assert p.dead_letters == []
    else:
        with pytest.raises(BoomError):
            tracker.result()
        [letter] = p.dead_letters
        assert isinstance(letter.error, BoomError)
        assert letter.actor == cell.name


@pytest.mark.parametrize(
    ("policy", "level", "dead_lettered"),
    [
        (Policy.IGNORE, logging.DEBUG, 0),
        (Policy.LOG_AND_CONTINUE, logging.ERROR, 0),
        (Policy.DEAD_LETTER, logging.WARNING, 1),
    ],
)
async def test_policies_that_keep_the_actor_go_on_with_the_next_handler(
    policy: Policy, level: int, dead_lettered: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="actorbus.actor")
    log: list[Any] = []
    tracker = Tracker()
    async with parts() as p:
        cell = await p.spawn(Failing, log, 1, supervision=Supervision(policy), name="failing")
        await cell.put(message(Job(1), tracker))
        await cell.put(Job(2))
        await p.drain()
        stats = cell.stats()
        state = cell.state
    assert [entry[:2] for entry in log if isinstance(entry, tuple)] == [
        ("first", 1),
        ("second", 1),
        ("first", 2),
        ("second", 2),
    ]
    assert log.count("init") == 1  # the same instance throughout
    assert state is Life.RUNNING
    with pytest.raises(BoomError):
        tracker.result()  # the first handler's outcome is the reply
    assert (stats.processed, stats.failed, stats.dead_lettered) == (2, 1, dead_lettered)
    assert len(p.dead_letters) == dead_lettered
    assert tracker.outcome is (Outcome.DEAD_LETTERED if dead_lettered else Outcome.HANDLED)
    [record] = [r for r in caplog.records if "raised BoomError" in r.getMessage()]
    assert record.levelno == level
    assert "'failing'" in record.getMessage() and "Failing.first" in record.getMessage()
    assert (record.exc_info is not None) == (level >= logging.ERROR)


@pytest.mark.parametrize(
    ("spacing", "escalated"),
    [(0.0, True), (11.0, False)],
    ids=["three failures within the window", "failures spaced wider than the window"],
)
async def test_restart_builds_a_fresh_instance_within_the_restart_window(
    spacing: float, escalated: bool
) -> None:
    log: list[Any] = []
    supervision = Supervision(
        Policy.RESTART,
        max_restarts=2,
        within=10.0,
        restart_backoff=Backoff(initial=1.0, multiplier=2.0, jitter=0.0),
    )
    async with parts() as p:
        start = anyio.current_time()
        cell = await p.spawn(Failing, log, 99, supervision=supervision, name="restarting")
        for n in range(3):
            await anyio.sleep(spacing)
            await cell.put(Job(n))
            await p.drain()  # the restart included
        restarts, stopped = cell.restarts, cell.stopped
    # RESTART ends the message: `second` never runs.
    assert calls(log, "second") == []
    called = [time - start for _, _, time in calls(log)]
    if escalated:
        # The first restart waits restart_backoff.delay(1), 1 s; the second delay(2), 2 s;
        # the third in the window escalates: the actor stops.
        assert called == pytest.approx([0.0, 1.0, 3.0])
        assert restarts == 2
        assert [entry for entry in log if isinstance(entry, str)] == ["init", "on_stop"] * 3
        [(error, actor)] = p.failures
        assert isinstance(error, BoomError)
        assert actor == "restarting"
        assert stopped
    else:
        # Each restart is the first in its window: 1 s each.
        assert called == pytest.approx([11.0, 23.0, 35.0])
        assert restarts == 3
        assert [entry for entry in log if isinstance(entry, str)] == ["init", "on_stop"] * 3 + [
            "init",
            "on_stop",
        ]
        assert p.failures == []
        assert not stopped


async def test_stop_dead_letters_the_message_and_everything_waiting() -> None:
    log: list[Any] = []
    watcher_log: list[Any] = []
    async with parts() as p:
        watcher = await p.spawn(Recorder, watcher_log, name="watcher")
        cell = await p.spawn(Failing, log, 1, supervision=Supervision(Policy.STOP), name="stops")
        watcher.watch(cell)
        waiting = Tracker()
        await cell.put(Job(1))
        await cell.put(message(Job(2), waiting))
        with anyio.fail_after(60):
            await cell.wait_stopped()
        await p.drain()
        reason, accepting = cell.reason, cell.accepting
    assert [entry[:2] for entry in calls(log)] == [("first", 1)]  # not `second`, not job 2
    assert isinstance(reason, BoomError)
    assert not accepting
    assert "on_stop" in log
    letters = p.dead_letters
    assert [letter.envelope.data for letter in letters] == [Job(1), Job(2)]
    assert isinstance(letters[0].error, BoomError)
    assert isinstance(letters[1].error, ActorStopped)
    assert waiting.outcome is Outcome.NOT_HANDLED
    assert watcher_log == [("terminated", "stops")]
    assert p.failures == []


class Child(Actor):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def on_stop(self) -> None:
        self.log.append("child stopped")

    @handle()
    async def fail(self, job: Job) -> None:
        raise BoomError(job.n)


class Parent(Actor):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("parent started")
        await self.spawn(Child, self.log, name="child", supervision=Supervision(Policy.FAIL_FAST))

    async def on_stop(self) -> None:
        self.log.append("parent stopped")

    @handle()
    async def job(self, job: Job) -> None:
        self.log.append(("parent job", job.n))


@pytest.mark.parametrize(
    ("decision", "parent_runs", "failed_to_system"),
    [
        (None, True, False),
        (Policy.RESTART, True, False),
        (Policy.STOP, False, False),
        (Policy.FAIL_FAST, False, True),
    ],
    ids=["default: the child stays stopped", "restart", "stop", "fail fast"],
)
async def test_fail_fast_escalates_to_the_parent_which_decides(
    decision: Policy | None, parent_runs: bool, failed_to_system: bool
) -> None:
    log: list[Any] = []
    on = {BoomError: decision} if decision is not None else {}
    async with parts() as p:
        parent = await p.spawn(Parent, log, name="parent", supervision=Supervision(on=on))
        [child] = parent.children
        await child.put(Job(1))
        with anyio.fail_after(60):
            await child.wait_stopped()
        await p.drain()
        if parent_runs:
            await parent.put(Job(2))
            await p.drain()
        state, restarts = parent.state, parent.restarts
        children = [c.name for c in parent.children]
    assert isinstance(child.reason, BoomError)
    assert state is (Life.RUNNING if parent_runs else Life.STOPPED)
    if decision is Policy.RESTART:
        assert restarts == 1
        assert children == ["child"]  # the fresh instance spawned a fresh child
        assert log[:4] == ["parent started", "child stopped", "parent stopped", "parent started"]
    else:
        assert restarts == 0
        assert children == []
    if parent_runs:
        assert ("parent job", 2) in log
    else:
        assert log[-1] == "parent stopped"
    if failed_to_system:
        [(error, actor)] = p.failures
        assert isinstance(error, BoomError)
        assert actor == "parent"
    else:
        assert p.failures == []


async def test_an_escalation_waiting_when_its_parent_stops_is_dropped() -> None:
    log: list[Any] = []
    gate = Gate()

    class Holding(Parent):
        @handle()
        async def job(self, job: Job) -> None:
            await gate.hold()

    async with parts() as p:
        parent = await p.spawn(Holding, log, supervision=Supervision(on={BoomError: Policy.STOP}))
        [child] = parent.children
        await parent.put(Job(0))
        await gate.reached()
        await child.put(Job(1))
        with anyio.fail_after(60):
            await child.wait_stopped()  # its escalation waits in the parent's mailbox
        parent.request_stop()
        gate.opened.set()
        await p.drain()  # the dropped notice is no longer work in flight
        reason = parent.reason
    assert reason is None  # stopped as asked, not by the child's escalation
    assert p.dead_letters == []  # a notice is not a message: no dead letter
    assert p.failures == []


async def test_fail_fast_of_a_top_level_actor_fails_the_system() -> None:
    log: list[Any] = []
    async with parts() as p:
        cell = await p.spawn(Failing, log, 1, supervision=Supervision(Policy.FAIL_FAST))
        await cell.put(Job(1))
        with anyio.fail_after(60):
            await cell.wait_stopped()
        await p.drain()
    [(error, actor)] = p.failures
    assert isinstance(error, BoomError)
    assert actor == cell.name
    assert isinstance(cell.reason, BoomError)
    assert calls(log, "second") == []


async def test_instrumentation_sees_each_failure_before_supervision_acts() -> None:
    log: list[Any] = []
    hooks = Handling()
    with instrumented(hooks):
        async with parts() as p:
            cell = await p.spawn(Failing, log, 2, supervision=RETRY)
            await cell.put(Job(1))
            await p.drain()
    assert [error.args for error in hooks.failures] == [(1,), (1,)]
    assert len(hooks.handled) == 1  # one span for the message, its retries inside


# -- trace context -------------------------------------------------------------------------


async def test_the_trace_context_of_each_message_is_set_and_cleared() -> None:
    seen: list[str | None] = []

    class Traced(Actor):
        @handle()
        async def job(self, job: Job) -> None:
            seen.append(_tracing.current.get())

    traced = Envelope(type="cells.job", data=Job(1), source="cells", headers={"traceparent": TRACE})
    token = _tracing.current.set("00-" + "1" * 32 + "-" + "2" * 16 + "-01")  # the spawner's
    try:
        async with parts() as p:
            cell = await p.spawn(Traced)
            await cell.put(Job(0))  # the spawner's context is not the message's
            await cell.put(traced)
            await cell.put(Job(2))
            await cell.put(broadcast(Job(3)))
            await cell.put(traced)
            await p.drain()
    finally:
        _tracing.current.reset(token)
    assert seen == [None, TRACE, None, None, TRACE]


# -- counters and handling times ---------------------------------------------------------------


async def test_handling_times_are_timed_then_sampled_one_in_eight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clock moves only inside handlers: job n takes `n.duration` seconds."""
    now = [0.0]
    monkeypatch.setattr(_cell, "perf_counter", lambda: now[0])

    class Timed(Actor):
        @handle()
        async def job(self, job: Job) -> None:
            now[0] += 1.0 if job.n < 256 else 3.0

    async with parts() as p:
        cell = await p.spawn(Timed)
        for n in range(512):
            await cell.put(Job(n))
        await p.drain()
        stats = cell.stats()
    assert stats.processed == 512
    assert stats.handling_time == 256 * 1.0 + 256 * 3.0
    # The first 256 fill the ring; then one in eight (32 of 3 s) replaces the oldest.
    assert (stats.handling_p50, stats.handling_p99) == (1.0, 3.0)
    assert sorted(cell._samples).count(3.0) == 32


async def test_counters_count_messages_failures_retries_and_restarts() -> None:
    log: list[Any] = []
    supervision = Supervision(
        Policy.RETRY,
        max_retries=1,
        backoff=Backoff(initial=1.0, jitter=0.0),
        then=Policy.RESTART,
    )
    async with parts() as p:
        cell = await p.spawn(Failing, log, 3, supervision=supervision)
        for n in range(3):
            await cell.put(Job(n))
        await p.drain()
        stats = cell.stats()
    # Job 0: fails, retried, fails: restart. Job 1 (a fresh instance, failures=3): the same.
    # Job 2: fails, retried, fails: restart.
    assert (stats.processed, stats.failed, stats.retries, stats.restarts) == (3, 6, 3, 3)
    assert (stats.dropped, stats.dead_lettered, stats.depth) == (0, 0, 0)


# -- stopping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cancel", [False, True], ids=["after the message", "cancelling it"])
async def test_request_stop_dead_letters_what_waits(cancel: bool) -> None:
    log: list[Any] = []
    gate = Gate()
    current, waiting = Tracker(), Tracker()
    async with parts() as p:
        cell = await p.spawn(Recorder, log, gate, name="stopping")
        await cell.put(message(Job(0), current))
        await gate.reached()
        await cell.put(Job(1))
        await cell.put(message(Job(2), waiting))
        cell.request_stop(cancel=cancel)
        # At once: the waiting ones are dead letters, the mailbox is closed, no route left.
        letters = p.dead_letters
        assert not cell.accepting
        assert len(p.dispatcher) == 0
        with pytest.raises(ActorStopped, match="stopping"):
            await cell.put(Job(3))
        gate.opened.set()
        with anyio.fail_after(60):
            await cell.wait_stopped()
        await p.drain()
        assert p.runtime.inflight == 0
    assert [letter.envelope.data for letter in letters] == [Job(1), Job(2)]
    assert all(isinstance(letter.error, ActorStopped) for letter in letters)
    assert all(letter.actor == "stopping" for letter in letters)
    assert waiting.outcome is Outcome.NOT_HANDLED
    with pytest.raises(ActorStopped):
        waiting.result()
    assert log == [("job", 0)]
    if cancel:
        assert current.outcome is Outcome.NOT_HANDLED
        with pytest.raises(ActorStopped, match="while handling"):
            current.result()
    else:
        assert current.outcome is Outcome.HANDLED
        assert current.result() == 0
