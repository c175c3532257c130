"""`ActorSystem`: the task group the actors run in, their life cycle, and the bus's front.

The system owns one anyio task group and the parts that run in it: the `Runtime` state
its actors share, the `Dispatcher` that delivers to their mailboxes, the registry of
`Actors`, and the transport (through a `SystemHost` adapter). This module holds the life
cycle (start-up all or nothing, graceful shutdown, a failure that stops everything) and
the public methods, each of which hands the work to the part named after it.
"""

from __future__ import annotations

import enum
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Self, cast

import anyio
import anyio.abc

from . import _tracing
from ._actors import Actors
from ._cell import Spawn
from ._dispatch import Dispatcher
from ._entities import Entities, EntityRef, entity_ref
from ._envelope import Envelope, new_envelope
from ._events import INFO_ATTRIBUTE, EventInfo, Scope, lookup
from ._exceptions import ActorbusError, MailboxFull
from ._handlers import AdHoc
from ._host import SystemHost, answer_locally
from ._records import ActorStats, DeadLetter, SystemStarted, SystemStopping
from ._ref import ActorRef
from ._router import Router
from ._runtime import DEAD_LETTER_TYPE, YIELD_EVERY, Runtime, current_runtime
from ._sharding import kind_of
from ._tracing import outgoing
from ._wrap import Wrapped, keyed, wrap

if TYPE_CHECKING:
    import contextvars
    from types import TracebackType

    from ._mailbox import Mailbox
    from ._shard import Shard
    from ._supervision import Supervision
    from ._transport import Transport

__all__ = [
    "ActorSystem",
    "actors_of",
    "current_system",
    "emit_call",
    "free_name",
    "has_stopped",
    "startup_of",
    "use_transport",
]

logger: Final = logging.getLogger("actorbus.system")
_running: weakref.WeakSet[ActorSystem] = weakref.WeakSet()


