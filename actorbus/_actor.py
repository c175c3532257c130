"""`Actor`, the base class of class-based actors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ._cell import Spawn
from ._handlers import HandlerSpec, HandlerTable, declaration
from ._mailbox import Mailbox
from ._ref import ActorRef, cell_of
from ._sharding import Sharding, declare_kind
from ._supervision import Supervision

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._cell import Cell
    from ._envelope import Envelope
    from ._events import Scope
    from ._system import ActorSystem

__all__ = ["Actor"]


class Actor:
    """Base class of actors: state plus `@handle` methods, one message at a time.

    The system constructs the instance (so it can build a fresh one on RESTART) with the
    arguments given to `spawn`. Class attributes set the defaults:

    Attributes:
        mailbox: `Mailbox` settings (capacity, overflow); `Mailbox()` when None.
        supervision: `Supervision` settings; LOG_AND_CONTINUE when None.
        group: The competing-consumer group of handlers that name none.
        sharding: `Sharding` settings make the class an entity kind: one instance per
            key, built by the system on demand (see `ActorSystem.shard`); None for a
            plain actor.

    Inside handlers, `self.name`, `self.system` and `self.ref` are available, and
    `self.spawn`, `self.watch` and `self.publish` act on behalf of this actor. An
    entity of a kind with `Sharding(state=...)` has its durable state in `self.state`.
    """

    mailbox: ClassVar[Mailbox | None] = None
    supervision: ClassVar[Supervision | None] = None
    group: ClassVar[str | None] = None
    sharding: ClassVar[Sharding | None] = None
    key: str
    """An entity's key, set before its ``__init__``."""
    state: Any
    """An entity's durable state (`Sharding(state=...)`), set before its ``__init__``."""
    __actorbus_table__: ClassVar[HandlerTable] = HandlerTable(())
    # The actor's cell (its runtime), set before `__init__` runs.
    __actorbus_cell__: Cell

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute, kind in (
            ("mailbox", Mailbox),
            ("supervision", Supervision),
            ("sharding", Sharding),
        ):
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
        if cls.sharding is not None:  # set here or inherited: each subclass is its own kind
            declare_kind(cls, cls.sharding)

    @property
    def name(self) -> str:
        """This actor's name, unique within its system."""
        return self.__actorbus_cell__.name

    @property
    def system(self) -> ActorSystem:
        """The system this actor runs in."""
        system: ActorSystem = self.__actorbus_cell__.runtime.system
        return system

    @property
    def ref(self) -> ActorRef:
        """A reference to this actor, to hand to others."""
        return ActorRef(self.__actorbus_cell__)

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
        cell = self.__actorbus_cell__
        request = Spawn(
            cls, args, kwargs, name=name, mailbox=mailbox, supervision=supervision, group=group
        )
        return ActorRef(await cell.host.spawn_child(cell, request))

    async def watch(self, ref: ActorRef) -> None:
        """Receive `Terminated(name, reason)` when `ref`'s actor stops (at once if it has)."""
        self.__actorbus_cell__.watch(cell_of(ref))

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
