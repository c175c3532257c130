"""`ActorSystem.publish_batch`: several events in one call, locally and over a transport.

The batch is published as `publish` would publish each event in turn, except that
APP-scope events going to a transport are sent together (over Redis, in pipelines). Every
envelope is built (and encoded) before anything is published.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from redis_support import AsyncRawClient, events_key, new_app, raw_client

from actorbus import (
    Actor,
    ActorbusError,
    ActorSystem,
    DecodeError,
    Envelope,
    Mailbox,
    MailboxFull,
    Overflow,
    Scope,
    TransportError,
    event,
    handle,
)
from actorbus.redis import RedisTransport
from actorbus.redis._errors import ReplyError
from actorbus.redis._publisher import Publisher
from actorbus.testing import MemoryBroker, MemoryTransport

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis_support import RedisServer

pytestmark = pytest.mark.anyio


@event("batch.item")
class Item:
    n: int


@event("batch.shared", scope=Scope.APP)
class Shared:
    n: int


class Unregistered:
    pass


class Recorder(Actor):
    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    @handle(Item, Shared)
    async def record(self, item: Item | Shared, envelope: Envelope) -> None:
        self.seen.append((item.n, envelope.id))


class Held(Actor):
    """Handles `Item` 0 only once `opened` is set; records every `Item`."""

    def __init__(self, entered: anyio.Event, opened: anyio.Event, seen: list[int]) -> None:
        self.entered = entered
        self.opened = opened
        self.seen = seen

    @handle(Item)
    async def record(self, item: Item) -> None:
        self.seen.append(item.n)
        if item.n == 0:
            self.entered.set()
            await self.opened.wait()


def system(**options: Any) -> ActorSystem:
    return ActorSystem("batch", shutdown_timeout=2.0, **options)


@pytest.fixture
def batch_envelopes(monkeypatch: pytest.MonkeyPatch) -> list[Envelope]:
    """The envelopes of the batches given to `Publisher.publish_batch`, in order."""
    seen: list[Envelope] = []
    publish_batch = Publisher.publish_batch

    async def spy(publisher: Publisher, payloads: Any, envelopes: Any) -> None:
        seen.extend(envelopes)
        await publish_batch(publisher, payloads, envelopes)

    monkeypatch.setattr(Publisher, "publish_batch", spy)
    return seen


async def written(raw: AsyncRawClient, app: str) -> list[int]:
    """The ``n`` of each event in `app`'s stream, in stream order."""
    entries = await raw.entries(events_key(app))
    return [json.loads(fields[b"e"])["data"]["n"] for _, fields in entries]


async def failing(sender: ActorSystem, events: list[Any], failure: list[TransportError]) -> None:
    """`publish_batch` of `events`, its `TransportError` added to `failure`."""
    try:
        await sender.publish_batch(events)
    except TransportError as exc:
        failure.append(exc)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls what other tasks and Redis change
            await anyio.sleep(0.01)


# -- locally --------------------------------------------------------------------------------


async def test_a_batch_is_delivered_in_order_and_returns_its_envelopes() -> None:
    seen: list[Any] = []
    async with system() as sys:
        await sys.spawn(Recorder, seen, mailbox=Mailbox(10))  # smaller than the batch
        envelopes = await sys.publish_batch(Item(n) for n in range(300))
        await sys.drain()
    assert [n for n, _ in seen] == list(range(300))
    assert [e.id for e in envelopes] == [id_ for _, id_ in seen]
    assert len({e.id for e in envelopes}) == 300
    assert {(e.type, e.source, e.scope) for e in envelopes} == {
        ("batch.item", "batch", Scope.PROCESS)
    }


async def test_the_options_apply_to_every_event_of_the_batch() -> None:
    async with system() as sys:
        envelopes = await sys.publish_batch(
            [Item(1), Envelope(type="batch.item", data={"n": 2})],
            source="importer",
            subject="s-1",
            headers={"tenant": "t-9"},
        )
    assert [(e.source, e.subject, e.headers["tenant"]) for e in envelopes] == [
        ("importer", "s-1", "t-9")
    ] * 2
    assert envelopes[1].data == Item(2)  # an envelope's dict data is rebuilt, as by publish


async def test_an_event_that_cannot_be_published_fails_the_batch_with_nothing_published() -> None:
    seen: list[Any] = []
    async with system() as sys:
        await sys.spawn(Recorder, seen)
        with pytest.raises(TypeError, match="Unregistered with APP scope"):
            await sys.publish_batch([Item(1), Unregistered(), Item(2)], scope=Scope.APP)
        bad = Envelope(type="batch.item", data={"n": "not a number"})
        with pytest.raises(DecodeError):
            await sys.publish_batch([Item(3), bad])
        await sys.drain()
        await sys.publish_batch([Item(4)])
        await sys.drain()
    assert [n for n, _ in seen] == [4]


