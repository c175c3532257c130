"""Entries written by other programs: nothing is dropped without a trace (asyncio, trio).

Every entry an outside producer writes is either delivered or dead-lettered with its
reason, whatever its fields say; a large one is dead-lettered as a bounded preview.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from redis_support import dead_key, events_key, new_app, raw_client

from actorbus import ActorSystem, Envelope, Policy, Scope, Supervision, event, handle
from actorbus._wire import encode
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis_support import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@event("producer.job", scope=Scope.APP)
class Job:
    n: int


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls state that tasks and Redis change
            await anyio.sleep(0.01)


def wire(type_: str, data: object, id_: str) -> bytes:
    return encode(Envelope(type=type_, data=data, source="elsewhere", scope=Scope.APP, id=id_))


async def test_an_entry_whose_t_disagrees_with_its_event_is_delivered_by_its_event(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Field ``t`` is a hint to skip decoding; the type inside ``e`` decides.

    Acknowledged unread because ``t`` named a type nobody here wants, the first entry
    used to be lost without a trace.
    """
    caplog.set_level(logging.WARNING, logger="actorbus.redis")
    app = new_app()
    seen: list[int] = []

    @handle(Job)
    async def on_job(job: Job) -> None:
        seen.append(job.n)

    transport = RedisTransport(redis_server.url)
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(on_job)
        key = events_key(app)
        await raw.xadd(key, {"e": wire("producer.job", {"n": 1}, "j-1"), "t": "other.thing"})
        await raw.xadd(key, {"e": wire("other.thing", {"x": 1}, "o-1"), "t": "producer.job"})
        await raw.xadd(key, {"e": wire("producer.job", {"n": 2}, "j-2"), "t": "other.thing"})
        await system.publish(Job(3))
        await eventually(lambda: sorted(seen) == [1, 2, 3])
        await eventually(lambda: transport.stats().acked == 4)
        letters = await raw.entries(dead_key(app))
        pending = await raw.pending(key, f"b:{transport.instance}")
    assert letters == []  # nothing was wrong with them: delivered (or nobody wanted them)
    assert pending == 0
    warned = [r.getMessage() for r in caplog.records if "its event's type" in r.getMessage()]
    assert len(warned) == 2  # once per pair of types, not once per entry
    assert "t='other.thing' but its event's type (in field e) is 'producer.job'" in warned[0]
    assert "t='producer.job' but its event's type (in field e) is 'other.thing'" in warned[1]


async def test_a_multi_megabyte_entry_is_dead_lettered_as_a_bounded_preview(
    redis_server: RedisServer,
) -> None:
    """Each group that gives up on an entry adds a dead letter: a preview, not a copy."""
    app = new_app()
    seen: list[int] = []

    @handle(Job)
    async def everyone(job: Job) -> None:
        seen.append(job.n)

    @handle(Job, group="work")
    async def worker(job: Job) -> None:
        seen.append(-job.n)

    transport = RedisTransport(redis_server.url)
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(everyone)
        await system.spawn(worker)
        key = events_key(app)
        big = wire("producer.job", {"n": 1, "blob": "x" * 5_000_000}, "big-1")  # over 1 MiB
        entry = await raw.xadd(key, {"e": big, "t": "producer.job"})
        await system.publish(Job(2))
        await eventually(lambda: sorted(seen) == [-2, 2])
        await eventually(lambda: transport.stats().dead_lettered == 2)
        letters = await raw.entries(dead_key(app))
        memory = await raw("MEMORY", "USAGE", dead_key(app))
        ((_, kept),) = await raw.entries(key, entry, entry)
    assert {fields[b"group"] for _, fields in letters} == {
        f"b:{transport.instance}".encode(),
        b"g:work",
    }
    for _, fields in letters:
        assert b"e" not in fields
        assert fields[b"preview"] == big[:1024]
        assert fields[b"size"] == str(len(big)).encode()
        assert fields[b"entry"] == entry  # where the whole entry is
        assert b"exceeds max_message_bytes" in fields[b"error"]
    assert memory < 16 * 1024  # two copies of the entry would take 10 MB
    assert kept[b"e"] == big  # still in the events stream (until it is trimmed)


