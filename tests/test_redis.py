"""The Redis Streams bridge against a real redis-server, on asyncio and trio.

Every test uses its own application name, so tests sharing the session server never see
each other's keys. A raw client of the test support (no Redis library) stands in for other
(crashed, foreign or malicious) clients of the same streams.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from redis_support import AsyncRawClient, dead_key, events_key, new_app, raw_client

from actorbus import (
    Actor,
    ActorbusError,
    ActorSystem,
    AskTimeout,
    Envelope,
    Policy,
    Scope,
    Supervision,
    TransportError,
    event,
    handle,
)
from actorbus._wire import encode
from actorbus.redis import RedisStats, RedisTransport
from actorbus.redis._client import Client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from cluster_support import RedisCluster
    from redis_support import RedisServer

    Deployment = RedisServer | RedisCluster

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

# The tests taking `redis_any` run on a single server and on a three-master Redis Cluster.

TESTS = Path(__file__).resolve().parent


@event("job.created", scope=Scope.APP)
class Job:
    n: int


@event("stock.query", scope=Scope.APP)
class StockQuery:
    sku: str


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls state that several tasks and Redis change
            await anyio.sleep(0.01)


def raw_entry(type_: str, data: Any, id_: str | None = None) -> dict[str, bytes]:
    envelope = Envelope(type=type_, data=data, source="raw", scope=Scope.APP)
    if id_ is not None:
        envelope = Envelope(type=type_, data=data, source="raw", scope=Scope.APP, id=id_)
    return {"e": encode(envelope)}


def jobs_into(seen: list[int]) -> Callable[[Job], Awaitable[None]]:
    """A subscriber of every `Job` that records its number."""

    @handle(Job)
    async def on_job(job: Job) -> None:
        seen.append(job.n)

    return on_job


def work_into(seen: list[str]) -> Callable[[Envelope], Awaitable[None]]:
    """A member of group "work" that records the id of each job it handles."""

    @handle("job.created", group="work")
    async def work(envelope: Envelope) -> None:
        seen.append(envelope.id)

    return work


async def left_pending(
    raw: AsyncRawClient, key: str, group: str, consumer: str, entries: list[dict[str, bytes]]
) -> list[bytes]:
    """What a consumer that read `entries` and went silent leaves: pending in `group`."""
    await raw.create_group(key, group)
    ids = [await raw.xadd(key, fields) for fields in entries]
    await raw.read_group(group, consumer, key)
    return ids


async def dead_letters(client: AsyncRawClient, app: str) -> list[dict[str, str]]:
    entries = await client.entries(dead_key(app))
    return [
        {k.decode(): v.decode(errors="replace") for k, v in fields.items()} for _, fields in entries
    ]


# -- delivery modes -----------------------------------------------------------------------------


async def test_broadcast_reaches_every_instance_once(redis_any: Deployment) -> None:
    app = new_app()
    a_seen: list[int] = []
    b_seen: list[int] = []

    @handle(Job)
    async def on_a(job: Job) -> None:
        a_seen.append(job.n)

    @handle(Job)
    async def on_b(job: Job) -> None:
        b_seen.append(job.n)

    async with (
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as a,
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as b,
    ):
        await a.spawn(on_a)
        await b.spawn(on_b)
        for n in range(10):
            await (a if n % 2 else b).publish(Job(n))
        await eventually(lambda: len(a_seen) == 10 and len(b_seen) == 10)
        await anyio.sleep(0.1)  # nothing more arrives
        stats = a.transport.stats()  # type: ignore[union-attr]
    assert sorted(a_seen) == list(range(10))
    assert sorted(b_seen) == list(range(10))
    assert isinstance(stats, RedisStats)
    assert stats.published == 5
    assert stats.acked >= 10
    assert stats.connected


async def test_group_shares_events_across_instances_exactly_once(
    redis_any: Deployment,
) -> None:
    app = new_app()
    handled: dict[str, list[int]] = {"a": [], "b": []}

    def member(name: str) -> Callable[..., Any]:
        @handle(Job, group="billing")
        async def bill(job: Job) -> None:
            handled[name].append(job.n)
            await anyio.sleep(0.002)

        return bill

    async with (
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as a,
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as b,
    ):
        await a.spawn(member("a"))
        await b.spawn(member("b"))
        async with anyio.create_task_group() as tg:
            for n in range(60):
                tg.start_soon(a.publish, Job(n))
        await eventually(lambda: len(handled["a"]) + len(handled["b"]) >= 60)
        await anyio.sleep(0.2)
    assert sorted(handled["a"] + handled["b"]) == list(range(60))
    assert not set(handled["a"]) & set(handled["b"])


async def test_request_reply_across_instances(redis_any: Deployment) -> None:
    app = new_app()

    class Stock(Actor):
        @handle(StockQuery)
        def stock(self, query: StockQuery) -> dict[str, Any]:
            if query.sku == "bad":
                raise ValueError("unknown sku 'bad'")
            return {"sku": query.sku, "count": 7}

    async with (
        ActorSystem(app, transport=RedisTransport(redis_any.url), actors=[Stock]),
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as asker,
    ):
        assert await asker.request(StockQuery("book"), timeout=5) == {"sku": "book", "count": 7}
        with pytest.raises(ActorbusError, match=r"remote handler .* raised ValueError: unknown"):
            await asker.request(StockQuery("bad"), timeout=5)
    async with ActorSystem(app, transport=RedisTransport(redis_any.url)) as alone:
        started = anyio.current_time()
        with pytest.raises(AskTimeout, match="no instance"):
            await alone.request(StockQuery("book"), timeout=0.3)
        assert anyio.current_time() - started < 2


async def test_headers_and_trace_context_cross_instances(redis_any: Deployment) -> None:
    app = new_app()
    received: list[Envelope] = []
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    @handle(Job)
    async def on_job(job: Job, envelope: Envelope) -> None:
        received.append(envelope)

    async with (
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as a,
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as b,
    ):
        await b.spawn(on_job)
        sent = await a.publish(
            Job(1),
            subject="jobs/1",
            headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "tenant": "acme"},
        )
        await eventually(lambda: len(received) == 1)
    (got,) = received
    assert (got.id, got.type, got.subject, got.source) == (sent.id, "job.created", "jobs/1", app)
    assert got.headers["tenant"] == "acme"
    assert got.headers["traceparent"].split("-")[1] == trace  # same trace, across Redis
    assert got.data == Job(1)


def test_the_public_surface_of_actorbus_redis() -> None:
    import actorbus.redis  # noqa: PLC0415

    assert actorbus.redis.__all__ == sorted(actorbus.redis.__all__)
    for name in actorbus.redis.__all__:
        obj = getattr(actorbus.redis, name)
        assert obj.__module__ == "actorbus.redis"
        assert obj.__doc__
    assert issubclass(TransportError, ActorbusError)
    assert issubclass(TransportError, ConnectionError)


# -- failures and dead letters --------------------------------------------------------------------


async def test_dead_letter_policy_writes_the_event_to_the_dead_stream(
    redis_any: Deployment,
) -> None:
    app = new_app()

    class Fragile(Actor):
        supervision = Supervision(policy=Policy.DEAD_LETTER)

        @handle(Job)
        async def on_job(self, job: Job) -> None:
            raise RuntimeError(f"cannot do job {job.n}")

    async with (
        raw_client(redis_any.url) as raw,
        ActorSystem(app, transport=RedisTransport(redis_any.url), actors=[Fragile]) as system,
    ):
        envelope = await system.publish(Job(3))
        await eventually(lambda: system.transport.stats().dead_lettered == 1)  # type: ignore[union-attr]
        letters = await dead_letters(raw, app)
        pending = await raw.pending(events_key(app), f"b:{system.transport.instance}")  # type: ignore[union-attr]
    assert len(letters) == 1
    assert json.loads(letters[0]["e"])["id"] == envelope.id
    assert "RuntimeError: cannot do job 3" in letters[0]["error"]
    assert letters[0]["group"].startswith("b:~")
    assert pending == 0  # dead-lettered entries are acknowledged


async def test_garbage_entries_are_dead_lettered_and_the_consumer_keeps_going(
    redis_any: Deployment,
) -> None:
    app = new_app()
    seen: list[int] = []
    garbage = [
        {"e": b"not json at all"},
        {"e": b'{"specversion": "1.0", "id": "trunc'},
        {"e": json.dumps({"specversion": "1.0", "id": "no-type", "source": "x"}).encode()},
        {"e": encode(Envelope(type="job.created", data={"n": 1}, source="x")) + b" " * 2000},
        {"something": b"else"},
    ]
    transport = RedisTransport(redis_any.url, max_message_bytes=1500)
    async with (
        raw_client(redis_any.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(jobs_into(seen))
        for fields in garbage:
            await raw.xadd(events_key(app), fields)
        await system.publish(Job(42))
        await eventually(lambda: seen == [42] and transport.stats().dead_lettered == 5)
        letters = await dead_letters(raw, app)
    errors = [letter["error"] for letter in letters]
    assert "not valid JSON" in errors[0]
    assert "not valid JSON" in errors[1]
    assert "'type'" in errors[2]
    assert "exceeds max_message_bytes=1500" in errors[3]
    assert "no 'e' field" in errors[4]
    assert json.loads(letters[4]["e"]) == {"something": "else"}


async def test_a_class_named_by_the_wire_is_never_imported(redis_server: RedisServer) -> None:
    app = new_app()
    received: list[Envelope] = []

    @handle("os.*")
    async def audit(envelope: Envelope) -> None:
        received.append(envelope)

    data = {"__class__": "builtins.eval", "type": "builtins.eval", "args": ["1 + 1"]}
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=RedisTransport(redis_server.url)) as system,
    ):
        await system.spawn(audit)
        await raw.xadd(events_key(app), raw_entry("os.system", data, id_="evil-1"))
        await eventually(lambda: len(received) == 1)
    assert received[0].id == "evil-1"
    assert received[0].type == "os.system"
    assert type(received[0].data) is dict
    assert received[0].data == data


async def test_an_oversized_event_is_refused_at_publish(redis_server: RedisServer) -> None:
    transport = RedisTransport(redis_server.url, max_message_bytes=200)
    async with ActorSystem(new_app(), transport=transport) as system:
        with pytest.raises(ValueError, match="over max_message_bytes=200"):
            await system.publish(Envelope(type="job.blob", data="x" * 500, scope=Scope.APP))
        assert transport.stats().published == 0


# -- durability and clean-up ----------------------------------------------------------------------


async def test_a_durable_instance_resumes_after_a_restart(redis_any: Deployment) -> None:
    app = new_app()
    seen: list[int] = []

    def durable() -> ActorSystem:
        transport = RedisTransport(redis_any.url, instance="w1")
        # A start-up actor: in place before the backlog is read.
        return ActorSystem(app, transport=transport, actors=[jobs_into(seen)])

    async with durable():
        pass
    async with ActorSystem(app, transport=RedisTransport(redis_any.url)) as producer:
        for n in range(5):
            await producer.publish(Job(n))
    assert seen == []
    async with durable():
        await eventually(lambda: len(seen) == 5)
    assert seen == [0, 1, 2, 3, 4]


async def left_by_a_crash(raw: AsyncRawClient, key: str) -> None:
    """What a crash leaves behind: jobs 0-2 read by consumer "w2" of its group, not acked."""
    jobs = [raw_entry("job.created", {"n": n}) for n in range(3)]
    await left_pending(raw, key, "b:w2", "w2", jobs)


async def test_a_durable_instance_takes_back_what_it_read_but_did_not_finish(
    redis_any: Deployment,
) -> None:
    app = new_app()
    key = events_key(app)
    seen: list[int] = []
    async with raw_client(redis_any.url) as raw:
        await left_by_a_crash(raw, key)
        transport = RedisTransport(redis_any.url, instance="w2")
        async with ActorSystem(app, transport=transport, actors=[jobs_into(seen)]):
            await eventually(lambda: len(seen) == 3)
            await eventually(lambda: transport.stats().acked == 3)
        pending = await raw.pending(key, "b:w2")
    assert sorted(seen) == [0, 1, 2]
    assert pending == 0


async def test_a_durable_instance_takes_back_an_entry_once_while_claiming_runs(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own entries, idle past `claim_after`, are seen by both the take-back and claiming.

    Whichever claims them first, the other leaves them alone: each is handled once here.
    """
    app = new_app()
    key = events_key(app)
    seen: list[int] = []

    class Worker(Actor):
        @handle(Job)
        async def on_job(self, job: Job) -> None:
            seen.append(job.n)
            await anyio.sleep(0.2)  # still pending when the other XCLAIM comes

    call = Client.call

    async def take_back_last(self: Client, *command: Any, **kwargs: Any) -> Any:
        if command[0] == b"XCLAIM" and command[4] == 0:  # the take-back's (no minimum idle)
            await anyio.sleep(0.3)  # comes second
        return await call(self, *command, **kwargs)

    async with raw_client(redis_server.url) as raw:
        await left_by_a_crash(raw, key)
        await anyio.sleep(0.3)  # idle for longer than claim_after
        monkeypatch.setattr(Client, "call", take_back_last)
        transport = RedisTransport(redis_server.url, instance="w2", claim_after=0.2)
        async with ActorSystem(app, transport=transport, actors=[Worker]):
            await eventually(lambda: transport.stats().acked >= 3)
            await anyio.sleep(1.0)  # a second delivery would be handled by now
        pending = await raw.pending(key, "b:w2")
    assert sorted(seen) == [0, 1, 2]
    assert pending == 0