async def test_an_empty_batch_publishes_nothing_and_returns_an_empty_list() -> None:
    async with system() as sys:
        assert await sys.publish_batch([]) == []


@pytest.mark.parametrize(
    "single", ["abc", b"abc", {"n": 1}, Envelope(type="batch.item", data={"n": 1})]
)
async def test_a_single_event_is_not_taken_for_a_batch(single: object) -> None:
    seen: list[Any] = []
    async with system() as sys:
        await sys.spawn(Recorder, seen)
        with pytest.raises(TypeError, match="publish_batch takes an iterable of events"):
            await sys.publish_batch(single)  # type: ignore[arg-type]
        await sys.drain()
    assert seen == []


async def test_a_batch_is_a_cancellation_point() -> None:
    seen: list[Any] = []
    reached = False
    async with system() as sys:
        await sys.spawn(Recorder, seen)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await sys.publish_batch([Item(1)])
            reached = True
        await sys.drain()
    assert not reached
    assert seen == []


async def test_a_large_batch_lets_other_tasks_run() -> None:
    """Building and delivering yield every 64 events, as `publish` does."""
    steps = 0
    async with system() as sys:
        await sys.spawn(Recorder, [], mailbox=Mailbox(10_000))

        async def other() -> None:
            nonlocal steps
            while True:
                steps += 1
                await checkpoint()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(other)
            await checkpoint()
            steps = 0
            await sys.publish_batch(Item(n) for n in range(6400))
            during = steps
            tasks.cancel_scope.cancel()
    assert during >= 150  # 6,400 events built and delivered: 200 yields


async def test_a_full_fail_mailbox_is_raised_once_the_rest_of_the_batch_is_delivered() -> None:
    entered, opened = anyio.Event(), anyio.Event()
    held: list[int] = []
    others: list[Any] = []
    async with system() as sys:
        ref = await sys.spawn(Held, entered, opened, held, mailbox=Mailbox(1, Overflow.FAIL))
        await sys.spawn(Recorder, others)
        await ref.tell(Item(0))
        with anyio.fail_after(5):
            await entered.wait()
        with pytest.raises(MailboxFull, match=ref.name):
            await sys.publish_batch([Item(1), Item(2), Item(3)])
        opened.set()
        await sys.drain()
    assert held == [0, 1]
    assert [n for n, _ in others] == [1, 2, 3]
    assert [letter.envelope.data for letter in sys.dead_letters] == [Item(2), Item(3)]


async def test_a_stopped_system_refuses_a_batch() -> None:
    sys = system()
    with pytest.raises(ActorbusError, match="not started"):
        await sys.publish_batch([Item(1)])
    async with sys:
        pass
    with pytest.raises(ActorbusError, match="has stopped"):
        await sys.publish_batch([Item(1)])


async def test_a_transport_without_batches_gets_the_events_one_by_one() -> None:
    """`Transport.publish_batch` defaults to `publish` in turn (here `MemoryTransport`)."""
    broker = MemoryBroker()
    seen: list[Any] = []
    local: list[Any] = []
    async with (
        system(transport=MemoryTransport(broker)) as receiver,
        system(transport=MemoryTransport(broker)) as sender,
    ):
        await receiver.spawn(Recorder, seen)
        await sender.spawn(Recorder, local)
        envelopes = await sender.publish_batch([Shared(1), Item(2), Shared(3)])
        await broker.drain()
        await sender.drain()
    assert [n for n, _ in seen] == [1, 3]
    assert sorted(n for n, _ in local) == [1, 2, 3]
    assert [e.scope for e in envelopes] == [Scope.APP, Scope.PROCESS, Scope.APP]


async def test_an_app_event_the_transport_cannot_encode_fails_the_whole_batch() -> None:
    broker = MemoryBroker()
    seen: list[Any] = []
    async with system(transport=MemoryTransport(broker)) as sys:
        await sys.spawn(Recorder, seen)
        not_json = Envelope(type="batch.blob", data={"when": object()}, scope=Scope.APP)
        with pytest.raises(TypeError):
            await sys.publish_batch([Item(1), Shared(2), not_json, Shared(3)])
        await broker.drain()
        await sys.drain()
    assert seen == []


