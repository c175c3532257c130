"""`ActorSystem` and `ActorRef`: spawning, life cycle, ask/tell, request, drain, watch, stats.

SPEC §1 (one task group, one message at a time in FIFO order), §2 "The system" and §3.
Supervision policies are tested in test_supervision.py; here only the default
(LOG_AND_CONTINUE) and STOP, as the reason a watched actor stops, appear.
"""

import threading
import time
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint

from actorbus import (
    Actor,
    ActorbusError,
    ActorRef,
    ActorStats,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    Envelope,
    Policy,
    Supervision,
    SystemStarted,
    SystemStopping,
    Terminated,
    event,
    handle,
)

pytestmark = pytest.mark.anyio


@event("system.ping")
class Ping:
    n: int


@event("system.pong")
class Pong:
    n: int


@event("system.get_count")
class GetCount:
    pass


@event("system.fail")
class Fail:
    message: str


class StartFailed(Exception):
    pass


class StopFailed(Exception):
    pass


class Counter(Actor):
    """Counts pings; answers GetCount; raises on Fail."""

    def __init__(self, start: int = 0, *, step: int = 1) -> None:
        self.count = start
        self.step = step

    @handle(Ping)
    async def ping(self, ping: Ping) -> int:
        self.count += self.step
        return ping.n * 10

    @handle(GetCount)
    def get_count(self, query: GetCount) -> int:  # a sync handler
        return self.count

    @handle(Fail)
    async def fail(self, command: Fail) -> None:
        raise ValueError(command.message)


class Recorder(Actor):
    """Records everything it is given, with hooks into a shared log."""

    def __init__(self, log: list[Any], label: str = "") -> None:
        self.log = log
        self.label = label or type(self).__name__

    async def on_start(self) -> None:
        self.log.append(("on_start", self.label))

    async def on_stop(self) -> None:
        self.log.append(("on_stop", self.label))

    @handle(Ping)
    async def ping(self, ping: Ping) -> None:
        self.log.append(("ping", self.label, ping.n))


def system(name: str = "system", **kwargs: Any) -> ActorSystem:
    kwargs.setdefault("shutdown_timeout", 2.0)
    return ActorSystem(name, **kwargs)


# -- construction -----------------------------------------------------------------------------


def test_default_name() -> None:
    assert ActorSystem().name == "actorbus"


async def test_body_runs_with_the_system() -> None:
    async with system("shop") as sys:
        assert isinstance(sys, ActorSystem)
        assert sys.name == "shop"
        envelope = await sys.publish(Ping(1))
    assert envelope.source == "shop"


# -- spawn and names --------------------------------------------------------------------------


async def test_spawn_passes_constructor_arguments() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, 100, step=5, name="counter")
        await ref.tell(Ping(1))
        with anyio.fail_after(5):
            assert await ref.ask(GetCount()) == 105
    assert ref.name == "counter"


async def test_names_are_unique_and_derived_from_the_class() -> None:
    async with system() as sys:
        first = await sys.spawn(Counter)
        second = await sys.spawn(Counter)
        third = await sys.spawn(Counter)
        # The actors guide: "Inventory", then "Inventory-2", "Inventory-3".
        assert [first.name, second.name, third.name] == ["Counter", "Counter-2", "Counter-3"]
        for ref in (first, second):
            assert sys.actor(ref.name) == ref
        # Each name leads to its own actor.
        await first.tell(Ping(1))
        with anyio.fail_after(5):
            assert await first.ask(GetCount()) == 1
            assert await second.ask(GetCount()) == 0


async def test_duplicate_name_is_a_value_error() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, name="counter")
        with pytest.raises(ValueError, match="counter"):
            await sys.spawn(Counter, 50, name="counter")
        with anyio.fail_after(5):
            assert await ref.ask(GetCount()) == 0  # the first one is untouched
        assert sys.actor("counter") == ref


async def test_derived_name_never_takes_an_explicit_one() -> None:
    async with system() as sys:
        derived = await sys.spawn(Counter)
        with pytest.raises(ValueError, match="already"):
            await sys.spawn(Counter, name=derived.name)
        explicit = await sys.spawn(Counter, name="Counter-2")
        another = await sys.spawn(Counter)
        assert len({derived.name, explicit.name, another.name}) == 3


async def test_a_stopped_actor_name_is_free_again() -> None:
    async with system() as sys:
        old = await sys.spawn(Counter, 1, name="counter")
        await old.stop()
        new = await sys.spawn(Counter, 2, name="counter")
        with anyio.fail_after(5):
            assert await new.ask(GetCount()) == 2
        assert sys.actor("counter") == new


