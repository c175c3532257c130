"""The actor loop: one task per actor, one message at a time, supervision carried out.

A `Cell` is the runtime side of an actor (as in Akka): it owns the mailbox queue, the
current instance, the children and the counters. Its task takes messages in FIFO order
(system notices first) and hands each to `Cell._handle`, the one place where handlers are
called: the matching handlers in declaration order, each failure decided by the actor's
`Supervision` (`actorbus._supervision`) and carried out here — retry, restart, dead
letter, stop, or escalate to the parent cell (or to the system when there is none).

A cell knows the rest of the system only through its `Runtime` (shared state) and its
`CellHost` (the registry of actors that spawned it).
"""

from __future__ import annotations

import contextvars
import enum
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import anyio
import anyio.abc

from . import _tracing
from ._envelope import Envelope
from ._exceptions import ActorStopped, MailboxFull
from ._handlers import ANY_GROUP, CACHE_LIMIT
from ._mailbox import FULL, QUEUED, Mailbox, MailboxQueue
from ._message import Message, Tracker, local_message
from ._records import ActorStats, Terminated
from ._runtime import YIELD_EVERY, Runtime, current_runtime
from ._supervision import Policy, RestartWindow, Supervision

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handlers import HandlerSpec, HandlerTable

__all__ = ["CELL_ATTRIBUTE", "Cell", "CellHost", "Keeper", "LoopExit", "Spawn", "current_cell"]

logger: Final = logging.getLogger("actorbus.actor")

current_cell: contextvars.ContextVar[Cell | None] = contextvars.ContextVar(
    "actorbus_current_cell", default=None
)
"""The cell whose task is running (an actor stopping itself returns at once)."""

CELL_ATTRIBUTE: Final = "__actorbus_cell__"
"""The attribute linking an actor instance to its cell."""

# Handling-time samples: every message is timed until the ring is full, then one in
# _SAMPLE_EVERY, so the percentiles stay cheap on busy actors.
_SAMPLES: Final = 256  # a power of two: the ring index is `count & _SAMPLE_MASK`
_SAMPLE_MASK: Final = _SAMPLES - 1
_SAMPLE_EVERY_MASK: Final = 8 - 1


class Life(enum.IntEnum):
    """Where an actor is in its life (in this order)."""

    NEW = 0
    RUNNING = 1
    STOPPING = 2
    STOPPED = 3


_NO_KWARGS: Final[dict[str, Any]] = {}
_TRACE_HEADER: Final = _tracing.HEADER  # never mutated: passed as `**kwargs` without a copy


class Spawn:
    """One spawn request: what to build, with which settings, under which parent."""

    __slots__ = ("args", "group", "kwargs", "mailbox", "name", "parent", "supervision", "target")

    def __init__(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        supervision: Supervision | None = None,
        group: str | None = None,
        parent: Cell | None = None,
    ) -> None:
        self.target: Callable[..., Any] = target
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs or {}
        self.name: str | None = name
        self.mailbox: Mailbox | None = mailbox
        self.supervision: Supervision | None = supervision
        self.group: str | None = group
        self.parent: Cell | None = parent


def _fenced_off(tracker: Tracker) -> bool:
    """Whether a transport's message may no longer be handled here (see `Tracker.fence`)."""
    return tracker.fence is not None and not tracker.fence()


class CellHost(Protocol):
    """What a cell needs from the registry of actors that spawned it."""

    def stopping(self, cell: Cell) -> None:
        """`cell` takes no more messages: stop routing to it."""
        ...

    def stopped(self, cell: Cell) -> None:
        """`cell` has fully stopped: forget it (its name is free again)."""
        ...

    async def spawn_child(self, parent: Cell, request: Spawn) -> Cell:
        """Start a child of `parent` (it stops before its parent, and escalates to it)."""
        ...


class Keeper(Protocol):
    """What keeps an actor's durable state from one message to the next (an entity's).

    A cell with a keeper calls it at three points of its life: when it builds an
    instance, when a handler call fails, and when a message has been handled.
    """

    async def prepare(self, instance: Any) -> None:
        """Give a fresh instance its state, before its ``__init__`` runs (may raise)."""
        ...

    def discard(self, *, retry: bool) -> None:
        """A handler call failed: put the state back as it was last committed.

        `retry` says that the handler is called again with the same message (RETRY);
        otherwise the message's changes are given up for good.
        """
        ...

    def handled(self, item: object) -> None:
        """A mailbox item went through its handlers: commit its changes (never raises)."""
        ...


