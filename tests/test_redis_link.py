"""`Link`, the bridge's own Redis connection, against a real redis-server (asyncio and trio).

On asyncio it runs on `AsyncioConnection` (a protocol and a timer), on trio on the socket
of an anyio stream, whose deadlines a `Watchdog` keeps (or a cancel scope, without one):
the same behaviour is checked on both. A silent TCP listener stands in for a hung server.
"""

from __future__ import annotations

import math
import secrets
import socket
import tempfile
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import ResponseError
from redis_support import RedisServer, new_app

from actorbus import ActorSystem, Envelope, Scope, handle
from actorbus.redis import RedisTransport
from actorbus.redis._link import Link
from actorbus.redis._watchdog import Watchdog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


def key() -> bytes:
    return f"test:link:{secrets.token_hex(4)}".encode()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        yield f"redis://127.0.0.1:{port}/0"


async def test_pipelined_replies_arrive_in_order_across_many_reads(
    redis_server: RedisServer,
) -> None:
    link = Link(redis_server.url)
    name = key()
    value = secrets.token_bytes(20_000)  # 200 replies of 20 kB: many reads per exchange
    try:
        await link.pipeline([(b"RPUSH", name, value + b"%d" % n) for n in range(200)], timeout=10)
        replies = await link.pipeline([(b"LINDEX", name, n) for n in range(200)], timeout=10)
        assert replies == [value + b"%d" % n for n in range(200)]
        errors = await link.pipeline([(b"INCR", name), (b"LLEN", name)], timeout=5)
        assert isinstance(errors[0], ResponseError)  # a server error is a reply, in its place
        assert errors[1] == 200
    finally:
        await link.call((b"DEL", name), timeout=5)
        await link.close()


async def test_a_hung_server_times_out_and_the_link_reconnects(silent_server: str) -> None:
    link = Link(silent_server)
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(RedisConnectionError, match="no answer from Redis"):
        await link.call((b"PING",), timeout=0.2)
    assert 0.2 <= anyio.current_time() - start < 2
    # The connection was dropped: the next call connects again (and times out again).
    with anyio.fail_after(5), pytest.raises(RedisConnectionError):
        await link.call((b"PING",), timeout=0.1)
    await link.close()


async def test_each_exchange_keeps_its_own_deadline_on_one_connection(
    redis_server: RedisServer,
) -> None:
    """A connection keeps one timer between exchanges (asyncio); each deadline still holds.

    An earlier deadline than the armed one, a later one (the timer fires first and moves),
    and one after the timer fired between exchanges.
    """
    link = Link(redis_server.url)
    name = key()

    async def blocked_for(timeout: float) -> float:
        """How long a read blocked on the server for 3 s took to fail with `timeout`."""
        start = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(RedisConnectionError, match="no answer"):
            await link.call((b"BLPOP", name, 3), timeout=timeout)
        return anyio.current_time() - start

    try:
        assert await link.call((b"PING",), timeout=30) == b"PONG"  # its timer: in 30 s
        assert 0.3 <= await blocked_for(0.3) < 1.5  # earlier: not 30 s
        assert await link.call((b"PING",), timeout=0.2) == b"PONG"  # its timer: in 0.2 s
        assert 0.8 <= await blocked_for(0.8) < 2  # later: not 0.2 s
        assert await link.call((b"PING",), timeout=0.1) == b"PONG"
        await anyio.sleep(0.3)  # that timer fired between exchanges
        assert 0.3 <= await blocked_for(0.3) < 1.5  # and the next exchange has one again
    finally:
        await link.close()