async def test_a_large_event_dead_lettered_by_supervision_keeps_its_id(
    redis_server: RedisServer,
) -> None:
    app = new_app()

    @handle("producer.blob")
    async def refuse(envelope: Envelope) -> None:
        msg = "cannot take it"
        raise ValueError(msg)

    small, large = "x" * 1000, "x" * 100_000
    transport = RedisTransport(redis_server.url)
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(refuse, supervision=Supervision(policy=Policy.DEAD_LETTER))
        sent = [
            await system.publish(Envelope(type="producer.blob", data=data, scope=Scope.APP))
            for data in (small, large)
        ]
        await eventually(lambda: transport.stats().dead_lettered == 2)
        letters = [fields for _, fields in await raw.entries(dead_key(app))]
    whole, preview = sorted(letters, key=len)
    assert json.loads(whole[b"e"])["id"] == sent[0].id  # up to 64 KiB: the entry itself
    assert b"e" not in preview
    assert preview[b"id"] == sent[1].id.encode()
    assert preview[b"type"] == b"producer.blob"
    assert int(preview[b"size"]) > 100_000
    assert len(preview[b"preview"]) == 1024
    assert b"ValueError: cannot take it" in preview[b"error"]


# -- a producer that knows only the guide -------------------------------------------------------

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "redis.md"


def guide_example() -> list[str]:
    """The guide's ``redis-cli XADD`` example, as the arguments after ``redis-cli``."""
    text = GUIDE.read_text()
    start = text.index("redis-cli XADD actorbus:app:shop:events")
    command = text[start : text.index("```", start)].replace("\\\n", " ")
    words = shlex.split(command)
    assert words[0] == "redis-cli"
    return words[1:]


@event("order.created", scope=Scope.APP)
class OrderCreated:
    order_id: str
    total: float


async def test_a_producer_following_the_guide_reaches_a_handler_with_redis_cli(
    redis_server: RedisServer,
) -> None:
    """No actorbus code writes here: ``redis-cli``, as the guide's example and rules say."""
    app = new_app()
    orders: list[tuple[OrderCreated, Envelope]] = []
    blobs: list[Envelope] = []

    @handle()
    async def take(order: OrderCreated, envelope: Envelope) -> None:
        orders.append((order, envelope))

    @handle("blob.*")
    async def store(envelope: Envelope) -> None:
        blobs.append(envelope)

    async def cli(*args: str) -> str:
        return await anyio.to_thread.run_sync(lambda: redis_server.cli(*args))

    key = events_key(app)
    ours = f"actorbus:app:{app}:"
    example = [word.replace("actorbus:app:shop:", ours) for word in guide_example()]
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    by_the_rules = json.dumps(  # bytes as data_base64, no scope (app), no t
        {"specversion": "1.0", "id": "b-1", "source": "s3", "type": "blob.stored",
         "data_base64": "AAEC/w==", "traceparent": trace}
    )  # fmt: skip
    hostile = {
        "tenantId": json.dumps(  # an upper-case extension name, as other SDKs allow
            {"specversion": "1.0", "id": "h-1", "source": "s", "type": "order.created",
             "tenantId": "acme", "data": {"order_id": "o-2", "total": 1.0}}
        ),
        "no source": json.dumps({"specversion": "1.0", "id": "h-2", "type": "order.created"}),
        "wrong data": json.dumps(
            {"specversion": "1.0", "id": "h-3", "source": "s", "type": "order.created",
             "data": {"order_id": "o-3"}}
        ),
    }  # fmt: skip
    transport = RedisTransport(redis_server.url)
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(take)
        await system.spawn(store)
        assert await cli(*example)  # the entry's id
        await cli("XADD", key, "*", "e", by_the_rules)
        for e in hostile.values():
            await cli("XADD", key, "*", "e", e, "t", "order.created")
        await eventually(lambda: len(orders) == 1 and len(blobs) == 1)
        await eventually(lambda: transport.stats().dead_lettered == len(hostile))
    ((order, envelope),) = orders
    assert order == OrderCreated("o-1", 9.5)
    assert (envelope.id, envelope.source) == ("inv-7731", "billing/legacy")
    assert envelope.scope is Scope.APP
    assert envelope.headers["tenant"] == "acme"
    assert envelope.time is not None
    assert envelope.time.isoformat() == "2024-05-01T12:00:00+00:00"
    (blob,) = blobs
    assert blob.data == b"\x00\x01\x02\xff"
    assert blob.headers["traceparent"] == trace
    letters = await cli("XRANGE", dead_key(app), "-", "+")
    assert "invalid CloudEvent extension attribute name 'tenantId'" in letters
    assert "'source' must be a non-empty string" in letters
    assert "total" in letters  # the field that order h-3 lacks
