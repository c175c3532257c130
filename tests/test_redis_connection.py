"""The bridge's Redis client against a real redis-server and stand-in servers (asyncio, trio).

One connection type (anyio streams, hiredis's reader) on both backends: replies in order
however they arrive, error replies in their command's place, deadlines, cancellation,
reconnection, the log-in, a pool for commands now and then. A silent TCP listener stands
in for a hung server; small anyio servers send what a real one would not.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import tempfile
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import pytest
from redis_support import RedisServer, new_app

from actorbus import ActorSystem, Envelope, Scope, handle
from actorbus.redis import RedisTransport
from actorbus.redis import _client as client_module
from actorbus.redis._client import Client, DedicatedConnection
from actorbus.redis._config import redact_url
from actorbus.redis._endpoint import endpoint
from actorbus.redis._errors import (
    AuthenticationFailed,
    ConnectionLost,
    NoGroup,
    ReplyError,
    Unavailable,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

pytestmark = pytest.mark.anyio


def key() -> bytes:
    return f"test:connection:{secrets.token_hex(4)}".encode()


def client(url: str, timeout: float = 5.0) -> Client:
    return Client(endpoint(url, None, redact_url(url)), timeout=timeout)


def dedicated(url: str) -> DedicatedConnection:
    return client(url).dedicated(None)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        yield f"redis://127.0.0.1:{port}/0"


async def serving(
    handler: Callable[[anyio.abc.SocketStream], Awaitable[None]],
) -> AsyncIterator[str]:
    """Serve `handler` on a free port while the caller's block runs; yield the URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, handler)
        yield f"redis://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}/0"
        tasks.cancel_scope.cancel()


# -- replies --------------------------------------------------------------------------------------

ENTRY = b'*2\r\n$3\r\n1-1\r\n*4\r\n$1\r\ne\r\n$5\r\n{"a"}\r\n$1\r\nt\r\n$1\r\nx\r\n'
WIRE = (
    b"+OK\r\n"  # simple string
    b":42\r\n"  # integer
    b"$-1\r\n"  # nil bulk
    b"*-1\r\n"  # nil array (a blocked read that timed out)
    b"*0\r\n"  # empty array
    b"$0\r\n\r\n"  # empty bulk
    b"*1\r\n*2\r\n$6\r\nevents\r\n*2\r\n"
    + ENTRY
    + ENTRY.replace(b"1-1", b"1-2")
    # an XREADGROUP reply with two entries, then errors (one nested, as EXEC would)
    + b"*2\r\n-READONLY You can't write against a read only replica.\r\n:1\r\n"
    b"-NOGROUP No such key 'events' or consumer group 'g'\r\n"
    b"-ERR unknown thing\r\n"
)
EXPECTED = [
    b"OK",
    42,
    None,
    None,
    [],
    b"",
    [[b"events", [[b"1-1", [b"e", b'{"a"}', b"t", b"x"]], [b"1-2", [b"e", b'{"a"}', b"t", b"x"]]]]],
]
COUNT = len(EXPECTED) + 3


@pytest.mark.parametrize("piece", [len(WIRE), 1, 7])
async def test_replies_arriving_in_pieces_come_back_whole_and_in_order(piece: int) -> None:
    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            for start in range(0, len(WIRE), piece):
                await stream.send(WIRE[start : start + piece])
            await anyio.sleep_forever()

    async for url in serving(answer):
        connection = dedicated(url)
        replies = await connection.pipeline([(b"PING",)] * COUNT, timeout=5)
        await connection.close()
    assert replies[: len(EXPECTED)] == EXPECTED
    nested, no_group, error = replies[len(EXPECTED) :]
    assert isinstance(nested[0], Unavailable)
    assert nested[1] == 1
    assert isinstance(no_group, NoGroup)
    assert "No such key" in str(no_group)
    assert type(error) is ReplyError


async def test_bytes_that_are_not_resp_lose_the_connection() -> None:
    async def garble(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"?what\r\n")
            await anyio.sleep_forever()

    async for url in serving(garble):
        connection = dedicated(url)
        with anyio.fail_after(5), pytest.raises(ConnectionLost, match="lost"):
            await connection.call(b"PING", timeout=5)
        await connection.close()


