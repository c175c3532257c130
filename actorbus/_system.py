"""`ActorSystem`: owns the task group, spawns actors, publishes, and shuts down gracefully."""

from __future__ import annotations

import collections
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Self, cast

import anyio
import anyio.abc
import attrs
from anyio.lowlevel import checkpoint

from . import _tracing
from ._actor import Actor, ActorRef
from ._backend import PUBLIC, event_class, resolve_checkpoints
from ._cell import YIELD_EVERY, Cell, current_system_var
from ._convert import structure
from ._dispatch import Dispatcher, group_of
from ._envelope import Envelope, named, new_envelope, with_data
from ._events import INFO_ATTRIBUTE, EventInfo, Scope, lookup
from ._exceptions import ActorbusError, ActorStopped, AskTimeout, DecodeError, MailboxFull
from ._handlers import ANY_GROUP, CACHE_LIMIT, AdHoc, HandlerTable, declaration, spec_for
from ._mailbox import Mailbox
from ._message import Delivery, Message, Tracker
from ._records import ActorStats, DeadLetter, SystemStarted, SystemStopping, Terminated
from ._supervision import Supervision
from ._tracing import outgoing

if TYPE_CHECKING:
    import contextvars
    from types import TracebackType

    from ._dispatch import Route
    from ._router import Router
    from ._transport import Transport

__all__ = ["ActorSystem", "current_system"]

logger: Final = logging.getLogger("actorbus.system")
_current = current_system_var
_running: weakref.WeakSet[ActorSystem] = weakref.WeakSet()
_DEAD_LETTER_TYPE: Final = "actorbus.dead_letter"
_NEW, _STARTING, _RUNNING, _STOPPING, _STOPPED = range(5)
_APP: Final = Scope.APP


_REPLY_TO: Final = "replyto"


def _answerer(
    targets: list[tuple[Cell, str | None]], cls: type[Any] | None
) -> tuple[Cell, str | None] | None:
    """The one target that answers a request: a handler naming the class, else the first."""
    return next(
        (t for t in targets if cls is not None and t[0].table.handles_class(cls)),
        targets[0] if targets else None,
    )


def current_system() -> ActorSystem:
    """The system the calling code runs in.

    Inside an actor, a handler, or the body of ``async with ActorSystem(...)``, that
    system; elsewhere, the only running system of the process.

    Raises:
        LookupError: If there is none, or several are running and none is current.
    """
    found = _current.get()
    if found is not None:
        return found
    running = list(_running)
    if len(running) == 1:
        return running[0]
    what = "no ActorSystem is running" if not running else "several ActorSystems are running"
    msg = f"{what}: run this inside `async with ActorSystem(...)` or pass `system=` explicitly"
    raise LookupError(msg)


