"""Redis Cluster: which master serves each hash slot, and commands sent where their keys live.

A cluster serves each of its 16384 hash slots (`actorbus.redis._slots`) from one master.
`Cluster` keeps that map, read with ``CLUSTER SLOTS`` from any node it knows (the URL's
and the seeds first, then every node a map named), and `Cluster.route` sends commands to
the masters of their slots: one exchange per node, the nodes at the same time, the
commands of one node in the order given (so the commands about one key keep their
order). What the cluster answers decides what happens next:

- ``MOVED slot host:port``: the slot has another master (a resharding, a failover). The
  slot is updated at once and the command sent there; the whole map is read again soon,
  since a change seldom moves one slot only.
- ``ASK slot host:port``: the slot is being migrated and the key is at the target
  already. The command goes there once, right after ``ASKING``; the map stays.
- ``TRYAGAIN``, ``CLUSTERDOWN``, ``LOADING``, ``READONLY``, ``MASTERDOWN`` and a node
  that cannot be reached: the command did not run. It is sent again after a short
  backoff, with the map read again from any node that answers, until its deadline; then
  its last error is its reply.
- ``UNBLOCKED``: a blocking read ended because its stream left the node (migrated) or
  the node became a replica. It is sent again at once, where the map says.
- A connection lost after the command was sent: it may have run, so it is not sent
  again (a resent XADD would add its event twice). The failure is its reply, for the
  bridge's loops to handle as they do on a single server, and the map is read again
  before the next command.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from actorbus._supervision import Backoff
from actorbus.redis._errors import ConnectionLost, Redirected, ReplyError, Unavailable, Unreachable
from actorbus.redis._protocol import pack
from actorbus.redis._slots import SLOTS, hash_slot

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actorbus.redis._endpoint import Endpoint

__all__ = ["CLUSTER_SLOTS", "Cluster", "Links", "Request", "rerouted"]

Request = tuple[int | None, bytes]
"""One command for `Cluster.route`: its slot (None: no key, any node) and its packed form."""

CLUSTER_SLOTS: Final = pack([(b"CLUSTER", b"SLOTS")])
_ASKING: Final = pack([(b"ASKING",)])
_MAX_ROUNDS: Final = 16
"""Exchanges one command may take (redirections, retries) before its last error stands."""
_RETRY: Final = Backoff(initial=0.05, maximum=1.0, multiplier=2.0, jitter=0.5)
"""Between the rounds of `Cluster.route` that wait (a node away, ``TRYAGAIN``, …)."""
_REFRESH_EVERY: Final = 0.25
"""Seconds at least between two readings of the map (a resharding moves slot after slot)."""
_ASK_TIMEOUT: Final = 1.0
"""Seconds one node may take to answer ``CLUSTER SLOTS`` before the next one is asked."""
_MAP_CHANGED: Final = frozenset({"CLUSTERDOWN", "READONLY", "MASTERDOWN"})
"""The codes of `Unavailable` that say a master changed: the map is read again."""
_SLOT_CACHE: Final = 4096


def rerouted(reply: Any) -> bool:
    """Whether `reply` says the command did not run and is to be sent again (module docs)."""
    return isinstance(reply, (Redirected, Unavailable)) or (
        isinstance(reply, ReplyError) and reply.code == "UNBLOCKED"
    )


class Links(Protocol):
    """Connections to the nodes of a deployment, as `Cluster.route` uses them."""

    async def exchange(
        self, node: Endpoint, packed: bytes, count: int, deadline: float
    ) -> list[Any]:
        """Send `count` packed commands to `node`; return their replies (errors in place).

        Raises:
            Unreachable: No connection to `node` could be opened; nothing was sent.
            ConnectionLost: The connection broke or timed out; the commands may have run.
            ReplyError: A new connection's log-in was refused.
        """
        ...


class Cluster:
    """The slot map of one Redis Cluster, and the routing of commands by it.

    Args:
        seeds: Nodes to read the map from before any map named others (the URL's first).
        pools: The client's connections, on which the map is read.
    """

    def __init__(self, seeds: Sequence[Endpoint], pools: Links) -> None:
        self._seeds = list(seeds)
        self._pools = pools
        self._owners: list[Endpoint | None] = [None] * SLOTS
        self._nodes: dict[tuple[str, int], Endpoint] = {}  # every node seen, masters first
        self._masters: list[Endpoint] = []
        self._slots: dict[bytes | str, int] = {}
        self.version = 0
        """Changes whenever the map does: a connection to an old master can be let go."""
        self._stale = False  # the map may be wrong: read it before the next exchange
        self._refreshing = False
        self._refreshed = -math.inf
        self._failed: Endpoint | None = None  # the last node that could not be reached

    # -- the map ------------------------------------------------------------------------------

    def slot(self, key: bytes | str) -> int:
        """The hash slot of `key` (remembered for the keys used over and over)."""
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= _SLOT_CACHE:
                self._slots.clear()
            slot = self._slots[key] = hash_slot(key)
        return slot

    def master(self, slot: int | None) -> Endpoint:
        """The master serving `slot`, as far as the map knows (any node for None).

        A slot no master serves goes to a node that will say so (``CLUSTERDOWN``).
        """
        if slot is not None:
            owner = self._owners[slot]
            if owner is not None:
                return owner
        return self._masters[0] if self._masters else self._seeds[0]

    def masters(self) -> list[Endpoint]:
        """The masters of the map, in the order of their first slot.

        A node named by ``MOVED`` is one of them at once; one that lost its last slot
        stays until the map is read again.
        """
        return list(self._masters)

    def load(self, reply: Any, asked: Endpoint) -> int:
        """Take the ``CLUSTER SLOTS`` reply of node `asked` as the map; return slots covered.

        Each entry of the reply is ``[first, last, master, replica, ...]``, each node
        ``[host, port, id, ...]``; an empty host (or ``?``) means the node asked.

        Raises:
            ValueError: If `reply` is not such a list.
        """
        owners: list[Endpoint | None] = [None] * SLOTS
        masters: list[Endpoint] = []
        others: list[Endpoint] = []
        covered = 0
        try:
            for entry in reply:
                first, last = int(entry[0]), int(entry[1])
                nodes = [self._node(node[0], int(node[1]), asked) for node in entry[2:]]
                master = nodes[0]
                owners[first : last + 1] = [master] * (last + 1 - first)
                covered += last + 1 - first
                if master not in masters:
                    masters.append(master)
                others += nodes[1:]
        except (TypeError, ValueError, IndexError) as exc:
            msg = f"not a CLUSTER SLOTS reply: {reply!r:.200}"
            raise ValueError(msg) from exc
        self._owners = owners
        self._masters = masters
        order = [*masters, *others, *self._seeds, *self._nodes.values()]
        self._nodes = {(node.host, node.port): node for node in order}
        self._stale = covered < SLOTS
        self.version += 1
        return covered

    def _node(self, host: bytes | str, port: int, asked: Endpoint) -> Endpoint:
        name = host.decode(errors="replace") if isinstance(host, bytes) else host
        if name in ("", "?"):
            name = asked.host
        node = self._nodes.get((name, port))
        if node is None:
            node = self._nodes[name, port] = asked.at(name, port)
        return node

    def moved(self, redirect: Redirected, at: Endpoint) -> Endpoint:
        """Note a ``MOVED`` (the slot's new master) or ``ASK`` (its target) from node `at`.

        ``MOVED`` changes the slot at once and has the whole map read again soon.
        Returns the node named.
        """
        node = self._node(redirect.host, redirect.port, at)
        if not redirect.ask and 0 <= redirect.slot < SLOTS:
            self._owners[redirect.slot] = node
            if node not in self._masters:
                self._masters.append(node)
            self._stale = True
            self.version += 1
        return node

    def lost(self, node: Endpoint) -> None:
        """`node` could not be reached or broke a connection: read the map again soon."""
        self._stale = True
        self._failed = node

    async def refresh(self, deadline: float, *, now: bool = False) -> None:
        """Read the map again if it may be wrong, from the first node that answers.

        At most every `_REFRESH_EVERY` seconds, unless `now`; one reading at a time
        (others go on with the map they have). The masters are asked first, the node
        that failed last; a map that leaves slots unserved is taken only when no node
        gives a whole one.
        """
        if self._refreshing or not (self._stale or now):
            return
        if not now and anyio.current_time() - self._refreshed < _REFRESH_EVERY:
            return
        self._refreshing = True
        try:
            await self._read_map(deadline)
        finally:
            self._refreshing = False
            self._refreshed = anyio.current_time()

    async def _read_map(self, deadline: float) -> None:
        candidates = list(dict.fromkeys([*self._nodes.values(), *self._seeds]))
        if self._failed in candidates:
            candidates.remove(self._failed)
            candidates.append(self._failed)
        best: tuple[int, Any, Endpoint] | None = None
        for node in candidates:
            if anyio.current_time() >= deadline:
                break
            try:
                (reply,) = await self._pools.exchange(
                    node, CLUSTER_SLOTS, 1, min(deadline, anyio.current_time() + _ASK_TIMEOUT)
                )
            except (ConnectionLost, ReplyError):
                continue
            if not isinstance(reply, list):
                continue
            entries: list[Any] = reply  # pyright: ignore[reportUnknownVariableType]
            covered = sum(_covered(entry) for entry in entries)
            if covered >= SLOTS and _loaded(self, reply, node):
                return
            if best is None or covered > best[0]:
                best = (covered, entries, node)
        if best is not None:
            _loaded(self, best[1], best[2])

    # -- routing ------------------------------------------------------------------------------

    async def route(
        self, requests: Sequence[Request], deadline: float, links: Links, *, raising: bool
    ) -> list[Any]:
        """Send each command to the master of its slot; return their replies, in order.

        A command's reply is what Redis answered, its error reply included, or the
        failure that stands once it may no longer be sent again (module docs): a
        `ConnectionLost` (it may have run), an `Unreachable` or an `Unavailable` past
        `deadline` (it did not run), or a `ReplyError` refusing a new connection's
        log-in.

        Raises:
            ConnectionLost: With `raising`, the failure of a connection, rather than
                as the reply of the commands it concerns.
            ReplyError: With `raising`, a new connection's log-in refused, likewise.
        """
        routing = _Routing(len(requests))
        waits = 0
        for _ in range(_MAX_ROUNDS):
            await self.refresh(deadline)
            groups: dict[Endpoint, list[int]] = {}
            for index in routing.todo:
                node = routing.asking.get(index) or self.master(requests[index][0])
                groups.setdefault(node, []).append(index)
            outcomes = await self._exchange_groups(
                groups, requests, routing.asking, deadline, links
            )
            routing.todo = []
            wait = False
            for node, indexes in groups.items():
                wait |= self._settle(node, indexes, outcomes[node], routing)
            remaining = deadline - anyio.current_time()
            if not routing.todo or remaining <= 0:
                break
            if wait:
                waits += 1
                await anyio.sleep(min(_RETRY.delay(waits), remaining))
        return routing.finish(raising=raising)

    def _settle(
        self,
        node: Endpoint,
        indexes: list[int],
        outcome: list[Any] | BaseException,
        routing: _Routing,
    ) -> bool:
        """Take the outcome of `node`'s exchange; return whether to wait before the next."""
        if isinstance(outcome, BaseException):
            routing.failures.append(outcome)
            for index in indexes:
                routing.replies[index] = outcome
            if isinstance(outcome, ConnectionLost):
                self.lost(node)
            if isinstance(outcome, Unreachable):  # nothing was sent: again
                routing.todo += indexes
                return True
            return False
        wait = False
        for index, reply in zip(indexes, outcome, strict=True):
            routing.replies[index] = reply
            routing.asking.pop(index, None)
            if rerouted(reply):
                routing.todo.append(index)
                wait |= self._redirect(index, reply, node, routing)
        return wait

    def _redirect(self, index: int, reply: ReplyError, node: Endpoint, routing: _Routing) -> bool:
        """Note why command `index` is to be sent again; return whether to wait first."""
        if isinstance(reply, Redirected):
            target = self.moved(reply, node)
            if reply.ask:
                routing.asking[index] = target
            return False
        if isinstance(reply, Unavailable):
            if reply.code in _MAP_CHANGED:
                self._stale = True
            return True
        self._stale = True  # UNBLOCKED: the key left the node (migrated), or the node its role
        return False

    async def _exchange_groups(
        self,
        groups: dict[Endpoint, list[int]],
        requests: Sequence[Request],
        asking: dict[int, Endpoint],
        deadline: float,
        links: Links,
    ) -> dict[Endpoint, list[Any] | BaseException]:
        outcomes: dict[Endpoint, list[Any] | BaseException] = {}

        async def one(node: Endpoint, indexes: list[int]) -> None:
            outcomes[node] = await _exchange(node, indexes, requests, asking, deadline, links)

        if len(groups) == 1:
            ((node, indexes),) = groups.items()
            await one(node, indexes)
        else:
            async with anyio.create_task_group() as tasks:
                for node, indexes in groups.items():
                    tasks.start_soon(one, node, indexes)
        return outcomes


class _Routing:
    """Where the commands of one `Cluster.route` are: their replies, what is left to send."""

    __slots__ = ("asking", "failures", "replies", "todo")

    def __init__(self, count: int) -> None:
        self.replies: list[Any] = [None] * count
        self.todo: list[int] = list(range(count))  # to send in the next round
        self.asking: dict[int, Endpoint] = {}  # those that go after ASKING, and where
        self.failures: list[BaseException] = []  # connections that failed

    def finish(self, *, raising: bool) -> list[Any]:
        """The replies, once no round is left (see `Cluster.route`)."""
        if raising:
            for reply in self.replies:
                if any(reply is failure for failure in self.failures):
                    raise reply
        for index in self.todo:
            reply = self.replies[index]
            if isinstance(reply, Redirected):
                self.replies[index] = Unavailable(
                    f"TRYAGAIN redirected {_MAX_ROUNDS} times ({reply}): the cluster is "
                    "being reconfigured"
                )
        return self.replies


async def _exchange(
    node: Endpoint,
    indexes: list[int],
    requests: Sequence[Request],
    asking: dict[int, Endpoint],
    deadline: float,
    links: Links,
) -> list[Any] | BaseException:
    """The replies of the commands `indexes` sent to `node` in one exchange, or its failure.

    A command redirected there by ``ASK`` goes right after an ``ASKING`` of its own; an
    error answering that ``ASKING`` is the command's reply.
    """
    parts: list[bytes] = []
    asked: list[bool] = []
    for index in indexes:
        ask = asking.get(index) == node
        if ask:
            parts.append(_ASKING)
        parts.append(requests[index][1])
        asked.append(ask)
    try:
        replies = await links.exchange(node, b"".join(parts), len(parts), deadline)
    except (ConnectionLost, ReplyError) as exc:
        return exc
    if len(parts) == len(indexes):
        return replies
    result: list[Any] = []
    position = 0
    for ask in asked:
        if ask:
            position += 1
            if isinstance(replies[position - 1], ReplyError):
                result.append(replies[position - 1])
                position += 1
                continue
        result.append(replies[position])
        position += 1
    return result


def _loaded(cluster: Cluster, reply: Any, node: Endpoint) -> bool:
    """`Cluster.load`, or False for a reply that is no slot map (as if the node were away)."""
    try:
        cluster.load(reply, node)
    except ValueError:
        return False
    return True


def _covered(entry: Any) -> int:
    try:
        return int(entry[1]) + 1 - int(entry[0])
    except (TypeError, ValueError, IndexError):
        return 0