async def test_an_anonymous_instance_leaves_no_subscription_behind(
    redis_any: Deployment,
) -> None:
    app = new_app()

    @handle(Job, group="billing")
    async def bill(job: Job) -> None:
        pass

    transport = RedisTransport(redis_any.url)
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(bill)
        await system.request(Job(1), timeout=5)  # creates the reply stream
        name = transport.instance
    async with raw_client(redis_any.url) as raw:
        groups = await raw.groups(events_key(app))
        consumers = await raw.consumers(events_key(app), "g:billing")
        replies = await raw("EXISTS", f"actorbus:app:{app}:replies:{name}")
        alive = await raw("EXISTS", f"actorbus:app:{app}:alive:{name}")
    assert [g[b"name"] for g in groups] == [b"g:billing"]  # the shared group stays
    assert consumers == []
    assert replies == alive == 0


async def test_a_clean_shutdown_acknowledges_everything_it_handled(
    redis_any: Deployment,
) -> None:
    app = new_app()
    key = events_key(app)
    handled: set[str] = set()

    @handle("job.created", group="work")
    async def work(envelope: Envelope) -> None:
        await anyio.sleep(0.002)
        handled.add(envelope.id)

    async with (
        raw_client(redis_any.url) as raw,
        ActorSystem(app, transport=RedisTransport(redis_any.url)) as producer,
    ):
        async with ActorSystem(app, transport=RedisTransport(redis_any.url, batch=20)) as w:
            await w.spawn(work)
            async with anyio.create_task_group() as tg:
                for n in range(300):
                    tg.start_soon(producer.publish, Job(n))
            await eventually(lambda: len(handled) >= 30)
        # Stopped mid-stream: what it handled is acknowledged, the rest is left pending.
        pending = await raw("XPENDING", key, "g:work", "-", "+", 1000)
        left = set()
        for entry_id, *_ in pending:
            ((_, fields),) = await raw.entries(key, entry_id, entry_id)
            left.add(json.loads(fields[b"e"])["id"])
    assert 30 <= len(handled) < 300
    assert not left & handled