# -- over Redis -----------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_batch_reaches_another_instance_in_order(redis_server: RedisServer) -> None:
    app = new_app()
    seen: list[Any] = []
    transport = RedisTransport(redis_server.url, batch=10)
    async with (
        ActorSystem(app, transport=RedisTransport(redis_server.url)) as receiver,
        ActorSystem(app, transport=transport) as sender,
    ):
        await receiver.spawn(Recorder, seen)
        envelopes = await sender.publish_batch(Shared(n) for n in range(250))
        assert transport.stats().published == 250
        await eventually(lambda: len(seen) == 250)
    assert [n for n, _ in seen] == list(range(250))
    assert [id_ for _, id_ in seen] == [e.id for e in envelopes]


@pytest.mark.redis
async def test_a_batch_with_an_oversized_event_publishes_nothing(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    seen: list[Any] = []
    transport = RedisTransport(redis_server.url, max_message_bytes=200)
    async with (
        ActorSystem(app, transport=transport) as sender,
        raw_client(redis_server.url) as raw,
    ):
        await sender.spawn(Recorder, seen)
        big = Envelope(type="batch.blob", data="x" * 500, scope=Scope.APP)
        with pytest.raises(ValueError, match="over max_message_bytes=200"):
            await sender.publish_batch([Item(0), Shared(1), big, Shared(2)])
        assert await raw("XLEN", events_key(app)) == 0
        assert transport.stats().published == 0
        await sender.drain()
    assert seen == []  # not even the PROCESS event


@pytest.mark.redis
async def test_a_batch_stops_at_the_first_event_redis_refuses(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries written with the refused one stay; the rest of the batch is not sent."""
    answer = Publisher._answer

    def refuse_15(publisher: Publisher, item: Any, reply: Any) -> None:
        if b'"n":15}' in item.packed:
            reply = ReplyError("OOM command not allowed (injected)")
        answer(publisher, item, reply)

    monkeypatch.setattr(Publisher, "_answer", refuse_15)
    app = new_app()
    transport = RedisTransport(redis_server.url, batch=10)
    async with (
        ActorSystem(app, transport=transport) as sender,
        raw_client(redis_server.url) as raw,
    ):
        with pytest.raises(TransportError, match=r"refused event 'batch.shared'") as caught:
            await sender.publish_batch([Item(-1), *(Shared(n) for n in range(30))])
        stream = await written(raw, app)
    assert stream == [*range(15), 15, 16, 17, 18, 19]  # 15 was written, then "refused"
    assert caught.value.__notes__ == [
        (
            "Redis accepted at least 19 of the 30 events this batch published to it; the one "
            "named above is the first it did not accept, and those after it not yet sent "
            "were not sent"
        )
    ]


@pytest.mark.redis
async def test_a_batch_redis_does_not_answer_in_time_fails_in_time_and_stops(
    redis_server: RedisServer, batch_envelopes: list[Envelope]
) -> None:
    """Entries queued after the first failure are withdrawn, not retried with new deadlines.

    The event waiting for room in the queue times out about when the first pipeline
    does: the error names the batch's first event all the same.
    """
    app = new_app()
    transport = RedisTransport(redis_server.url, batch=10, publish_timeout=0.5)
    async with (
        ActorSystem(app, transport=transport) as sender,
        raw_client(redis_server.url) as raw,
    ):
        await sender.publish(Shared(-1))  # connected
        await raw("CLIENT", "PAUSE", 1500)  # writes wait: the first pipeline gets no answer
        started = anyio.current_time()
        with pytest.raises(TransportError, match="did not confirm") as caught:
            await sender.publish_batch(Shared(n) for n in range(200))
        took = anyio.current_time() - started
        await anyio.sleep(1.7)  # the pause is over: anything left would be written now
        stream = await written(raw, app)
    assert took < 1.4  # one publish_timeout, and the withdrawing
    assert all(n < 10 for n in stream)  # at most the first pipeline, written before
    assert "Redis accepted at least 0 of the 200 events" in caught.value.__notes__[0]
    assert f"(id {batch_envelopes[0].id})" in str(caught.value)


@pytest.mark.redis
async def test_a_batch_cut_short_by_closing_keeps_what_was_queued_before(
    redis_server: RedisServer, batch_envelopes: list[Envelope]
) -> None:
    """Closing stops the queueing; the entries already queued still go out, in order."""
    app = new_app()
    transport = RedisTransport(redis_server.url, batch=10, publish_timeout=10)
    async with (
        ActorSystem(app, transport=transport) as sender,
        raw_client(redis_server.url) as raw,
    ):
        await sender.publish(Shared(-1))  # connected
        publisher = transport._running_publisher()
        await raw("CLIENT", "PAUSE", 500)  # the first pipeline (0-9) waits; 10-49 fill the queue
        failure: list[TransportError] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(failing, sender, [Shared(n) for n in range(200)], failure)
            await eventually(lambda: publisher._send.statistics().tasks_waiting_send == 1)
            publisher.close()  # 50 waits for room: it and the rest are not queued
        stream = await written(raw, app)
    assert stream == [-1, *range(50)]
    (caught,) = failure
    assert f"cannot publish event 'batch.shared' (id {batch_envelopes[50].id})" in str(caught)
    assert "the Redis transport is closed" in str(caught)
    assert "Redis accepted at least 50 of the 200 events" in caught.__notes__[0]


@pytest.mark.redis
async def test_an_entry_sent_when_the_transport_stopped_is_not_reported_unpublished(
    redis_server: RedisServer,
) -> None:
    """Redis may apply an XADD whose reply never came: the error says it may be published.

    (Here it is not: Redis drops a paused client's command when the client goes away.)
    """
    app = new_app()
    transport = RedisTransport(redis_server.url, publish_timeout=10)
    async with (
        ActorSystem(app, transport=transport) as sender,
        raw_client(redis_server.url) as raw,
    ):
        await sender.publish(Shared(-1))  # connected
        publisher = transport._running_publisher()
        await raw("CLIENT", "PAUSE", 500)  # the XADD waits in Redis
        failure: list[TransportError] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(failing, sender, [Shared(0)], failure)
            await eventually(lambda: bool(publisher._held) and publisher._connection_lock.locked())
            await anyio.sleep(0.05)  # written, waiting for its reply
            assert transport._main_scope is not None
            transport._main_scope.cancel()  # the publishing task stops: no reply read
    (caught,) = failure
    assert "closed before Redis answered" in str(caught)
    assert "it may have been published" in str(caught)
    assert "cannot publish" not in str(caught)


@pytest.mark.redis
async def test_a_cancelled_batch_sends_nothing_more(redis_server: RedisServer) -> None:
    """What was written before the cancellation stays; what was only queued is dropped."""
    app = new_app()
    transport = RedisTransport(redis_server.url, batch=10)
    async with (
        ActorSystem(app, transport=transport) as sender,
        raw_client(redis_server.url) as raw,
    ):
        await sender.publish(Shared(-1))  # connected
        await raw("CLIENT", "PAUSE", 1000)  # the first pipeline waits in Redis meanwhile
        with anyio.move_on_after(0.3) as scope:
            await sender.publish_batch(Shared(n) for n in range(100))
        assert scope.cancelled_caught
        await anyio.sleep(1.2)  # the pause ended; anything still queued would be sent now
        entries = await raw.entries(events_key(app))
        published = transport.stats().published
    assert len(entries) == 11  # Shared(-1) and the first pipeline of 10
    assert published == 11


@pytest.mark.redis
async def test_a_batch_that_loses_redis_midway_fails_within_its_timeout(
    fresh_redis_server: RedisServer,
) -> None:
    """What was queued after the first failure is withdrawn, not queued again afresh."""
    server = fresh_redis_server
    transport = RedisTransport(server.url, publish_timeout=0.5)
    lost_at = 0.0
    async with ActorSystem(new_app(), transport=transport) as sender:

        async def kill_midway() -> None:
            nonlocal lost_at
            await eventually(lambda: transport.stats().published >= 3000, timeout=60)
            await anyio.to_thread.run_sync(server.kill)
            lost_at = anyio.current_time()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(kill_midway)
            with pytest.raises(TransportError) as caught:
                await sender.publish_batch(Shared(n) for n in range(50_000))
        took = anyio.current_time() - lost_at
        published = transport.stats().published
        await anyio.to_thread.run_sync(server.start)
    assert took < 2.0  # one publish_timeout, a backoff, and the withdrawing
    assert f"Redis accepted at least {published} of the 50000 events" in caught.value.__notes__[0]
    assert published >= 3000


@pytest.mark.redis
async def test_a_batch_redis_did_not_take_says_how_many_were_accepted(
    fresh_redis_server: RedisServer,
) -> None:
    transport = RedisTransport(fresh_redis_server.url, publish_timeout=0.5)
    async with ActorSystem(new_app(), transport=transport) as sender:
        await sender.publish_batch([Shared(0)])
        await anyio.to_thread.run_sync(fresh_redis_server.stop)
        with pytest.raises(TransportError, match="did not accept") as caught:
            await sender.publish_batch([Shared(1), Shared(2), Shared(3)])
        await anyio.to_thread.run_sync(fresh_redis_server.start)
    assert caught.value.__notes__[0].startswith(
        "Redis accepted at least 0 of the 3 events this batch published to it"
    )
    assert transport.stats().published == 1