@pytest.mark.redis
async def test_pipelined_replies_arrive_in_order_across_many_reads(
    redis_server: RedisServer,
) -> None:
    connection = dedicated(redis_server.url)
    name = key()
    value = secrets.token_bytes(20_000)  # 200 replies of 20 kB: many reads per exchange
    try:
        await connection.pipeline(
            [(b"RPUSH", name, value + b"%d" % n) for n in range(200)], timeout=10
        )
        replies = await connection.pipeline([(b"LINDEX", name, n) for n in range(200)], timeout=10)
        assert replies == [value + b"%d" % n for n in range(200)]
        errors = await connection.pipeline([(b"INCR", name), (b"LLEN", name)], timeout=5)
        assert isinstance(errors[0], ReplyError)  # a server error is a reply, in its place
        assert errors[1] == 200
        with pytest.raises(ReplyError, match="WRONGTYPE"):
            await connection.call(b"INCR", name, timeout=5)
    finally:
        await connection.call(b"DEL", name, timeout=5)
        await connection.close()


# -- deadlines and cancellation -------------------------------------------------------------------


async def test_a_hung_server_times_out_and_the_connection_reconnects(silent_server: str) -> None:
    connection = dedicated(silent_server)
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(ConnectionLost, match="no answer from Redis"):
        await connection.call(b"PING", timeout=0.2)
    assert 0.2 <= anyio.current_time() - start < 2
    # The connection was dropped: the next call connects again (and times out again).
    with anyio.fail_after(5), pytest.raises(ConnectionLost):
        await connection.call(b"PING", timeout=0.1)
    await connection.close()


@pytest.mark.redis
async def test_each_exchange_keeps_its_own_deadline(redis_server: RedisServer) -> None:
    connection = dedicated(redis_server.url)
    name = key()

    async def blocked_for(timeout: float) -> float:
        """How long a read blocked on the server for 3 s took to fail with `timeout`."""
        start = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(ConnectionLost, match="no answer"):
            await connection.call(b"BLPOP", name, 3, timeout=timeout)
        return anyio.current_time() - start

    try:
        assert await connection.call(b"PING", timeout=30) == b"PONG"
        assert 0.3 <= await blocked_for(0.3) < 1.5  # not 30 s
        assert await connection.call(b"PING", timeout=0.2) == b"PONG"
        assert 0.8 <= await blocked_for(0.8) < 2  # not 0.2 s
    finally:
        await connection.close()


@pytest.mark.redis
def test_a_connection_made_in_one_run_keeps_time_in_the_next(redis_server: RedisServer) -> None:
    """Each trio run has its own clock: a connection must not keep the deadlines of the first."""
    import trio  # noqa: PLC0415
    import trio.testing  # noqa: PLC0415

    async def make() -> DedicatedConnection:
        return dedicated(redis_server.url)

    async def use(connection: DedicatedConnection) -> Any:
        try:
            return await connection.call(b"PING", timeout=5)
        finally:
            await connection.close()

    connection = trio.run(make, clock=trio.testing.MockClock(rate=1))
    assert trio.run(use, connection) == b"PONG"


@pytest.mark.redis
async def test_a_cancelled_caller_sends_nothing(redis_server: RedisServer) -> None:
    connection = dedicated(redis_server.url)
    name = key()
    try:
        assert await connection.call(b"INCR", name, timeout=5) == 1  # connected
        with anyio.CancelScope() as scope:
            scope.cancel()
            await connection.call(b"INCR", name, timeout=5)
        assert scope.cancelled_caught
        assert await connection.call(b"GET", name, timeout=5) == b"1"
    finally:
        await connection.call(b"DEL", name, timeout=5)
        await connection.close()


@pytest.mark.redis
async def test_a_caller_cancelled_while_waiting_leaves_the_connection_usable(
    redis_server: RedisServer,
) -> None:
    connection = dedicated(redis_server.url)
    name = key()
    try:
        with anyio.move_on_after(0.2) as scope:
            await connection.call(b"BLPOP", name, 5, timeout=10)  # blocks on the server
        assert scope.cancelled_caught
        # The cancelled call's reply could arrive later: it reconnected instead of
        # reading it as the answer to the next command.
        await connection.call(b"RPUSH", name, b"x", timeout=5)
        assert await connection.call(b"LPOP", name, timeout=5) == b"x"
    finally:
        await connection.call(b"DEL", name, timeout=5)
        await connection.close()


async def test_connecting_to_a_hung_server_ends_with_the_commands_deadline(
    silent_server: str,
) -> None:
    # The TLS handshake never ends: connecting alone would take the 5 s connect timeout.
    url = silent_server.replace("redis://", "rediss://")
    hung = Client(endpoint(url, ssl.create_default_context(), url), timeout=0.3)
    for connection in (hung.dedicated(None), hung):
        start = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(ConnectionLost, match="cannot reach Redis"):
            await connection.call(b"PING", timeout=0.3)
        assert anyio.current_time() - start < 2


