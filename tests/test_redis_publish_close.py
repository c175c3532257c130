"""What `publish` reports when the Redis transport stops while events are in flight.

An event Redis may have taken is never reported as not published, and one that was never
written never as possibly published. A graceful close lets a publish under way finish.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, TypeAlias

import anyio
import anyio.abc
import pytest
from redis_support import SlowReplies, events_key, new_app, raw_client

from actorbus import ActorSystem, Envelope, Scope, TransportError, event
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from redis_support import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@event("closing.shared", scope=Scope.APP)
class Shared:
    n: int


Outcomes: TypeAlias = dict[int, Envelope | TransportError]


async def eventually(check: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not check():  # noqa: ASYNC110 - polls what other tasks change
            await anyio.sleep(0.005)


async def outcome(sender: ActorSystem, n: int, into: Outcomes) -> None:
    try:
        into[n] = await sender.publish(Shared(n))
    except TransportError as exc:
        into[n] = exc


async def stream(redis_server: RedisServer, app: str) -> list[int]:
    async with raw_client(redis_server.url) as raw:
        entries = await raw.entries(events_key(app))
    return [json.loads(fields[b"e"])["data"]["n"] for _, fields in entries]


@contextlib.asynccontextmanager
async def publish_zero_in_flight(
    redis_server: RedisServer, app: str, outcomes: Outcomes
) -> AsyncIterator[tuple[ActorSystem, RedisTransport, anyio.abc.TaskGroup]]:
    """`Shared(0)` published from a task, its XADD written and its reply held back.

    Yields the system, its transport and the task group the publish runs in; the
    outcome of each publish ends up in `outcomes`.
    """
    with SlowReplies(redis_server) as proxy:
        transport = RedisTransport(proxy.url, publish_timeout=5)
        async with ActorSystem(app, transport=transport) as sender:
            await sender.publish(Shared(-1))  # connected; the next publish sends its own XADD
            publisher = transport._running_publisher()
            proxy.delay = 0.3  # Redis applies the XADD at once; its reply comes later
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(outcome, sender, 0, outcomes)
                await eventually(publisher._connection_lock.locked)
                yield sender, transport, tasks
            proxy.delay = 0


async def test_a_publish_under_way_when_the_transport_closes_gets_its_answer(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    outcomes: Outcomes = {}
    async with publish_zero_in_flight(redis_server, app, outcomes) as (sender, transport, _):
        transport._running_publisher().close()  # as the transport's close does
        await outcome(sender, 1, outcomes)  # after the close: not sent
    assert isinstance(outcomes[0], Envelope)
    assert isinstance(outcomes[1], TransportError)
    assert "the Redis transport is closed" in str(outcomes[1])
    assert await stream(redis_server, app) == [-1, 0]


async def test_a_publish_sent_but_not_answered_in_time_may_have_been_published(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    outcomes: Outcomes = {}
    with SlowReplies(redis_server) as proxy:
        transport = RedisTransport(proxy.url, publish_timeout=0.3)
        async with ActorSystem(app, transport=transport) as sender:
            await sender.publish(Shared(-1))
            proxy.delay = 1.0  # Redis applies the XADD; the reply comes too late
            await outcome(sender, 0, outcomes)
            proxy.delay = 0
    failure = outcomes[0]
    assert isinstance(failure, TransportError)
    assert "did not confirm event 'closing.shared'" in str(failure)
    assert "it was sent, so it may have been published" in str(failure)
    assert await stream(redis_server, app) == [-1, 0]


async def test_when_the_transport_stops_each_publish_says_whether_redis_may_have_it(
    redis_server: RedisServer,
) -> None:
    """One publish has written its XADD, the next waits for the connection: stop now."""
    app = new_app()
    outcomes: Outcomes = {}
    async with publish_zero_in_flight(redis_server, app, outcomes) as (sender, transport, tasks):
        tasks.start_soon(outcome, sender, 1, outcomes)
        publisher = transport._running_publisher()
        await eventually(lambda: bool(publisher._held))  # taken, not written
        assert transport._main_scope is not None
        transport._main_scope.cancel()  # the publishing task stops at once
    written, waiting = outcomes[0], outcomes[1]
    assert isinstance(written, TransportError)
    assert "it may have been published" in str(written)
    assert isinstance(waiting, TransportError)
    assert "cannot publish event 'closing.shared'" in str(waiting)
    assert "the Redis transport is closed" in str(waiting)
    assert await stream(redis_server, app) == [-1, 0]  # Redis did take the first
