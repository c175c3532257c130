"""`RedisTransport`: APP-scope events between the instances of an application, on Redis Streams.

Key layout (``{prefix}:app:{app}:`` is the same for every key, so one ACL key pattern
covers an application):

- ``…:events`` — one stream holding every APP event of the application, one entry per
  event with the fields ``e``, the CloudEvents JSON, and ``t``, its type (which lets
  consumers acknowledge what no local subscriber wants without decoding it). With
  ``partitions`` > 1, one such stream per partition instead, ``…:{tag}:events``, and
  per partition and owned group the lease ``…:{tag}:lease:g:{group}``, its fencing
  counter ``…:{tag}:epoch:g:{group}`` and its count of saved states
  ``…:{tag}:saves:g:{group}``; with one partition, an entity kind's group has them too,
  tagged with the events stream's name (``{…:events}``); see
  `actorbus.redis._config.Keys`;
- ``…:dead`` — dead letters: ``e`` (the entry as read), ``error``, ``group``,
  ``deliveries``, ``entry`` (its id in the events stream) and ``instance``;
- ``…:replies:{instance}`` — replies to the requests of one instance;
- ``…:{tag}:state:{namespace}:{key}`` — durable states (``{tag}`` is the events
  stream's name with one partition);
- ``…:members:g:{group}`` — the live members of a partitioned group;
- ``…:meta`` — the number of partitions (`actorbus.redis._layout`).

Consumer groups of each events stream: ``b:{instance}``, one per instance, through which
it receives every event (broadcast), and ``g:{group}``, shared by the members of each
competing-consumer group (with partitions, each partition read by its owner only:
`actorbus.redis._ownership`). The consumer name is always the instance name. See
``docs/guides/redis.md`` and ``docs/guides/scaling.md`` for the guarantees.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import anyio.lowlevel

from actorbus._envelope import named
from actorbus._exceptions import TransportError
from actorbus._keys import partition_of
from actorbus._transport import Transport, TransportHost
from actorbus._wire import MAX_MESSAGE_BYTES, encode
from actorbus.redis._config import (
    Keys,
    Settings,
    anonymous_instance,
    check_instance,
    check_url,
    redact_url,
)
from actorbus.redis._context import Context
from actorbus.redis._endpoint import node_address
from actorbus.redis._errors import ClusterMismatch, PermissionDenied, Redirected, RedisError
from actorbus.redis._health import RedisStats
from actorbus.redis._layout import check_names, recorded_partitions
from actorbus.redis._maintenance import Maintenance, beat
from actorbus.redis._publisher import Packed, Publisher
from actorbus.redis._replies import Requests
from actorbus.redis._status import (
    forget_report,
    partition_owners,
    stream_status,
    write_report,
)
from actorbus.redis._subscriptions import Subscriptions
from actorbus.redis._tls import connect_failure, tls_context

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Sequence

    from actorbus._envelope import Envelope
    from actorbus._transport import PartitionOwner, StreamStatus

__all__ = ["RedisTransport"]

_ENCODE_ROUND: Final = 64
"""Envelopes of a batch encoded between two scheduling points."""

_CLEANUP_TIMEOUT: Final = 3.0


class RedisTransport(Transport):
    """Carries APP-scope events between the instances of an application through Redis Streams.

    Give it to ``ActorSystem(name, transport=RedisTransport(url))``; systems with the same
    name on the same Redis are instances of one application. Delivery is at-least-once:
    an entry is acknowledged only once its local handlers finished (or supervision
    dead-lettered it), so after a crash or an outage an event may be handled again — use
    the envelope's ``id`` as the idempotency key. Works natively on asyncio and trio.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``; ``rediss://`` for TLS, which
            verifies the server's certificate and host name; give a private certificate
            authority as ``?ssl_ca_certs=/path/to/ca.pem`` (``ssl_certfile`` and
            ``ssl_keyfile`` add a client certificate). The password never appears in
            logs, errors or reprs.
        instance: A stable name makes the instance durable: after a restart it resumes
            where it stopped, receiving what was published meanwhile. None (the
            default) gives it a random anonymous name and a subscription that is
            removed on a clean shutdown. Names must be unique among running instances.
        claim_after: Seconds an entry may stay unacknowledged by a silent consumer
            before a live member of the same group takes it over. Entries still being
            handled by a live instance are refreshed and never taken.
        max_deliveries: Deliveries after which an unacknowledged entry goes to the
            dead-letter stream instead of being delivered again.
        maxlen: Optional hard cap on the events stream (approximate ``MAXLEN`` on each
            XADD). It can drop entries that some group has not read yet; without it the
            stream is trimmed only below what every group still needs.
        prefix: First part of every key, to share one Redis between deployments.
        max_message_bytes: Larger entries are not published (`ValueError`) and, when
            read, are dead-lettered.
        publish_timeout: Seconds `publish` waits for Redis to accept an event before it
            raises `TransportError`.
        block: Seconds each blocking read waits for new entries.
        batch: Entries read, claimed or published per round trip; also the number of
            read entries that may wait for their handlers at once per group.
        trim_interval: Seconds between trims of the events stream.
        stale_after: Seconds after which the subscription of a silent anonymous
            instance (one that crashed) is removed.
        dead_maxlen: Approximate cap on the dead-letter stream (None: unbounded).
        ssl_context: For ``rediss://`` URLs, the `ssl.SSLContext` to connect with,
            instead of TLS options in the URL.
        cluster: Whether the URL names a node of a **Redis Cluster**. None (the
            default) finds out at start-up (``CLUSTER SLOTS``); True or False insist,
            and a deployment that is not what they say fails the start-up with a clear
            error. On a cluster, each command goes to the master of its key's hash slot,
            following the cluster's slot map, its redirections and failovers.
        seeds: Other nodes of the cluster, as ``"host:port"`` strings, to read its slot
            map from when the URL's node cannot be reached (at start-up or later).
            They log in as the URL says (user, password, TLS).
        partitions: How many streams the application's events are split into (1 to
            1024). A keyed event goes to the stream of ``partition_of(key,
            partitions)``, an event without a key to each in turn. With more than one,
            each partition of each group is owned by one live member at a time, which
            handles its events in order: the events of one key keep their order across
            instances. Every instance of the application must use the same number
            (checked at start-up). 1 keeps one stream and groups without ownership.
        lease: Seconds a member's ownership of a partition lasts without renewal: a
            member that stopped (``kill -9``) has its partitions taken over after that.
            It renews every ``lease / 3`` seconds, and stops using a partition it could
            not renew ``lease / 5`` seconds before the lease can expire.

    Raises:
        ValueError: For an invalid URL, instance name, setting or seed, or TLS options
            that cannot be used (a certificate file that cannot be read, for instance).
    """

    partitions: int

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        instance: str | None = None,
        claim_after: float = 30.0,
        max_deliveries: int = 5,
        maxlen: int | None = None,
        prefix: str = "actorbus",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        publish_timeout: float = 5.0,
        block: float = 1.0,
        batch: int = 100,
        trim_interval: float = 10.0,
        stale_after: float = 300.0,
        dead_maxlen: int | None = 10_000,
        ssl_context: ssl.SSLContext | None = None,
        cluster: bool | None = None,
        seeds: Sequence[str] = (),
        partitions: int = 1,
        lease: float = 10.0,
    ) -> None:
        if not prefix or any(char.isspace() for char in prefix):
            msg = f"RedisTransport(prefix=...) must be a non-empty word, got {prefix!r}"
            raise ValueError(msg)
        self.url: str = check_url(url)
        self._tls = tls_context(url, ssl_context)
        self.prefix = prefix
        self.durable: bool = instance is not None
        self.instance: str = (
            check_instance(instance) if instance is not None else anonymous_instance()
        )
        self.settings: Settings = Settings.checked(
            claim_after=claim_after,
            max_deliveries=max_deliveries,
            maxlen=maxlen,
            max_message_bytes=max_message_bytes,
            publish_timeout=publish_timeout,
            block=block,
            batch=batch,
            trim_interval=trim_interval,
            stale_after=stale_after,
            dead_maxlen=dead_maxlen,
            partitions=partitions,
            lease=lease,
        )
        self.cluster: bool | None = _check_cluster(cluster, seeds, url)
        """What the transport was told about Redis Cluster (see `cluster`)."""
        self.seeds: tuple[str, ...] = tuple(seeds)
        self.partitions = partitions
        self._context: Context | None = None
        self._host: TransportHost | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._connected = False  # Redis answered at start-up, and the transport is not closed
        self._publisher: Publisher | None = None
        # anyio primitives need a running event loop: created in `open`.
        self._main_scope: anyio.CancelScope | None = None
        self._main_done: anyio.Event | None = None
        self._subscriptions: Subscriptions | None = None
        self._maintenance: Maintenance | None = None
        self._requests: Requests | None = None
        self._reported = False  # a status report of this instance may be in Redis
        self._closing = False

    def __repr__(self) -> str:
        app = self._context.keys.app if self._context is not None else None
        parts = f" partitions={self.partitions}" if self.partitions > 1 else ""
        return (
            f"<RedisTransport {redact_url(self.url)} app={app!r} instance={self.instance!r}"
            f"{parts}{' durable' if self.durable else ''}>"
        )

    def set_instance(self, name: str) -> None:
        """Make this a durable instance named `name` (before the system starts).

        Raises:
            ValueError: For an invalid name (see `instance`).
            RuntimeError: If the transport is already open.
        """
        if self._context is not None:
            msg = f"{self!r} is open: set its instance name before the system starts"
            raise RuntimeError(msg)
        self.instance = check_instance(name)
        self.durable = True

    @property
    def keys(self) -> Keys:
        """The application's Redis keys (known once the system started)."""
        return self._opened().keys

    def stats(self) -> RedisStats:
        """A snapshot of this transport's counters and connection state."""
        context = self._context
        if context is None:
            return RedisStats(0, 0, 0, 0, 0, 0, 0, connected=False)
        counters, health = context.counters, context.health
        return RedisStats(
            published=counters.published,
            delivered=counters.delivered,
            acked=counters.acked,
            dead_lettered=counters.dead_lettered,
            claimed=counters.claimed,
            reconnects=health.reconnects,
            outages=health.outages,
            connected=health.connected,
            fenced=counters.fenced,
            acquired=counters.acquired,
            lost=counters.lost,
        )

    def owned(self, group: str) -> dict[int, int]:
        """The partitions of `group` this instance owns now, each with its fencing token.

        Empty for a group it does not take part in. Without partitions, ``{0: 0}`` for a
        group it joined (every member reads the one stream, without a lease), except an
        entity kind's group, whose one partition is owned by one member at a time.
        """
        subscriptions = self._subscriptions
        return {} if subscriptions is None else subscriptions.owned(group)

    async def load_state(self, namespace: str, key: str) -> bytes | None:
        """The durable state last committed for `key` in `namespace` (None if none).

        Read from ``…:state:{namespace}:{key}`` of the key's partition.

        Raises:
            TransportError: If Redis cannot be reached within `publish_timeout`.
        """
        context = self._opened()
        state_key = context.keys.state(partition_of(key, self.partitions), namespace, key)
        state: bytes | None = await self._command(
            f"read the state of {key!r} in {namespace!r}", context.client.call(b"GET", state_key)
        )
        return state

    def _opened(self) -> Context:
        if self._context is None:
            msg = "RedisTransport is not open: give it to ActorSystem(transport=...)"
            raise RuntimeError(msg)
        return self._context

    # -- life cycle -------------------------------------------------------------------------

    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:
        """Connect, and create this instance's broadcast group (at the end of the stream).

        Raises:
            TransportError: If Redis cannot be reached or refuses the credentials.
        """
        keys = Keys(self.prefix, host.name, self.partitions)
        check_names(keys)
        context = Context(self.url, keys, self.settings, self.instance, self._tls, self.seeds)
        self._context = context
        self._host = host
        self._task_group = task_group
        self._main_scope = anyio.CancelScope()
        self._main_done = anyio.Event()
        self._requests = Requests(context, task_group, self.publish)
        self._publisher = Publisher(context)
        subscriptions = self._subscriptions = Subscriptions(context, host, durable=self.durable)
        await task_group.start(self._run_publisher)
        # The heartbeat comes first: from now on other instances' janitors see this one live.
        await self._command("write the heartbeat", beat(context))
        await self._command("read the number of partitions", recorded_partitions(context))
        await self._command("create this instance's consumer group", subscriptions.open())

    async def _run_publisher(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Check that Redis answers, then run the publishing task until `close`.

        The shared client's connections are closed when it returns.
        """
        context = self._opened()
        assert self._publisher is not None  # noqa: S101 - set in open
        assert self._main_scope is not None  # noqa: S101
        assert self._main_done is not None  # noqa: S101
        try:
            with self._main_scope:
                try:
                    await context.client.start(
                        self.cluster, context.seeds, timeout=self.settings.publish_timeout
                    )
                except ClusterMismatch as exc:
                    raise TransportError(str(exc)) from None
                except RedisError as exc:
                    msg = connect_failure(exc, context.where, context.health.describe)
                    raise TransportError(msg) from None
                self._connected = True
                task_status.started()
                await self._publisher.run()
        finally:
            self._connected = False
            self._publisher.discard()
            self._main_done.set()
            with anyio.CancelScope(shield=True):
                await context.client.aclose()

    async def _command(self, what: str, command: Awaitable[Any]) -> Any:
        """Await one command of the shared client, as a `TransportError` on failure."""
        context = self._opened()
        try:
            with anyio.fail_after(self.settings.publish_timeout):
                return await command
        except (RedisError, TimeoutError) as exc:
            msg = f"cannot {what} on Redis at {context.where}: {context.health.describe(exc)}"
            if isinstance(exc, Redirected):
                msg += (
                    " (MOVED: this is a Redis Cluster, but the transport could not read its "
                    "slot map: give the Redis user +cluster|slots and +asking)"
                )
            if isinstance(exc, PermissionDenied):
                msg += (
                    f" (NOPERM: the Redis user may not use the keys of application "
                    f"{context.keys.app!r}; its ACL must allow ~{context.keys.base}* and the "
                    "commands listed in the Redis guide: is it the right user and application "
                    "name?)"
                )
            raise TransportError(msg) from None

    async def add_group(self, group: str) -> None:
        """Join competing-consumer `group`; events published from now on reach it.

        Raises:
            TransportError: If Redis cannot be reached.
        """
        subscriptions = self._opened_subscriptions()
        await self._command(f"join consumer group {group!r}", subscriptions.add_group(group))

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start a consumer per group (an `Ownership` per partitioned group), and trimming."""
        self._opened_subscriptions().start(task_group)
        self._maintenance = Maintenance(self._opened())
        task_group.start_soon(self._maintenance.run)

    def _opened_subscriptions(self) -> Subscriptions:
        if self._subscriptions is None:
            msg = "RedisTransport is not open: give it to ActorSystem(transport=...)"
            raise RuntimeError(msg)
        return self._subscriptions

    async def stop_intake(self) -> None:
        """Stop reading; what was read is still acknowledged once handled.

        A partitioned group's member withdraws from the group at once (the others start
        asking for its partitions); it keeps its leases until `close` has acknowledged
        what was handled, then releases them all.
        """
        if self._subscriptions is not None:
            self._subscriptions.stop_intake()

    async def close(self) -> None:
        """Acknowledge what was handled, hand partitions over, forget an anonymous instance.

        Then disconnect.
        """
        self._closing = True
        if self._subscriptions is not None:
            # Without a broadcast group the start failed (NOPERM, say): nothing to forget.
            await self._subscriptions.close(forget=self._connected and not self.durable)
        if self._connected and self._reported:
            with anyio.move_on_after(_CLEANUP_TIMEOUT):
                await self._forget_report()
        for scope in self._scopes():
            scope.cancel()
        if self._publisher is not None:
            self._publisher.close()
        if self._connected and self._main_done is not None:
            with anyio.move_on_after(_CLEANUP_TIMEOUT):
                await self._main_done.wait()
        if self._main_scope is not None:
            self._main_scope.cancel()

    def _scopes(self) -> list[anyio.CancelScope]:
        return [part.scope for part in (self._maintenance, self._requests) if part is not None]

    # -- status (the dashboard) ---------------------------------------------------------------

    async def streams(self) -> tuple[StreamStatus, ...]:
        """The events and dead-letter streams: length, and each group's pending and lag.

        Raises:
            TransportError: If Redis cannot be reached.
        """
        context = self._opened()
        found: tuple[StreamStatus, ...] = await self._command(
            "read the streams' status", stream_status(context.client, context.keys)
        )
        return found

    async def partition_owners(self) -> dict[str, dict[int, PartitionOwner]] | None:
        """Who owns each partition of each group of the application, from the leases.

        Every instance's groups, not only this one's (see `Transport.partition_owners`);
        None without partitions.

        Raises:
            TransportError: If Redis cannot be reached.
        """
        context = self._opened()
        found: dict[str, dict[int, PartitionOwner]] | None = await self._command(
            "read the partitions' leases", partition_owners(context.client, context.keys)
        )
        return found

    async def report(self, status: bytes, ttl: float) -> bool:
        """Store this instance's status for ``actorbus dashboard`` (see `Transport.report`).

        Removed again when the transport closes. Raises nothing: a report that Redis
        did not take is simply not there (False).
        """
        context = self._context
        if context is None or not self._connected or self._closing:
            return False
        self._reported = True
        try:
            with anyio.fail_after(self.settings.publish_timeout):
                await write_report(context.client, context.keys, self.instance, status, ttl)
        except (RedisError, TimeoutError):
            return False
        return True

    async def _forget_report(self) -> None:
        context = self._opened()
        with contextlib.suppress(RedisError):  # it expires by itself within its ttl
            await forget_report(context.client, context.keys, self.instance)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        """Add `envelope` to the events stream; return once Redis accepted it.

        Raises:
            TransportError: If Redis did not accept it within `publish_timeout`.
            ValueError: If it is larger than `max_message_bytes` once encoded.
            TypeError: If its data cannot be encoded as JSON.
        """
        payload = self._encode(envelope)
        await self._running_publisher().publish(payload, envelope)

    async def publish_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Add `envelopes` to the events stream in order, in pipelines of ``batch`` entries.

        Every envelope is encoded and checked first: an error leaves the stream untouched.
        Each entry then waits at most `publish_timeout` seconds from when the batch
        reaches it (waiting for room in the queue counts). Once one is not accepted, the
        entries after it not written yet are not sent. A pipeline
        is not a transaction, so when this raises, Redis holds the entries before the
        failed one and possibly some written with it (the error's note says how many at
        least); publishing the whole batch again duplicates those, as any at-least-once
        retry can.

        Raises:
            TransportError: If Redis did not accept every entry.
            ValueError: If one is larger than `max_message_bytes` once encoded.
            TypeError: If the data of one cannot be encoded as JSON.
        """
        publisher = self._running_publisher()
        packed: list[Packed] = []
        for envelope in envelopes:
            packed.append(publisher.pack(self._encode(envelope), envelope))
            if len(packed) % _ENCODE_ROUND == 0:
                await anyio.lowlevel.checkpoint()  # a large batch does not hold up the others
        await publisher.publish_batch(packed, envelopes)

    def _encode(self, envelope: Envelope) -> bytes:
        payload = encode(envelope)
        if len(payload) > self.settings.max_message_bytes:
            msg = (
                f"{named(envelope)} is {len(payload)} bytes as JSON, "
                f"over max_message_bytes={self.settings.max_message_bytes}; send a reference "
                "to the data (a key, a URL) instead of the data itself"
            )
            raise ValueError(msg)
        return payload

    def _running_publisher(self) -> Publisher:
        if self._publisher is None:
            msg = "RedisTransport is not open: give it to ActorSystem(transport=...)"
            raise TransportError(msg)
        return self._publisher

    async def request(self, envelope: Envelope, timeout: float) -> Any:
        """Publish `envelope` as a request and return the first reply from any instance.

        Raises:
            AskTimeout: If no reply came within `timeout`.
            ActorbusError: If the remote handler raised (its type and message included).
            TransportError: If Redis did not accept the request.
        """
        if self._requests is None:
            msg = "RedisTransport is not open: give it to ActorSystem(transport=...)"
            raise TransportError(msg)
        return await self._requests.request(envelope, timeout)


def _check_cluster(cluster: bool | None, seeds: Sequence[str], url: str) -> bool | None:
    """Validate `cluster` and `seeds` (see `RedisTransport`); return `cluster`.

    Raises:
        ValueError: If `cluster` is not None, True or False, a seed is not ``host:port``,
            or seeds come with ``cluster=False`` or a Unix socket URL.
    """
    if not (cluster is None or isinstance(cluster, bool)):
        msg = f"RedisTransport(cluster=...) must be None, True or False, got {cluster!r}"
        raise ValueError(msg)
    if isinstance(seeds, str):
        msg = f"RedisTransport(seeds=...) must be a list of 'host:port' strings, got {seeds!r}"
        raise ValueError(msg)  # noqa: TRY004 - a str is a sequence: the mistake is its value
    for seed in seeds:
        node_address(seed)
    if seeds and (cluster is False or url.startswith("unix:")):
        msg = (
            "RedisTransport(seeds=...) names other nodes of a Redis Cluster: it needs a "
            "redis:// or rediss:// URL and cluster=None or True"
        )
        raise ValueError(msg)
    return cluster