# -- claiming -----------------------------------------------------------------------------------


async def test_a_live_member_claims_what_a_silent_consumer_left_pending(
    redis_any: Deployment,
) -> None:
    app = new_app()
    key = events_key(app)
    seen: list[str] = []
    ids = [f"left-{n}" for n in range(3)]
    async with raw_client(redis_any.url) as raw:
        jobs = [raw_entry("job.created", {"n": 0}, id_=id_) for id_ in ids]
        await left_pending(raw, key, "g:work", "dead", jobs)
        transport = RedisTransport(redis_any.url, claim_after=0.2)
        async with ActorSystem(app, transport=transport) as system:
            await system.spawn(work_into(seen))
            await eventually(lambda: len(seen) == 3)
            await eventually(lambda: transport.stats().acked == 3)
        pending = await raw.pending(key, "g:work")
    assert sorted(seen) == ids
    assert transport.stats().claimed == 3
    assert pending == 0


async def test_an_entry_delivered_too_often_goes_to_the_dead_stream(
    redis_any: Deployment,
) -> None:
    app = new_app()
    key = events_key(app)
    seen: list[str] = []
    async with raw_client(redis_any.url) as raw:
        poison = raw_entry("job.created", {"n": 0}, id_="poison-1")
        [entry] = await left_pending(raw, key, "g:work", "other", [poison])
        for _ in range(2):  # each claim is one more delivery: 3 in all
            await raw("XCLAIM", key, "g:work", "other", 0, entry)
        transport = RedisTransport(redis_any.url, claim_after=0.2, max_deliveries=3)
        async with ActorSystem(app, transport=transport) as system:
            await system.spawn(work_into(seen))
            await eventually(lambda: transport.stats().dead_lettered == 1)
            letters = await dead_letters(raw, app)
            pending = await raw.pending(key, "g:work")
    assert seen == []
    assert json.loads(letters[0]["e"])["id"] == "poison-1"
    assert "delivered 3 times" in letters[0]["error"]
    assert letters[0]["deliveries"] == "3"
    assert letters[0]["group"] == "g:work"
    assert pending == 0


