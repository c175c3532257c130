"""Supervision policies, restart intensity, escalation through supervision trees."""

import logging
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from actorbus import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    Backoff,
    DeadLetter,
    Envelope,
    Policy,
    Supervision,
    Terminated,
    event,
    handle,
)
from actorbus.testing._clock import AutojumpEventLoop

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends, on virtual time: backoff waits cost nothing and are exact."""
    if request.param == "trio":
        return "trio", {"clock": MockClock(autojump_threshold=0)}
    return "asyncio", {"loop_factory": AutojumpEventLoop}


@event("sup.job")
class Job:
    n: int
    fail: bool = False


@event("sup.ping")
class Ping:
    pass


class BoomError(Exception):
    pass


class SpecificBoomError(BoomError):
    pass


class Recorder(Actor):
    """Fails on `Job(fail=True)` and records everything in a shared log."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.count = 0
        self.log.append(("init", id(self)))

    async def on_start(self) -> None:
        self.log.append(("start", self.name))

    async def on_stop(self) -> None:
        self.log.append(("stop", self.name))

    @handle()
    async def work(self, job: Job) -> int:
        self.count += 1
        self.log.append(("job", job.n, anyio.current_time()))
        if job.fail:
            raise BoomError(job.n)
        return self.count

    @handle()
    async def ping(self, _: Ping) -> int:
        return self.count


