"""`Client`: sends the bridge's commands to Redis, each to the node that serves its key.

The bridge talks to Redis only through this module and `actorbus.redis._connection`:

- `Client.call` and `Client.pipeline` serve tasks that send a command now and then (the
  claimer, the trimmer, start-up): the command goes to the node serving its key
  (`Client.node_for`), on a connection taken from that node's `Pool` and given back
  after the reply.
- `Client.dedicated` gives a task connections of its own (`DedicatedConnection`): a
  blocking read (XREADGROUP BLOCK) holds its connection for as long as it blocks, and
  the publisher and each acker write their pipelines on theirs.

`Client.start` finds out whether the URL names a single server or a node of a **Redis
Cluster** (``CLUSTER SLOTS``). On a single server, every key is served by that server
and each exchange is one write and one read, nothing more. On a cluster, commands are
routed by `actorbus.redis._cluster.Cluster` (the slot map, ``MOVED``/``ASK``, failover),
and no command whose keys lie in different hash slots is sent (`CrossSlot`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import anyio

from actorbus.redis._cluster import CLUSTER_SLOTS, Cluster, rerouted
from actorbus.redis._connection import Connection, connect, unpack
from actorbus.redis._errors import (
    ClusterMismatch,
    ConnectionLost,
    CrossSlot,
    PermissionDenied,
    ReplyError,
    Unreachable,
)
from actorbus.redis._health import logger
from actorbus.redis._protocol import Command, command_keys, pack

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actorbus.redis._cluster import Request
    from actorbus.redis._endpoint import Endpoint

__all__ = ["CONNECT_TIMEOUT", "Client", "DedicatedConnection", "Pool"]

CONNECT_TIMEOUT: Final = 5.0
"""Seconds a new connection may take to connect and log in (within its command's deadline)."""
_MAX_IDLE: Final = 4
"""Connections a pool keeps open between commands."""
_PROBE: Final = pack([(b"PING",)]) + CLUSTER_SLOTS


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
            Unreachable: No new connection could be opened (nothing was sent).
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
        endpoint: The server (from the transport's URL); on a cluster, the first node
            asked for the slot map.
        timeout: Seconds `call` and `pipeline` wait for their replies by default.
        connect_timeout: Seconds a new connection may take to connect and log in.
    """

    def __init__(
        self, endpoint: Endpoint, *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.cluster: Cluster | None = None
        """The cluster's slot map and routing, once `start` found one (else None)."""
        self._pools: dict[Endpoint, Pool] = {}
        self._closed = False

    async def start(
        self, cluster: bool | None, seeds: Sequence[Endpoint] = (), *, timeout: float
    ) -> None:
        """Check that Redis answers, and whether it is a Redis Cluster, as `cluster` says.

        Sends ``PING`` and ``CLUSTER SLOTS`` to the URL's node (to the `seeds` in turn
        while it cannot be reached). A slot map in reply means a cluster: from then on
        commands go where the map says. ``ERR`` (cluster support disabled) means a single
        server; so does ``NOPERM`` (an ACL user without ``+cluster|slots``, as before
        clusters were supported), unless `cluster` is True or `seeds` were given.

        Raises:
            ClusterMismatch: `cluster` is True (or `seeds` were given) and this is not a
                cluster or the user may not read the slot map, `cluster` is False and
                this is a cluster, or the slot map cannot be read.
            ConnectionLost: If no node could be reached within `timeout` seconds.
            ReplyError: If the log-in or ``PING`` was refused.
        """
        node, slots = await self._probe(seeds, anyio.current_time() + timeout)
        where = node.where
        if isinstance(slots, list):
            if cluster is False:
                msg = (
                    f"Redis at {where} is a node of a Redis Cluster, but the transport was "
                    "given cluster=False: leave cluster=None (the default) or set True"
                )
                raise ClusterMismatch(msg)
            found = Cluster([self.endpoint, *seeds], self)
            try:
                found.load(slots, node)
            except ValueError as exc:
                msg = f"Redis at {where} answered CLUSTER SLOTS with no slot map: {exc}"
                raise ClusterMismatch(msg) from None
            self.cluster = found
            return
        denied = isinstance(slots, PermissionDenied)
        if denied and (cluster is True or seeds):
            msg = (
                f"the Redis user may not read the slot map of the cluster at {where} "
                "(NOPERM on CLUSTER SLOTS): add +cluster|slots and +asking to its ACL"
            )
            raise ClusterMismatch(msg)
        if not denied and (cluster is True or seeds):
            given = "cluster=True" if cluster is True else "seeds"
            msg = (
                f"Redis at {where} is not a Redis Cluster node ({slots}), but the transport "
                f"was given {given}: leave them out, or point the URL at a node of the cluster"
            )
            raise ClusterMismatch(msg)
        if denied:
            logger.info(
                "the Redis user may not run CLUSTER SLOTS at %s: taking it as a single "
                "server (on a Redis Cluster, add +cluster|slots and +asking to its ACL)",
                where,
            )

    async def _probe(self, seeds: Sequence[Endpoint], deadline: float) -> tuple[Endpoint, Any]:
        """The first node of the URL's and `seeds` that answers, and its ``CLUSTER SLOTS``.

        Raises:
            ConnectionLost: If none could be reached.
            ReplyError: If the log-in or ``PING`` was refused.
        """
        lost: ConnectionLost | None = None
        for node in (self.endpoint, *seeds):
            try:
                pong, slots = await self.exchange(node, _PROBE, 2, deadline)
            except ConnectionLost as exc:
                lost = lost or exc
                continue
            if isinstance(pong, ReplyError):
                raise pong
            return node, slots
        assert lost is not None  # noqa: S101 - at least the URL's node was tried
        raise lost

    def node_for(self, key: bytes | str | None) -> Endpoint:
        """The server that serves `key` (any, for None): on a single server, that server."""
        cluster = self.cluster
        if cluster is None:
            return self.endpoint
        return cluster.master(None if key is None else cluster.slot(key))

    def slot_of(self, command: Command) -> int | None:
        """The hash slot of `command`'s keys on a cluster (None: no key, or no cluster).

        Raises:
            CrossSlot: If it names keys in different slots and this is a cluster.
        """
        cluster = self.cluster
        if cluster is None:
            return None
        keys = command_keys(command)
        if not keys:
            return None
        slots = {cluster.slot(key) for key in keys}
        if len(slots) > 1:
            where = ", ".join(f"{key!r} in slot {cluster.slot(key)}" for key in keys)
            msg = (
                f"{command[0]!r} names keys in different hash slots of the Redis Cluster "
                f"({where}), which the cluster refuses: give the keys one hash tag, the "
                "same text in {braces}, so that they share a slot"
            )
            raise CrossSlot(msg)
        return slots.pop()

    def _pool(self, node: Endpoint) -> Pool:
        if self._closed:
            msg = "connection to Redis lost: the client is closed"
            raise ConnectionLost(msg)
        pool = self._pools.get(node)
        if pool is None:
            pool = self._pools[node] = Pool(node, self.connect_timeout)
        return pool

    async def exchange(
        self, node: Endpoint, packed: bytes, count: int, deadline: float
    ) -> list[Any]:
        """`Pool.exchange` on `node`'s pool (the client's `Links`, for `Cluster.route`)."""
        return await self._pool(node).exchange(packed, count, deadline)

    async def call(self, *command: bytes | str | int, timeout: float | None = None) -> Any:
        """Send one command; return its reply.

        Raises:
            ReplyError: Redis's error reply.
            ConnectionLost: If Redis could not be reached or did not answer within
                `timeout` seconds (default: the client's); the command may have run.
            CrossSlot: If a cluster would refuse the command's keys.
        """
        (reply,) = await self.pipeline([command], timeout=timeout)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def pipeline(
        self, commands: Sequence[Command], *, timeout: float | None = None
    ) -> list[Any]:
        """Send `commands` (one write per node); return their replies, errors in place.

        Raises:
            ConnectionLost: As for `call`; any of the commands may have run.
            ReplyError: If a new connection's log-in was refused.
            CrossSlot: If a cluster would refuse the keys of one of them.
        """
        deadline = anyio.current_time() + (self.timeout if timeout is None else timeout)
        cluster = self.cluster
        if cluster is None:
            return await self.exchange(self.endpoint, pack(commands), len(commands), deadline)
        requests = [(self.slot_of(command), pack([command])) for command in commands]
        return await cluster.route(requests, deadline, self, raising=True)

    def dedicated(self, key: bytes | str | None) -> DedicatedConnection:
        """Connections for one task's own use, first of all to the node that serves `key`."""
        return DedicatedConnection(self, key)

    async def aclose(self) -> None:
        """Close the pooled connections (each `DedicatedConnection` is closed by its owner)."""
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class DedicatedConnection:
    """Connections owned by one task (used by one task at a time, never concurrently).

    On a single server, one connection. On a cluster, one per node the task's commands
    go to: above all the master of its key's slot, which it follows through ``MOVED``
    and failovers (a connection to a node that is no longer a master is closed once the
    map changes). A connection is opened on first use, and again on the next use after
    any failure; one that Redis closed while it was idle is replaced before it is used.
    """

    __slots__ = ("_client", "_closes", "_connections", "_key", "_version", "started")

    def __init__(self, client: Client, key: bytes | str | None) -> None:
        self._client = client
        self._key = key
        self._connections: dict[Endpoint, Connection] = {}
        self._closes = 0  # `close` calls: a connection opened meanwhile is not kept
        self._version = 0  # of the cluster's map when the connections were last checked
        self.started = 0
        """Exchanges started: when it moves during a failed `send`, Redis may have the commands."""

    async def send(self, packed: bytes, count: int, *, timeout: float) -> list[Any]:
        """Write `count` commands about the key, already packed (`pack`); return their replies.

        An error reply is returned in its command's place, as a `ReplyError`. On a
        cluster, a command redirected (``MOVED``, ``ASK``) or refused for now
        (``TRYAGAIN``, ``CLUSTERDOWN``, …) is sent again where the map says, within
        `timeout`.

        Raises:
            ConnectionLost: If the connection was lost or refused, or the replies took
                longer than `timeout` seconds; the commands may have run.
            ReplyError: If connecting was refused (the log-in).
        """
        deadline = anyio.current_time() + timeout
        cluster = self._client.cluster
        if cluster is None:
            return await self.exchange(self._client.endpoint, packed, count, deadline)
        await self._let_go(cluster)
        node = self._client.node_for(self._key)
        replies: list[Any] | None
        try:
            replies = await self.exchange(node, packed, count, deadline)
        except Unreachable:
            cluster.lost(node)
            replies = None
        except ConnectionLost:
            cluster.lost(node)
            raise
        if replies is not None and not any(map(rerouted, replies)):
            return replies
        # The slow way: each command that did not run goes where the map says.
        commands = unpack(packed)
        again = [i for i in range(count) if replies is None or rerouted(replies[i])]
        requests = [(self._client.slot_of(commands[i]), pack([commands[i]])) for i in again]
        routed = await cluster.route(requests, deadline, self, raising=True)
        result = replies or [None] * count
        for index, reply in zip(again, routed, strict=True):
            result[index] = reply
        return result

    async def pipeline(self, commands: Sequence[Command], *, timeout: float) -> list[Any]:
        """Send `commands`, about any keys (one write per node); return their replies.

        Raises:
            ConnectionLost: As for `send`; any of the commands may have run.
            ReplyError: If connecting was refused (the log-in).
            CrossSlot: If a cluster would refuse the keys of one of them.
        """
        cluster = self._client.cluster
        if cluster is None:
            return await self.send(pack(commands), len(commands), timeout=timeout)
        await self._let_go(cluster)
        requests = [(self._client.slot_of(command), pack([command])) for command in commands]
        deadline = anyio.current_time() + timeout
        return await cluster.route(requests, deadline, self, raising=True)

    async def send_each(
        self, requests: Sequence[tuple[bytes | str, bytes]], *, timeout: float
    ) -> list[Any]:
        """Send packed commands, each about one key (``(key, packed)``); return a reply each.

        Nothing is raised: a failure is the reply of each command it concerns, as on a
        cluster, where the commands are sent to several nodes: `ConnectionLost` (it
        may have run), `Unreachable` (it was not sent), `ReplyError` (an error reply,
        or a log-in refused).
        """
        deadline = anyio.current_time() + timeout
        cluster = self._client.cluster
        if cluster is None:
            packed = b"".join([command for _, command in requests])
            try:
                return await self.exchange(self._client.endpoint, packed, len(requests), deadline)
            except (ConnectionLost, ReplyError) as exc:
                return [exc] * len(requests)
        await self._let_go(cluster)
        routed: list[Request] = [(cluster.slot(key), command) for key, command in requests]
        return await cluster.route(routed, deadline, self, raising=False)

    async def call(self, *command: bytes | str | int, timeout: float) -> Any:
        """Send one command; return its reply, raise its error reply (`Client.call`)."""
        (reply,) = await self.pipeline([command], timeout=timeout)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def exchange(
        self, node: Endpoint, packed: bytes, count: int, deadline: float
    ) -> list[Any]:
        """`Connection.exchange` on this task's connection to `node` (its `Links`).

        Raises:
            Unreachable: No connection could be opened (nothing was sent).
            ConnectionLost: See `Connection.exchange`.
            ReplyError: If the log-in of a new connection was refused.
        """
        connection = self._connections.get(node)
        if connection is None or connection.closed_by_peer():
            connection = await self._connect(node, deadline)
        self.started += 1
        try:
            return await connection.exchange(packed, count, deadline)
        except BaseException:
            if self._connections.get(node) is connection:
                del self._connections[node]  # (closed by the failed exchange)
            raise

    async def _connect(self, node: Endpoint, deadline: float) -> Connection:
        stale = self._connections.pop(node, None)
        if stale is not None:
            await stale.aclose()
        closes = self._closes
        connection = await connect(node, _within(self._client.connect_timeout, deadline))
        if self._closes != closes:  # closed while connecting
            await connection.aclose()
            msg = "connection to Redis lost: closed while connecting"
            raise ConnectionLost(msg)
        self._connections[node] = connection
        return connection

    async def _let_go(self, cluster: Cluster) -> None:
        """Once the map changed, close the connections to nodes that are no longer masters."""
        if cluster.version == self._version:
            return
        self._version = cluster.version
        masters = set(cluster.masters())
        for node in [node for node in self._connections if node not in masters]:
            await self._connections.pop(node).aclose()

    async def close(self) -> None:
        """Close the connections (the next use opens new ones); safe when cancelled.

        A use connecting meanwhile fails (`ConnectionLost`) and closes what it opened.
        """
        self._closes += 1
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await connection.aclose()


def _within(connect_timeout: float, deadline: float) -> float:
    """Seconds a connection may take to open: `connect_timeout`, and no later than `deadline`."""
    return max(min(connect_timeout, deadline - anyio.current_time()), 0.001)