def test_a_link_made_in_one_run_keeps_time_in_the_next(redis_server: RedisServer) -> None:
    """Each trio run has its own clock: a `Link` must not keep the deadlines of the first.

    Made in a run whose clock starts at 0 and used in one whose clock reads far more,
    the link counted its 5 s from the first clock: its deadline had long passed.
    """
    import trio  # noqa: PLC0415
    import trio.testing  # noqa: PLC0415

    async def make() -> Link:
        return Link(redis_server.url)

    async def use(link: Link) -> Any:
        try:
            return await link.call((b"PING",), timeout=5)
        finally:
            await link.close()

    link = trio.run(make, clock=trio.testing.MockClock(rate=1))
    assert trio.run(use, link) == b"PONG"


async def test_a_cancelled_caller_sends_nothing(redis_server: RedisServer) -> None:
    link = Link(redis_server.url)
    name = key()
    try:
        assert await link.call((b"INCR", name), timeout=5) == 1  # connected
        with anyio.CancelScope() as scope:
            scope.cancel()
            await link.call((b"INCR", name), timeout=5)
        assert scope.cancelled_caught
        assert await link.call((b"GET", name), timeout=5) == b"1"
    finally:
        await link.call((b"DEL", name), timeout=5)
        await link.close()


async def test_a_caller_cancelled_while_waiting_leaves_the_link_usable(
    redis_server: RedisServer,
) -> None:
    link = Link(redis_server.url)
    name = key()
    try:
        with anyio.move_on_after(0.2) as scope:
            await link.call((b"BLPOP", name, 5), timeout=10)  # blocks on the server
        assert scope.cancelled_caught
        # The cancelled call's reply could arrive later: the link reconnected instead of
        # reading it as the answer to the next command.
        await link.call((b"RPUSH", name, b"x"), timeout=5)
        assert await link.call((b"LPOP", name), timeout=5) == b"x"
    finally:
        await link.call((b"DEL", name), timeout=5)
        await link.close()


async def test_a_connection_closed_by_the_server_while_idle_is_replaced_quietly(
    redis_server: RedisServer,
) -> None:
    link = Link(redis_server.url)
    try:
        own_id = await link.call((b"CLIENT", b"ID"), timeout=5)
        other = Link(redis_server.url)
        await other.call((b"CLIENT", b"KILL", b"ID", own_id), timeout=5)
        await other.close()
        await anyio.sleep(0.6)  # idle for longer than the check interval
        assert await link.call((b"PING",), timeout=5) == b"PONG"
        assert await link.call((b"CLIENT", b"ID"), timeout=5) != own_id
    finally:
        await link.close()


async def test_with_a_watchdog_a_hung_server_still_times_out(silent_server: str) -> None:
    # On trio the transport's watchdog keeps the deadlines instead of a cancel scope per
    # exchange (asyncio has a timer per exchange either way).
    watchdog = Watchdog()
    link = Link(silent_server, watchdog=watchdog)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watchdog.run)
        await wait_until(lambda: watchdog.running)
        start = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(RedisConnectionError):
            await link.call((b"PING",), timeout=0.2)
        assert 0.2 <= anyio.current_time() - start < 1.2
        await link.close()
        tasks.cancel_scope.cancel()
    assert not watchdog.running


async def test_an_exchange_with_an_earlier_deadline_wakes_the_watchdog_sooner(
    silent_server: str, anyio_backend: str
) -> None:
    # The watchdog sleeps until the first exchange's deadline, far away; the second's
    # comes first and still ends it on time. (On asyncio each exchange has its own timer.)
    watchdog = Watchdog()
    slow, quick = Link(silent_server, watchdog=watchdog), Link(silent_server, watchdog=watchdog)

    async def wait_long() -> None:
        with pytest.raises(RedisConnectionError):
            await slow.call((b"PING",), timeout=30)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watchdog.run)
        await wait_until(lambda: watchdog.running)
        tasks.start_soon(wait_long)
        if anyio_backend == "trio":
            await wait_until(lambda: watchdog.wakes_at > anyio.current_time() + 20)
        start = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(RedisConnectionError):
            await quick.call((b"PING",), timeout=0.2)
        assert 0.2 <= anyio.current_time() - start < 1.2
        await quick.close()
        await slow.close()
        tasks.cancel_scope.cancel()