async def test_spawn_of_something_that_is_not_an_actor_is_a_type_error() -> None:
    class NotAnActor:
        pass

    async with system() as sys:
        with pytest.raises(TypeError):
            await sys.spawn(NotAnActor)  # type: ignore[arg-type]


async def test_actor_knows_its_name_system_and_ref() -> None:
    seen: list[tuple[str, object, object]] = []

    class Self(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            seen.append((self.name, self.system, self.ref))

    async with system() as sys:
        ref = await sys.spawn(Self, name="me")
        await ref.tell(Ping(1))
        await sys.drain()
    assert seen == [("me", sys, ref)]


async def test_name_system_and_ref_are_available_in_init() -> None:
    seen: list[tuple[str, object, object]] = []

    class Early(Actor):
        def __init__(self) -> None:
            seen.append((self.name, self.system, self.ref))

    async with system() as sys:
        ref = await sys.spawn(Early, name="early")
    assert seen == [("early", sys, ref)]


async def test_actor_by_name() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, name="counter")
        found = sys.actor("counter")
        assert found == ref
        assert found.name == "counter"
        await found.tell(Ping(1))
        with anyio.fail_after(5):
            assert await ref.ask(GetCount()) == 1


async def test_unknown_actor_name_is_a_lookup_error() -> None:
    async with system() as sys:
        await sys.spawn(Counter, name="counter")
        with pytest.raises(LookupError, match="nobody"):
            sys.actor("nobody")


async def test_stopped_actor_is_no_longer_found_by_name() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, name="counter")
        await ref.stop()
        with pytest.raises(LookupError):
            sys.actor("counter")


def test_actor_supervision_attribute_must_be_a_supervision() -> None:
    with pytest.raises(TypeError, match="Supervision"):

        class Wrong(Actor):
            supervision = Policy.RESTART  # type: ignore[assignment]


# -- on_start ---------------------------------------------------------------------------------


async def test_spawn_returns_once_on_start_has_finished() -> None:
    class Slow(Actor):
        started = False

        async def on_start(self) -> None:
            for _ in range(10):
                await checkpoint()
            Slow.started = True

    async with system() as sys:
        await sys.spawn(Slow)
        assert Slow.started


async def test_on_start_failure_is_raised_by_spawn_and_the_actor_does_not_run() -> None:
    error = StartFailed("no database")
    log: list[Any] = []

    class Broken(Recorder):
        async def on_start(self) -> None:
            raise error

    async with system() as sys:
        with pytest.raises(StartFailed) as caught:
            await sys.spawn(Broken, log, name="broken")
        assert caught.value is error
        assert ("on_stop", "Recorder") not in log  # never started: on_stop is not called
        with pytest.raises(LookupError):
            sys.actor("broken")
        await sys.publish(Ping(1))  # not subscribed
        await sys.drain()
        assert "broken" not in sys.stats()
        # The name is free again and the system is fine.
        ref = await sys.spawn(Recorder, log, name="broken")
        await ref.tell(Ping(2))
        await sys.drain()
    assert ("ping", "Recorder", 1) not in log
    assert ("ping", "Recorder", 2) in log


# -- start-up ---------------------------------------------------------------------------------


async def test_startup_actors_are_spawned_in_order_before_the_body() -> None:
    log: list[str] = []

    class First(Actor):
        async def on_start(self) -> None:
            await checkpoint()
            log.append("first")

    class Second(Actor):
        async def on_start(self) -> None:
            log.append("second")

        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            log.append(f"ping {ping.n}")

    async with system(actors=[First, Second]) as sys:
        assert log == ["first", "second"]
        assert len(sys.stats()) == 2
        await sys.publish(Ping(1))
        await sys.drain()
    assert log[-1] == "ping 1"


async def test_startup_is_all_or_nothing() -> None:
    log: list[str] = []
    body_ran = False

    class First(Actor):
        async def on_start(self) -> None:
            log.append("first started")

        async def on_stop(self) -> None:
            log.append("first stopped")

    class Second(Actor):
        async def on_start(self) -> None:
            log.append("second started")

        async def on_stop(self) -> None:
            log.append("second stopped")

    class Broken(Actor):
        async def on_start(self) -> None:
            raise StartFailed("cannot start")

        async def on_stop(self) -> None:
            log.append("broken stopped")

    class Never(Actor):
        def __init__(self) -> None:
            log.append("never constructed")

    with anyio.fail_after(5), pytest.raises(StartFailed, match="cannot start"):
        async with system(actors=[First, Second, Broken, Never]):
            body_ran = True

    assert not body_ran
    assert log[:2] == ["first started", "second started"]
    assert set(log[2:]) == {"first stopped", "second stopped"}
    assert "never constructed" not in log