async def test_a_slow_live_member_keeps_its_entries(redis_server: RedisServer) -> None:
    app = new_app()
    seen: list[int] = []
    started = anyio.Event()

    @handle(Job, group="work")
    async def slow(job: Job) -> None:
        started.set()
        await anyio.sleep(0.6)
        seen.append(job.n)

    @handle(Job, group="work")
    async def other(job: Job) -> None:
        seen.append(job.n)

    slow_transport = RedisTransport(redis_server.url, claim_after=0.2)
    async with ActorSystem(app, transport=slow_transport) as a:
        await a.spawn(slow)
        await a.publish(Job(1))
        with anyio.fail_after(5):
            await started.wait()
        async with ActorSystem(
            app, transport=RedisTransport(redis_server.url, claim_after=0.2)
        ) as b:
            await b.spawn(other)
            await eventually(lambda: seen == [1])
            await anyio.sleep(0.3)
    assert seen == [1]  # handled once: the live slow member refreshed its claim


async def test_a_slow_handler_holds_back_only_its_own_acknowledgement(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    gate = anyio.Event()
    fast_seen: list[int] = []

    @handle(Job, group="work")
    async def slow(job: Job) -> None:
        await gate.wait()

    @handle(Job, group="work")
    async def fast(job: Job) -> None:
        fast_seen.append(job.n)

    async def pending() -> int:
        return await raw.pending(events_key(app), "g:work")

    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=RedisTransport(redis_server.url)) as system,
    ):
        await system.spawn(slow)
        await system.spawn(fast)
        for n in range(6):  # the two local members take turns: 0, 2, 4 wait for the gate
            await system.publish(Job(n))
        await eventually(lambda: len(fast_seen) == 3)
        with anyio.fail_after(5):
            # Those after the slow one's are acknowledged (polls Redis).
            while await pending() != 3:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        gate.set()
        with anyio.fail_after(5):
            while await pending() != 0:  # noqa: ASYNC110 - polls Redis
                await anyio.sleep(0.01)
    assert sorted(fast_seen) == [1, 3, 5]


