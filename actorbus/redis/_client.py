"""`Client`: sends the bridge's commands to Redis, each to the node that serves its key.

The bridge talks to Redis only through this module and `actorbus.redis._connection`:

- `Client.call` and `Client.pipeline` serve tasks that send a command now and then (the
  claimer, the trimmer, start-up): the command goes to the node serving its key
  (`Client.node_for`), on a connection taken from that node's `Pool` and given back
  after the reply.
- `Client.dedicated` gives a task a connection of its own (`DedicatedConnection`): a
  blocking read (XREADGROUP BLOCK) holds its connection for as long as it blocks, and
  the publisher and each acker write their pipelines on theirs.

On a single server, every key is served by that server. The routing for Redis Cluster
(a slot map, ``MOVED``/``ASK``, failover) plugs in at `Client.node_for` and where a reply
is `Redirected`: see "Redis client" in ``docs/design.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import anyio

from actorbus.redis._connection import Connection, connect
from actorbus.redis._errors import ConnectionLost
from actorbus.redis._protocol import Command, command_key, pack

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actorbus.redis._endpoint import Endpoint

__all__ = ["CONNECT_TIMEOUT", "Client", "DedicatedConnection", "Pool"]

CONNECT_TIMEOUT: Final = 5.0
"""Seconds a new connection may take to connect and log in (within its command's deadline)."""
_MAX_IDLE: Final = 4
"""Connections a pool keeps open between commands."""


class Pool:
    """Connections to one server, lent to one command (or pipeline) at a time."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self._connect_timeout = connect_timeout
        self._idle: list[Connection] = []
        self._closed = False

    async def exchange(self, packed: bytes, count: int, deadline: float) -> list[Any]:
        """`Connection.exchange` on an idle connection, or a new one.

        Raises:
            ConnectionLost: See `Connection.exchange`, or the pool is closed.
            ReplyError: If a new connection's log-in was refused.
        """
        if self._closed:
            msg = "connection to Redis lost: the client is closed"
            raise ConnectionLost(msg)
        connection = await self._take(deadline)
        replies = await connection.exchange(packed, count, deadline)
        if self._closed or len(self._idle) >= _MAX_IDLE:
            await connection.aclose()
        else:
            self._idle.append(connection)
        return replies

    async def _take(self, deadline: float) -> Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed_by_peer():
                return connection
            await connection.aclose()
        return await connect(self.endpoint, _within(self._connect_timeout, deadline))

    async def aclose(self) -> None:
        """Close the idle connections; those lent out are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()


class Client:
    """The bridge's way to Redis: one per transport, shared by its tasks.

    Args:
        endpoint: The server (from the transport's URL).
        timeout: Seconds `call` and `pipeline` wait for their replies by default.
        connect_timeout: Seconds a new connection may take to connect and log in.
    """

    def __init__(
        self, endpoint: Endpoint, *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pools: dict[Endpoint, Pool] = {}
        self._closed = False

    def node_for(self, key: bytes | str | None) -> Endpoint:
        """The server that serves `key` (any, for None): on a single server, that server."""
        del key
        return self.endpoint

    def _pool_for(self, command: Command) -> Pool:
        if self._closed:
            msg = "connection to Redis lost: the client is closed"
            raise ConnectionLost(msg)
        node = self.node_for(command_key(command))
        pool = self._pools.get(node)
        if pool is None:
            pool = self._pools[node] = Pool(node, self.connect_timeout)
        return pool

    async def call(self, *command: bytes | str | int, timeout: float | None = None) -> Any:
        """Send one command; return its reply.

        Raises:
            ReplyError: Redis's error reply.
            ConnectionLost: If Redis could not be reached or did not answer within
                `timeout` seconds (default: the client's); the command may have run.
        """
        (reply,) = await self.pipeline([command], timeout=timeout)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def pipeline(
        self, commands: Sequence[Command], *, timeout: float | None = None
    ) -> list[Any]:
        """Send `commands` in one write; return their replies, an error reply as its value.

        Raises:
            ConnectionLost: As for `call`; any of the commands may have run.
            ReplyError: If a new connection's log-in was refused.
        """
        deadline = anyio.current_time() + (self.timeout if timeout is None else timeout)
        pool = self._pool_for(commands[0])
        return await pool.exchange(pack(commands), len(commands), deadline)

    def dedicated(self, key: bytes | str | None) -> DedicatedConnection:
        """A connection for one task's own use, to the node that serves `key`."""
        return DedicatedConnection(self, key)

    async def aclose(self) -> None:
        """Close the pooled connections (each `DedicatedConnection` is closed by its owner)."""
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class DedicatedConnection:
    """A connection owned by one task (used by one task at a time, never concurrently).

    It connects on first use, to the node serving its key, and again on the next use
    after any failure. A connection that Redis closed while it was idle is replaced
    before it is used.
    """

    __slots__ = ("_client", "_closes", "_connection", "_key", "started")

    def __init__(self, client: Client, key: bytes | str | None) -> None:
        self._client = client
        self._key = key
        self._connection: Connection | None = None
        self._closes = 0  # `close` calls: a connection opened meanwhile is not kept
        self.started = 0
        """Exchanges started: when it moves during a failed `send`, Redis may have the commands."""

    async def send(self, packed: bytes, count: int, *, timeout: float) -> list[Any]:
        """Write `count` commands, already packed (`pack`); return their replies.

        An error reply is returned in its command's place, as a `ReplyError`.

        Raises:
            ConnectionLost: If the connection was lost or refused, or the replies took
                longer than `timeout` seconds; the commands may have run.
            ReplyError: If connecting was refused (the log-in).
        """
        deadline = anyio.current_time() + timeout
        connection = self._connection
        if connection is None or connection.closed_by_peer():
            connection = await self._connect(deadline)
        self.started += 1
        try:
            return await connection.exchange(packed, count, deadline)
        except BaseException:
            self._connection = None  # (closed by the failed exchange)
            raise

    async def pipeline(self, commands: Sequence[Command], *, timeout: float) -> list[Any]:
        """`send` for `commands`."""
        return await self.send(pack(commands), len(commands), timeout=timeout)

    async def call(self, *command: bytes | str | int, timeout: float) -> Any:
        """Send one command; return its reply, raise its error reply (`Client.call`)."""
        (reply,) = await self.send(pack([command]), 1, timeout=timeout)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _connect(self, deadline: float) -> Connection:
        stale, self._connection = self._connection, None
        if stale is not None:
            await stale.aclose()
        closes = self._closes
        node = self._client.node_for(self._key)
        connection = await connect(node, _within(self._client.connect_timeout, deadline))
        if self._closes != closes:  # closed while connecting
            await connection.aclose()
            msg = "connection to Redis lost: closed while connecting"
            raise ConnectionLost(msg)
        self._connection = connection
        return connection

    async def close(self) -> None:
        """Close the connection (the next use opens a new one); safe when cancelled.

        A use connecting meanwhile fails (`ConnectionLost`) and closes what it opened.
        """
        self._closes += 1
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()


def _within(connect_timeout: float, deadline: float) -> float:
    """Seconds a connection may take to open: `connect_timeout`, and no later than `deadline`."""
    return max(min(connect_timeout, deadline - anyio.current_time()), 0.001)