class Log(list[Any]):
    """A list that tasks can wait on: `await log.wait_for(entry)`."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def append(self, item: Any) -> None:
        super().append(item)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, entry: Any) -> None:
        while entry not in self:
            await self._changed.wait()


def jobs(log: list[Any]) -> list[int]:
    return [entry[1] for entry in log if entry[0] == "job"]


async def spawn(
    system: ActorSystem, supervision: Supervision, log: list[Any], **kw: Any
) -> ActorRef:
    return await system.spawn(Recorder, log, supervision=supervision, **kw)


# -- IGNORE / LOG_AND_CONTINUE / DEAD_LETTER -----------------------------------------------


async def test_log_and_continue_is_the_default_and_logs_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder, log)
        with caplog.at_level(logging.DEBUG, logger="actorbus"):
            await ref.tell(Job(1, fail=True))
            await ref.tell(Job(2))
            await system.drain()
        assert await ref.ask(Ping()) == 2  # state kept across the failure
        assert ref.stats.failed == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    record = errors[0]
    assert record.exc_info is not None and record.exc_info[0] is BoomError
    assert record.actor == "Recorder"  # type: ignore[attr-defined]
    assert record.event_type == "sup.job"  # type: ignore[attr-defined]
    assert "Recorder.work" in record.getMessage()


async def test_ignore_drops_the_message_without_error_log(caplog: pytest.LogCaptureFixture) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await spawn(system, Supervision(Policy.IGNORE), log)
        with caplog.at_level(logging.DEBUG, logger="actorbus"):
            await ref.tell(Job(1, fail=True))
            await ref.tell(Job(2))
            await system.drain()
        assert jobs(log) == [1, 2]
        assert ref.stats.failed == 1
        assert system.dead_letters == ()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_dead_letter_records_and_publishes_the_failed_message() -> None:
    log: list[Any] = []
    seen: list[DeadLetter] = []

    class Watcher(Actor):
        @handle()
        async def dead(self, letter: DeadLetter) -> None:
            seen.append(letter)

    async with ActorSystem() as system:
        await system.spawn(Watcher)
        ref = await spawn(system, Supervision(Policy.DEAD_LETTER), log, name="worker")
        await ref.tell(Job(7, fail=True))
        await system.drain()
        (letter,) = system.dead_letters
        assert letter.actor == "worker"
        assert isinstance(letter.error, BoomError)
        assert letter.envelope.type == "sup.job"
        assert letter.envelope.data == Job(7, fail=True)
        assert seen == [letter]
        assert ref.stats.dead_lettered == 1


async def test_on_picks_the_most_specific_exception_class() -> None:
    log: list[Any] = []
    supervision = Supervision(
        Policy.LOG_AND_CONTINUE,
        on={
            BoomError: Policy.IGNORE,
            SpecificBoomError: Policy.DEAD_LETTER,
            Exception: Policy.STOP,
        },
    )
    assert supervision.policy_for(SpecificBoomError()) is Policy.DEAD_LETTER
    assert supervision.policy_for(BoomError()) is Policy.IGNORE
    assert supervision.policy_for(KeyError()) is Policy.STOP
    assert Supervision().policy_for(KeyError()) is Policy.LOG_AND_CONTINUE

    async with ActorSystem() as system:
        ref = await spawn(system, Supervision(on={BoomError: Policy.DEAD_LETTER}), log)
        await ref.tell(Job(1, fail=True))
        await system.drain()
        assert len(system.dead_letters) == 1


# -- RETRY ------------------------------------------------------------------------------------


class Flaky(Actor):
    """Fails the first `failures` calls for each job number."""

    supervision = Supervision(
        Policy.RETRY,
        max_retries=3,
        backoff=Backoff(initial=1.0, multiplier=2.0, maximum=10.0, jitter=0.0),
    )

    def __init__(self, failures: int, log: list[Any]) -> None:
        self.failures = failures
        self.calls: dict[int, int] = {}
        self.log = log

    @handle()
    async def work(self, job: Job) -> str:
        calls = self.calls[job.n] = self.calls.get(job.n, 0) + 1
        self.log.append((job.n, calls, anyio.current_time()))
        if calls <= self.failures:
            raise BoomError(job.n)
        return f"done {job.n}"


async def test_retry_calls_again_with_backoff_and_keeps_order() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Flaky, 2, log)
        start = anyio.current_time()
        await ref.tell(Job(1))
        await ref.tell(Job(2))
        await system.drain()
        assert [(n, c) for n, c, _ in log] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
        times = [t - start for _, _, t in log]
        # Job 1: tries at 0, +1s, +2s more; job 2 waits for job 1, then the same again.
        assert times == pytest.approx([0, 1, 3, 3, 4, 6], abs=0.01)
        assert ref.stats.retries == 4
        assert ref.stats.failed == 4
        assert ref.stats.processed == 2
        assert system.dead_letters == ()


async def test_retry_exhausted_applies_then_dead_letter_by_default() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Flaky, 99, log)
        await ref.tell(Job(1))
        await system.drain()
        assert len(log) == 4  # the first call and 3 retries
        (letter,) = system.dead_letters
        assert isinstance(letter.error, BoomError)


async def test_retry_then_stop() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        supervision = Supervision(
            Policy.RETRY, max_retries=1, backoff=Backoff(initial=0.5), then=Policy.STOP
        )
        ref = await system.spawn(Flaky, 99, log, supervision=supervision)
        await ref.tell(Job(1))
        terminated = await ref.wait_stopped()
        assert isinstance(terminated.reason, BoomError)
        assert len(log) == 2
        with pytest.raises(ActorStopped):
            await ref.tell(Job(2))


def test_backoff_grows_caps_and_jitter_stays_within_bounds() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.25)
    assert backoff.delay(1, rand=0.5) == pytest.approx(0.1)
    assert backoff.delay(2, rand=0.5) == pytest.approx(0.2)
    assert backoff.delay(3, rand=0.5) == pytest.approx(0.4)
    assert backoff.delay(10, rand=0.5) == pytest.approx(1.0)
    assert backoff.delay(1, rand=0.0) == pytest.approx(0.075)
    assert backoff.delay(1, rand=1.0) == pytest.approx(0.125)
    for attempt in range(1, 12):
        base = min(1.0, 0.1 * 2 ** (attempt - 1))
        for _ in range(200):
            delay = backoff.delay(attempt)
            assert base * 0.75 - 1e-12 <= delay <= min(1.0, base * 1.25) + 1e-12


def test_invalid_settings_are_rejected_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="retry forever"):
        Supervision(Policy.RETRY, then=Policy.RETRY)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=2)
    with pytest.raises(TypeError, match="exception classes"):
        Supervision(on={"nope": Policy.STOP})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="max_retries"):
        Supervision(max_retries=-1)


# -- RESTART ----------------------------------------------------------------------------------


async def test_restart_builds_a_fresh_instance_with_the_spawn_arguments() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await spawn(system, Supervision(Policy.RESTART), log, name="r")
        await ref.tell(Job(1))
        await ref.tell(Job(2, fail=True))
        await ref.tell(Job(3))
        await system.drain()
        # The failing message is not retried; the mailbox is kept; state starts over.
        assert jobs(log) == [1, 2, 3]
        assert await ref.ask(Ping()) == 1
        inits = [e for e in log if e[0] == "init"]
        assert len(inits) == 2 and inits[0] != inits[1]
        lifecycle = [e for e in log if e[0] in ("start", "stop")]
        assert lifecycle == [("start", "r"), ("stop", "r"), ("start", "r")]
        assert ref.stats.restarts == 1


async def test_more_restarts_than_allowed_in_the_window_escalate() -> None:
    log: list[Any] = []
    with pytest.raises(BoomError):
        async with ActorSystem() as system:
            ref = await spawn(system, Supervision(Policy.RESTART, max_restarts=2, within=10.0), log)
            for n in range(3):
                await ref.tell(Job(n, fail=True))
            await anyio.sleep_forever()
    assert [e for e in log if e[0] == "start"] == [("start", "Recorder")] * 3
    assert log[-1] == ("stop", "Recorder")  # on_stop still ran


async def test_restart_window_slides() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await spawn(system, Supervision(Policy.RESTART, max_restarts=2, within=10.0), log)
        for n in range(6):  # three windows' worth, spaced so no window holds three restarts
            await ref.tell(Job(n, fail=True))
            await system.drain()
            await anyio.sleep(6.0)
        assert ref.stats.restarts == 6
        assert not ref.stopped


async def test_restart_backoff_waits_before_the_fresh_instance() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        supervision = Supervision(
            Policy.RESTART,
            max_restarts=5,
            within=100.0,
            restart_backoff=Backoff(initial=2.0, multiplier=2.0, jitter=0.0),
        )
        ref = await spawn(system, supervision, log)
        start = anyio.current_time()
        await ref.tell(Job(1, fail=True))
        await ref.tell(Job(2, fail=True))
        await ref.tell(Job(3))
        await system.drain()
        times = [e[2] - start for e in log if e[0] == "job"]
        assert times == pytest.approx([0, 2, 6], abs=0.01)


async def test_restart_when_on_start_keeps_failing_escalates() -> None:
    attempts: list[int] = []

    class BadStart(Actor):
        supervision = Supervision(Policy.RESTART, max_restarts=3, within=60.0)

        def __init__(self) -> None:
            self.fail_start = bool(attempts)

        async def on_start(self) -> None:
            attempts.append(1)
            if self.fail_start:
                raise BoomError("start")

        @handle()
        async def work(self, job: Job) -> None:
            raise BoomError(job.n)

    with pytest.raises(BoomError):
        async with ActorSystem() as system:
            ref = await system.spawn(BadStart)
            await ref.tell(Job(1))
            await anyio.sleep_forever()
    assert len(attempts) == 4  # the first start, then 3 restarts whose on_start failed


# -- STOP ---------------------------------------------------------------------------------------


async def test_stop_stops_only_this_actor_and_dead_letters_its_mailbox() -> None:
    log: list[Any] = []
    other_log: list[Any] = []
    async with ActorSystem() as system:
        gate = anyio.Event()

        class Gated(Recorder):
            @handle()
            async def work(self, job: Job) -> int:
                await gate.wait()
                return await Recorder.work(self, job)

        ref = await system.spawn(Gated, log, supervision=Supervision(Policy.STOP), name="gated")
        other = await system.spawn(Recorder, other_log, name="other")
        await ref.tell(Job(1, fail=True))
        await ref.tell(Job(2))
        await ref.tell(Job(3))
        gate.set()
        terminated = await ref.wait_stopped()
        assert isinstance(terminated.reason, BoomError)
        assert ("stop", "gated") in log
        assert jobs(log) == [1]
        dead = [(d.envelope.data.n, type(d.error).__name__) for d in system.dead_letters]
        assert dead == [(1, "BoomError"), (2, "ActorStopped"), (3, "ActorStopped")]
        with pytest.raises(ActorStopped):
            await ref.ask(Ping())
        assert await other.ask(Ping()) == 0  # the other actor is untouched


# -- FAIL_FAST --------------------------------------------------------------------------------


async def test_fail_fast_fails_the_system_and_runs_every_on_stop() -> None:
    log: list[Any] = []
    reached_end = False
    with pytest.raises(BoomError) as caught:
        async with ActorSystem() as system:
            await spawn(system, Supervision(), log, name="bystander")
            ref = await spawn(system, Supervision(Policy.FAIL_FAST), log, name="fragile")
            await ref.tell(Job(1, fail=True))
            await anyio.sleep_forever()
            reached_end = True
    assert caught.value.args == (1,)
    assert not reached_end
    stops = [e for e in log if e[0] == "stop"]
    assert sorted(stops) == [("stop", "bystander"), ("stop", "fragile")]


async def test_fail_fast_is_catchable_with_except_star() -> None:
    log: list[Any] = []
    caught: list[BaseException] = []
    try:
        async with ActorSystem() as system:
            ref = await spawn(system, Supervision(Policy.FAIL_FAST), log)
            await ref.tell(Job(1, fail=True))
            await anyio.sleep_forever()
    except* BoomError as group:
        caught.extend(group.exceptions)
    assert len(caught) == 1 and isinstance(caught[0], BoomError)


async def test_ask_always_gets_the_exception_whatever_the_policy() -> None:
    for policy in (
        Policy.IGNORE,
        Policy.LOG_AND_CONTINUE,
        Policy.DEAD_LETTER,
        Policy.RESTART,
        Policy.STOP,
    ):
        log: list[Any] = []
        async with ActorSystem() as system:
            ref = await spawn(system, Supervision(policy), log)
            with pytest.raises(BoomError):
                await ref.ask(Job(1, fail=True))


async def test_retry_gives_the_asker_the_eventual_reply() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Flaky, 2, log)
        assert await ref.ask(Job(5), timeout=60) == "done 5"


async def test_cancellation_is_not_a_handler_failure() -> None:
    started = anyio.Event()

    class Slow(Actor):
        supervision = Supervision(Policy.FAIL_FAST)

        @handle()
        async def work(self, job: Job) -> None:
            started.set()
            await anyio.sleep_forever()

    async with ActorSystem(shutdown_timeout=1.0) as system:
        ref = await system.spawn(Slow)
        await ref.tell(Job(1))
        await started.wait()
    # Leaving cancelled the handler after the timeout: no failure was counted or raised.
    assert ref.stats.failed == 0


# -- supervision trees ----------------------------------------------------------------------


class Node(Actor):
    """A tree node: spawns the children named in `shape` and records its life cycle."""

    def __init__(self, shape: dict[str, Any], log: list[Any]) -> None:
        self.shape = shape
        self.log = log

    async def on_start(self) -> None:
        self.log.append(("start", self.name))
        for child, (supervision, grandchildren) in self.shape.items():
            await self.spawn(Node, grandchildren, self.log, name=child, supervision=supervision)

    async def on_stop(self) -> None:
        self.log.append(("stop", self.name))

    @handle()
    async def work(self, job: Job) -> None:
        raise BoomError(self.name)


async def test_children_stop_before_their_parent_in_reverse_start_order() -> None:
    log: list[Any] = []
    plain = Supervision()
    shape = {"a": (plain, {"a1": (plain, {}), "a2": (plain, {})}), "b": (plain, {})}
    async with ActorSystem() as system:
        await system.spawn(Node, shape, log, name="root")
    stops = [name for kind, name in log if kind == "stop"]
    assert stops == ["b", "a2", "a1", "a", "root"]


async def test_child_escalation_restarts_the_parent_and_its_subtree() -> None:
    log = Log()
    fail_fast = Supervision(Policy.FAIL_FAST)
    restart = Supervision(Policy.RESTART)
    shape = {
        "child": (fail_fast, {"grandchild": (Supervision(), {})}),
        "sibling": (Supervision(), {}),
    }
    async with ActorSystem() as system:
        parent = await system.spawn(Node, shape, log, name="parent", supervision=restart)
        other = await system.spawn(Node, {}, log, name="other")
        log.clear()
        await system.actor("child").tell(Job(1))
        await log.wait_for(("start", "parent"))
        await system.drain()
        assert parent.stats.restarts == 1
        # The whole subtree was stopped (children first) and started again.
        assert ("stop", "parent") in log and ("start", "parent") in log
        assert (
            log.index(("stop", "grandchild"))
            < log.index(("stop", "child"))
            < log.index(("stop", "parent"))
        )
        assert system.actor("child") and system.actor("grandchild") and system.actor("sibling")
        assert ("stop", "other") not in log
        assert not other.stopped


async def test_grandchild_escalation_restarts_the_right_subtree() -> None:
    log = Log()
    escalate = Supervision(Policy.FAIL_FAST)
    shape = {
        "left": (Supervision(Policy.RESTART), {"leaf": (escalate, {})}),
        "right": (Supervision(), {"right-leaf": (Supervision(), {})}),
    }
    async with ActorSystem() as system:
        root = await system.spawn(
            Node, shape, log, name="root", supervision=Supervision(Policy.RESTART)
        )
        log.clear()
        await system.actor("leaf").tell(Job(1))
        await log.wait_for(("start", "left"))
        await system.drain()
        restarted = {name for kind, name in log if kind == "start"}
        assert restarted == {"left", "leaf"}
        assert root.stats.restarts == 0
        assert system.actor("left").stats.restarts == 1


async def test_escalation_reaches_the_system_only_when_no_ancestor_handles_it() -> None:
    log: list[Any] = []
    escalate = Supervision(Policy.FAIL_FAST)
    shape = {"mid": (escalate, {"leaf": (escalate, {})})}
    with pytest.raises(BoomError) as caught:
        async with ActorSystem() as system:
            await system.spawn(Node, shape, log, name="top", supervision=escalate)
            await system.actor("leaf").tell(Job(1))
            await anyio.sleep_forever()
    assert caught.value.args == ("leaf",)
    assert {name for kind, name in log if kind == "stop"} == {"leaf", "mid", "top"}


async def test_parent_that_stops_on_escalation_stops_with_its_children() -> None:
    log: list[Any] = []
    shape = {"child": (Supervision(Policy.FAIL_FAST), {})}
    async with ActorSystem() as system:
        parent = await system.spawn(
            Node, shape, log, name="parent", supervision=Supervision(Policy.STOP)
        )
        await system.actor("child").tell(Job(1))
        terminated = await parent.wait_stopped()
        assert isinstance(terminated.reason, BoomError)
        assert log[-2:] == [("stop", "child"), ("stop", "parent")]


async def test_watchers_get_terminated_when_supervision_gives_up() -> None:
    log: list[Any] = []
    got: list[Terminated] = []
    done = anyio.Event()

    class Watcher(Actor):
        def __init__(self, target: ActorRef) -> None:
            self.target = target

        async def on_start(self) -> None:
            await self.watch(self.target)

        @handle()
        async def terminated(self, note: Terminated) -> None:
            got.append(note)
            done.set()

    shape = {"child": (Supervision(Policy.FAIL_FAST), {})}
    async with ActorSystem() as system:
        await system.spawn(Node, shape, log, name="parent")  # default policy: child stays down
        child = system.actor("child")
        await system.spawn(Watcher, child)
        await child.tell(Job(1))
        await done.wait()
        assert got[0].name == "child"
        assert isinstance(got[0].reason, BoomError)
        assert child.stopped
        assert not system.actor("parent").stopped


async def test_a_restart_whose_on_start_fails_runs_no_on_stop_for_that_instance() -> None:
    events: list[str] = []
    starts = 0

    class Shaky(Actor):
        supervision = Supervision(Policy.RESTART, max_restarts=5, within=60.0)

        def __init__(self) -> None:
            nonlocal starts
            starts += 1
            self.number = starts

        async def on_start(self) -> None:
            events.append(f"start#{self.number}")
            if self.number == 2:
                raise BoomError("start")

        async def on_stop(self) -> None:
            events.append(f"stop#{self.number}")

        @handle()
        async def work(self, job: Job) -> None:
            raise BoomError(job.n)

    async with ActorSystem() as system:
        ref = await system.spawn(Shaky)
        await ref.tell(Job(1))
        await system.drain()
        events.append("--shutdown--")
    assert events == ["start#1", "stop#1", "start#2", "start#3", "--shutdown--", "stop#3"]


async def test_a_watcher_that_stops_first_leaves_nothing_behind() -> None:
    log: list[Any] = []

    class Watcher(Actor):
        def __init__(self, target: ActorRef) -> None:
            self.target = target

        async def on_start(self) -> None:
            await self.watch(self.target)

    async with ActorSystem(shutdown_timeout=30) as system:
        target = await spawn(system, Supervision(), log, name="target")
        watchers = [await system.spawn(Watcher, target) for _ in range(3)]
        for watcher in watchers:
            await watcher.stop()
        await target.stop()
        with anyio.fail_after(1):  # virtual time: only a hang would reach it
            await system.drain()
        started = anyio.current_time()
    assert anyio.current_time() - started < 1  # no shutdown_timeout wait either


async def test_the_error_after_retries_does_not_carry_the_first_failure_as_context() -> None:
    attempts: list[int] = []

    class Counting(Actor):
        supervision = Supervision(
            Policy.RETRY, max_retries=2, backoff=Backoff(initial=0.1), then=Policy.LOG_AND_CONTINUE
        )

        @handle(Job)
        async def on_job(self, job: Job) -> None:
            attempts.append(job.n)
            raise ValueError(f"attempt {len(attempts)}")

    async with ActorSystem() as system:
        ref = await system.spawn(Counting)
        with pytest.raises(ValueError, match="attempt 3") as raised:
            await ref.ask(Job(1))
    assert len(attempts) == 3
    # each attempt ran on its own, not inside the handling of the one before
    assert raised.value.__context__ is None


# -- one message, one envelope id: handler calls, retries, logs and the dead letter ------


@event("sup.told")
class Told:
    n: int


class RetriesThenDeadLetters(Actor):
    supervision = Supervision(
        Policy.RETRY,
        max_retries=2,
        backoff=Backoff(initial=0.01, maximum=0.01, jitter=0.0),
        then=Policy.DEAD_LETTER,
    )

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    @handle(Told)
    async def with_envelope(self, event: Told, envelope: Envelope) -> None:
        self.seen.append(envelope.id)
        raise BoomError(event.n)


class DeadLettersAtOnce(Actor):
    supervision = Supervision(Policy.DEAD_LETTER)

    @handle(Told)
    async def event_only(self, event: Told) -> None:
        raise BoomError(event.n)


@pytest.mark.parametrize("actor", [RetriesThenDeadLetters, DeadLettersAtOnce])
async def test_a_told_message_keeps_one_envelope_id_everywhere(
    actor: type[Actor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="actorbus")
    seen: list[str] = []
    async with ActorSystem("sup") as system:
        ref = await (
            system.spawn(actor, seen) if actor is RetriesThenDeadLetters else system.spawn(actor)
        )
        await ref.tell(Told(1))
        await system.drain()
        (letter,) = [d for d in system.dead_letters if d.actor == ref.name]
    logged = {r.event_id for r in caplog.records if getattr(r, "actor", None) == ref.name}
    ids = {letter.envelope.id, *seen, *logged}
    assert len(ids) == 1, ids
    assert logged