async def test_entries_of_a_type_nobody_here_wants_are_acknowledged_unread(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    seen: list[int] = []
    transport = RedisTransport(redis_server.url)
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(jobs_into(seen))
        # Fields t and e name a type nobody here subscribes to: `e` is not decoded (it
        # would not decode: no id, no source), the entry is acknowledged as unwanted.
        unread = b'{"specversion":"1.0","type":"stock.query","data":"not a CloudEvent"}'
        await raw.xadd(events_key(app), {"e": unread, "t": b"stock.query"})
        # The others are decoded: t names a subscribed type, or e does not confirm t.
        await raw.xadd(events_key(app), {"e": b"not json", "t": b"job.created"})
        await raw.xadd(events_key(app), {"e": b"not json", "t": b"stock.query"})
        await system.publish(Job(7))
        await eventually(lambda: seen == [7])
        await eventually(lambda: transport.stats().acked == 4)
        letters = await dead_letters(raw, app)
    assert len(letters) == 2  # those were read, and refused
    assert all("not valid JSON" in letter["error"] for letter in letters)
    assert transport.stats().delivered == 1


async def test_an_instance_without_broadcast_subscribers_does_not_read_the_broadcast(
    redis_server: RedisServer,
) -> None:
    """A publisher-only instance moves its broadcast group along instead of reading it."""
    app = new_app()
    seen: list[int] = []
    quiet = RedisTransport(redis_server.url, block=0.05)
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=RedisTransport(redis_server.url)) as listening,
        ActorSystem(app, transport=quiet) as publishing,
    ):
        await listening.spawn(jobs_into(seen))
        for n in range(50):
            await publishing.publish(Job(n))
        await eventually(lambda: seen == list(range(50)))
        newest = (await raw("XREVRANGE", events_key(app), "+", "-", "COUNT", 1))[0][0]

        async def quiet_group() -> dict[bytes, Any]:
            groups = await raw.groups(events_key(app))
            name = f"b:{quiet.instance}".encode()
            return next(group for group in groups if group[b"name"] == name)

        with anyio.fail_after(5):
            while (await quiet_group())[b"last-delivered-id"] != newest:  # noqa: ASYNC110 - polls Redis
                await anyio.sleep(0.02)
        assert (await quiet_group())[b"pending"] == 0
        assert quiet.stats().delivered == quiet.stats().acked == 0  # nothing read

        # Once it subscribes, what is published after `spawn` returned reaches it.
        late: list[int] = []
        for round_ in range(10):
            ref = await publishing.spawn(jobs_into(late))
            await listening.publish(Job(100 + round_))
            await eventually(lambda round_=round_: late[-1:] == [100 + round_])
            await ref.stop()
            await anyio.sleep(0.06)  # passing by again
        assert late == list(range(100, 110))