async def test_startup_failure_is_raised_as_itself_not_in_a_group() -> None:
    class Broken(Actor):
        async def on_start(self) -> None:
            raise StartFailed("cannot start")

    with anyio.fail_after(5):
        try:
            async with system(actors=[Broken]):
                pass
        except StartFailed:
            pass  # what `except` of the original type catches


async def test_system_started_reaches_actors_once_every_startup_actor_runs() -> None:
    log: list[Any] = []

    class Early(Actor):
        @handle(SystemStarted)
        async def started(self, event: SystemStarted) -> None:
            log.append(("early got", event.system))

    class Late(Actor):
        async def on_start(self) -> None:
            await checkpoint()
            log.append("late started")

        @handle(SystemStarted)
        async def started(self, event: SystemStarted) -> None:
            log.append(("late got", event.system))

    async with system("shop", actors=[Early, Late]) as sys:
        await sys.drain()
    assert log[0] == "late started"
    assert sorted(log[1:]) == [("early got", "shop"), ("late got", "shop")]


# -- shutdown ---------------------------------------------------------------------------------


async def test_leaving_drains_the_mailboxes() -> None:
    handled: list[int] = []

    class Slow(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            for _ in range(3):
                await checkpoint()
            handled.append(ping.n)

    async with system() as sys:
        ref = await sys.spawn(Slow)
        for n in range(20):
            await ref.tell(Ping(n))
        assert ref.stats.depth > 0  # still waiting when we leave
    assert handled == list(range(20))


async def test_leaving_stops_every_actor_in_reverse_start_order() -> None:
    log: list[Any] = []
    async with system() as sys:
        refs = [await sys.spawn(Recorder, log, label) for label in ("a", "b", "c")]
    assert [entry for entry in log if entry[0] == "on_stop"] == [
        ("on_stop", "c"),
        ("on_stop", "b"),
        ("on_stop", "a"),
    ]
    assert all(ref.stopped for ref in refs)


async def test_no_actor_takes_messages_after_the_system_stopped() -> None:
    log: list[Any] = []
    async with system() as sys:
        ref = await sys.spawn(Recorder, log)
    with pytest.raises(ActorStopped):
        await ref.tell(Ping(1))


async def test_every_on_stop_runs_and_failures_are_raised_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    first_error, second_error = StopFailed("first"), ValueError("second")

    class Failing(Actor):
        def __init__(self, error: Exception) -> None:
            self.error = error

        async def on_stop(self) -> None:
            log.append(str(self.error))
            raise self.error

    class Quiet(Actor):
        async def on_stop(self) -> None:
            log.append("quiet")

    with anyio.fail_after(5), pytest.raises(ExceptionGroup) as caught:
        async with system() as sys:
            await sys.spawn(Failing, first_error)
            await sys.spawn(Quiet)
            await sys.spawn(Failing, second_error)

    assert sorted(log) == ["first", "quiet", "second"]
    leaves = caught.value.exceptions
    assert first_error in leaves
    assert second_error in leaves
    assert caught.group_contains(StopFailed)
    assert caught.group_contains(ValueError, match="second")
    # Each failure is also logged when it happens.
    logged = [r for r in caplog.records if r.name.startswith("actorbus") and r.exc_info]
    assert {r.exc_info[1] for r in logged if r.exc_info} >= {first_error, second_error}


async def test_a_single_on_stop_failure_is_raised_as_an_exception_group() -> None:
    """One shape for callers: `except* StopFailed` works whether one or several failed."""
    error = StopFailed("only one")

    class Failing(Actor):
        async def on_stop(self) -> None:
            raise error

    with anyio.fail_after(5), pytest.raises(ExceptionGroup) as caught:
        async with system() as sys:
            await sys.spawn(Failing)
    assert caught.value.exceptions == (error,)


async def test_on_stop_failure_does_not_hide_the_body_exception() -> None:
    class Failing(Actor):
        async def on_stop(self) -> None:
            raise StopFailed("on_stop")

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as caught:
        async with system() as sys:
            await sys.spawn(Failing)
            raise KeyError("body")
    assert caught.group_contains(KeyError)
    assert caught.group_contains(StopFailed)


async def test_body_exception_propagates_and_actors_are_stopped() -> None:
    log: list[Any] = []
    with anyio.fail_after(5), pytest.raises(KeyError, match="from the body"):
        async with system() as sys:
            ref = await sys.spawn(Recorder, log, "r")
            raise KeyError("from the body")
    assert ("on_stop", "r") in log
    assert ref.stopped


async def test_system_stopping_is_received_when_shutdown_begins() -> None:
    log: list[Any] = []

    class Listener(Recorder):
        @handle(SystemStopping)
        async def stopping(self, event: SystemStopping) -> None:
            self.log.append(("stopping", event.system))

    async with system("shop") as sys:
        await sys.spawn(Listener, log, "l")
        await sys.drain()
        assert not any(entry[0] == "stopping" for entry in log)
    assert log.index(("stopping", "shop")) < log.index(("on_stop", "l"))


async def test_shutdown_timeout_cancels_a_handler_that_does_not_finish() -> None:
    log: list[Any] = []
    entered = anyio.Event()

    class Stuck(Recorder):
        @handle(Pong)
        async def stuck(self, pong: Pong) -> None:
            entered.set()
            await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with system(shutdown_timeout=0.2) as sys:
            ref = await sys.spawn(Stuck, log, "stuck")
            await ref.tell(Pong(1))
            await entered.wait()
    assert ref.stopped
    assert ("on_stop", "stuck") in log


# -- tell and ask -------------------------------------------------------------------------------


async def test_ask_returns_the_handler_reply() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter)
        with anyio.fail_after(5):
            assert await ref.ask(Ping(4)) == 40
            assert await ref.ask(GetCount()) == 1  # sync handler