async def test_an_exchange_under_way_when_the_watchdog_stops_ends(
    silent_server: str, anyio_backend: str
) -> None:
    # Its deadline was the watchdog's to keep: it would otherwise wait for ever. (On
    # asyncio the exchange keeps its own timer and ends at its deadline.)
    watchdog = Watchdog()
    link = Link(silent_server, watchdog=watchdog)
    ended: list[float] = []

    async def call() -> None:
        with pytest.raises(RedisConnectionError):
            await link.call((b"PING",), timeout=30 if anyio_backend == "trio" else 0.3)
        ended.append(anyio.current_time())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks, anyio.create_task_group() as watching:
            watching.start_soon(watchdog.run)
            await wait_until(lambda: watchdog.running)
            tasks.start_soon(call)
            await anyio.sleep(0.1)
            watching.cancel_scope.cancel()
    assert len(ended) == 1
    await link.close()


async def test_a_link_closed_while_it_connects_keeps_no_connection(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = Link(redis_server.url)
    open_ = Link._open

    async def slow_open(self: Link) -> Any:
        await anyio.sleep(0.2)
        return await open_(self)

    monkeypatch.setattr(Link, "_open", slow_open)
    async with anyio.create_task_group() as tasks:

        async def call() -> None:
            with pytest.raises(RedisConnectionError, match="lost"):
                await link.call((b"PING",), timeout=5)

        tasks.start_soon(call)
        await anyio.sleep(0.1)
        await link.close()  # while the call connects
    assert link._connection is None  # what it opened was closed, not kept
    monkeypatch.undo()
    assert await link.call((b"PING",), timeout=5) == b"PONG"  # the next call connects
    await link.close()


async def test_an_idle_watchdog_does_not_wake_up(redis_server: RedisServer) -> None:
    watchdog = Watchdog()
    link = Link(redis_server.url, watchdog=watchdog)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watchdog.run)
        await wait_until(lambda: watchdog.running)
        try:
            assert await link.call((b"PING",), timeout=0.1) == b"PONG"
            await anyio.sleep(0.3)  # the exchange's deadline passed, long after it ended
            checks = watchdog.checks
            await anyio.sleep(0.5)
            assert watchdog.checks == checks <= 2  # the start, and (trio) that deadline
            assert watchdog.wakes_at == math.inf  # until an exchange starts
        finally:
            await link.close()
            tasks.cancel_scope.cancel()


async def test_a_watchdog_leaves_exchanges_that_finish_in_time_alone(
    redis_server: RedisServer,
) -> None:
    watchdog = Watchdog()
    link = Link(redis_server.url, watchdog=watchdog)
    name = key()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watchdog.run)
        await wait_until(lambda: watchdog.running)
        try:
            own_id = await link.call((b"CLIENT", b"ID"), timeout=0.15)
            # Quick exchanges with short deadlines, and idle stretches longer than them:
            # no deadline outlives its exchange, the connection stays.
            for n in range(1, 4):
                assert await link.call((b"INCR", name), timeout=0.15) == n
                await anyio.sleep(0.4 if n == 2 else 0.1)
            assert await link.call((b"CLIENT", b"ID"), timeout=0.15) == own_id
            # A command the server itself holds for a while, within its deadline.
            assert await link.call((b"BLPOP", name + b":empty", b"0.3"), timeout=2) is None
            assert await link.call((b"CLIENT", b"ID"), timeout=1) == own_id  # same connection
        finally:
            await link.call((b"DEL", name), timeout=5)
            await link.close()
            tasks.cancel_scope.cancel()


