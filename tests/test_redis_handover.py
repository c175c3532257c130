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
        consumer = GroupConsumer(context, system, "b:w1", None, resume=False)
        send, receive = anyio.create_memory_object_stream[list[Entry]](1)
        items = [entry(b"1-0", finished=False)]
        with send, receive:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await consumer._hand_over(send, items)
                pytest.fail("the cancellation was not raised")  # pragma: no cover
            assert scope.cancelled_caught
            assert receive.receive_nowait() == items