async def test_ask_timeout_raises_ask_timeout_which_is_a_timeout_error() -> None:
    entered, opened = anyio.Event(), anyio.Event()

    class Slow(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> int:
            entered.set()
            await opened.wait()
            return ping.n

    async with system() as sys:
        ref = await sys.spawn(Slow)
        with anyio.fail_after(5), pytest.raises(AskTimeout, match=ref.name) as caught:
            await ref.ask(Ping(1), timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, ActorbusError)
        assert entered.is_set()
        opened.set()
        with anyio.fail_after(5):
            assert await ref.ask(Ping(2)) == 2  # the actor is fine


async def test_ask_timeout_can_be_caught_as_timeout_error() -> None:
    class Never(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            await anyio.sleep_forever()

    async with system(shutdown_timeout=0.1) as sys:
        ref = await sys.spawn(Never)
        with anyio.fail_after(5), pytest.raises(TimeoutError):
            await ref.ask(Ping(1), timeout=0.01)


class SyncFail(Counter):
    @handle(Fail)
    def fail(self, command: Fail) -> None:  # type: ignore[override]
        raise LookupError(command.message)


@pytest.mark.parametrize(
    ("actor", "error"), [(Counter, ValueError), (SyncFail, LookupError)], ids=["async", "sync"]
)
async def test_ask_raises_the_handler_exception(actor: type[Actor], error: type[Exception]) -> None:
    async with system() as sys:
        ref = await sys.spawn(actor)
        with anyio.fail_after(5), pytest.raises(error, match="bad input"):
            await ref.ask(Fail("bad input"))
        with anyio.fail_after(5):
            assert await ref.ask(Ping(1)) == 10  # default policy: the actor keeps going


async def test_tell_does_not_wait_for_the_handler() -> None:
    entered, opened = anyio.Event(), anyio.Event()

    class Slow(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            entered.set()
            await opened.wait()

    async with system() as sys:
        ref = await sys.spawn(Slow)
        with anyio.fail_after(5):
            await ref.tell(Ping(1))
            await ref.tell(Ping(2))  # returns while the first is still being handled
            await entered.wait()
        assert ref.stats.depth == 1
        opened.set()
        await sys.drain()
        assert ref.stats.processed == 2


async def test_tell_and_ask_on_a_stopped_actor_raise_actor_stopped() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, name="counter")
        await ref.stop()
        assert ref.stopped
        with pytest.raises(ActorStopped, match="counter"):
            await ref.tell(Ping(1))
        with anyio.fail_after(5), pytest.raises(ActorStopped):
            await ref.ask(Ping(1))
    assert issubclass(ActorStopped, ActorbusError)


async def test_tell_of_a_message_no_handler_accepts_is_a_type_error() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, name="counter")
        with pytest.raises(TypeError, match="counter"):
            await ref.tell(Pong(1))
        with anyio.fail_after(5), pytest.raises(TypeError):
            await ref.ask("not an event")
        assert ref.stats.depth == 0
        await sys.drain()
        assert ref.stats.processed == 0


async def test_tell_of_an_unregistered_object_to_a_class_handler() -> None:
    class Note:
        def __init__(self, text: str) -> None:
            self.text = text

    seen: list[str] = []

    class Notes(Actor):
        @handle(Note)
        async def note(self, note: Note) -> str:
            seen.append(note.text)
            return note.text.upper()

    async with system() as sys:
        ref = await sys.spawn(Notes)
        await ref.tell(Note("a"))
        with anyio.fail_after(5):
            assert await ref.ask(Note("b")) == "B"
    assert seen == ["a", "b"]


async def test_stop_runs_on_stop_and_waits() -> None:
    log: list[Any] = []
    async with system() as sys:
        ref = await sys.spawn(Recorder, log, "r")
        await ref.stop()
        assert log[-1] == ("on_stop", "r")
        assert ref.stopped
        assert ref.name not in sys.stats()


async def test_stop_lets_the_current_message_finish() -> None:
    entered, opened = anyio.Event(), anyio.Event()
    finished: list[int] = []

    class Slow(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            entered.set()
            await opened.wait()
            finished.append(ping.n)

    async with system() as sys:
        ref = await sys.spawn(Slow)
        await ref.tell(Ping(1))
        with anyio.fail_after(5):
            await entered.wait()
            async with anyio.create_task_group() as tg:
                tg.start_soon(ref.stop)
                await anyio.wait_all_tasks_blocked()
                assert not ref.stopped
                opened.set()
    assert finished == [1]
    assert ref.stopped


# -- request ----------------------------------------------------------------------------------


async def test_request_asks_whoever_handles_the_event() -> None:
    async with system() as sys:
        await sys.spawn(Counter, 7)
        with anyio.fail_after(5):
            assert await sys.request(GetCount()) == 7
            assert await sys.request(Ping(3)) == 30


async def test_request_is_answered_by_one_handler_the_first_subscriber() -> None:
    async with system() as sys:
        first = await sys.spawn(Counter)
        second = await sys.spawn(Counter)
        with anyio.fail_after(5):
            assert await sys.request(Ping(1)) == 10
            counts = [await first.ask(GetCount()), await second.ask(GetCount())]
    assert counts == [1, 0]


async def test_request_raises_the_handler_exception() -> None:
    async with system() as sys:
        await sys.spawn(Counter)
        with anyio.fail_after(5), pytest.raises(ValueError, match="nope"):
            await sys.request(Fail("nope"))


async def test_request_without_handler_is_an_ask_timeout() -> None:
    async with system() as sys:
        await sys.spawn(Counter)
        # At once (the actors guide), not after the timeout.
        with anyio.fail_after(5), pytest.raises(AskTimeout):
            await sys.request(Pong(1), timeout=60)


async def test_request_that_is_not_answered_in_time_is_an_ask_timeout() -> None:
    class Never(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            await anyio.sleep_forever()

    async with system(shutdown_timeout=0.1) as sys:
        await sys.spawn(Never)
        with anyio.fail_after(5), pytest.raises(AskTimeout):
            await sys.request(Ping(1), timeout=0.05)


# -- drain ------------------------------------------------------------------------------------


async def test_drain_waits_for_every_mailbox_and_handler() -> None:
    async with system() as sys:
        refs = [await sys.spawn(Counter) for _ in range(3)]
        for n in range(10):
            await sys.publish(Ping(n))
        with anyio.fail_after(5):
            await sys.drain()
        for ref in refs:
            stats = ref.stats
            assert (stats.processed, stats.depth) == (10, 0)


@pytest.mark.parametrize("wait", ["drain", "leaving"])
async def test_drain_and_leaving_wait_for_messages_published_by_handlers(wait: str) -> None:
    got: list[int] = []

    class Relay(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            await checkpoint()
            await self.publish(Pong(ping.n))

    class Sink(Actor):
        @handle(Pong)
        async def pong(self, pong: Pong) -> None:
            for _ in range(3):
                await checkpoint()
            got.append(pong.n)

    async with system() as sys:
        await sys.spawn(Relay)
        await sys.spawn(Sink)
        for n in range(10):
            await sys.publish(Ping(n))
        if wait == "drain":
            with anyio.fail_after(5):
                await sys.drain()
            assert got == list(range(10))
    assert got == list(range(10))


async def test_drain_returns_at_once_when_idle() -> None:
    async with system() as sys:
        await sys.spawn(Counter)
        with anyio.fail_after(5):
            await sys.drain()


# -- watch ------------------------------------------------------------------------------------


class Watcher(Actor):
    def __init__(self, target: ActorRef, seen: list[Terminated], done: anyio.Event) -> None:
        self.target = target
        self.seen = seen
        self.done = done

    async def on_start(self) -> None:
        await self.watch(self.target)

    @handle(Terminated)
    async def terminated(self, notice: Terminated) -> None:
        self.seen.append(notice)
        self.done.set()


@pytest.mark.parametrize(
    "stopped_first", [False, True], ids=["while watched", "before it is watched: at once"]
)
async def test_watcher_receives_terminated_on_a_normal_stop(stopped_first: bool) -> None:
    seen: list[Terminated] = []
    done = anyio.Event()
    async with system() as sys:
        target = await sys.spawn(Counter, name="target")
        if stopped_first:
            await target.stop()
        await sys.spawn(Watcher, target, seen, done)
        if not stopped_first:
            await target.stop()
        with anyio.fail_after(5):
            await done.wait()
    assert seen == [Terminated("target", None)]


async def test_watcher_receives_terminated_with_the_reason_of_a_stop_policy() -> None:
    seen: list[Terminated] = []
    done = anyio.Event()
    async with system() as sys:
        target = await sys.spawn(Counter, name="target", supervision=Supervision(Policy.STOP))
        await sys.spawn(Watcher, target, seen, done)
        await target.tell(Fail("fatal"))
        with anyio.fail_after(5):
            await done.wait()
            notice = await target.wait_stopped()
    [terminated] = seen
    assert terminated.name == "target"
    assert isinstance(terminated.reason, ValueError)
    assert str(terminated.reason) == "fatal"
    assert notice.name == "target"
    assert notice.reason is terminated.reason


async def test_terminated_goes_ahead_of_waiting_messages() -> None:
    order: list[object] = []
    entered, opened = anyio.Event(), anyio.Event()

    class Busy(Actor):
        def __init__(self, target: ActorRef) -> None:
            self.target = target

        async def on_start(self) -> None:
            await self.watch(self.target)

        @handle(Ping)
        async def ping(self, ping: Ping) -> None:
            order.append(ping.n)
            if ping.n == 0:
                entered.set()
                await opened.wait()

        @handle(Terminated)
        async def terminated(self, notice: Terminated) -> None:
            order.append(notice.name)

    async with system() as sys:
        target = await sys.spawn(Counter, name="target")
        busy = await sys.spawn(Busy, target)
        await busy.tell(Ping(0))
        with anyio.fail_after(5):
            await entered.wait()
        await busy.tell(Ping(1))
        await busy.tell(Ping(2))
        await target.stop()
        opened.set()
        await sys.drain()
    assert order == [0, "target", 1, 2]


async def test_wait_stopped_from_anywhere() -> None:
    results: list[Terminated] = []
    async with system() as sys:
        target = await sys.spawn(Counter, name="target")

        async def waiter() -> None:
            results.append(await target.wait_stopped())

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                assert results == []
                await target.stop()
        # Once stopped, it returns at once.
        with anyio.fail_after(5):
            again = await target.wait_stopped()
    assert results == [Terminated("target", None)]
    assert again == Terminated("target", None)


async def test_wait_stopped_returns_when_the_system_stops_the_actor() -> None:
    results: list[Terminated] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, system() as sys:
            target = await sys.spawn(Counter, name="target")

            async def waiter() -> None:
                results.append(await target.wait_stopped())

            tg.start_soon(waiter)
    assert [r.name for r in results] == ["target"]


# -- stats ------------------------------------------------------------------------------------


async def test_ref_stats_counts_what_happened() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter, name="counter")
        for message in (Ping(1), Fail("x"), Ping(2), Fail("y"), GetCount()):
            await ref.tell(message)
        await sys.drain()
        stats = ref.stats
    assert isinstance(stats, ActorStats)
    assert stats.name == "counter"
    assert stats.processed == 5
    assert stats.failed == 2
    assert stats.restarts == 0
    assert stats.dropped == 0
    assert stats.depth == 0


async def test_ref_stats_is_a_frozen_snapshot() -> None:
    async with system() as sys:
        ref = await sys.spawn(Counter)
        before = ref.stats
        await ref.tell(Ping(1))
        await sys.drain()
        after = ref.stats
    assert before.processed == 0
    assert after.processed == 1
    with pytest.raises(AttributeError):
        after.processed = 5  # type: ignore[misc]


async def test_system_stats_has_every_running_actor() -> None:
    async with system() as sys:
        counter = await sys.spawn(Counter, name="counter")
        await sys.spawn(Counter, name="idle")
        await counter.tell(Ping(1))
        await counter.tell(Fail("x"))
        await sys.drain()
        stats = sys.stats()
        await counter.stop()
        after_stop = sys.stats()
    assert set(stats) == {"counter", "idle"}
    assert all(isinstance(s, ActorStats) and s.name == name for name, s in stats.items())
    assert (stats["counter"].processed, stats["counter"].failed) == (2, 1)
    assert (stats["idle"].processed, stats["idle"].failed) == (0, 0)
    assert set(after_stop) == {"idle"}


class Slow(Actor):
    @handle()
    async def on(self, ping: Ping) -> None:
        time.sleep(0.01 if ping.n % 60 == 1 else 0)  # noqa: ASYNC251 - a measurable handler


@pytest.mark.parametrize("how", ["tell", "publish"])
async def test_handling_time_and_percentiles_measure_the_handlers(how: str) -> None:
    # Every message is timed until 256 are sampled, then one in eight: p99 sees the five
    # slow messages among 300, and handling_time adds up the busy stretches of the loop.
    async with system() as sys:
        ref = await sys.spawn(Slow)
        for n in range(300):
            if how == "tell":
                await ref.tell(Ping(n))
            else:
                await sys.publish(Ping(n))
        await sys.drain()
        stats = ref.stats
    assert stats.processed == 300
    assert stats.handling_time >= 0.05
    assert stats.handling_p99 >= 0.01
    assert stats.handling_p50 < 0.01


# -- one message at a time, in order ----------------------------------------------------------


class Serial(Actor):
    """Yields inside its handler: another message would overlap if the loop allowed it."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.active = 0

    @handle("system.serial")
    async def step(self, envelope: Envelope) -> None:
        self.active += 1
        data = envelope.data
        self.log.append(("start", data["sender"], data["i"], self.active))
        for _ in range(3):
            await checkpoint()
        self.log.append(("end", data["sender"], data["i"]))
        self.active -= 1


async def test_one_message_at_a_time_in_fifo_order() -> None:
    log: list[Any] = []
    async with system() as sys:
        ref = await sys.spawn(Serial, log)
        for i in range(30):
            await ref.tell(Envelope(type="system.serial", data={"sender": "s", "i": i}))
        await sys.drain()
    starts = [entry for entry in log if entry[0] == "start"]
    assert [entry[2] for entry in starts] == list(range(30))
    assert all(entry[3] == 1 for entry in starts)
    # start i, end i, start i + 1, ...: no interleaving
    for index in range(0, len(log), 2):
        assert log[index][0] == "start"
        assert log[index + 1][:3] == ("end", log[index][1], log[index][2])


async def test_no_overlap_and_per_sender_order_with_concurrent_publishers() -> None:
    log: list[Any] = []
    async with system() as sys:
        await sys.spawn(Serial, log)

        async def publisher(sender: str) -> None:
            for i in range(20):
                await sys.publish(Envelope(type="system.serial", data={"sender": sender, "i": i}))
                await checkpoint()

        async with anyio.create_task_group() as tg:
            for sender in ("a", "b", "c"):
                tg.start_soon(publisher, sender)
        await sys.drain()
    starts = [entry for entry in log if entry[0] == "start"]
    assert len(starts) == 60
    assert all(entry[3] == 1 for entry in starts)
    for sender in ("a", "b", "c"):
        assert [entry[2] for entry in starts if entry[1] == sender] == list(range(20))
    for index in range(0, len(log), 2):
        assert log[index + 1][:3] == ("end", log[index][1], log[index][2])


async def test_state_needs_no_lock() -> None:
    class Account(Actor):
        def __init__(self) -> None:
            self.balance = 0

        @handle(Ping)
        async def deposit(self, ping: Ping) -> None:
            current = self.balance
            await checkpoint()  # another handler call here would lose an update
            self.balance = current + ping.n

        @handle(GetCount)
        async def get(self, query: GetCount) -> int:
            return self.balance

    async with system() as sys:
        ref = await sys.spawn(Account)
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                for n in range(1, 11):
                    tg.start_soon(ref.tell, Ping(n))
        with anyio.fail_after(5):
            assert await ref.ask(GetCount()) == 10 * 55


# -- sync handlers ----------------------------------------------------------------------------


async def test_blocking_sync_handler_does_not_stop_other_actors() -> None:
    entered = threading.Event()
    other_progressed = threading.Event()
    results: list[bool] = []

    class Blocking(Actor):
        @handle(Ping)
        def block(self, ping: Ping) -> None:
            entered.set()
            # A blocking call (like time.sleep) that ends early once the other actor ran.
            results.append(other_progressed.wait(timeout=5))

    class Other(Actor):
        @handle(Pong)
        async def pong(self, pong: Pong) -> None:
            other_progressed.set()

    async with system() as sys:
        await sys.spawn(Blocking)
        await sys.spawn(Other)
        await sys.publish(Ping(1))
        with anyio.fail_after(10):
            assert await anyio.to_thread.run_sync(entered.wait, 5)
            await sys.publish(Pong(1))
            await sys.drain()
    assert results == [True]


async def test_sync_handler_runs_in_a_worker_thread_and_inline_on_the_loop() -> None:
    threads: dict[str, int] = {}

    class Threads(Actor):
        @handle(Ping)
        def default(self, ping: Ping) -> None:
            threads["default"] = threading.get_ident()

        @handle(Ping, inline=True)
        def inline(self, ping: Ping) -> None:
            threads["inline"] = threading.get_ident()

    async with system() as sys:
        await sys.spawn(Threads)
        await sys.publish(Ping(1))
        await sys.drain()
    loop_thread = threading.get_ident()
    assert threads["inline"] == loop_thread
    assert threads["default"] != loop_thread


async def test_inline_sync_handler_replies_to_ask() -> None:
    class Inline(Actor):
        @handle(Ping, inline=True)
        def ping(self, ping: Ping) -> int:
            return ping.n + 1

    async with system() as sys:
        ref = await sys.spawn(Inline)
        with anyio.fail_after(5):
            assert await ref.ask(Ping(1)) == 2


# -- stopping with messages waiting -----------------------------------------------------------


async def test_stop_dead_letters_waiting_messages_and_fails_waiting_askers() -> None:
    entered, opened = anyio.Event(), anyio.Event()
    handled: list[int] = []
    answers: list[BaseException] = []

    class Slow(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> int:
            handled.append(ping.n)
            if ping.n == 0:
                entered.set()
                await opened.wait()
            return ping.n

    async with system() as sys:
        ref = await sys.spawn(Slow, name="slow")
        await ref.tell(Ping(0))
        with anyio.fail_after(5):
            await entered.wait()
        await ref.tell(Ping(1))

        async def asker() -> None:
            try:
                await ref.ask(Ping(2), timeout=30)
            except Exception as exc:
                answers.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(asker)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(ref.stop)
                await anyio.wait_all_tasks_blocked()
                opened.set()
    assert handled == [0]
    assert [type(a) for a in answers] == [ActorStopped]
    assert sorted(letter.envelope.data.n for letter in sys.dead_letters) == [1, 2]
    assert all(letter.actor == "slow" for letter in sys.dead_letters)
    assert all(isinstance(letter.error, ActorStopped) for letter in sys.dead_letters)


async def test_startup_actors_get_default_names_from_their_classes() -> None:
    class Inventory(Actor):
        pass

    class Billing(Actor):
        pass

    async with system(actors=[Inventory, Billing]) as sys:
        names = [name.lower() for name in sys.stats()]
    assert len(names) == 2
    assert any("inventory" in name for name in names)
    assert any("billing" in name for name in names)


async def test_actor_can_stop_itself_from_a_handler() -> None:
    handled: list[int] = []

    class Quitter(Actor):
        @handle(Ping)
        async def ping(self, ping: Ping) -> str:
            handled.append(ping.n)
            if ping.n == 1:
                await self.ref.stop()  # returns at once: the loop ends after this message
                return "bye"
            return "ok"

    async with system() as sys:
        ref = await sys.spawn(Quitter, name="quitter")
        await ref.tell(Ping(0))
        with anyio.fail_after(5):
            assert await ref.ask(Ping(1)) == "bye"
            notice = await ref.wait_stopped()
        assert notice == Terminated("quitter", None)
        with pytest.raises(ActorStopped):
            await ref.tell(Ping(2))
    assert handled == [0, 1]


async def test_constructor_failure_is_raised_by_spawn() -> None:
    class Picky(Actor):
        def __init__(self, size: int) -> None:
            if size < 0:
                raise ValueError("size must be >= 0")

    async with system() as sys:
        with pytest.raises(ValueError, match="size"):
            await sys.spawn(Picky, -1, name="picky")
        with pytest.raises(LookupError):
            sys.actor("picky")
        ref = await sys.spawn(Picky, 1, name="picky")
        assert ref.name == "picky"


async def test_on_stop_errors_of_actors_stopped_earlier_are_not_raised_at_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class FailsToStop(Actor):
        async def on_stop(self) -> None:
            raise RuntimeError("stop failed")

    async with ActorSystem() as sys:
        ref = await sys.spawn(FailsToStop)
        await ref.stop()  # logged now, with its traceback
    assert any("on_stop of actor" in r.getMessage() for r in caplog.records)


def test_routers_must_be_routers() -> None:
    @handle("x.*")
    async def loose(envelope: Envelope) -> None:
        pass

    with pytest.raises(TypeError, match="routers= takes Router objects"):
        ActorSystem(routers=[loose])  # type: ignore[list-item]


# -- delivery trackers ----------------------------------------------------------------------


async def test_a_tracker_wakes_its_waiter_when_the_last_message_finished() -> None:
    from actorbus._message import Outcome, Tracker  # noqa: PLC0415 - the transports' view

    tracker = Tracker(2)
    woke: list[int] = []

    async def waiter() -> None:
        await tracker.wait()
        woke.append(tracker.pending)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        tracker.finish()
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        tracker.finish(handled=False)
    assert woke == [0]
    assert tracker.outcome is Outcome.NOT_HANDLED


async def test_waiting_for_a_finished_tracker_is_still_a_checkpoint() -> None:
    from actorbus._message import Tracker  # noqa: PLC0415

    done = Tracker(0)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await done.wait()
    assert scope.cancelled_caught
    finished = Tracker(1)
    finished.finish()
    with anyio.fail_after(1):
        await finished.wait()
