"""`Link`, the bridge's own Redis connection, against a real redis-server (asyncio and trio).

On asyncio it runs on `AsyncioConnection` (a protocol and a timer), on trio on an anyio
stream: the same behaviour is checked on both. A silent TCP listener stands in for a hung
server.
"""

from __future__ import annotations

import secrets
import socket
from typing import TYPE_CHECKING

import anyio
import pytest
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import ResponseError

from actorbus.redis._link import Link

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis_support import RedisServer

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
    with anyio.fail_after(5), pytest.raises(RedisConnectionError, match="cannot reach Redis"):
        await link.call((b"PING",), timeout=0.2)
    assert 0.2 <= anyio.current_time() - start < 2
    # The connection was dropped: the next call connects again (and times out again).
    with anyio.fail_after(5), pytest.raises(RedisConnectionError):
        await link.call((b"PING",), timeout=0.1)
    await link.close()


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
