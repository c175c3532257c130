"""The actor loop: one task per actor, one message at a time, supervision applied.

A `Cell` is the runtime side of an actor (as in Akka): it owns the mailbox queue, the
current instance, the children and the counters. Its task takes messages in FIFO order
(system notices first), calls the matching handlers in declaration order and applies the
actor's supervision to every failing call. Escalations go to the parent cell's mailbox as
a notice, or to the system when there is no parent.
"""

from __future__ import annotations

import contextvars
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint

from . import _tracing
from ._envelope import Envelope
from ._exceptions import ActorStopped, MailboxFull
from ._handlers import ANY_GROUP, CACHE_LIMIT
from ._mailbox import FULL, QUEUED, Mailbox, MailboxQueue
from ._message import Message, Tracker
from ._records import ActorStats, Terminated
from ._supervision import Policy, RestartWindow, Supervision

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handlers import HandlerSpec, HandlerTable
    from ._system import ActorSystem

__all__ = ["Cell", "current_cell", "current_system_var"]

logger: Final = logging.getLogger("actorbus.actor")
current_cell: contextvars.ContextVar[Cell | None] = contextvars.ContextVar(
    "actorbus_current_cell", default=None
)
# The system of the running code; set by `ActorSystem.__aenter__` and by each actor task,
# so that `current_system()` inside a handler is the handler's own system.
current_system_var: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar(
    "actorbus_current_system", default=None
)

# The loop yields to the scheduler at least this often while its mailbox stays busy.
YIELD_EVERY: Final = 64
# Handling-time samples: every message is timed until the ring is full, then one in
# _SAMPLE_EVERY (the clock costs more than the rest of the bookkeeping of a message).
_SAMPLES: Final = 256  # a power of two: the ring index is `count & _SAMPLE_MASK`
_SAMPLE_MASK: Final = _SAMPLES - 1
_SAMPLE_EVERY: Final = 8  # a power of two
_SAMPLE_EVERY_MASK: Final = _SAMPLE_EVERY - 1
_UNKNOWN: Final[Any] = object()  # "not cached yet" in `_direct`


class _Stop(Exception):
    def __init__(self, reason: BaseException | None) -> None:
        self.reason = reason


class _Escalate(Exception):
    """Raised to leave the loop; counts as work in flight until the parent handled it.

    The count keeps `drain()` waiting while the escalation travels up the tree.
    """

    def __init__(self, error: BaseException, system: ActorSystem) -> None:
        self.error = error
        system._inflight += 1


class _ChildFailed:
    __slots__ = ("child", "error")

    def __init__(self, child: Cell, error: BaseException) -> None:
        self.child = child
        self.error = error


_NEW, _RUNNING, _STOPPING, _STOPPED = range(4)


def _lone_plain(specs: tuple[HandlerSpec, ...], cls: type[Any]) -> HandlerSpec | None:
    """The handler `Cell._loop` may call directly for a `cls` object, if there is one.

    That is when `specs` is one handler that takes only the event, already of its class.
    """
    if len(specs) != 1:
        return None
    spec = specs[0]
    return spec if spec.event_only and issubclass(cls, spec.convert_to) else None  # type: ignore[arg-type]