async def wait_until(check: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not check():  # noqa: ASYNC110 - a flag set by another task
            await anyio.sleep(0.001)


async def test_a_transport_on_trio_runs_its_watchdog_while_open(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    transport = RedisTransport(redis_server.url)
    async with ActorSystem(new_app(), transport=transport):
        context = transport._context  # the wiring under test
        assert context is not None
        if anyio_backend == "trio":
            assert context.watchdog is not None
            assert context.watchdog.running
        else:  # asyncio: each exchange has a timer on the loop instead
            assert context.watchdog is None
    assert context.watchdog is None or not context.watchdog.running


async def test_a_unix_socket_url_works_end_to_end() -> None:
    handled = anyio.Event()

    @handle("job.done", group="work")
    async def work(envelope: Envelope) -> None:
        handled.set()

    # A short directory of its own: socket paths are limited to about 100 characters.
    with tempfile.TemporaryDirectory(prefix="ab-") as directory:
        path = f"{directory}/redis.sock"
        config = {"unixsocket": path, "unixsocketperm": "700"}
        with RedisServer(extra_config=config) as server:
            url = f"unix://:{server.password}@{path}?db=0"  # AUTH over the socket too
            link = Link(url)
            assert await link.call((b"PING",), timeout=5) == b"PONG"
            await link.close()
            async with ActorSystem(new_app(), transport=RedisTransport(url)) as system:
                await system.spawn(work)
                await system.publish(Envelope(type="job.done", data=None, scope=Scope.APP))
                with anyio.fail_after(5):
                    await handled.wait()


async def test_a_server_hanging_up_mid_exchange_fails_the_call() -> None:
    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # the request, then close without an answer

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, hang_up)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        link = Link(f"redis://127.0.0.1:{port}/0")
        with anyio.fail_after(5), pytest.raises(RedisConnectionError, match="lost"):
            await link.call((b"PING",), timeout=5)
        await link.close()
        tasks.cancel_scope.cancel()


async def test_a_request_larger_than_the_socket_buffers_to_a_hung_server_times_out(
    silent_server: str,
) -> None:
    # Nobody reads: the socket's buffers fill up and the send itself has to wait.
    link = Link(silent_server)
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(RedisConnectionError, match="no answer from Redis"):
        await link.call((b"SET", b"big", b"x" * 32_000_000), timeout=0.3)
    assert 0.3 <= anyio.current_time() - start < 3
    await link.close()


class _Overdue:
    """A stand-in for a watched connection whose exchange is past its deadline."""

    def __init__(self, name: str, expired: list[str]) -> None:
        self.deadline = 0.0
        self.name = name
        self.expired = expired
        self.other: _Overdue | None = None  # whose reply arrives while this one is closed

    async def expire(self) -> None:
        self.expired.append(self.name)
        if self.other is not None:
            self.other.deadline = math.inf  # its exchange finished meanwhile
        await anyio.lowlevel.checkpoint()  # closing lets other tasks run


async def test_a_watchdog_spares_an_exchange_that_finished_while_it_expired_another() -> None:
    expired: list[str] = []
    watchdog = Watchdog()
    one, two = _Overdue("one", expired), _Overdue("two", expired)
    one.other, two.other = two, one  # whichever is expired first, the other then finished
    watchdog.watch(one)
    watchdog.watch(two)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watchdog.run)
        await wait_until(lambda: bool(expired))
        await anyio.sleep(0.2)  # nothing else is overdue
        tasks.cancel_scope.cancel()
    assert len(expired) == 1


async def test_a_connection_the_watchdog_closed_between_exchanges_is_replaced(
    redis_server: RedisServer,
) -> None:
    # On trio, as the watchdog does just after the exchange ended; asyncio has no watchdog
    # (a connection closed under the `Link` all the same).
    link = Link(redis_server.url, watchdog=Watchdog())  # not running: only expire() is used
    try:
        first_id = await link.call((b"CLIENT", b"ID"), timeout=5)
        connection: Any = link._connection
        await getattr(connection, "expire", connection.aclose)()
        assert await link.call((b"CLIENT", b"ID"), timeout=5) != first_id
    finally:
        await link.close()