class _Phase(enum.Enum):
    """Where a system is in its life."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


_NEW, _STARTING, _RUNNING = _Phase.NEW, _Phase.STARTING, _Phase.RUNNING
_STOPPING, _STOPPED = _Phase.STOPPING, _Phase.STOPPED
_APP: Final = Scope.APP


def current_system() -> ActorSystem:
    """The system the calling code runs in.

    Inside an actor, a handler, or the body of ``async with ActorSystem(...)``, that
    system; elsewhere, the only running system of the process.

    Raises:
        LookupError: If there is none, or several are running and none is current.
    """
    found = current_runtime.get()
    if found is not None:
        return cast("ActorSystem", found.system)
    running = list(_running)
    if len(running) == 1:
        return running[0]
    what = "no ActorSystem is running" if not running else "several ActorSystems are running"
    msg = f"{what}: run this inside `async with ActorSystem(...)` or pass `system=` explicitly"
    raise LookupError(msg)


class ActorSystem:
    """A set of supervised actors in one anyio task group, and the event bus between them.

    Use it as an async context manager. Entering starts the transport (if any), spawns
    the `actors` one after another and binds the `routers`, publishes `SystemStarted`,
    then starts consuming from the transport. Start-up is all or nothing. Leaving stops
    the system gracefully: `SystemStopping` is published, transport intake stops, the
    mailboxes are drained for up to `shutdown_timeout` seconds, actors are stopped in
    reverse start order (children first) with their `on_stop`, then everything left is
    cancelled. Errors from `on_stop` hooks are raised together as an `ExceptionGroup`.

    A FAIL_FAST escalation that no parent handles cancels the body of the ``async with``
    and is raised from it once every actor has stopped.

    Args:
        name: The application name; instances with one name share APP-scope events.
        transport: Carries APP-scope events between instances; None keeps them local.
        actors: Actor classes (or `@handle` functions) spawned at start-up, in order,
            with default names; entity kinds among them are hosted (see `shard`).
        routers: `Router` objects whose functions are bound at start-up.
        shutdown_timeout: Seconds allowed for draining and stopping at shutdown.
        max_dead_letters: How many recent dead letters `dead_letters` keeps.
    """

    def __init__(
        self,
        name: str = "actorbus",
        *,
        transport: Transport | None = None,
        actors: Iterable[Callable[..., Any]] = (),
        routers: Iterable[Router] = (),
        shutdown_timeout: float = 10.0,
        max_dead_letters: int = 1000,
    ) -> None:
        if not isinstance(name, str) or not name:
            msg = f"ActorSystem name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        if shutdown_timeout < 0:
            msg = f"shutdown_timeout must be >= 0, got {shutdown_timeout!r}"
            raise ValueError(msg)
        self._routers = tuple(routers)
        for router in self._routers:
            if not isinstance(router, Router):
                msg = (
                    f"routers= takes Router objects, got {router!r}; pass functions decorated "
                    "with @handle to actors=... or spawn(), or register them on a Router()"
                )
                raise TypeError(msg)
        self._name = name
        self._transport = transport
        self._startup_actors = tuple(actors)
        self._runtime = Runtime(
            name, self, shutdown_timeout=shutdown_timeout, max_dead_letters=max_dead_letters
        )
        self._dispatcher = Dispatcher(self._runtime)
        self._actors = Actors(self._runtime, self._dispatcher, transport)
        self._host = SystemHost(self._runtime, self._dispatcher)
        self._entities = Entities(self._runtime, self._actors)
        self._host.releasers.append(self._entities.release)
        self._state = _NEW
        self._failure: BaseException | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._body: anyio.CancelScope | None = None
        self._graceful: anyio.CancelScope | None = None
        self._token: contextvars.Token[Runtime | None] | None = None

    def __repr__(self) -> str:
        return f"<ActorSystem {self._name!r} actors={len(self._actors.by_name)}>"

    @property
    def name(self) -> str:
        """The application name."""
        return self._name

    @property
    def transport(self) -> Transport | None:
        """The transport carrying APP-scope events, if any."""
        return self._transport

    @property
    def shutdown_timeout(self) -> float:
        """Seconds allowed for draining and stopping at shutdown (settable)."""
        return self._runtime.shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, seconds: float) -> None:
        if seconds < 0:
            msg = f"shutdown_timeout must be >= 0, got {seconds!r}"
            raise ValueError(msg)
        self._runtime.shutdown_timeout = seconds

    @property
    def dead_letters(self) -> Sequence[DeadLetter]:
        """The recent dead letters, oldest first (bounded by `max_dead_letters`)."""
        return tuple(self._runtime.dead_letters)

    # -- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != _NEW:
            msg = f"ActorSystem {self._name!r} was already started; create a new one"
            raise RuntimeError(msg)
        self._state = _STARTING
        runtime = self._runtime
        runtime.resolve_backend()
        runtime.fail = self._fail
        runtime.announce = self._announce
        self._tg = self._actors.task_group = anyio.create_task_group()
        await self._tg.__aenter__()
        self._token = current_runtime.set(runtime)
        _running.add(self)
        self._body = anyio.CancelScope()
        self._body.__enter__()
        try:
            if self._transport is not None:
                await self._transport.open(self._host, self._tg)
            for actor in self._startup_actors:
                if (kind := kind_of(actor)) is not None:
                    await self.shard(kind.cls)
                else:
                    await self.spawn(actor)
            for router in self._routers:
                await self.include(router)
            self._state = _RUNNING
            await self.publish(SystemStarted(self._name))
            if self._transport is not None:
                await self._transport.start(self._tg)
        except BaseException as exc:
            self._body.__exit__(type(exc), exc, exc.__traceback__)
            await self._close(graceful=False)
            if self._failure is not None:
                raise self._failure from None
            raise
        if self._body.cancel_called:  # a FAIL_FAST during start-up that nothing raised
            self._body.__exit__(None, None, None)
            await self._close(graceful=False)
            raise self._failure  # type: ignore[misc]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._body is not None  # noqa: S101 - entered
        if self._body.__exit__(exc_type, exc, tb):
            exc = None  # our own cancellation after a failure: swallowed
        await self._close(graceful=self._failure is None)
        errors: list[BaseException] = list(self._actors.stop_errors)
        if self._failure is not None:
            if not errors:
                raise self._failure
            errors.insert(0, self._failure)
        if errors:
            if exc is not None:
                errors.insert(0, exc)
            msg = f"actor system {self._name!r} stopped with errors"
            raise BaseExceptionGroup(msg, errors)
        return exc is None and exc_type is not None

    async def _close(self, *, graceful: bool) -> None:
        """Stop everything; called once by `__aenter__` (on failure) or `__aexit__`."""
        assert self._tg is not None  # noqa: S101 - entered
        self._state = _STOPPING
        actors = self._actors
        actors.collecting = True
        with anyio.CancelScope(shield=True):
            deadline = anyio.current_time() + self.shutdown_timeout
            if graceful:
                with anyio.move_on_at(deadline) as self._graceful:
                    self._offer_local(SystemStopping(self._name))
                    await anyio.lowlevel.checkpoint()
                    if self._transport is not None:
                        await self._transport.stop_intake()
                    await self.drain()
                    for cell in reversed(list(actors.top)):
                        await cell.stop()
            for cell in reversed(actors.running()):
                cell.request_stop(cancel=True)
            with anyio.move_on_at(deadline + self.shutdown_timeout):
                for cell in reversed(actors.running()):
                    await cell.wait_stopped()
            if self._transport is not None:
                try:
                    await self._transport.close()
                except Exception as exc:
                    logger.exception("closing the transport failed")
                    actors.stop_errors.append(exc)
        self._state = _STOPPED
        self._runtime.announce = _quiet
        _running.discard(self)
        if self._token is not None:
            current_runtime.reset(self._token)
            self._token = None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    def _fail(self, error: BaseException, actor: str) -> None:
        """An escalation reached the top: cancel the body and stop (see `__aexit__`)."""
        if self._failure is None:
            self._failure = error
            logger.critical(
                "actor %r escalated %s to the system %r, which now stops",
                actor,
                type(error).__name__,
                self._name,
                extra={"actor": actor},
            )
        if self._body is not None:
            self._body.cancel()
        if self._graceful is not None:
            self._graceful.cancel()

    def _check_open(self, what: str) -> None:
        if self._state in (_RUNNING, _STOPPING, _STARTING):
            return
        if self._state == _NEW:
            msg = f"cannot {what}: ActorSystem {self._name!r} is not started; use `async with`"
        else:
            msg = f"cannot {what}: ActorSystem {self._name!r} has stopped"
        raise ActorbusError(msg)

    # -- actors -----------------------------------------------------------------------------

    async def spawn(
        self,
        cls: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        supervision: Supervision | None = None,
        group: str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Start an actor and return its reference once its `on_start` has finished.

        `cls` is an `Actor` subclass, constructed as ``cls(*args, **kwargs)`` (again on
        each RESTART), or a function marked with `@handle(...)`, which becomes a
        function actor. Its subscriptions (and transport groups) are in place on return.

        Raises:
            ValueError: If `name` is taken.
            TypeError: If `cls` is neither an Actor subclass nor a `@handle` function, or
                is an entity kind (host those with `shard`).
            Exception: Whatever `on_start` raised (the actor is then not started).
        """
        self._check_open("spawn")
        request = Spawn(
            cls, args, kwargs, name=name, mailbox=mailbox, supervision=supervision, group=group
        )
        return ActorRef(await self._actors.spawn(request))

    async def shard(self, kind: type[Any]) -> Shard:
        """Host the entity kind `kind` in this instance; return its `Shard`.

        From now on the kind's events, and the messages sent with `entity`, reach the
        entity of their key here when this instance owns the key's partition (with no
        transport, always): it is built on demand, as ``kind(key)`` then its `on_start`,
        and stopped when idle (see `Sharding`). The kind's group is registered with the
        transport before this returns. Hosting a kind twice returns the same shard.

        Raises:
            TypeError: If `kind` is not an entity kind (an Actor subclass with
                ``sharding = Sharding(...)``), its state class cannot be built with no
                arguments or saved as JSON, or it keeps state and the transport keeps none.
            ValueError: If an actor already runs under the kind's name.
        """
        self._check_open("host an entity kind")
        return await self._entities.host(kind)

    def entity(self, kind: type[Any], key: str) -> EntityRef:
        """The `EntityRef` of the entity of `key` of the entity kind `kind`.

        It works from any instance, hosting the kind or not: its messages go where the
        key's events go, and keep their order with them.

        Raises:
            TypeError: If `kind` is not an entity kind, or `key` is not a string.
            ValueError: If `key` is empty or longer than 1,024 characters.
        """
        return entity_ref(self._entities, kind, key)

    async def include(self, router: Router) -> list[ActorRef]:
        """Bind a `Router`: each of its functions becomes a function actor."""
        return [
            await self.spawn(
                entry.func, name=entry.name, mailbox=entry.mailbox, supervision=entry.supervision
            )
            for entry in router.entries
        ]

    def on(
        self,
        *targets: type[Any] | str,
        group: str | None = None,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        supervision: Supervision | None = None,
        inline: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Subscribe a function now, as its own actor (a decorator; the function is returned).

        The subscription is in place when the decorator returns; with a transport, a new
        `group` is registered in the background — use ``await system.spawn(fn)`` when
        events published right away must reach the group.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self._check_open("subscribe")
            self._actors.function_actor(
                func,
                targets,
                group=group,
                inline=inline,
                name=name,
                mailbox=mailbox,
                supervision=supervision,
            )
            return func

        return register

    def actor(self, name: str) -> ActorRef:
        """The reference of the running actor called `name`.

        Raises:
            LookupError: If no such actor runs (the message lists those that do).
        """
        cell = self._actors.by_name.get(name)
        if cell is None or cell.stopped:
            known = ", ".join(sorted(self._actors.by_name)) or "none"
            msg = f"no actor named {name!r} runs in system {self._name!r} (running: {known})"
            raise LookupError(msg)
        return ActorRef(cell)

    # -- publishing -------------------------------------------------------------------------

    async def publish(
        self,
        event: object,
        *,
        scope: Scope | None = None,
        source: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Envelope:
        """Publish an event (or an `Envelope`) and return its envelope.

        PROCESS scope (and APP scope without a transport) delivers to the matching local
        mailboxes and returns once the envelope is in every one of them: with a full
        BLOCK mailbox it waits (backpressure). APP scope with a transport returns once
        the transport accepted it; every instance, this one included, then receives it.
        No subscriber is not an error. Any object may be published with PROCESS scope
        (its type is its class's qualified name); APP scope needs an `@event` class.
        `key` gives the event's key for this call (else its `@event(key=...)`): a group
        handles the events of one key in the order they were published.

        It checks for cancellation on the first call after the calling task waited,
        whenever it waits, and at least every 64 calls, when it also yields to the
        scheduler (see the guide on mailboxes).

        Raises:
            TypeError: For an unregistered object with APP scope, or a key that is not
                a string.
            ValueError: For an empty key.
            DecodeError: For an envelope whose data does not fit its registered class.
            MailboxFull: If a FAIL mailbox was full (the others still got the event).
        """
        if self._state is not _RUNNING:
            self._check_open("publish")
        runtime = self._runtime
        runtime.ops += 1
        if runtime.ops >= YIELD_EVERY or runtime.stale():
            await runtime.checkpoint_due()
        cls: type[Any] | None = type(event)
        info: EventInfo | None = cls.__dict__.get(INFO_ATTRIBUTE)
        if (
            info is not None
            and scope is None
            and headers is None
            and _tracing.instrumentation is None
            and _tracing.current.get() is None
        ):  # the common shapes: an `@event` object (keyed or not), no trace context to add
            if info.key is None and key is None:
                origin = source or self._name
                envelope = new_envelope(info.type, event, origin, info.scope, subject, None)
            else:
                envelope = keyed(event, info, self._name, source, subject, key)
            payload = event
        else:
            envelope, payload, cls = wrap(event, self._name, scope, source, subject, headers, key)
        if envelope.scope is _APP and self._transport is not None:
            await self._transport.publish(envelope)
        elif (rest := self._dispatcher.deliver(envelope, payload, cls)) is not None:
            await rest
        return envelope

    async def publish_batch(
        self,
        events: Iterable[object],
        *,
        scope: Scope | None = None,
        source: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Envelope]:
        """Publish several events (or envelopes) in order; return their envelopes.

        As `publish` for each event in turn, with the options applied to each, except
        that the APP-scope events going to a transport are sent together — over Redis,
        in pipelines — and the call returns once the transport accepted all of them.
        Those are sent first, then the batch's other events are delivered locally.
        Every envelope is built, and the transport's events encoded, before anything
        is published: an event that cannot be published fails the call with nothing
        published. (The Redis and memory transports encode the whole batch first; a
        transport relying on the default `Transport.publish_batch` encodes each event
        as it publishes it, so its encoding errors come after the events before.) If
        the transport fails, nothing is delivered locally either (some of
        the APP events may have been accepted: see the transport).

        It checks for cancellation when it starts, whenever it waits, and at least every
        64 events, when it also yields to the scheduler.

        Raises:
            TypeError: If `events` is a single event (a string, a mapping or an envelope)
                rather than an iterable of events; for an unregistered object with APP
                scope, or data the transport cannot encode.
            ValueError: For an event over the transport's size limit.
            DecodeError: For an envelope whose data does not fit its registered class.
            MailboxFull: If a FAIL mailbox was full (raised once the rest of the batch
                was delivered; the other subscribers still got that event).
            TransportError: If the transport did not accept every APP event.
        """
        if isinstance(events, str | bytes | Mapping | Envelope):
            kind: type[Any] = type(cast("object", events))
            msg = (
                f"publish_batch takes an iterable of events, got a {kind.__name__}: "
                "publish one event with publish(...)"
            )
            raise TypeError(msg)
        if self._state is not _RUNNING:
            self._check_open("publish")
        runtime = self._runtime
        await runtime.checkpoint()
        built: list[Wrapped] = []
        for event in events:
            await self._yield_every()
            built.append(wrap(event, self._name, scope, source, subject, headers))
        local = built
        if self._transport is not None:
            remote = [envelope for envelope, _, _ in built if envelope.scope is _APP]
            if remote:
                await self._transport.publish_batch(remote)
                local = [b for b in built if b[0].scope is not _APP]
        full: MailboxFull | None = None
        for envelope, payload, cls in local:
            await self._yield_every()
            if (rest := self._dispatcher.deliver(envelope, payload, cls)) is not None:
                try:
                    await rest
                except MailboxFull as exc:
                    full = full or exc
        if full is not None:
            raise full
        return [envelope for envelope, _, _ in built]

    async def _yield_every(self) -> None:
        """A scheduling point every `YIELD_EVERY` calls (a batch's per-event step)."""
        runtime = self._runtime
        runtime.ops += 1
        if runtime.ops >= YIELD_EVERY:
            await runtime.checkpoint_due()

    async def emit(self, type: str, /, *args: Any, **kwargs: Any) -> Envelope:  # noqa: A002
        """Publish an ad-hoc event of `type` made of arguments (no class needed).

        If `type` is registered with `@event`, the event is ``cls(*args, **kwargs)``.
        Otherwise function subscribers whose parameters carry no event annotation are
        called as ``fn(*args, **kwargs)``, and the envelope's data is
        ``{"args": [...], "kwargs": {...}}``.
        """
        return await self._emit(type, args, kwargs, None)

    async def _emit(
        self, type_: str, args: tuple[Any, ...], kwargs: dict[str, Any], subject: str | None
    ) -> Envelope:
        registered = lookup(type_)
        if registered is not None:
            try:
                event = registered(*args, **kwargs)
            except TypeError as exc:
                msg = (
                    f"emit({type_!r}, ...): the arguments do not fit "
                    f"{registered.__qualname__}: {exc}"
                )
                raise TypeError(msg) from exc
            return await self.publish(event, subject=subject)
        self._check_open("emit")
        await self._runtime.checkpoint()
        adhoc = AdHoc(args, kwargs)
        envelope = Envelope(
            type=type_,
            data=adhoc.to_data(),
            source=self._name,
            subject=subject,
            headers=outgoing(None, type_),
        )
        if (rest := self._dispatcher.deliver(envelope, adhoc, None)) is not None:
            await rest
        return envelope

    def _offer_local(self, event: object) -> None:
        """Publish a runtime record locally without ever waiting for mailbox room."""
        envelope, payload, cls = wrap(event, self._name, Scope.PROCESS)
        self._dispatcher.offer(payload, envelope, cls, envelope.type)

    def _announce(self, record: DeadLetter) -> None:
        """Publish a dead letter to the local subscribers (never waiting; see the design)."""
        if self._state in (_RUNNING, _STOPPING):
            self._dispatcher.offer(record, None, DeadLetter, DEAD_LETTER_TYPE)

    # -- asking -------------------------------------------------------------------------------

    async def request(self, event: object, *, timeout: float = 5.0) -> Any:
        """Ask whoever handles `event` (no reference needed) and return the reply.

        PROCESS scope (or no transport): one local subscriber answers — the first one
        with a handler for the event's class, else the first whose glob matches. APP scope
        with a transport: one handler of one instance answers (a group member, or the
        first instance to answer).

        Raises:
            AskTimeout: If nobody handles the event or no reply came within `timeout`.
            Exception: Whatever the handler raised.
        """
        self._check_open("request")
        envelope, payload, cls = wrap(event, self._name)
        if envelope.scope is Scope.APP and self._transport is not None:
            return await self._transport.request(envelope, timeout)
        return await answer_locally(self._dispatcher, envelope, payload, cls, timeout)

    async def drain(self) -> None:
        """Wait until every local mailbox is empty and every handler is idle.

        Escalations travelling to a parent count as work, so a restart they cause has
        finished when `drain` returns. Events still inside a transport (not yet received)
        are not local work. Calling it from a handler would wait for that handler itself:
        don't.
        """
        await self._runtime.drain()

    # -- observability ----------------------------------------------------------------------

    def stats(self) -> dict[str, ActorStats]:
        """A snapshot of every running actor's counters, by name."""
        return {name: cell.stats() for name, cell in self._actors.by_name.items()}


def _quiet(_: DeadLetter) -> None:
    """A stopped system announces no dead letters (they are still recorded)."""


# -- what other parts of actorbus ask of a system (not user API) ----------------------------


def has_stopped(system: ActorSystem) -> bool:
    """Whether `system` has stopped (it cannot be started again)."""
    return system._state == _STOPPED  # noqa: SLF001 - this module's own class


def actors_of(system: ActorSystem) -> Actors:
    """The registry of a system's actors: its cells and the top of its supervision tree.

    For readers that look inside a running system (the dashboard): they read it, never
    change it.
    """
    return system._actors  # noqa: SLF001 - this module's own class


def startup_of(system: ActorSystem) -> tuple[tuple[Callable[..., Any], ...], tuple[Router, ...]]:
    """The start-up actors and routers a system was built with (for listings)."""
    return system._startup_actors, system._routers  # noqa: SLF001 - this module's own class


def use_transport(system: ActorSystem, transport: Transport) -> None:
    """Give a system that was built without one a transport (before it starts)."""
    if system._state != _NEW:  # noqa: SLF001 - this module's own class
        msg = f"ActorSystem {system.name!r} already started: set its transport before"
        raise RuntimeError(msg)
    if system.transport is not None:
        msg = f"ActorSystem {system.name!r} already has a transport ({system.transport!r})"
        raise ValueError(msg)
    system._transport = system._actors.transport = transport  # noqa: SLF001


def free_name(system: ActorSystem, default: str) -> str:
    """A free actor name made from `default` (as `spawn` would pick one)."""
    return system._actors.free_name(None, default)  # noqa: SLF001 - this module's own class


async def emit_call(
    system: ActorSystem, type_: str, arguments: dict[str, Any], subject: str
) -> Envelope:
    """`emit(type_, **arguments)` with a `subject` (for `@publish_call`)."""
    return await system._emit(type_, (), arguments, subject)  # noqa: SLF001 - as above