class Cell:
    """The runtime of one actor: mailbox, instance, children, supervision, counters."""

    # Slots: smaller, and attribute reads in the loop stay on CPython's fastest path.
    __slots__ = (
        "_broadcast",
        "_direct",
        "_published",
        "_sampled",
        "_samples",
        "_stopped",
        "_window",
        "args",
        "children",
        "dead_lettered",
        "dropped",
        "factory",
        "failed",
        "group",
        "handling_time",
        "instance",
        "kwargs",
        "name",
        "parent",
        "processed",
        "queue",
        "reason",
        "restarts",
        "retries",
        "scope",
        "state",
        "stop_errors",
        "supervision",
        "system",
        "table",
        "watchers",
        "watching",
    )

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        *,
        factory: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        table: HandlerTable,
        mailbox: Mailbox,
        supervision: Supervision,
        group: str | None,
        parent: Cell | None,
    ) -> None:
        self.system: ActorSystem = system
        self.name: str = name
        self.factory: Callable[..., Any] | None = factory
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
        self.state: int = _NEW
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
        # Broadcast handlers by class, then by type: a published message's lookup.
        self._broadcast: dict[type[Any] | None, dict[str, tuple[HandlerSpec, ...]]] = {}
        # Told classes the loop calls a handler for directly (see `_direct_spec`).
        self._direct: dict[type[Any], HandlerSpec | None] = {}
        # The same for bare published envelopes, by the class of their data: (type, handler).
        self._published: dict[type[Any], tuple[str, HandlerSpec | None]] = {}

    def __repr__(self) -> str:
        return f"<actor {self.name!r}>"

    # -- delivery -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """Whether the mailbox still takes messages."""
        return not self.queue.closed

    async def put(self, message: Message | Envelope) -> None:
        """Queue `message`, waiting while a BLOCK mailbox is full (backpressure).

        Raises:
            ActorStopped: If the actor no longer takes messages.
            MailboxFull: For a full FAIL mailbox (the message is dead-lettered).
        """
        queue = self.queue
        status = queue.offer(message, self.name)
        if status is FULL:
            status = await queue.put(message, self.name)
        if status is QUEUED:
            self.system._inflight += 1

    def offer(self, message: Message) -> bool:
        """Queue `message` without ever waiting: a full mailbox drops it (dead letter)."""
        try:
            status = self.queue.offer(message, self.name)
        except (ActorStopped, MailboxFull) as exc:
            self._dead_letter(message, exc, unqueued=True)
            return False
        if status is QUEUED:
            self.system._inflight += 1
            return True
        if status is FULL:
            self.dropped += 1
            full = MailboxFull(
                f"mailbox of actor {self.name!r} is full; a system notice was dropped"
            )
            self._dead_letter(message, full, unqueued=True)
        return False

    def notify(self, item: object) -> None:
        """Queue a system notice (Terminated, a child's failure) ahead of user messages."""
        if self.queue.urgent(item) and isinstance(item, Message):
            self.system._inflight += 1

    def _dropped(self, item: object, error: Exception, queued: bool) -> None:
        self.dropped += 1
        tracker = item.tracker if type(item) is Message else None
        if tracker is not None:
            # A DROP mailbox shares one error between its drops; an asker raises it, so it
            # gets its own (a shared one would collect every asker's traceback).
            error = MailboxFull(*error.args)
        self._dead_letter(item, error, unqueued=True, counted=queued)

    def envelope_of(self, message: Message) -> Envelope:
        """The message's envelope, built on first use for messages sent with `tell`."""
        envelope = message.envelope
        if envelope is None:
            envelope = message.envelope = self.system._envelope_for_tell(message)
        return envelope

    def _dead_letter(
        self,
        item: object,
        error: BaseException,
        *,
        unqueued: bool = False,
        counted: bool = False,
    ) -> None:
        """Record `message` as a dead letter.

        `unqueued` messages never reach the loop (dropped, or left in a closed mailbox), so
        their tracker is finished here; `counted` ones were counted as in flight.
        """
        message = self._as_message(item)
        self.dead_lettered += 1
        self.system._record_dead_letter(self.envelope_of(message), self.name, error)
        tracker = message.tracker
        if tracker is not None:
            tracker.fail(error)
            tracker.dead(error)
            if unqueued:
                tracker.finish(handled=isinstance(error, MailboxFull))
        if counted:
            self.system._message_done()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The actor's task: start, loop, finish. Never raises but for start-up errors."""
        current_cell.set(self)
        current_system_var.set(self.system)
        escalated: BaseException | None = None
        try:
            with anyio.CancelScope() as self.scope:
                try:
                    await self._start_instance()
                except Exception as exc:
                    self.reason = exc
                    await self._finish(run_on_stop=False)
                    raise
                self.state = _RUNNING
                task_status.started()
                try:
                    await self._loop()
                except _Stop as stop:
                    self.request_stop(stop.reason)
                except _Escalate as escalation:
                    escalated = escalation.error
                    self.request_stop(escalated)
        finally:
            if self.state not in (_STOPPED, _NEW):
                await self._finish()
        if escalated is not None:
            self._escalate(escalated)

    async def _start_instance(self) -> None:
        """Build a fresh instance and run its `on_start`; it becomes current only then.

        A failed `on_start` leaves no instance, so no `on_stop` runs for it (as at spawn).
        """
        self.instance = None
        if self.factory is None:
            return
        instance = self.system._construct(self)
        await instance.on_start()
        self.instance = instance

    async def _loop(self) -> None:  # noqa: C901, PLR0912, PLR0915 - the hot loop, kept in one frame
        """Take messages in order and handle each; yield at least every YIELD_EVERY of them.

        The queue holds `Message`s, child-failure notices, and two kinds of bare items
        that save a `Message` on the hot paths: told `@event` objects (`tell`'s fast path)
        and the envelopes of broadcast publishes. When the actor has one plain handler for
        a bare item, the loop calls it right here, without another coroutine frame.

        `handling_time` adds up the loop's busy stretches (from a wake-up to the next wait
        or yield); the samples behind the percentiles time single messages.
        """
        queue = self.queue
        urgent, items, putters = queue._urgent, queue._items, queue._putters
        direct, published, system = self._direct, self._published, self.system
        new_event = system._new_event
        streak = 0
        traced = True  # whether the trace context may be set (the spawner's may be)
        busy = started = perf_counter()
        try:
            while True:
                if streak >= YIELD_EVERY:
                    streak = 0
                    self.handling_time += perf_counter() - busy
                    await checkpoint()
                    busy = perf_counter()
                # `queue.get_nowait()`, inlined.
                if urgent:
                    message = urgent.popleft()
                elif items:
                    message = items.popleft()
                    if putters:
                        queue._wake_putter()
                else:
                    if queue.closed:
                        return
                    streak = 0
                    self.handling_time += perf_counter() - busy
                    await queue.wait(new_event)
                    busy = perf_counter()
                    continue
                streak += 1
                kind: type[Any] = type(message)  # pyright: ignore[reportUnknownVariableType]
                if kind is _ChildFailed:
                    try:
                        await self._child_failed(message)
                    finally:
                        system._message_done()
                    continue
                tracker = None
                finished = False
                sampled = self.processed < _SAMPLES or not self.processed & _SAMPLE_EVERY_MASK
                if sampled:
                    started = perf_counter()
                try:
                    if kind is Message:
                        tracker = message.tracker
                        traced = True
                        await self._handle(message)
                    else:
                        if kind is Envelope:  # a broadcast publish
                            event: object = message.data
                            found = published.get(type(event))
                            if found is None or found[0] != message.type:
                                found = self._published_spec(message)
                            spec = None if message.headers else found[1]  # trace: _handle
                        else:  # a told `@event` object
                            event = message
                            spec = direct.get(kind, _UNKNOWN)
                            if spec is _UNKNOWN:
                                spec = self._direct_spec(kind)
                        if spec is None or _tracing.instrumentation is not None:
                            traced = True
                            await self._handle(self._as_message(message))
                        else:
                            if traced:  # no trace context left from an earlier message
                                if _tracing.current.get() is not None:
                                    _tracing.current.set(None)
                                traced = False
                            failure: Exception | None = None
                            try:
                                if spec.bound:
                                    await spec.call(self.instance, event)
                                else:
                                    await spec.call(event)
                            except Exception as exc:
                                failure = exc  # supervised outside: no chained context
                            if failure is not None:
                                item = self._as_message(message)
                                await self._call(spec, item, first=True, error=failure)
                    finished = True
                finally:
                    if sampled:
                        self._sample(perf_counter() - started)
                    self.processed += 1
                    if tracker is not None:
                        self._report(tracker, finished=finished)
                    if system._inflight > 1:
                        system._inflight -= 1  # `_message_done`, inlined
                    else:
                        system._message_done()
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
        if self.state < _STOPPING:
            self.state = _STOPPING
            self.reason = reason
            self.system._unsubscribe(self)
            for item in self.queue.close():
                if type(item) is _ChildFailed:
                    self.system._message_done()
                else:
                    stopped = ActorStopped(
                        f"actor {self.name!r} stopped before handling this message"
                    )
                    self._dead_letter(item, stopped, unqueued=True, counted=True)
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
        if self.state == _STOPPED:
            return
        if self._stopped is None:
            self._stopped = anyio.Event()
        await self._stopped.wait()

    @property
    def stopped(self) -> bool:
        """Whether the actor has fully stopped."""
        return self.state == _STOPPED

    async def _finish(self, *, run_on_stop: bool = True) -> None:
        # Clean-up must run even when the system is being cancelled, but never forever.
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.system.shutdown_timeout):
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
        self.state = _STOPPED
        self.system._forget(self)
        if self.parent is not None:
            self.parent.children.pop(self, None)
        notice = Terminated(self.name, self.reason)
        for watcher in self.watchers:
            watcher.watching.pop(self, None)
            watcher.notify(self.system._local_message(notice))
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
            self.system._fail(error, self.name)
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
        self.system._message_done()

    # -- handling -------------------------------------------------------------------------

    def _specs_for(self, message: Message) -> tuple[HandlerSpec, ...]:
        """The handlers of a published message (cached per class and type for broadcasts)."""
        if message.group is not None:
            return self.table.match(message.cls, message.type, message.group, self.group)
        if message.cls is None:  # plain data: its types come from the wire, keep no copy here
            return self.table.match(None, message.type, None, self.group)
        by_type = self._broadcast.get(message.cls)
        if by_type is None:
            if len(self._broadcast) >= CACHE_LIMIT:
                self._broadcast.clear()
            by_type = self._broadcast[message.cls] = {}
        specs = by_type.get(message.type)
        if specs is None:
            if len(by_type) >= CACHE_LIMIT:
                by_type.clear()  # an `Envelope`'s type need not be its class's: stay bounded
            specs = by_type[message.type] = self.table.match(
                message.cls, message.type, None, self.group
            )
        return specs

    def _as_message(self, item: object) -> Message:
        """The `Message` for a mailbox item queued bare (see `_loop`)."""
        if type(item) is Message:
            return item
        if type(item) is Envelope:  # a broadcast publish
            data: object = item.data
            return Message(data, item, type(data), item.type, None)
        kind = type(item)  # a told `@event` object
        type_, specs = self.table.for_tell(kind)
        return Message(item, None, kind, type_, ANY_GROUP, None, specs)

    def _published_spec(self, envelope: Envelope) -> tuple[str, HandlerSpec | None]:
        """(type, the handler `_loop` may call directly) for a bare published envelope.

        Like `_direct_spec`, for a broadcast delivery of the envelope's data; cached per
        class, for the envelope's type.
        """
        data: object = envelope.data
        cls = type(data)
        spec = _lone_plain(self._specs_for(Message(data, envelope, cls, envelope.type, None)), cls)
        if len(self._published) >= CACHE_LIMIT:
            self._published.clear()
        found = self._published[cls] = (envelope.type, spec)
        return found

    def _direct_spec(self, kind: type[Any]) -> HandlerSpec | None:
        """The one handler a told `kind` goes to when the loop may call it directly.

        That is when the actor has exactly one handler for it and it takes only the event
        (no conversion needed). Bare told objects are `@event` objects (their type is
        fixed), so the answer is cached per class.
        """
        spec = _lone_plain(self.table.for_tell(kind)[1], kind)
        if len(self._direct) >= CACHE_LIMIT:
            self._direct.clear()
        self._direct[kind] = spec
        return spec

    def _report(self, tracker: Tracker, *, finished: bool) -> None:
        """Tell whoever waits for a message (an `ask`, a transport) that it is done."""
        if not finished:
            tracker.fail(ActorStopped(f"actor {self.name!r} stopped while handling the message"))
        tracker.finish(handled=finished)

    async def _handle(  # noqa: C901, PLR0912 - the hot path, kept in one frame
        self, message: Message, *, instrumented: bool = False
    ) -> None:
        """Call the message's handlers in declaration order, each under supervision."""
        specs = message.specs
        if specs is None:  # a published message, shared by the subscribers
            by_type = self._broadcast.get(message.cls) if message.group is None else None
            specs = by_type.get(message.type) if by_type is not None else None
            if specs is None:
                specs = self._specs_for(message)
        if not instrumented:
            # The message's trace becomes the current one while its handlers run (this is
            # the actor task's own context, so nothing leaks to other actors).
            envelope = message.envelope
            headers = envelope.headers if envelope is not None else None
            parent = headers.get(_tracing.HEADER) if headers else None
            if parent is not None or _tracing.current.get() is not None:
                _tracing.current.set(parent)
            if _tracing.instrumentation is not None:
                with _tracing.instrumentation.handling(self.envelope_of(message), self.name):
                    await self._handle(message, instrumented=True)
                return
        first = True
        for spec in specs:
            event = message.event
            if spec.event_only and isinstance(event, spec.convert_to):  # type: ignore[arg-type]
                # The common shape, without building argument tuples.
                failure: Exception | None = None
                result: Any = None
                try:
                    if spec.bound:
                        result = await spec.call(self.instance, event)
                    else:
                        result = await spec.call(event)
                except Exception as exc:
                    failure = exc  # handled outside the except block: no chained context
                if failure is None:
                    if first and message.tracker is not None:
                        message.tracker.reply(result)
                    handled = True
                else:
                    handled = await self._call(spec, message, first=first, error=failure)
            else:
                handled = await self._call(spec, message, first=first)
            if not handled:
                return
            first = False

    async def _call(  # noqa: C901 - one loop: call, then retry or apply the policy
        self,
        spec: HandlerSpec,
        message: Message,
        *,
        first: bool,
        error: Exception | None = None,
    ) -> bool:
        """Call one handler under supervision; False when the rest of the message is skipped.

        `error` is the exception of a first call already made (by `_handle`'s fast path).
        """
        attempt = 0
        event = message.event
        while True:
            if error is None:
                try:
                    envelope = (
                        self.envelope_of(message) if spec.needs_envelope else message.envelope
                    )
                    args = spec.arguments(event, envelope, message.type, self)
                    kwargs = spec.kwargs_for(event)
                    if spec.bound:
                        result = await spec.call(self.instance, *args, **kwargs)
                    else:
                        result = await spec.call(*args, **kwargs)
                except Exception as exc:
                    error = exc
                else:
                    if first and message.tracker is not None:
                        message.tracker.reply(result)
                    return True
            failure, error = error, None
            self.failed += 1
            if _tracing.instrumentation is not None:
                _tracing.instrumentation.failed(failure)
            supervision = self.supervision
            policy = supervision.policy_for(failure)
            if policy is Policy.RETRY:
                if attempt < supervision.max_retries:
                    attempt += 1
                    self.retries += 1
                    delay = supervision.backoff.delay(attempt)
                    self._log(
                        logging.WARNING,
                        "retry %d/%d in %.3fs",
                        spec,
                        message,
                        failure,
                        attempt,
                        supervision.max_retries,
                        delay,
                    )
                    await anyio.sleep(delay)
                    continue
                policy = supervision.then
            if first and message.tracker is not None:
                message.tracker.fail(failure)
            return await self._apply(policy, failure, spec, message)

    def _log(
        self,
        level: int,
        what: str,
        spec: HandlerSpec,
        message: Message,
        exc: BaseException,
        *args: object,
    ) -> None:
        envelope = self.envelope_of(message)
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

    async def _apply(
        self, policy: Policy, exc: Exception, spec: HandlerSpec, message: Message
    ) -> bool:
        if policy is Policy.IGNORE:
            self._log(logging.DEBUG, "ignored", spec, message, exc)
            return True
        if policy is Policy.LOG_AND_CONTINUE:
            self._log(logging.ERROR, "logged, continuing", spec, message, exc)
            return True
        if policy is Policy.DEAD_LETTER:
            self._log(logging.WARNING, "dead-lettered", spec, message, exc)
            self._dead_letter(message, exc)
            return True
        if policy is Policy.RESTART:
            self._log(logging.ERROR, "restarting the actor", spec, message, exc)
            await self._restart(exc)
            return False
        if policy is Policy.STOP:
            self._log(logging.ERROR, "stopping the actor", spec, message, exc)
            self._dead_letter(message, exc)
            raise _Stop(exc)
        self._log(logging.ERROR, "escalating (FAIL_FAST)", spec, message, exc)
        raise _Escalate(exc, self.system)

    async def _restart(self, error: BaseException) -> None:
        supervision = self.supervision
        if self._window is None:
            self._window = RestartWindow(supervision.max_restarts, supervision.within)
        while True:
            number = self._window.admit(anyio.current_time())
            if number is None:
                logger.error(
                    "actor %r: more than %d restarts within %.1fs, escalating",
                    self.name,
                    supervision.max_restarts,
                    supervision.within,
                    extra={"actor": self.name},
                )
                raise _Escalate(error, self.system)
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
        policy = self.supervision.policy_for(error)
        extra = {"actor": self.name, "child": notice.child.name}
        if policy is Policy.RESTART:
            logger.error(
                "actor %r: child %r escalated %r, restarting",
                self.name,
                notice.child.name,
                error,
                extra=extra,
            )
            await self._restart(error)
        elif policy is Policy.STOP:
            logger.error(
                "actor %r: child %r escalated %r, stopping",
                self.name,
                notice.child.name,
                error,
                extra=extra,
            )
            raise _Stop(error)
        elif policy is Policy.FAIL_FAST:
            logger.error(
                "actor %r: child %r escalated %r, escalating further",
                self.name,
                notice.child.name,
                error,
                extra=extra,
            )
            raise _Escalate(error, self.system)
        else:
            logger.error(
                "actor %r: child %r escalated %r and stays stopped",
                self.name,
                notice.child.name,
                error,
                extra=extra,
            )

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
