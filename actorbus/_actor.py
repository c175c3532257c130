"""`Actor`, the base class of class-based actors, and `ActorRef`, the handle to one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ._handlers import HandlerSpec, HandlerTable, declaration
from ._mailbox import Mailbox
from ._supervision import Supervision

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._cell import Cell
    from ._envelope import Envelope
    from ._events import Scope
    from ._records import ActorStats, Terminated
    from ._system import ActorSystem

__all__ = ["Actor", "ActorRef"]


class Actor:
    """Base class of actors: state plus `@handle` methods, one message at a time.

    The system constructs the instance (so it can build a fresh one on RESTART) with the
    arguments given to `spawn`. Class attributes set the defaults:

    Attributes:
        mailbox: `Mailbox` settings (capacity, overflow); `Mailbox()` when None.
        supervision: `Supervision` settings; LOG_AND_CONTINUE when None.
        group: The competing-consumer group of handlers that name none.

    Inside handlers, `self.name`, `self.system` and `self.ref` are available, and
    `self.spawn`, `self.watch` and `self.publish` act on behalf of this actor.
    """

    mailbox: ClassVar[Mailbox | None] = None
    supervision: ClassVar[Supervision | None] = None
    group: ClassVar[str | None] = None
    __actorbus_table__: ClassVar[HandlerTable] = HandlerTable(())
    _actorbus_cell: Cell

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute, kind in (("mailbox", Mailbox), ("supervision", Supervision)):
            value = cls.__dict__.get(attribute)
            if value is not None and not isinstance(value, kind):
                msg = f"{cls.__qualname__}.{attribute} must be a {kind.__name__}, got {value!r}"
                raise TypeError(msg)
        # Declaration order, base classes first; an override keeps its place and replaces
        # the base handler (or removes it when the override is not decorated).
        declared: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if declaration(value) is not None:
                    declared[name] = value
                elif name in declared:
                    declared[name] = None
        specs: list[HandlerSpec] = []
        for func in declared.values():
            found = declaration(func) if func is not None else None
            if func is not None and found is not None:
                specs.append(
                    HandlerSpec(
                        func,
                        found.targets,
                        group=found.group,
                        inline=found.inline,
                        bound=True,
                        owner=cls.__qualname__,
                    )
                )
        cls.__actorbus_table__ = HandlerTable(tuple(specs))

    @property
    def name(self) -> str:
        """This actor's name, unique within its system."""
        return self._actorbus_cell.name

    @property
    def system(self) -> ActorSystem:
        """The system this actor runs in."""
        return self._actorbus_cell.system

    @property
    def ref(self) -> ActorRef:
        """A reference to this actor, to hand to others."""
        return ActorRef(self._actorbus_cell)

    async def on_start(self) -> None:
        """Called before the first message (and on each fresh instance after a restart)."""

    async def on_stop(self) -> None:
        """Called once the actor stopped taking messages (children have stopped already)."""

    async def spawn(
        self,
        cls: type[Actor],
        *args: Any,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        supervision: Supervision | None = None,
        group: str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Spawn a child: it is stopped before this actor stops, and escalates to it."""
        return await self.system._spawn(
            cls,
            args,
            kwargs,
            name=name,
            mailbox=mailbox,
            supervision=supervision,
            group=group,
            parent=self._actorbus_cell,
        )

    async def watch(self, ref: ActorRef) -> None:
        """Receive `Terminated(name, reason)` when `ref`'s actor stops (at once if it has)."""
        self.system._watch(self._actorbus_cell, ref._cell)

    async def publish(
        self,
        event: object,
        *,
        scope: Scope | None = None,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Envelope:
        """Publish through this actor's system (see `ActorSystem.publish`)."""
        return await self.system.publish(event, scope=scope, subject=subject, headers=headers)


class ActorRef:
    """A handle to a running actor: send it messages, ask it, stop it, read its stats."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        return f"ActorRef({self._cell.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._cell.name

    @property
    def stats(self) -> ActorStats:
        """A snapshot of the actor's counters (processed, failed, restarts, dropped, depth…)."""
        return self._cell.stats()

    @property
    def stopped(self) -> bool:
        """Whether the actor has stopped."""
        return self._cell.stopped

    async def tell(self, message: object) -> None:
        """Put `message` in the actor's mailbox (fire and forget).

        Waits while a BLOCK mailbox is full. A cancellation point; see the guide on
        mailboxes for when it yields to the scheduler.

        Raises:
            ActorStopped: If the actor has stopped.
            MailboxFull: If its FAIL mailbox is full.
            TypeError: If no handler of the actor accepts `message`.
        """
        cell = self._cell
        if not cell.system._tell_now(cell, message):
            await cell.system._tell(cell, message, None)

    async def ask(self, message: object, timeout: float = 5.0) -> Any:
        """Send `message` and wait for the reply: the first matching handler's return value.

        Raises:
            AskTimeout: If no reply came within `timeout` seconds (waiting for mailbox
                room included).
            ActorStopped: If the actor stopped before replying.
            MailboxFull: If a FAIL mailbox was full, or a DROP policy dropped the question.
            TypeError: If no handler of the actor accepts `message`.
            Exception: Whatever the handler raised, whatever the supervision policy.
        """
        return await self._cell.system._ask(self._cell, message, timeout)

    async def stop(self) -> None:
        """Stop the actor after its current message and wait until it has stopped.

        Messages still waiting are dead-lettered; its children stop first; `on_stop` runs;
        watchers get `Terminated`. Called by the actor on itself, it returns at once.
        """
        await self._cell.stop()

    async def wait_stopped(self) -> Terminated:
        """Wait until the actor has stopped, for whatever reason; return why."""
        await self._cell.wait_stopped()
        from ._records import Terminated  # noqa: PLC0415 - avoids an import cycle

        return Terminated(self._cell.name, self._cell.reason)
