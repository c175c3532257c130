"""The reader's hand-over of delivered entries to the acker (no Redis server needed).

Entries whose handlers already finished are settled by the reader itself, without waking
the acker task; the others go to the acker. A cancellation arriving while the reader lets
the actors run still leaves every delivered entry with the acker before it is raised.
"""

from __future__ import annotations

import anyio
import pytest

from actorbus import ActorSystem
from actorbus._message import Tracker
from actorbus.redis import RedisTransport
from actorbus.redis._acker import Acker, Entry, _Batch
from actorbus.redis._config import Keys
from actorbus.redis._consumer import GroupConsumer
from actorbus.redis._context import Context
from actorbus.redis._intake import Intake

pytestmark = pytest.mark.anyio


@pytest.fixture
def context() -> Context:
    transport = RedisTransport("redis://127.0.0.1:1/0")  # never connected
    return Context(transport.url, Keys("actorbus", "app"), transport.settings, "w1")


def entry(id_: bytes, *, finished: bool = True, handled: bool = True) -> Entry:
    delivery = Tracker(1)
    if finished:
        delivery.finish(handled=handled)
    return Entry(id_, b"{}", None, delivery, 1)


async def test_finished_entries_are_settled_at_once_and_the_rest_returned(
    context: Context,
) -> None:
    inflight = dict.fromkeys([b"1-0", b"2-0", b"3-0", b"4-0"], 0.0)
    acker = Acker(context, "g:work", inflight)
    waiting = entry(b"2-0", finished=False)
    items = [entry(b"1-0"), waiting, entry(b"3-0", handled=False), entry(b"4-0")]
    acker._batch = batch = _Batch()

    assert acker.settle_finished(items) == [waiting]
    assert batch.acks == [b"1-0", b"4-0"]  # acknowledged with the next XACK
    assert b"3-0" not in inflight  # not handled: left pending, to be claimed again
    assert batch.ready.is_set()  # the sending task is told


async def test_nothing_is_settled_before_the_acker_runs_or_after_it_ended(
    context: Context,
) -> None:
    acker = Acker(context, "g:work", {})
    items = [entry(b"1-0")]
    assert acker.settle_finished(items) == items  # not running yet
    acker._batch = batch = _Batch()
    batch.closed = True  # its last pipeline is sent (or being sent)
    assert acker.settle_finished(items) == items
    assert batch.empty()


async def test_a_cancellation_while_the_actors_run_still_hands_the_entries_over(
    context: Context,
) -> None:
    async with ActorSystem("handover") as system:
        intake = Intake(context, system, "b:w1", None)
        send, receive = anyio.create_memory_object_stream[list[Entry]](1)
        items = [entry(b"1-0", finished=False)]
        with send, receive:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await intake.hand_over(send, items)
                pytest.fail("the cancellation was not raised")  # pragma: no cover
            assert scope.cancelled_caught
            assert receive.receive_nowait() == items


async def test_the_reader_settles_what_was_handled_and_passes_on_the_rest(
    context: Context,
) -> None:
    async with ActorSystem("handover") as system:
        intake = Intake(context, system, "b:w1", None)
        acker = intake.acker = Acker(context, "b:w1", {})
        acker._batch = batch = _Batch()
        waiting = entry(b"2-0", finished=False)
        send, receive = anyio.create_memory_object_stream[list[Entry]](1)
        with send, receive:
            await intake.hand_over(send, [entry(b"1-0"), waiting])
            assert batch.acks == [b"1-0"]
            assert receive.receive_nowait() == [waiting]  # only it wakes the acker task
            # While the acker task holds an entry, the next batch goes to it as well, so
            # that it settles them in order (an entity's states are saved in order).
            later = entry(b"3-0")
            await intake.hand_over(send, [later])
            assert batch.acks == [b"1-0"]
            assert receive.receive_nowait() == [later]
            waiting.delivery.finish()
            assert acker._settle_handled([waiting, later], batch) == []
            assert batch.acks == [b"1-0", b"2-0", b"3-0"]
            acker.handing(-2)  # (what the acker task's loop does as it settles them)
            await intake.hand_over(send, [entry(b"4-0")])
            assert batch.acks == [b"1-0", b"2-0", b"3-0", b"4-0"]
            with pytest.raises(anyio.WouldBlock):
                receive.receive_nowait()  # nothing for the acker task


async def test_an_error_while_settling_is_not_hidden_by_a_cancellation(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ActorSystem("handover") as system:
        intake = Intake(context, system, "b:w1", None)
        acker = intake.acker = Acker(context, "b:w1", {})
        acker._batch = _Batch()

        def broken(item: Entry, batch: _Batch) -> None:
            raise ValueError("settling failed")  # say, a user exception whose str() raises

        monkeypatch.setattr(acker, "_settle", broken)
        send, receive = anyio.create_memory_object_stream[list[Entry]](1)
        with send, receive, pytest.raises(ValueError, match="settling failed"):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await intake.hand_over(send, [entry(b"1-0")])


async def test_a_failed_read_while_intake_stops_is_raised_and_its_entries_handed_over(
    context: Context,
) -> None:
    """The reader's own error wins over the cancellation that came with it."""
    async with ActorSystem("handover") as system:
        consumer = GroupConsumer(context, system, "b:w1", None, resume=False)
        intake = anyio.CancelScope()
        read = [(b"1-0", [b"e", b"{}"]), (b"2-0", [b"e", b"{}"])]

        async def fetch(*_: object) -> object:
            return [[b"events", read]]

        async def take(entry_id: bytes, fields: object, deliveries: int) -> Entry:
            if entry_id == b"2-0":
                intake.cancel()  # `stop_intake`, while this entry is being delivered
                msg = "delivery failed"
                raise RuntimeError(msg)
            return entry(entry_id)

        consumer._fetch = fetch  # type: ignore[method-assign]
        consumer._intake.entry = take  # type: ignore[method-assign]
        consumer._intake.is_unwanted = lambda fields: False  # type: ignore[method-assign]
        send, receive = anyio.create_memory_object_stream[list[Entry]](1)
        with receive:
            with pytest.raises(RuntimeError, match="delivery failed"), intake:
                await consumer._read_loop(None, send)  # type: ignore[arg-type]
            assert [item.id for item in receive.receive_nowait()] == [b"1-0"]