async def test_a_request_larger_than_the_socket_buffers_to_a_hung_server_times_out(
    silent_server: str,
) -> None:
    # Nobody reads: the socket's buffers fill up and the send itself has to wait.
    connection = dedicated(silent_server)
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(ConnectionLost, match="no answer from Redis"):
        await connection.call(b"SET", b"big", b"x" * 32_000_000, timeout=0.3)
    assert 0.3 <= anyio.current_time() - start < 3
    await connection.close()


# -- connections coming and going -----------------------------------------------------------------


@pytest.mark.redis
async def test_a_connection_closed_by_the_server_while_idle_is_replaced_quietly(
    redis_server: RedisServer,
) -> None:
    connection = dedicated(redis_server.url)
    try:
        own_id = await connection.call(b"CLIENT", b"ID", timeout=5)
        other = dedicated(redis_server.url)
        await other.call(b"CLIENT", b"KILL", b"ID", own_id, timeout=5)
        await other.close()
        await anyio.sleep(0.6)  # idle for longer than the check interval
        assert await connection.call(b"PING", timeout=5) == b"PONG"
        assert await connection.call(b"CLIENT", b"ID", timeout=5) != own_id
    finally:
        await connection.close()


@pytest.mark.redis
async def test_a_connection_closed_while_it_connects_keeps_nothing_open(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = dedicated(redis_server.url)
    connect = client_module.connect
    opened: list[Any] = []

    async def slow_connect(*args: Any) -> Any:
        await anyio.sleep(0.2)
        opened.append(await connect(*args))
        return opened[-1]

    monkeypatch.setattr(client_module, "connect", slow_connect)
    async with anyio.create_task_group() as tasks:

        async def call() -> None:
            with pytest.raises(ConnectionLost, match="lost"):
                await connection.call(b"PING", timeout=5)

        tasks.start_soon(call)
        await anyio.sleep(0.1)
        await connection.close()  # while the call connects
    assert opened[0].closed  # what it opened was closed, not kept
    monkeypatch.undo()
    assert await connection.call(b"PING", timeout=5) == b"PONG"  # the next call connects
    await connection.close()


async def test_a_server_hanging_up_mid_exchange_fails_the_call() -> None:
    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # the request, then close without an answer

    async for url in serving(hang_up):
        connection = dedicated(url)
        with anyio.fail_after(5), pytest.raises(ConnectionLost, match="lost"):
            await connection.call(b"PING", timeout=5)
        await connection.close()


async def test_a_server_that_cannot_be_reached_is_a_lost_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    connection = dedicated(f"redis://127.0.0.1:{port}/0")  # nothing listens there now
    with anyio.fail_after(5), pytest.raises(ConnectionLost, match="cannot reach Redis"):
        await connection.call(b"PING", timeout=5)


# -- logging in -----------------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_connection_logs_in_and_selects_the_urls_database(
    redis_server: RedisServer,
) -> None:
    url = redis_server.url.rpartition("/")[0] + "/3"
    connection = dedicated(url)
    try:
        info = await connection.call(b"CLIENT", b"INFO", timeout=5)
        assert b" db=3 " in info
    finally:
        await connection.close()
    wrong = url.replace(str(redis_server.password), "wrong")
    with pytest.raises(AuthenticationFailed, match="WRONGPASS"):
        await dedicated(wrong).call(b"PING", timeout=5)


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
            connection = dedicated(url)
            assert await connection.call(b"PING", timeout=5) == b"PONG"
            await connection.close()
            async with ActorSystem(new_app(), transport=RedisTransport(url)) as system:
                await system.spawn(work)
                await system.publish(Envelope(type="job.done", data=None, scope=Scope.APP))
                with anyio.fail_after(5):
                    await handled.wait()


# -- the pool -------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_the_client_lends_a_connection_per_command_and_keeps_them(
    redis_server: RedisServer,
) -> None:
    shared = client(redis_server.url)
    name = key()
    try:
        first = await shared.call(b"CLIENT", b"ID")
        assert await shared.call(b"CLIENT", b"ID") == first  # the same one, given back
        ids: list[int] = []

        async def blocked() -> None:  # holds its connection on the server for a while
            ids.append(await shared.call(b"CLIENT", b"ID"))
            await shared.call(b"BLPOP", name, b"0.3")

        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(blocked)
        assert len(set(ids)) == 3  # each concurrent command had a connection of its own
        assert await shared.pipeline([(b"INCR", name), (b"INCR", name)]) == [1, 2]
    finally:
        await shared.call(b"DEL", name)
        await shared.aclose()
    with pytest.raises(ConnectionLost, match="closed"):
        await shared.call(b"PING")
