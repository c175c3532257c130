"""A real Redis Cluster for tests and benchmarks: ``redis-server --cluster-enabled yes``.

`RedisCluster` starts its nodes (each a `redis_support.RedisServer` on a free loopback
port, with a cluster bus port of its own), joins them with ``redis-cli --cluster create``
and waits until every node agrees on the slot map. Like `redis_support`, it needs no
Redis client library: it reads the cluster with the raw RESP client of `redis_support`,
so it keeps working while the client under test is broken.

Load it as a pytest plugin (``pytest_plugins = ["cluster_support"]``) for three fixtures:

* ``redis_cluster`` — three masters, no replicas, for the whole session. Tests may move
  a slot if they move it back; they must not stop nodes.
* ``redis_cluster_replicas`` — three masters with one replica each, for the whole
  session: failover tests fail a master over to its replica (`RedisCluster.failover`),
  which leaves a healthy cluster with the roles swapped.
* ``tls_redis_cluster`` — three masters speaking only TLS (the bus and replication
  too), for the whole session.
* ``redis_any`` — parametrized: the session's ``redis_server``, then ``redis_cluster``,
  for tests of the bridge that must hold on both.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest
from redis_support import (
    ClosedOnExit,
    RedisServer,
    RedisServerError,
    RespError,
    TLSFiles,
    find_free_port,
    redis_cli,
    require_redis_server,
    send_raw,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "RedisCluster",
    "SlotRange",
    "redis_any",
    "redis_cluster",
    "redis_cluster_replicas",
    "tls_redis_cluster",
]

_READY_TIMEOUT = 60.0
_POLL = 0.05


@dataclass(frozen=True)
class SlotRange:
    """A run of slots, ``first`` to ``last`` inclusive, and the nodes serving it."""

    first: int
    last: int
    master: int  # its port
    replicas: tuple[int, ...]

    def __len__(self) -> int:
        return self.last + 1 - self.first


class RedisCluster(ClosedOnExit):
    """A Redis Cluster of `masters` masters with `replicas` replicas each, on loopback.

    Every node has the same random password (``requirepass`` and ``masterauth``), no
    persistence, and a short ``cluster-node-timeout``. Use it as a context manager:
    leaving stops every node and deletes their directories.

    Args:
        masters: Masters; the slots are split evenly among them, in order.
        replicas: Replicas per master.
        node_timeout: Milliseconds before a silent node is taken as failed.
    """

    def __init__(
        self, masters: int = 3, replicas: int = 0, *, node_timeout: int = 3000, tls: bool = False
    ) -> None:
        self.password = secrets.token_hex(16)
        self._masters = masters
        self._replicas = replicas
        self._node_timeout = node_timeout
        self._tls = tls
        self._directory = Path(tempfile.mkdtemp(prefix="actorbus-cluster-"))
        self.tls_files: TLSFiles | None = None
        self.nodes: list[RedisServer] = []

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the nodes, create the cluster, and return once every node agrees on it."""
        require_redis_server()
        cli = redis_cli()
        if self._tls:
            self.tls_files = TLSFiles.generate(self._directory, client_auth=True)
        for _ in range(self._masters * (1 + self._replicas)):
            config = {
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": str(self._node_timeout),
                "cluster-port": str(find_free_port()),  # port + 10000 may be past 65535
                "masterauth": self.password,
            }
            if self._tls:  # the cluster bus and replication speak TLS too
                config |= {"tls-cluster": "yes", "tls-replication": "yes"}
            node = RedisServer(
                password=self.password, extra_config=config, tls=self._tls, tls_files=self.tls_files
            )
            self.nodes.append(node)
            node.start()
        addresses = [f"{node.host}:{node.port}" for node in self.nodes]
        command = [cli, "-a", self.password, "--no-auth-warning"]
        if self.tls_files is not None:
            command += ["--tls", "--cacert", str(self.tls_files.ca_cert)]
        command += ["--cluster", "create"]
        command += [*addresses, "--cluster-replicas", str(self._replicas), "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise RedisServerError(
                f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}"
            )
        self.wait_healthy()
        return self

    def close(self) -> None:
        """Stop every node and delete its directory."""
        for node in self.nodes:
            node.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    # -- what it looks like -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL of the first node (any node will do to find the others)."""
        return self.nodes[0].url

    def node(self, port: int) -> RedisServer:
        """The node listening on `port`."""
        return next(node for node in self.nodes if node.port == port)

    def send(self, port: int, *command: str | int) -> Any:
        """One command to the node on `port` (after ``AUTH``); its reply, errors raised."""
        words = tuple(str(word) for word in command)
        context = None if self.tls_files is None else self.tls_files.client_context()
        login = ("AUTH", self.password)
        reply = send_raw(port, login, words, timeout=10.0, ssl_context=context)[-1]
        if isinstance(reply, RespError):
            raise reply
        return reply

    def slots(self, port: int | None = None) -> list[SlotRange]:
        """The slot map as the node on `port` (the first live one by default) sees it."""
        port = port or next(node.port for node in self.nodes if node.running)
        ranges = []
        for entry in self.send(port, "CLUSTER", "SLOTS"):
            master, *replicas = (int(node[1]) for node in entry[2:])
            ranges.append(SlotRange(int(entry[0]), int(entry[1]), master, tuple(replicas)))
        return sorted(ranges, key=lambda r: r.first)

    def masters(self) -> list[RedisServer]:
        """The nodes serving slots, in slot order."""
        ports = list(dict.fromkeys(r.master for r in self.slots()))
        return [self.node(port) for port in ports]

    def slot_of(self, key: str) -> int:
        """``CLUSTER KEYSLOT`` of `key`."""
        return int(self.send(self.nodes[0].port, "CLUSTER", "KEYSLOT", key))

    def master_of(self, slot: int) -> RedisServer:
        """The master serving `slot`."""
        return self.node(next(r.master for r in self.slots() if r.first <= slot <= r.last))

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A replica of `master`."""
        for r in self.slots():
            if r.master == master.port and r.replicas:
                return self.node(r.replicas[0])
        raise RedisServerError(f"{master!r} has no replica")

    def node_id(self, node: RedisServer) -> str:
        """The cluster's id of `node`."""
        return str(self.send(node.port, "CLUSTER", "MYID"))

    def errors(self, code: str) -> int:
        """How many errors with `code` (``CROSSSLOT``, ``MOVED``, …) the nodes answered so far."""
        total = 0
        for node in self.nodes:
            if not node.running:
                continue
            for line in str(self.send(node.port, "INFO", "errorstats")).splitlines():
                if line.startswith(f"errorstat_{code}:"):
                    total += int(line.partition("count=")[2])
        return total

    def command_calls(self, node: RedisServer) -> int:
        """Commands `node` ran since its last ``CONFIG RESETSTAT`` (``INFO commandstats``)."""
        total = 0
        for line in str(self.send(node.port, "INFO", "commandstats")).splitlines():
            if line.startswith("cmdstat_"):
                fields = dict(part.split("=") for part in line.split(":", 1)[1].split(","))
                total += int(fields["calls"])
        return total

    # -- changing it --------------------------------------------------------------------------

    def wait_healthy(self, timeout: float = _READY_TIMEOUT) -> None:
        """Wait until every live node says ``cluster_state:ok`` and they agree on the map,
        and every replica is in sync with its master."""
        deadline = time.monotonic() + timeout
        problem = "not checked"
        while time.monotonic() < deadline:
            problem = self._unhealthy()
            if problem is None:
                return
            time.sleep(_POLL)
        raise RedisServerError(f"the cluster did not become healthy in {timeout}s: {problem}")

    def _unhealthy(self) -> str | None:
        maps = set()
        try:
            for node in self.nodes:
                if not node.running:
                    continue
                info = str(self.send(node.port, "CLUSTER", "INFO"))
                if "cluster_state:ok" not in info:
                    return f"node {node.port} is not ok"
                maps.add(tuple(self.slots(node.port)))
                replication = str(self.send(node.port, "INFO", "replication"))
                if "role:slave" in replication and "master_link_status:up" not in replication:
                    return f"replica {node.port} is not in sync"
        except (OSError, RespError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if len(maps) != 1:
            return f"the nodes disagree on the slot map: {maps}"
        (ranges,) = maps
        if sum(len(r) for r in ranges) != 16384:
            return "not every slot is served"
        if any(len(r.replicas) < self._replicas for r in ranges):
            return "a master lacks its replicas"
        return None

    def failover(self, master: RedisServer) -> RedisServer:
        """Fail `master` over to its replica (``CLUSTER FAILOVER``); return the new master.

        A manual failover: the replica catches up with its master first, so nothing the
        master acknowledged is lost. Returns once every node agrees on the new map.
        """
        replica = self.replica_of(master)
        assert self.send(replica.port, "CLUSTER", "FAILOVER") == "OK"
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if master.port not in {r.master for r in self.slots(replica.port)}:
                break
            time.sleep(_POLL)
        self.wait_healthy()
        return replica

    def begin_migration(self, slot: int, target: RedisServer) -> RedisServer:
        """Mark `slot` as migrating from its master to `target`; return the source."""
        source = self.master_of(slot)
        self.send(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        self.send(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target))
        return source

    def migrate_keys(self, slot: int, source: RedisServer, target: RedisServer) -> int:
        """Move the keys of `slot` from `source` to `target` (``MIGRATE``); return how many."""
        keys = self.send(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            self.send(
                source.port, "MIGRATE", target.host, target.port, "", 0, 5000,
                "AUTH", self.password, "KEYS", *keys,
            )  # fmt: skip
        return len(keys)

    def finish_migration(self, slot: int, target: RedisServer) -> None:
        """Give `slot` to `target` on every master, and wait until all agree."""
        target_id = self.node_id(target)
        for node in [*self.masters(), target]:
            self.send(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            seen = {self.master_of_slot_at(node, slot) for node in self.nodes if node.running}
            if seen == {target.port}:
                return
            time.sleep(_POLL)
        raise RedisServerError(f"slot {slot} did not move to {target!r}")

    def master_of_slot_at(self, node: RedisServer, slot: int) -> int:
        """The port of `slot`'s master as `node` sees it."""
        return next(r.master for r in self.slots(node.port) if r.first <= slot <= r.last)

    def move_slot(self, slot: int, target: RedisServer) -> None:
        """Migrate `slot`, keys and all, to `target` (a whole resharding of one slot)."""
        source = self.begin_migration(slot, target)
        self.migrate_keys(slot, source, target)
        self.finish_migration(slot, target)


# -- pytest plugin ------------------------------------------------------------------------------

_FIXTURES = frozenset({"redis_cluster", "redis_cluster_replicas", "tls_redis_cluster", "redis_any"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a cluster fixture with ``redis``."""
    for item in items:
        if _FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of three masters for the whole session (see the module docs)."""
    with RedisCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_replicas() -> Iterator[RedisCluster]:
    """Three masters with a replica each, for the whole session (see the module docs)."""
    with RedisCluster(masters=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tls_redis_cluster() -> Iterator[RedisCluster]:
    """Three masters that speak only TLS, for the whole session (see the module docs)."""
    with RedisCluster(masters=3, tls=True) as cluster:
        yield cluster


@pytest.fixture(params=["server", "cluster"])
def redis_any(request: pytest.FixtureRequest) -> Iterator[RedisServer | RedisCluster]:
    """The session's single server, then its three-master cluster.

    On the cluster, the test fails if any node answered ``CROSSSLOT`` meanwhile: the
    bridge must never send a command whose keys lie in different hash slots.
    """
    if request.param == "server":
        yield request.getfixturevalue("redis_server")
        return
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    before = cluster.errors("CROSSSLOT")
    yield cluster
    assert cluster.errors("CROSSSLOT") == before, "a node answered CROSSSLOT"