class LoopExit(Exception):
    """Raised in an actor's loop to leave it (STOP, or an escalation); `error` says why.

    Instrumentation that wraps the handling of a message sees it pass (and re-raises it).
    """

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Stop(LoopExit):
    """STOP: the actor stops after this message."""


class _Escalate(LoopExit):
    """An escalation; counts as work in flight until the parent handled it.

    The count keeps `drain()` waiting while the escalation travels up the tree.
    """

    def __init__(self, error: BaseException, runtime: Runtime) -> None:
        super().__init__(error)
        runtime.inflight += 1


class _ChildFailed:
    """A child's escalation, queued to its parent as a system notice."""

    __slots__ = ("child", "error")

    def __init__(self, child: Cell, error: BaseException) -> None:
        self.child = child
        self.error = error


class Cell:
    """The runtime of one actor: mailbox, instance, children, supervision, counters."""

    # Slots: smaller, and attribute reads in the loop stay on CPython's fastest path.
    __slots__ = (
        "_broadcast",
        "_sampled",
        "_samples",
        "_stopped",
        "_traced",
        "_window",
        "args",
        "children",
        "dead_lettered",
        "dropped",
        "factory",
        "failed",
        "forward",
        "group",
        "handling_time",
        "host",
        "instance",
        "keeper",
        "kwargs",
        "name",
        "parent",
        "processed",
        "queue",
        "reason",
        "restarts",
        "retries",
        "runtime",
        "scope",
        "state",
        "stop_errors",
        "supervision",
        "table",
        "told",
        "watchers",
        "watching",
    )

    def __init__(
        self,
        runtime: Runtime,
        host: CellHost,
        name: str,
        *,
        factory: type[Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        table: HandlerTable,
        mailbox: Mailbox,
        supervision: Supervision,
        group: str | None,
        parent: Cell | None,
    ) -> None:
        self.runtime: Runtime = runtime
        self.host: CellHost = host
        self.name: str = name
        self.factory: type[Any] | None = factory
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs
        self.table: HandlerTable = table
        self.supervision: Supervision = supervision
        self.group: str | None = group
        self.parent: Cell | None = parent
        self.queue: MailboxQueue[Any] = MailboxQueue(mailbox, self._dropped)
        self.instance: Any = None
        self.children: dict[Cell, None] = {}  # in start order; O(1) removal
        self.watchers: dict[Cell, None] = {}  # who gets Terminated when this one stops
        self.watching: dict[Cell, None] = {}  # whom this one watches (to unregister)
        self.state: Life = Life.NEW
        self.reason: BaseException | None = None
        self.stop_errors: list[BaseException] = []
        self.scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None
        self._window: RestartWindow | None = None
        self.processed: int = 0
        self.failed: int = 0
        self.retries: int = 0
        self.restarts: int = 0
        self.dropped: int = 0
        self.dead_lettered: int = 0
        self.handling_time: float = 0.0
        self._samples: list[float] = []  # handling times of recent messages (a ring)
        self._sampled: int = 0  # samples taken: the ring's next index
        # Handlers of broadcast deliveries, by class then type.
        self._broadcast: dict[type[Any] | None, dict[str, tuple[HandlerSpec, ...]]] = {}
        self.told: dict[type[Any], tuple[HandlerSpec, ...]] = {}
        """The handlers of each `@event` class told to this actor (filled by `told_specs`)."""
        # Whether the trace context may be set (the spawner's may be, at first).
        self._traced: bool = True
        self.keeper: Keeper | None = None
        """Keeps the instance's durable state (an entity's; see `Keeper`)."""
        self.forward: Callable[[str | None], Cell] | None = None
        """Set on a cell that stands for many (an entity kind's shard): the cell that takes
        a message of a key instead of this one (see `Route.pick`)."""

    def __repr__(self) -> str:
        return f"<actor {self.name!r}>"

    # -- delivery -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """Whether the mailbox still takes messages."""
        return not self.queue.closed

    async def put(self, message: object) -> None:
        """Queue `message` (a mailbox item), waiting while a BLOCK mailbox is full.

        Raises:
            ActorStopped: If the actor no longer takes messages.
            MailboxFull: For a full FAIL mailbox (the message is dead-lettered).
        """
        queue = self.queue
        status = queue.offer(message, self.name)
        if status is FULL:
            status = await queue.put(message, self.name)
        if status is QUEUED:
            self.runtime.inflight += 1

    def offer(self, message: Message) -> bool:
        """Queue `message` without ever waiting: a full mailbox drops it (dead letter)."""
        try:
            status = self.queue.offer(message, self.name)
        except ActorStopped as exc:
            self.dead_letter(message, exc, unqueued=True)
            return False
        except MailboxFull:
            return False  # a FAIL mailbox: the queue counted and dead-lettered it
        if status is QUEUED:
            self.runtime.inflight += 1
            return True
        if status is FULL:
            self.dropped += 1
            full = MailboxFull(
                f"mailbox of actor {self.name!r} is full; a system notice was dropped"
            )
            self.dead_letter(message, full, unqueued=True)
        return False

    def notify(self, item: object) -> None:
        """Queue a system notice (Terminated, a child's failure) ahead of user messages."""
        if self.queue.urgent(item) and isinstance(item, Message):
            self.runtime.inflight += 1

    def watch(self, watched: Cell) -> None:
        """Send this cell `Terminated` when `watched` stops (at once if it has)."""
        if watched.stopped:
            self.notify(local_message(Terminated(watched.name, watched.reason)))
        else:
            watched.watchers[self] = None
            self.watching[watched] = None

    def _dropped(self, item: object, error: Exception, queued: bool) -> None:
        self.dropped += 1
        tracker = item.tracker if type(item) is Message else None
        if tracker is not None:
            # A DROP mailbox shares one error between its drops; an asker raises it, so it
            # gets its own (a shared one would collect every asker's traceback).
            error = MailboxFull(*error.args)
        self.dead_letter(item, error, unqueued=True, counted=queued)

    def envelope_of(self, item: object) -> Envelope:
        """The envelope of a mailbox item, built on first use for messages sent with `tell`."""
        if type(item) is Envelope:
            return item
        message = self._as_message(item)
        envelope = message.envelope
        if envelope is None:
            envelope = message.envelope = Envelope(
                type=message.type, data=message.event, source=self.runtime.name
            )
        return envelope

    def dead_letter(
        self,
        item: object,
        error: BaseException,
        *,
        unqueued: bool = False,
        counted: bool = False,
    ) -> None:
        """Record a mailbox item as a dead letter.

        `unqueued` items never reach the loop (dropped, or left in a closed mailbox), so
        their tracker is finished here; `counted` ones were counted as in flight.
        """
        message = self._as_message(item)
        self.dead_lettered += 1
        self.runtime.dead_letter(self.envelope_of(message), self.name, error)
        tracker = message.tracker
        if tracker is not None:
            tracker.fail(error)
            tracker.dead(error)
            if unqueued:
                tracker.finish(handled=isinstance(error, MailboxFull))
        if counted:
            self.runtime.done()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The actor's task: start, loop, finish. Never raises but for start-up errors."""
        current_cell.set(self)
        current_runtime.set(self.runtime)
        escalated: BaseException | None = None
        try:
            with anyio.CancelScope() as self.scope:
                try:
                    await self._start_instance()
                except Exception as exc:
                    self.reason = exc
                    await self._finish(run_on_stop=False)
                    raise
                self.state = Life.RUNNING
                task_status.started()
                try:
                    await self._loop()
                except _Stop as stop:
                    self.request_stop(stop.error)
                except _Escalate as escalation:
                    escalated = escalation.error
                    self.request_stop(escalated)
        finally:
            if self.state not in (Life.STOPPED, Life.NEW):
                await self._finish()
        if escalated is not None:
            self._escalate(escalated)

    async def _start_instance(self) -> None:
        """Build a fresh instance and run its `on_start`; it becomes current only then.

        The instance is linked to this cell (and given its state by the cell's `keeper`)
        before its `__init__` runs, so the constructor can already use `self.name`,
        `self.system` and friends. A failed `on_start` leaves no instance, so no
        `on_stop` runs for it (as at spawn).
        """
        self.instance = None
        cls = self.factory
        if cls is None:
            return
        instance: Any = cast("Any", cls).__new__(cls)
        setattr(instance, CELL_ATTRIBUTE, self)
        if self.keeper is not None:
            await self.keeper.prepare(instance)
        instance.__init__(*self.args, **self.kwargs)
        await instance.on_start()
        self.instance = instance

    async def _loop(self) -> None:  # noqa: C901, PLR0912, PLR0915 - the hot loop in one frame
        """Take messages in order and handle each; yield at least every YIELD_EVERY of them.

        `handling_time` adds up the loop's busy stretches (from a wake-up to the next wait
        or yield); the samples behind the percentiles time single messages.
        """
        queue = self.queue
        urgent, items = queue.urgent_items, queue.items
        runtime = self.runtime
        new_event = runtime.backend.new_event
        streak = 0
        busy = started = perf_counter()
        try:
            while True:
                if streak >= YIELD_EVERY:
                    streak = 0
                    self.handling_time += perf_counter() - busy
                    await runtime.backend.schedule()
                    busy = perf_counter()
                if urgent:
                    item = urgent.popleft()
                elif items:
                    item = items.popleft()
                    if queue.putters:
                        queue.wake_putter()
                else:
                    if queue.closed:
                        return
                    streak = 0
                    self.handling_time += perf_counter() - busy
                    await queue.wait(new_event)
                    busy = perf_counter()
                    continue
                streak += 1
                kind: type[Any] = type(item)  # pyright: ignore[reportUnknownVariableType]
                if kind is _ChildFailed:
                    try:
                        await self._child_failed(item)
                    finally:
                        runtime.done()
                    continue
                if kind is Message and item.tracker is not None and _fenced_off(item.tracker):
                    item.tracker.finish(handled=False)  # left for its partition's new owner
                    runtime.done()
                    continue
                sampled = self.processed < _SAMPLES or not self.processed & _SAMPLE_EVERY_MASK
                if sampled:
                    started = perf_counter()
                finished = False
                try:
                    await self._handle(item)
                    finished = True
                    if self.keeper is not None:
                        self.keeper.handled(item)
                finally:
                    if sampled:
                        self._sample(perf_counter() - started)
                    self.processed += 1
                    if kind is Message and item.tracker is not None:
                        self._report(item.tracker, finished=finished)
                    if runtime.inflight > 1:  # `done()` only when `drain` may be woken
                        runtime.inflight -= 1
                    else:
                        runtime.done()
        finally:
            self.handling_time += perf_counter() - busy

    def _sample(self, elapsed: float) -> None:
        ring = self._samples
        if len(ring) < _SAMPLES:
            ring.append(elapsed)
        else:
            ring[self._sampled & _SAMPLE_MASK] = elapsed
        self._sampled += 1

    def request_stop(self, reason: BaseException | None = None, *, cancel: bool = False) -> None:
        """Stop taking messages; dead-letter the waiting ones; optionally cancel the current one."""
        if self.state < Life.STOPPING:
            self.state = Life.STOPPING
            self.reason = reason
            self.host.stopping(self)
            for item in self.queue.close():
                if type(item) is _ChildFailed:
                    self.runtime.done()
                else:
                    stopped = ActorStopped(
                        f"actor {self.name!r} stopped before handling this message"
                    )
                    self.dead_letter(item, stopped, unqueued=True, counted=True)
        if cancel and self.scope is not None:
            self.scope.cancel()

    async def stop(self, *, cancel: bool = False) -> None:
        """Stop the actor (after its current message unless `cancel`) and wait until it has."""
        self.request_stop(cancel=cancel)
        if current_cell.get() is self:
            return  # stopping itself from a handler: the loop ends after this message
        await self.wait_stopped()

    async def wait_stopped(self) -> None:
        """Wait until the actor has fully stopped (children stopped, `on_stop` run)."""
        if self.state == Life.STOPPED:
            return
        if self._stopped is None:
            self._stopped = anyio.Event()
        await self._stopped.wait()

    @property
    def stopped(self) -> bool:
        """Whether the actor has fully stopped."""
        return self.state == Life.STOPPED

    async def _finish(self, *, run_on_stop: bool = True) -> None:
        # Clean-up must run even when the system is being cancelled, but never forever.
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.runtime.shutdown_timeout):
            await self.stop_children(cancel=self.scope is not None and self.scope.cancel_called)
            if run_on_stop and self.instance is not None:
                try:
                    await self.instance.on_stop()
                except Exception as exc:
                    logger.exception(
                        "on_stop of actor %r failed", self.name, extra={"actor": self.name}
                    )
                    self.stop_errors.append(exc)
        self.request_stop(self.reason)  # no-op if already stopping; else dead-letters leftovers
        self.state = Life.STOPPED
        self.host.stopped(self)
        if self.parent is not None:
            self.parent.children.pop(self, None)
        notice = Terminated(self.name, self.reason)
        for watcher in self.watchers:
            watcher.watching.pop(self, None)
            watcher.notify(local_message(notice))
        self.watchers.clear()
        for watched in self.watching:  # a stopped watcher is nobody's concern any more
            watched.watchers.pop(self, None)
        self.watching.clear()
        if self._stopped is not None:
            self._stopped.set()

    async def stop_children(self, *, cancel: bool) -> None:
        """Stop the children, the last started first, each with its own subtree."""
        for child in reversed(list(self.children)):
            await child.stop(cancel=cancel)

    def _escalate(self, error: BaseException) -> None:
        """Hand an escalation (already counted in flight) to the parent, or the system."""
        parent = self.parent
        if parent is None:
            self.runtime.fail(error, self.name)
        elif parent.accepting:
            parent.queue.urgent(_ChildFailed(self, error))
            return  # the parent's loop marks it done
        else:
            logger.warning(
                "actor %r escalated %r while its parent %r is stopping; nothing to decide",
                self.name,
                error,
                parent.name,
                extra={"actor": self.name},
            )
        self.runtime.done()

    # -- handling -------------------------------------------------------------------------

    async def _handle(  # noqa: C901, PLR0912 - one frame per message: the cost of every message
        self, item: object, *, instrumented: bool = False
    ) -> None:
        """Call the handlers of one mailbox item in declaration order, under supervision.

        This is the only place handlers are called. A handler that raises is retried,
        or its failure applied, as the actor's `Supervision` decides; when the decision
        ends the message (RESTART), the remaining handlers are skipped.

        The mailbox holds `Message`s and, to spare a `Message` per message on the common
        paths, two kinds of bare items: the envelope of a broadcast publish (its data is
        the event) and a told `@event` object. A told object becomes one `Message` as soon
        as something needs its envelope (an argument, a failure, a span), so its handlers,
        their retries, the logs and a dead letter all see one envelope id.
        """
        kind: type[Any] = type(item)
        if kind is Message:
            message: Message = item  # type: ignore[assignment]
            event, envelope, tracker = message.event, message.envelope, message.tracker
            specs = message.specs or self._published_specs(message.cls, message.type, message.group)
        elif kind is Envelope:
            published: Envelope = item  # type: ignore[assignment]
            event, envelope, tracker = published.data, published, None
            data_class: type[Any] = type(event)  # pyright: ignore[reportUnknownVariableType]
            by_type = self._broadcast.get(data_class)  # `_published_specs`' cached path, inline
            cached = by_type.get(published.type) if by_type is not None else None
            specs = cached or self._published_specs(data_class, published.type, None)
        else:
            event, envelope, tracker = item, None, None
            specs = self.told.get(kind) or self.told_specs(kind)
        if not instrumented:
            if self._traced or (envelope is not None and _TRACE_HEADER in envelope.headers):
                self._trace(envelope)
            if _tracing.instrumentation is not None:
                item = self._as_message(item)
                with _tracing.instrumentation.handling(self.envelope_of(item), self.name):
                    await self._handle(item, instrumented=True)
                return
        first = True
        for spec in specs:
            retries = 0
            while True:
                try:
                    if spec.event_only and isinstance(event, spec.convert_to):  # type: ignore[arg-type]
                        # The common shape: the event alone, already of the annotated class.
                        if spec.bound:
                            result = await spec.call(self.instance, event)
                        else:
                            result = await spec.call(event)
                    else:
                        item = self._as_message(item)  # its envelope is made once
                        args, kwargs = self._arguments(spec, event, envelope, item)
                        result = await spec.call(*args, **kwargs)
                except Exception as exc:
                    failure: Exception = exc  # supervised outside the except block
                else:
                    if first and tracker is not None:
                        tracker.reply(result)
                    break
                item = self._as_message(item)
                retry = await self._failed(spec, item, failure, retries, first=first)
                if retry is None:
                    return  # the message ends here (RESTART)
                if not retry:
                    break
                retries += 1
            first = False

    def _arguments(
        self, spec: HandlerSpec, event: object, envelope: Envelope | None, item: object
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of a handler call of another shape than the event alone.

        Raises:
            DecodeError: If the event cannot be converted to the annotated class.
        """
        if spec.needs_envelope and envelope is None:
            envelope = self.envelope_of(item)
        args = spec.arguments(event, envelope, self._type_of(item), self)
        if spec.bound:
            args = (self.instance, *args)
        return args, dict(spec.kwargs_for(event)) if spec.spreads else _NO_KWARGS

    def _trace(self, envelope: Envelope | None) -> None:
        """Make the message's trace context the current one while its handlers run.

        This is the actor task's own context, so nothing leaks to other actors; a message
        without one clears what an earlier message (or the spawner) left.
        """
        parent = envelope.headers.get(_tracing.HEADER) if envelope is not None else None
        if parent is not None or _tracing.current.get() is not None:
            _tracing.current.set(parent)
        self._traced = parent is not None

    async def _failed(
        self, spec: HandlerSpec, item: object, error: Exception, retries: int, *, first: bool
    ) -> bool | None:
        """Carry out supervision's decision about a failed handler call.

        Returns True to call the handler again (RETRY, after its delay), False to go on
        with the next handler, None when the rest of the message is skipped (RESTART).

        Raises:
            _Stop: STOP.
            _Escalate: FAIL_FAST, or restart intensity exceeded.
        """
        self.failed += 1
        if _tracing.instrumentation is not None:
            _tracing.instrumentation.failed(error)
        supervision = self.supervision
        decision = supervision.decide(error, retries)
        policy = decision.policy
        if self.keeper is not None:
            self.keeper.discard(retry=policy is Policy.RETRY)
        if policy is Policy.RETRY:
            self.retries += 1
            self._log(
                logging.WARNING,
                "retry %d/%d in %.3fs",
                spec,
                item,
                error,
                retries + 1,
                supervision.max_retries,
                decision.delay,
            )
            await anyio.sleep(decision.delay)
            return True
        tracker = item.tracker if type(item) is Message else None
        if first and tracker is not None:
            tracker.fail(error)
        if policy is Policy.IGNORE:
            self._log(logging.DEBUG, "ignored", spec, item, error)
        elif policy is Policy.LOG_AND_CONTINUE:
            self._log(logging.ERROR, "logged, continuing", spec, item, error)
        elif policy is Policy.DEAD_LETTER:
            self._log(logging.WARNING, "dead-lettered", spec, item, error)
            self.dead_letter(item, error)
        elif policy is Policy.RESTART:
            self._log(logging.ERROR, "restarting the actor", spec, item, error)
            await self._restart(error)
            return None
        elif policy is Policy.STOP:
            self._log(logging.ERROR, "stopping the actor", spec, item, error)
            self.dead_letter(item, error)
            raise _Stop(error)
        else:
            self._log(logging.ERROR, "escalating (FAIL_FAST)", spec, item, error)
            raise _Escalate(error, self.runtime)
        return False

    def _published_specs(
        self, cls: type[Any] | None, type_: str, group: object
    ) -> tuple[HandlerSpec, ...]:
        """The handlers of a published message (cached per class and type for broadcasts)."""
        if group is not None:
            return self.table.match(cls, type_, group, self.group)
        if cls is None:  # plain data: its types come from the wire, keep no copy here
            return self.table.match(None, type_, None, self.group)
        by_type = self._broadcast.get(cls)
        if by_type is None:
            if len(self._broadcast) >= CACHE_LIMIT:
                self._broadcast.clear()
            by_type = self._broadcast[cls] = {}
        specs = by_type.get(type_)
        if specs is None:
            if len(by_type) >= CACHE_LIMIT:
                by_type.clear()  # an `Envelope`'s type need not be its class's: stay bounded
            specs = by_type[type_] = self.table.match(cls, type_, None, self.group)
        return specs

    def told_specs(self, kind: type[Any]) -> tuple[HandlerSpec, ...]:
        """The handlers of a told `@event` object (its type is fixed: cached in `told`)."""
        specs = self.table.for_tell(kind)[1]
        if len(self.told) >= CACHE_LIMIT:
            self.told.clear()
        self.told[kind] = specs
        return specs

    def _type_of(self, item: object) -> str:
        """The event type of a mailbox item."""
        kind = type(item)
        if kind is Message or kind is Envelope:
            return item.type  # type: ignore[attr-defined, no-any-return]
        return self.table.for_tell(kind)[0]

    def _as_message(self, item: object) -> Message:
        """The `Message` for a mailbox item queued bare (see `_handle`)."""
        if type(item) is Message:
            return item
        if type(item) is Envelope:  # a broadcast publish
            data: object = item.data
            return Message(data, item, type(data), item.type, None)
        kind = type(item)  # a told `@event` object
        type_, specs = self.table.for_tell(kind)
        return Message(item, None, kind, type_, ANY_GROUP, None, specs)

    def _report(self, tracker: Tracker, *, finished: bool) -> None:
        """Tell whoever waits for a message (an `ask`, a transport) that it is done."""
        if not finished:
            tracker.fail(ActorStopped(f"actor {self.name!r} stopped while handling the message"))
        tracker.finish(handled=finished)

    def _log(
        self,
        level: int,
        what: str,
        spec: HandlerSpec,
        item: object,
        exc: BaseException,
        *args: object,
    ) -> None:
        envelope = self.envelope_of(item)
        logger.log(
            level,
            f"actor %r: %s raised %s on %s (id %s): {what}",
            self.name,
            spec.name,
            type(exc).__name__,
            envelope.type,
            envelope.id,
            *args,
            exc_info=exc if level >= logging.ERROR else None,
            extra={
                "actor": self.name,
                "handler": spec.name,
                "event_type": envelope.type,
                "event_id": envelope.id,
            },
        )

    # -- supervision of the actor itself ---------------------------------------------------

    async def _restart(self, error: BaseException) -> None:
        supervision = self.supervision
        if self._window is None:
            self._window = RestartWindow(supervision.max_restarts, supervision.within)
        while True:
            number = self._window.admit(self.runtime.backend.clock())
            if number is None:
                logger.error(
                    "actor %r: more than %d restarts within %.1fs, escalating",
                    self.name,
                    supervision.max_restarts,
                    supervision.within,
                    extra={"actor": self.name},
                )
                raise _Escalate(error, self.runtime)
            self.restarts += 1
            await self.stop_children(cancel=True)
            if self.instance is not None:
                try:
                    await self.instance.on_stop()
                except Exception:
                    logger.exception(
                        "on_stop of actor %r failed during restart",
                        self.name,
                        extra={"actor": self.name},
                    )
                # Discarded whatever on_stop did: nothing may stop it again (say, when the
                # backoff below is cancelled and the actor finishes).
                self.instance = None
            if supervision.restart_backoff is not None:
                await anyio.sleep(supervision.restart_backoff.delay(number))
            try:
                await self._start_instance()
            except Exception as exc:
                logger.exception(
                    "actor %r failed to restart", self.name, extra={"actor": self.name}
                )
                error = exc
                continue
            return

    async def _child_failed(self, notice: _ChildFailed) -> None:
        error = notice.error
        policy = self.supervision.decide_for_child(error)
        outcome = {
            Policy.RESTART: ", restarting",
            Policy.STOP: ", stopping",
            Policy.FAIL_FAST: ", escalating further",
        }.get(policy, " and stays stopped")
        logger.error(
            "actor %r: child %r escalated %r%s",
            self.name,
            notice.child.name,
            error,
            outcome,
            extra={"actor": self.name, "child": notice.child.name},
        )
        if policy is Policy.RESTART:
            await self._restart(error)
        elif policy is Policy.STOP:
            raise _Stop(error)
        elif policy is Policy.FAIL_FAST:
            raise _Escalate(error, self.runtime)

    # -- observability --------------------------------------------------------------------

    def stats(self) -> ActorStats:
        """A snapshot of the counters."""
        samples = sorted(self._samples)
        p50 = samples[len(samples) // 2] if samples else 0.0
        p99 = samples[min(len(samples) - 1, (len(samples) * 99) // 100)] if samples else 0.0
        return ActorStats(
            name=self.name,
            processed=self.processed,
            failed=self.failed,
            retries=self.retries,
            restarts=self.restarts,
            dropped=self.dropped,
            dead_lettered=self.dead_lettered,
            depth=self.queue.depth,
            handling_time=self.handling_time,
            handling_p50=p50,
            handling_p99=p99,
        )