async def test_cancelled_publishers_leave_the_others_and_the_connection_working(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    seen: list[int] = []
    accepted: list[int] = []

    async def publish(system: ActorSystem, n: int, wait: float) -> None:
        with anyio.move_on_after(wait):
            await system.publish(Job(n))
            accepted.append(n)

    async with ActorSystem(app, transport=RedisTransport(redis_server.url)) as system:
        await system.spawn(jobs_into(seen))
        for round_ in range(5):  # alone (sent by the caller itself) and crowded (queued)
            async with anyio.create_task_group() as tg:
                for n in range(round_ * 100, round_ * 100 + 40):
                    tg.start_soon(publish, system, n, 0 if n % 3 == 0 else 5.0)
            await publish(system, round_ * 100 + 99, 0.0001)
        await system.publish(Job(-1))  # the connection still works after the cancellations
        await eventually(lambda: -1 in seen and set(accepted) <= set(seen))
    assert not [n for n in accepted if n % 3 == 0 and n % 100 != 99]  # cancelled at once
    assert len(accepted) >= 5 * 26


# -- trimming -----------------------------------------------------------------------------------


async def test_trimming_bounds_the_stream_and_keeps_pending_entries(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    key = events_key(app)
    count = 0

    @handle(Job)
    async def on_job(job: Job) -> None:
        nonlocal count
        count += 1

    transport = RedisTransport(redis_server.url, trim_interval=0.1)
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(on_job)
        async with anyio.create_task_group() as tg:
            for n in range(400):
                tg.start_soon(system.publish, Job(n))
        await eventually(lambda: count == 400)
        await eventually(lambda: transport.stats().acked == 400)
        await anyio.sleep(0.3)
        assert await raw("XLEN", key) < 150

        # A group that read one entry and never acknowledged it holds trimming there.
        await raw.create_group(key, "g:slow")
        held = (await system.publish(Job(-1))).id
        ((entry, _),) = await raw.read_group("g:slow", "stuck", key, count=1)
        async with anyio.create_task_group() as tg:
            for n in range(400):
                tg.start_soon(system.publish, Job(n))
        await eventually(lambda: count == 801)
        await anyio.sleep(0.3)
        kept = await raw.entries(key, entry, entry)
        length = await raw("XLEN", key)
    assert json.loads(kept[0][1][b"e"])["id"] == held
    assert length >= 401  # nothing after the pending entry was removed


# -- outages ------------------------------------------------------------------------------------


async def test_publish_fails_during_an_outage_and_consuming_resumes(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = fresh_redis_server
    password = server.password
    assert password is not None
    app = new_app()
    seen: list[int] = []
    transport = RedisTransport(server.url, publish_timeout=0.5)
    assert password not in repr(transport)
    assert "***" in repr(transport)
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(jobs_into(seen))
        await system.publish(Job(1))
        await eventually(lambda: seen == [1])

        await anyio.to_thread.run_sync(server.stop)
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            await system.publish(Job(2))
        assert time.monotonic() - started < 2.0
        assert password not in str(caught.value)
        assert "***" in str(caught.value)
        await eventually(lambda: not transport.stats().connected)

        await anyio.to_thread.run_sync(server.start)
        await system.publish(Job(3))
        await eventually(lambda: 3 in seen, timeout=10)
        stats = transport.stats()
    assert 2 not in seen
    assert stats.outages >= 1
    assert stats.reconnects >= 1
    assert stats.connected
    warnings = [r for r in caplog.records if r.name == "actorbus.redis" and r.levelno >= 30]
    assert any("lost the connection" in r.getMessage() for r in warnings)
    for record in caplog.records:
        assert password not in record.getMessage()
        assert password not in (record.exc_text or "")


async def test_start_up_fails_clearly_with_a_wrong_password(redis_server: RedisServer) -> None:
    url = f"redis://:wrong-{secrets.token_hex(4)}@{redis_server.host}:{redis_server.port}/0"
    with pytest.raises(TransportError, match="cannot connect to Redis") as caught:
        async with ActorSystem(new_app(), transport=RedisTransport(url)):
            pass
    assert "wrong-" not in str(caught.value)


# -- the example ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_redis_workers_example(redis_server: RedisServer) -> None:
    import runpy  # noqa: PLC0415

    namespace = runpy.run_path(str(TESTS.parent / "examples" / "redis_workers.py"))
    with anyio.fail_after(30):
        handled = await namespace["demo"](redis_server.url)
    assert sorted(n for names in handled.values() for n in names) == list(range(20))
    assert set(handled) == {"w1", "w2"}
    # The anonymous instances left nothing of theirs behind: only the application's stream,
    # and its record of the number of partitions.
    left = sorted(redis_server.cli("KEYS", "actorbus:app:redis-workers-demo-*").split())
    assert [key.rpartition(":")[2] for key in left] == ["events", "meta"]
    redis_server.cli("DEL", *left)


@pytest.mark.slow
async def test_the_redis_workers_example_under_actorbus_run(
    fresh_redis_server: RedisServer,
) -> None:
    import runpy  # noqa: PLC0415

    url = fresh_redis_server.url
    namespace = runpy.run_path(str(TESTS.parent / "examples" / "redis_workers.py"))
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for with deadlines below
        [
            *[sys.executable, "-m", "actorbus", "run", "examples.redis_workers:make_system"],
            *["--redis", url, "--instance", "cli-1"],
        ],
        cwd=TESTS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stderr is not None
        with anyio.fail_after(30):
            while "running with <RedisTransport" not in (
                line := await anyio.to_thread.run_sync(worker.stderr.readline)
            ):
                assert line, "the worker exited before it was running"
            await namespace["producer"](url, 5)
            rendered: list[str] = []
            while len(rendered) < 5:
                line = await anyio.to_thread.run_sync(worker.stdout.readline)
                assert line, "the worker exited before it rendered every job"
                rendered += [line] if "rendered job" in line else []
        worker.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(worker.wait, 30) == 0
    finally:
        worker.kill()
        worker.communicate()
    assert sorted(int(line.split("job ")[1].split()[0]) for line in rendered) == list(range(5))


# -- a crashed worker process ---------------------------------------------------------------------


@pytest.mark.slow
async def test_a_killed_worker_process_loses_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    app = new_app()
    record = tmp_path / "handled.txt"
    record.touch()
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for with a deadline below
        [sys.executable, str(TESTS / "redis_worker.py"), app, str(record), "0.05"],
        stdout=subprocess.PIPE,
        env={**os.environ, "REDIS_URL": redis_server.url},
    )
    try:
        assert worker.stdout is not None
        line = await anyio.to_thread.run_sync(worker.stdout.readline)
        assert line.strip() == b"ready"
        async with ActorSystem(app, transport=RedisTransport(redis_server.url)) as producer:
            published = [(await producer.publish(Job(n))).id for n in range(50)]
        await eventually(lambda: len(record.read_text().split()) >= 5, timeout=10)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        await anyio.to_thread.run_sync(worker.wait)
        if worker.stdout is not None:
            worker.stdout.close()
    by_worker = set(record.read_text().split())
    assert 5 <= len(by_worker) < 50  # killed mid-stream

    live: list[str] = []
    transport = RedisTransport(redis_server.url, claim_after=0.3)
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(work_into(live))
        await eventually(lambda: set(published) <= by_worker | set(live), timeout=15)
    assert transport.stats().claimed > 0  # what the dead worker had read was taken over
    assert set(published) == by_worker | set(live)


async def test_quiet_live_instances_keep_their_groups_and_crashed_ones_are_removed(
    redis_server: RedisServer,
) -> None:
    """The janitor goes by heartbeats, not by `idle`.

    Before Redis 7.2 a consumer's idle time only restarts when a read returns entries, so a
    live instance with nothing to read looks idle: going by it, instances removed each
    other's groups and then replayed the stream.
    """
    app = new_app()
    seen: list[tuple[str, int]] = []

    def recorder(label: str) -> Callable[[Job], Any]:
        @handle(Job)
        async def on_job(job: Job) -> None:
            seen.append((label, job.n))

        on_job.__name__ = f"on_job_{label}"
        return on_job

    settings = {"trim_interval": 0.05, "stale_after": 0.3}
    async with raw_client(redis_server.url) as client:
        # A crashed anonymous instance: its group has a consumer that read once and no
        # heartbeat any more.
        await client.create_group(events_key(app), "b:~crashed")
        await client.read_group("b:~crashed", "~crashed", events_key(app), count=1)
        async with (
            ActorSystem(app, transport=RedisTransport(redis_server.url, **settings)) as a,
            ActorSystem(app, transport=RedisTransport(redis_server.url, **settings)) as b,
        ):
            await a.spawn(recorder("a"))
            await b.spawn(recorder("b"))
            await a.publish(Job(1))
            await eventually(lambda: len(seen) == 2)
            # Quiet for several stale_after periods: real Redis time has to pass here.
            await anyio.sleep(1.2)
            groups = {g[b"name"].decode() for g in await client.groups(events_key(app))}
            await a.publish(Job(2))
            await eventually(lambda: len(seen) == 4)
            await anyio.sleep(0.2)  # a replay, if any, would arrive now
    assert "b:~crashed" not in groups
    assert len([g for g in groups if g.startswith("b:~")]) == 2  # both live instances kept theirs
    assert sorted(seen) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]  # nothing replayed


@pytest.mark.parametrize("url", ["localhost:6379", "http://localhost:6379/0", ""])
def test_a_url_that_is_not_redis_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisTransport(url)