def has_stopped(system: ActorSystem) -> bool:
    """Whether `system` has stopped (it cannot be started again)."""
    return system._state == _STOPPED


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
        actors: Actor classes spawned at start-up, in order, with default names.
        routers: `Router` objects whose functions are bound at start-up.
        shutdown_timeout: Seconds allowed for draining and stopping at shutdown.
        max_dead_letters: How many recent dead letters `dead_letters` keeps.
    """

    def __init__(
        self,
        name: str = "actorbus",
        *,
        transport: Transport | None = None,
        actors: Iterable[type[Actor]] = (),
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
        self._name = name
        self._transport = transport
        self._startup_actors = tuple(actors)
        self._routers = tuple(routers)
        from ._router import Router  # noqa: PLC0415 - the router imports the system's helpers

        for router in self._routers:
            if not isinstance(router, Router):
                msg = (
                    f"routers= takes Router objects, got {router!r}; pass functions decorated "
                    "with @handle to actors=... or spawn(), or register them on a Router()"
                )
                raise TypeError(msg)
        self.shutdown_timeout = shutdown_timeout
        self._dispatcher = Dispatcher()
        # `subscribed` answers per (type, group), with the dispatcher generation and the
        # registered class they were computed for.
        self._wanted: dict[tuple[str, str | None], tuple[int, type[Any] | None, bool]] = {}
        self._cells: dict[str, Cell] = {}
        self._top: dict[Cell, None] = {}  # top-level actors in start order; O(1) removal
        self._name_counts: dict[str, int] = {}
        self._dead_letters: collections.deque[DeadLetter] = collections.deque(
            maxlen=max_dead_letters
        )
        self._stop_errors: list[BaseException] = []
        self._state = _NEW
        self._failure: BaseException | None = None
        self._inflight = 0
        self._idle: anyio.Event | None = None
        self._ops = 0
        self._checkpoints = PUBLIC
        self._new_event: Callable[[], anyio.Event] = anyio.Event
        self._tg: anyio.abc.TaskGroup | None = None
        self._body: anyio.CancelScope | None = None
        self._token: contextvars.Token[ActorSystem | None] | None = None

    def __repr__(self) -> str:
        return f"<ActorSystem {self._name!r} actors={len(self._cells)}>"

    @property
    def name(self) -> str:
        """The application name."""
        return self._name

    @property
    def transport(self) -> Transport | None:
        """The transport carrying APP-scope events, if any."""
        return self._transport

    def _use_transport(self, transport: Transport) -> None:
        """Give a system that was built without one a transport (before it starts)."""
        if self._state != _NEW:
            msg = f"ActorSystem {self._name!r} already started: set its transport before"
            raise RuntimeError(msg)
        if self._transport is not None:
            msg = f"ActorSystem {self._name!r} already has a transport ({self._transport!r})"
            raise ValueError(msg)
        self._transport = transport

    @property
    def dead_letters(self) -> Sequence[DeadLetter]:
        """The recent dead letters, oldest first (bounded by `max_dead_letters`)."""
        return tuple(self._dead_letters)

    # -- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != _NEW:
            msg = f"ActorSystem {self._name!r} was already started; create a new one"
            raise RuntimeError(msg)
        self._state = _STARTING
        self._checkpoints = resolve_checkpoints()
        self._new_event = event_class()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._token = _current.set(self)
        _running.add(self)
        self._body = anyio.CancelScope()
        self._body.__enter__()
        try:
            if self._transport is not None:
                await self._transport.open(self, self._tg)
            for actor in self._startup_actors:
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
        errors: list[BaseException] = list(self._stop_errors)
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
        with anyio.CancelScope(shield=True):
            deadline = anyio.current_time() + self.shutdown_timeout
            if graceful:
                with anyio.move_on_at(deadline) as graceful_scope:
                    self._graceful = graceful_scope
                    await self._publish_local_nowait(SystemStopping(self._name))
                    if self._transport is not None:
                        await self._transport.stop_intake()
                    await self.drain()
                    for cell in reversed(list(self._top)):
                        await cell.stop()
            for cell in reversed(list(self._cells.values())):
                cell.request_stop(cancel=True)
            with anyio.move_on_at(deadline + self.shutdown_timeout):
                for cell in reversed(list(self._cells.values())):
                    await cell.wait_stopped()
            if self._transport is not None:
                try:
                    await self._transport.close()
                except Exception as exc:
                    logger.exception("closing the transport failed")
                    self._stop_errors.append(exc)
        self._state = _STOPPED
        _running.discard(self)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    _graceful: anyio.CancelScope | None = None

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
        cls: type[Actor] | Callable[..., Any],
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
            TypeError: If `cls` is neither an Actor subclass nor a `@handle` function.
            Exception: Whatever `on_start` raised (the actor is then not started).
        """
        return await self._spawn(
            cls,
            args,
            kwargs,
            name=name,
            mailbox=mailbox,
            supervision=supervision,
            group=group,
            parent=None,
        )

    async def _spawn(
        self,
        target: type[Actor] | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str | None,
        mailbox: Mailbox | None,
        supervision: Supervision | None,
        group: str | None,
        parent: Cell | None,
    ) -> ActorRef:
        self._check_open("spawn")
        assert self._tg is not None  # noqa: S101 - entered
        cell = self._new_cell(target, args, kwargs, name, mailbox, supervision, group, parent)
        try:
            await self._add_groups(cell)
            await self._tg.start(cell.run)
        except BaseException:
            self._cells.pop(cell.name, None)
            raise
        (parent.children if parent is not None else self._top)[cell] = None
        self._dispatcher.subscribe(cell)
        return ActorRef(cell)

    def _new_cell(
        self,
        target: type[Actor] | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox: Mailbox | None,
        supervision: Supervision | None,
        group: str | None,
        parent: Cell | None,
    ) -> Cell:
        """Validate a spawn request and build the actor's cell (its name is taken now)."""
        if isinstance(target, type) and issubclass(target, Actor):
            actor_cls: type[Actor] = target
            table = actor_cls.__actorbus_table__
            factory: Callable[..., Any] | None = actor_cls
            mailbox = mailbox or actor_cls.mailbox
            supervision = supervision or actor_cls.supervision
            group = group if group is not None else actor_cls.group
            default_name = actor_cls.__name__
        elif (found := declaration(cast("object", target))) is not None:
            func = cast("Callable[..., Any]", target)
            if args or kwargs:
                msg = f"function actor {func!r} takes no constructor arguments"
                raise TypeError(msg)
            spec = spec_for(func, found.targets, group=found.group, inline=found.inline)
            table = HandlerTable((spec,))
            factory = None
            default_name = getattr(func, "__name__", "function")
        else:
            msg = (
                f"spawn() takes an Actor subclass or a function decorated with @handle(...), "
                f"got {target!r}"
            )
            raise TypeError(msg)
        for value, kind, label in (
            (mailbox, Mailbox, "mailbox"),
            (supervision, Supervision, "supervision"),
        ):
            if value is not None and not isinstance(value, kind):
                msg = f"spawn({label}=...) must be a {kind.__name__}, got {value!r}"
                raise TypeError(msg)
        cell = Cell(
            self,
            self._free_name(name, default_name),
            factory=factory,
            args=args,
            kwargs=kwargs,
            table=table,
            mailbox=mailbox or Mailbox(),
            supervision=supervision or Supervision(),
            group=group,
            parent=parent,
        )
        self._cells[cell.name] = cell  # the name is taken from here on (no await since the check)
        return cell

    async def _add_groups(self, cell: Cell) -> None:
        if self._transport is None:
            return
        known = set(self._dispatcher.groups())
        for spec in cell.table.specs:
            name = group_of(cell, spec)
            if name is not None and name not in known:
                await self._transport.add_group(name)
                known.add(name)

    def _free_name(self, name: str | None, default: str) -> str:
        if name is not None:
            if not isinstance(name, str) or not name:
                msg = f"actor name must be a non-empty string, got {name!r}"
                raise ValueError(msg)
            if name in self._cells:
                msg = (
                    f"an actor named {name!r} already runs in system {self._name!r}; "
                    "pick another name"
                )
                raise ValueError(msg)
        else:
            # Remember where numbering got to, so spawning many unnamed actors stays linear.
            number = self._name_counts.get(default, 0)
            name = default if number == 0 else f"{default}-{number + 1}"
            while name in self._cells:
                number += 1
                name = f"{default}-{number + 1}"
            self._name_counts[default] = number + 1
        return name

    def _construct(self, cell: Cell) -> Actor:
        cls = cast("type[Actor]", cell.factory)  # only class actors are constructed
        instance = cls.__new__(cls)
        instance._actorbus_cell = cell
        instance.__init__(*cell.args, **cell.kwargs)  # type: ignore[misc]
        return instance

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
        from ._handlers import handle  # noqa: PLC0415

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self._check_open("subscribe")
            assert self._tg is not None  # noqa: S101 - entered
            marked = handle(*targets, group=group, inline=inline)(func)
            cell = self._new_cell(marked, (), {}, name, mailbox, supervision, None, None)
            if (
                self._transport is not None
                and group is not None
                and group not in self._dispatcher.groups()
            ):
                self._tg.start_soon(self._transport.add_group, group)
            self._tg.start_soon(cell.run)
            self._top[cell] = None
            self._dispatcher.subscribe(cell)
            return func

        return register

    def actor(self, name: str) -> ActorRef:
        """The reference of the running actor called `name`.

        Raises:
            LookupError: If no such actor runs (the message lists those that do).
        """
        cell = self._cells.get(name)
        if cell is None or cell.stopped:
            known = ", ".join(sorted(self._cells)) or "none"
            msg = f"no actor named {name!r} runs in system {self._name!r} (running: {known})"
            raise LookupError(msg)
        return ActorRef(cell)

    def _forget(self, cell: Cell) -> None:
        if self._cells.get(cell.name) is cell:
            del self._cells[cell.name]
        self._top.pop(cell, None)
        self._dispatcher.unsubscribe(cell)
        if self._state == _STOPPING:
            # Raised together at shutdown; earlier ones were logged when they happened.
            self._stop_errors.extend(cell.stop_errors)

    def _unsubscribe(self, cell: Cell) -> None:
        self._dispatcher.unsubscribe(cell)

    def _watch(self, watcher: Cell, watched: Cell) -> None:
        if watched.stopped:
            watcher.notify(self._local_message(Terminated(watched.name, watched.reason)))
        else:
            watched.watchers[watcher] = None
            watcher.watching[watched] = None

    def groups(self) -> set[str]:
        """The competing-consumer groups local subscribers belong to."""
        return set(self._dispatcher.groups())

    def broadcasts(self) -> bool:
        """Whether some local subscriber is in no group (receives every APP event)."""
        return self._dispatcher.broadcasting()

    # -- messages -----------------------------------------------------------------------------

    async def _checkpoint(self) -> None:
        """The checkpoint of `publish`, `tell` and their kin (see the Mailboxes guide).

        A cancellation point every time; a scheduling point every YIELD_EVERY calls and
        whenever a mailbox is full. The hot paths inline the test and await
        `_checkpoint_due` only when something is due::

            self._ops += 1
            if self._ops >= YIELD_EVERY or self._checkpoints.cancelled():
                await self._checkpoint_due()
        """
        self._ops += 1
        if self._ops >= YIELD_EVERY or self._checkpoints.cancelled():
            await self._checkpoint_due()

    async def _checkpoint_due(self) -> None:
        """Yield if this is the YIELD_EVERY-th call; else raise if cancelled."""
        if self._ops >= YIELD_EVERY:
            self._ops = 0
            await self._checkpoints.schedule()
        else:
            await self._checkpoints.check_cancelled()

    def _wrap(
        self,
        event: object,
        scope: Scope | None,
        source: str | None,
        subject: str | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[Envelope, object, type[Any] | None]:
        """Build the envelope for `event`: (envelope, payload for handlers, routing class)."""
        if isinstance(event, Envelope):
            return self._adopt(event, scope, source, subject, headers)
        cls = type(event)
        info: EventInfo | None = cls.__dict__.get(INFO_ATTRIBUTE)
        if info is None:
            if scope is Scope.APP:
                msg = (
                    f"cannot publish a {cls.__qualname__} with APP scope: it is not registered "
                    "with @event(...), so other instances could not rebuild it; decorate the "
                    "class with @event('some.type', scope=Scope.APP)"
                )
                raise TypeError(msg)
            type_, scope = cls.__qualname__, Scope.PROCESS
        else:
            type_ = info.type
            scope = info.scope if scope is None else scope
        traced = outgoing(headers, type_)
        envelope = new_envelope(type_, event, source or self._name, scope, subject, traced)
        return envelope, event, cls

    def _adopt(
        self,
        envelope: Envelope,
        scope: Scope | None = None,
        source: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Envelope, object, type[Any] | None]:
        """Normalise an envelope being sent: source, overrides, trace context, payload."""
        changes: dict[str, Any] = {}
        if scope is not None and scope is not envelope.scope:
            changes["scope"] = scope
        if source or not envelope.source:
            changes["source"] = source or self._name
        if subject is not None:
            changes["subject"] = subject
        merged = {**envelope.headers, **headers} if headers is not None else envelope.headers
        traced = outgoing(merged, envelope.type)
        if traced is not envelope.headers:
            changes["headers"] = traced
        if changes:
            envelope = attrs.evolve(envelope, **changes)
        return self._received(envelope, check_app=True)

    def _received(
        self, envelope: Envelope, *, check_app: bool = False
    ) -> tuple[Envelope, object, type[Any] | None]:
        """(envelope, payload, routing class): dict data of a registered type is rebuilt.

        Raises:
            DecodeError: If the data does not fit the registered class.
            TypeError: With `check_app`, for APP scope data that could not be rebuilt.
        """
        data = envelope.data
        if type(data) is dict or isinstance(data, Mapping):  # decoded JSON: a dict
            fields = cast("Mapping[str, Any]", data)
            registered = lookup(envelope.type)
            if registered is None:
                return envelope, AdHoc.from_data(fields) or fields, None
            payload = structure(fields, registered, where=lambda: named(envelope))
            return with_data(envelope, payload), payload, registered
        if data is None:
            return envelope, None, None
        cls = cast("type[Any]", type(data))
        if (
            check_app
            and envelope.scope is Scope.APP
            and INFO_ATTRIBUTE not in cls.__dict__
            and not isinstance(data, str | int | float | bool | list)
        ):
            msg = (
                f"cannot publish envelope {envelope.type!r} with APP scope: its data is an "
                f"unregistered {cls.__qualname__}; register it with @event or send plain data"
            )
            raise TypeError(msg)
        return envelope, cast("object", data), cls

    async def publish(
        self,
        event: object,
        *,
        scope: Scope | None = None,
        source: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Envelope:
        """Publish an event (or an `Envelope`) and return its envelope.

        PROCESS scope (and APP scope without a transport) delivers to the matching local
        mailboxes and returns once the envelope is in every one of them: with a full
        BLOCK mailbox it waits (backpressure). APP scope with a transport returns once
        the transport accepted it; every instance, this one included, then receives it.
        No subscriber is not an error. Any object may be published with PROCESS scope
        (its type is its class's qualified name); APP scope needs an `@event` class.

        A cancellation point; it yields to the scheduler at least every 64 calls and
        whenever it waits.

        Raises:
            TypeError: For an unregistered object with APP scope.
            DecodeError: For an envelope whose data does not fit its registered class.
            MailboxFull: If a FAIL mailbox was full (the others still got the event).
        """
        if self._state is not _RUNNING:
            self._check_open("publish")
        self._ops += 1
        if self._ops >= YIELD_EVERY or self._checkpoints.cancelled():
            await self._checkpoint_due()
        cls: type[Any] | None = type(event)
        info: EventInfo | None = cls.__dict__.get(INFO_ATTRIBUTE)
        if (
            info is not None
            and scope is None
            and headers is None
            and _tracing.instrumentation is None
            and _tracing.current.get() is None
        ):  # the common shape, without `_wrap`'s frame (and `outgoing`'s: no trace to add)
            envelope = new_envelope(
                info.type, event, source or self._name, info.scope, subject, None
            )
            payload = event
        else:
            envelope, payload, cls = self._wrap(event, scope, source, subject, headers)
        if envelope.scope is _APP and self._transport is not None:
            await self._transport.publish(envelope)
        elif (rest := self._deliver_local(envelope, payload, cls)) is not None:
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

        A cancellation point; it yields to the scheduler at least every 64 events and
        whenever it waits.

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
        await self._checkpoint()
        built: list[tuple[Envelope, object, type[Any] | None]] = []
        for event in events:
            self._ops += 1
            if self._ops >= YIELD_EVERY:
                await self._checkpoint_due()
            built.append(self._wrap(event, scope, source, subject, headers))
        local = built
        if self._transport is not None:
            remote = [envelope for envelope, _, _ in built if envelope.scope is _APP]
            if remote:
                await self._transport.publish_batch(remote)
                local = [b for b in built if b[0].scope is not _APP]
        full = await self._deliver_batch(local)
        if full is not None:
            raise full
        return [envelope for envelope, _, _ in built]

    async def _deliver_batch(
        self, built: list[tuple[Envelope, object, type[Any] | None]]
    ) -> MailboxFull | None:
        """Deliver a batch's local events in order; return the first FAIL mailbox's error."""
        full: MailboxFull | None = None
        for envelope, payload, cls in built:
            self._ops += 1
            if self._ops >= YIELD_EVERY:
                await self._checkpoint_due()
            if (rest := self._deliver_local(envelope, payload, cls)) is not None:
                try:
                    await rest
                except MailboxFull as exc:
                    full = full or exc
        return full

    async def emit(self, type: str, /, *args: Any, **kwargs: Any) -> Envelope:  # noqa: A002
        """Publish an ad-hoc event of `type` made of arguments (no class needed).

        If `type` is registered with `@event`, the event is ``cls(*args, **kwargs)``.
        Otherwise function subscribers whose parameters carry no event annotation are
        called as ``fn(*args, **kwargs)``, and the envelope's data is
        ``{"args": [...], "kwargs": {...}}``.
        """
        return await self._emit(type, args, kwargs, None)

    async def _emit_call(self, type_: str, arguments: dict[str, Any], subject: str) -> Envelope:
        return await self._emit(type_, (), arguments, subject)

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
        await self._checkpoint()
        adhoc = AdHoc(args, kwargs)
        envelope = Envelope(
            type=type_,
            data=adhoc.to_data(),
            source=self._name,
            subject=subject,
            headers=outgoing(None, type_),
        )
        if (rest := self._deliver_local(envelope, adhoc, None)) is not None:
            await rest
        return envelope

    def _deliver_local(
        self, envelope: Envelope, payload: object, cls: type[Any] | None
    ) -> Awaitable[None] | None:
        """Deliver to the local subscribers what fits now; the rest is returned to await.

        None means every mailbox took the event at once (the common case: no coroutine).
        """
        type_ = envelope.type
        route = self._dispatcher.route(cls, type_)
        broadcast = route.broadcast
        shared: Message | Envelope | None = None
        if broadcast:
            # One item for every broadcast subscriber; most find room at once. The
            # envelope itself when it says all (see `Cell._loop`), else a `Message`.
            if payload is envelope.data and cls is type(payload):
                shared = envelope
            else:
                shared = Message(payload, envelope, cls, type_, None)
            for cell in broadcast:
                if not cell.queue.append(shared):
                    index = broadcast.index(cell)
                    self._inflight += index
                    return self._deliver_rest(route, index, shared, envelope, payload, cls)
            self._inflight += len(broadcast)
        if route.groups:
            return self._deliver_rest(route, len(broadcast), shared, envelope, payload, cls)
        return None

    async def _deliver_rest(
        self,
        route: Route,
        start: int,
        shared: Message | Envelope | None,
        envelope: Envelope,
        payload: object,
        cls: type[Any] | None,
    ) -> None:
        """`_deliver_local`'s part that may wait: broadcast cells from `start`, then groups."""
        full: MailboxFull | None = None
        if shared is not None:
            for cell in route.broadcast[start:]:
                if cell.queue.append(shared):
                    self._inflight += 1
                else:
                    error = await self._put(cell, shared)
                    full = full or error
        for cell, group in route.picks():
            error = await self._put(cell, Message(payload, envelope, cls, envelope.type, group))
            full = full or error
        if full is not None:
            raise full

    async def _put(self, cell: Cell, message: Message | Envelope) -> MailboxFull | None:
        """Put `message` in `cell`'s mailbox, waiting for room; return a FAIL mailbox's error."""
        try:
            await cell.put(message)
        except ActorStopped as exc:
            cell._dead_letter(message, exc, unqueued=True)
        except MailboxFull as exc:
            return exc
        return None

    async def _publish_local_nowait(self, event: object) -> None:
        """Publish a lifecycle event locally without ever waiting for mailbox room."""
        envelope, payload, cls = self._wrap(event, Scope.PROCESS, None, None, None)
        self._offer_local(payload, envelope, cls, envelope.type)
        await checkpoint()

    def _offer_local(
        self, payload: object, envelope: Envelope | None, cls: type[Any] | None, type_: str
    ) -> None:
        """Deliver locally without ever waiting: a full mailbox drops it (dead letter)."""
        for cell, group in self._dispatcher.route(cls, type_).targets():
            cell.offer(Message(payload, envelope, cls, type_, group))

    def _local_message(self, event: object) -> Message:
        cls = type(event)
        return Message(event, None, cls, cls.__dict__[INFO_ATTRIBUTE].type, ANY_GROUP)

    def _envelope_for_tell(self, message: Message) -> Envelope:
        return Envelope(type=message.type, data=message.event, source=self._name)

    def _tell_now(self, cell: Cell, message: object) -> bool:
        """`tell` without waiting or a coroutine, when nothing is due; False: use `_tell`.

        Nothing is due when this call is not the one that yields, the caller is not
        cancelled, the message is not an envelope, the actor has a handler for it and its
        mailbox has room. Then it is queued and True is returned.
        """
        if self._ops + 1 >= YIELD_EVERY or self._checkpoints.cancelled():
            return False
        if isinstance(message, Envelope):
            return False
        cls = type(message)
        type_, specs = cell.table.for_tell(cls)
        if not specs:
            return False
        # An `@event` object is queued bare (the actor's loop makes a `Message` only if it
        # needs one); another's type is its class's name only until `@event` registers it.
        if INFO_ATTRIBUTE in cls.__dict__:
            item = message
        else:
            item = Message(message, None, cls, type_, ANY_GROUP, None, specs)
        if not cell.queue.append(item):
            return False
        self._ops += 1
        self._inflight += 1
        return True

    async def _tell(self, cell: Cell, message: object, tracker: Tracker | None) -> None:
        await self._checkpoint()
        if isinstance(message, Envelope):
            envelope, payload, cls = self._adopt(message)
            item = Message(payload, envelope, cls, envelope.type, ANY_GROUP, tracker)
        else:
            cls = type(message)
            type_, specs = cell.table.for_tell(cls)
            item = Message(message, None, cls, type_, ANY_GROUP, tracker, specs)
        if not cell.table.match(item.cls, item.type):
            accepted = (
                ", ".join(s for spec in cell.table.specs for s in spec.subscriptions()) or "nothing"
            )
            msg = (
                f"actor {cell.name!r} has no handler for {item.type!r} "
                f"({type(message).__qualname__}); it handles: {accepted}"
            )
            raise TypeError(msg)
        if not cell.accepting:
            msg = (
                f"actor {cell.name!r} has stopped; it cannot take {item.type!r}: watch it "
                "(`self.watch(ref)` / `ref.wait_stopped()`) or look it up again with "
                "`system.actor(name)` after a restart"
            )
            raise ActorStopped(msg)
        await cell.put(item)

    async def _ask(self, cell: Cell, message: object, timeout: float) -> Any:
        what = type(message).__qualname__
        return await self._reply(cell, what, timeout, lambda t: self._tell(cell, message, t))

    async def _reply(
        self,
        cell: Cell,
        what: str,
        timeout: float,
        send: Callable[[Tracker], Awaitable[None]],
    ) -> Any:
        """Send with a fresh tracker and wait for the reply; `AskTimeout` past `timeout`.

        The timeout covers waiting for mailbox room too. The handler's own exception is
        re-raised outside the timeout scope, so its TimeoutError stays a TimeoutError.
        """
        tracker = Tracker()
        try:
            with anyio.fail_after(timeout):
                await send(tracker)
                await tracker.wait()
        except TimeoutError:
            msg = (
                f"actor {cell.name!r} did not answer {what} within {timeout}s; "
                "raise the timeout or check that the handler returns"
            )
            raise AskTimeout(msg) from None
        return tracker.result()

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
        envelope, payload, cls = self._wrap(event, None, None, None, None)
        if envelope.scope is Scope.APP and self._transport is not None:
            return await self._transport.request(envelope, timeout)
        return await self._answer(envelope, payload, cls, timeout)

    async def _answer(
        self, envelope: Envelope, payload: object, cls: type[Any] | None, timeout: float
    ) -> Any:
        target = _answerer(self._dispatcher.route(cls, envelope.type).targets(), cls)
        if target is None:
            msg = (
                f"no actor of system {self._name!r} handles {envelope.type!r}: spawn one "
                "with a @handle for it before the request (see `actorbus handlers`)"
            )
            raise AskTimeout(msg)
        cell, group = target

        async def send(tracker: Tracker) -> None:
            await cell.put(Message(payload, envelope, cls, envelope.type, group, tracker))

        return await self._reply(cell, repr(envelope.type), timeout, send)

    async def drain(self) -> None:
        """Wait until every local mailbox is empty and every handler is idle.

        Escalations travelling to a parent count as work, so a restart they cause has
        finished when `drain` returns. Events still inside a transport (not yet received)
        are not local work. Calling it from a handler would wait for that handler itself:
        don't.
        """
        while self._inflight > 0:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    def _message_done(self) -> None:
        self._inflight -= 1
        if self._inflight <= 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    # -- transports (TransportHost) --------------------------------------------------------------

    async def deliver(self, envelope: Envelope, group: str | None) -> Delivery:
        """Put a received envelope in the matching local mailboxes; see `TransportHost`."""
        try:
            envelope, payload, cls = self._received(envelope)
        except DecodeError as exc:
            self._record_dead_letter(envelope, "", exc)
            delivery = Tracker(0)
            delivery.dead(exc)
            return delivery
        targets = self._dispatcher.route(cls, envelope.type).targets(group)
        answerer = _answerer(targets, cls) if _REPLY_TO in envelope.headers else None
        if answerer is not None:
            # A request: one handler of this instance answers, as `request` does locally.
            targets = [answerer]
        delivery = Tracker(len(targets))
        if not targets and group is not None and group not in self._dispatcher.groups():
            # The group has no member here any more: leave the event for a live member.
            # (A group that is here but does not subscribe to this type has handled it.)
            delivery.not_handled = True
        for cell, target_group in targets:
            message = Message(payload, envelope, cls, envelope.type, target_group, delivery)
            if cell.queue.append(message):  # room: `put`'s fast path, without its coroutine
                self._inflight += 1
                continue
            try:
                await cell.put(message)
            except ActorStopped as exc:
                cell._dead_letter(message, exc, unqueued=True)
            except MailboxFull:
                pass  # dead-lettered and its tracker finished by the mailbox
        return delivery

    def subscribed(self, type_: str, group: str | None) -> bool:
        """Whether `deliver` could give a received event of `type_` to a subscriber here.

        False only when no local subscriber of that delivery (`group`, or None for the
        broadcast subscribers) matches the type, whatever data the event carries, and
        the group is here: `deliver` would then report the event handled without
        handing it to anyone, so a transport may acknowledge it without decoding it.
        """
        registered = lookup(type_)
        dispatcher = self._dispatcher
        key = (type_, group)
        known = self._wanted.get(key)
        if known is not None and known[0] == dispatcher.generation and known[1] is registered:
            return known[2]  # the same subscriptions and registration as when last asked
        # Wire data is routed by its registered class, or by its JSON value's class.
        answer = any(
            route.broadcast if group is None else group in route.groups
            for cls in (registered, None, str, int, float, bool, list)
            if (route := dispatcher.route(cls, type_))
        ) or (group is not None and group not in dispatcher.groups())
        if len(self._wanted) >= CACHE_LIMIT:
            self._wanted.clear()  # type strings come from the wire: stay bounded
        self._wanted[key] = (dispatcher.generation, registered, answer)
        return answer

    async def answer(self, envelope: Envelope, timeout: float) -> Any:
        """Answer a request received by the transport with one local handler."""
        envelope, payload, cls = self._received(envelope)
        return await self._answer(envelope, payload, cls, timeout)

    # -- dead letters and stats ------------------------------------------------------------------

    def _record_dead_letter(
        self, envelope: Envelope, actor: str, error: BaseException | None
    ) -> None:
        record = DeadLetter(envelope, actor, error)
        self._dead_letters.append(record)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "dead letter %s (id %s) for %r: %r",
                envelope.type,
                envelope.id,
                actor,
                error,
                extra={"actor": actor, "event_type": envelope.type, "event_id": envelope.id},
            )
        if envelope.type == _DEAD_LETTER_TYPE or self._state not in (_RUNNING, _STOPPING):
            return  # never a dead letter about a dead letter
        self._offer_local(record, None, DeadLetter, _DEAD_LETTER_TYPE)

    def stats(self) -> dict[str, ActorStats]:
        """A snapshot of every running actor's counters, by name."""
        return {name: cell.stats() for name, cell in self._cells.items()}
