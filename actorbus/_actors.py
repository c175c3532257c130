"""`Actors`: the actors of one system — spawning, names, the supervision tree.

It validates a spawn request, takes the name, builds the actor's `Cell`, registers the
groups of its handlers with the transport, starts its task in the system's task group
(returning once `on_start` finished) and subscribes it with the dispatcher. It is the
`CellHost` of every cell: it hears when one stops taking messages (unsubscribe) and when
it has stopped (its name is free again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ._cell import Cell, Spawn
from ._dispatch import group_of
from ._handlers import TABLE_ATTRIBUTE, HandlerTable, declaration, handle, spec_for
from ._mailbox import Mailbox
from ._sharding import kind_of
from ._supervision import Supervision

if TYPE_CHECKING:
    from collections.abc import Callable

    import anyio.abc

    from ._dispatch import Dispatcher
    from ._runtime import Runtime
    from ._transport import Transport

__all__ = ["Actors"]


class Actors:
    """The actors of one system, by name, with the top of the supervision tree."""

    __slots__ = (
        "_name_counts",
        "by_name",
        "collecting",
        "dispatcher",
        "runtime",
        "stop_errors",
        "task_group",
        "top",
        "transport",
    )

    def __init__(
        self, runtime: Runtime, dispatcher: Dispatcher, transport: Transport | None
    ) -> None:
        self.runtime: Runtime = runtime
        self.dispatcher: Dispatcher = dispatcher
        self.transport: Transport | None = transport
        self.task_group: anyio.abc.TaskGroup | None = None
        self.by_name: dict[str, Cell] = {}
        self.top: dict[Cell, None] = {}  # top-level actors in start order; O(1) removal
        self.stop_errors: list[BaseException] = []
        """Errors of `on_stop` hooks, collected while `collecting` (at shutdown)."""
        self.collecting: bool = False
        self._name_counts: dict[str, int] = {}

    # -- spawning -------------------------------------------------------------------------

    async def spawn(self, request: Spawn) -> Cell:
        """Start an actor; return its cell once its `on_start` finished and it is subscribed.

        Raises:
            ValueError: If the name is taken.
            TypeError: If the target is neither an Actor subclass nor a `@handle` function,
                or is an entity kind (hosted with `ActorSystem.shard`).
            Exception: Whatever `on_start` raised (the actor is then not started).
        """
        return await self.start(self.new_cell(request))

    async def start(self, cell: Cell) -> Cell:
        """Start a cell whose name is taken (`new_cell`, or an entity kind's shard).

        Its groups are registered with the transport, its task started (returning once
        its `on_start` finished) and it is subscribed; if any of that fails, its name is
        free again and the error raised.
        """
        assert self.task_group is not None  # noqa: S101 - the system is running
        try:
            await self._add_groups(cell)
            await self.task_group.start(cell.run)
        except BaseException:
            self.by_name.pop(cell.name, None)
            raise
        self._adopt(cell)
        return cell

    def spawn_soon(self, request: Spawn) -> Cell:
        """Start an actor without waiting for its `on_start`; it is subscribed at once.

        New groups are registered with the transport in the background.
        """
        assert self.task_group is not None  # noqa: S101 - the system is running
        cell = self.new_cell(request)
        if self.transport is not None:
            known = self.dispatcher.groups()
            for spec in cell.table.specs:
                name = group_of(cell, spec)
                if name is not None and name not in known:
                    self.task_group.start_soon(self.transport.add_group, name)
        self.task_group.start_soon(cell.run)
        self._adopt(cell)
        return cell

    def _adopt(self, cell: Cell) -> None:
        (cell.parent.children if cell.parent is not None else self.top)[cell] = None
        self.dispatcher.subscribe(cell)

    def new_cell(self, request: Spawn) -> Cell:
        """Validate a spawn request and build the actor's cell (its name is taken now)."""
        target = request.target
        table: HandlerTable | None = (
            getattr(target, TABLE_ATTRIBUTE, None) if isinstance(target, type) else None
        )
        mailbox, supervision, group = request.mailbox, request.supervision, request.group
        if (entity_kind := kind_of(target)) is not None:
            kind_cls = entity_kind.cls
            msg = (
                f"{kind_cls.__qualname__} is an entity kind (it has `sharding`): its entities "
                f"are built per key by the system; host it with `await system.shard("
                f"{kind_cls.__name__})` (or list it in ActorSystem(actors=[...])) and send "
                f"to one with `system.entity({kind_cls.__name__}, key)`"
            )
            raise TypeError(msg)
        if table is not None:  # an Actor subclass
            factory: type[Any] | None = cast("type[Any]", target)
            mailbox = mailbox or getattr(target, "mailbox", None)
            supervision = supervision or getattr(target, "supervision", None)
            group = group if group is not None else getattr(target, "group", None)
            default_name = cast("type[Any]", target).__name__
        elif (found := declaration(cast("object", target))) is not None:
            if request.args or request.kwargs:
                msg = f"function actor {target!r} takes no constructor arguments"
                raise TypeError(msg)
            spec = spec_for(target, found.targets, group=found.group, inline=found.inline)
            table = HandlerTable((spec,))
            factory = None
            default_name = getattr(target, "__name__", "function")
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
            self.runtime,
            self,
            self.free_name(request.name, default_name),
            factory=factory,
            args=request.args,
            kwargs=request.kwargs,
            table=table,
            mailbox=mailbox or Mailbox(),
            supervision=supervision or Supervision(),
            group=group,
            parent=request.parent,
        )
        self.by_name[cell.name] = cell  # the name is taken from here on (no await since the check)
        return cell

    async def _add_groups(self, cell: Cell) -> None:
        if self.transport is None:
            return
        known = set(self.dispatcher.groups())
        for spec in cell.table.specs:
            name = group_of(cell, spec)
            if name is not None and name not in known:
                await self.transport.add_group(name)
                known.add(name)

    def free_name(self, name: str | None, default: str) -> str:
        """`name` if it is free (else `ValueError`), or a free name made from `default`."""
        if name is not None:
            if not isinstance(name, str) or not name:
                msg = f"actor name must be a non-empty string, got {name!r}"
                raise ValueError(msg)
            if name in self.by_name:
                msg = (
                    f"an actor named {name!r} already runs in system {self.runtime.name!r}; "
                    "pick another name"
                )
                raise ValueError(msg)
            return name
        # Remember where numbering got to, so spawning many unnamed actors stays linear.
        number = self._name_counts.get(default, 0)
        name = default if number == 0 else f"{default}-{number + 1}"
        while name in self.by_name:
            number += 1
            name = f"{default}-{number + 1}"
        self._name_counts[default] = number + 1
        return name

    def function_actor(
        self,
        func: Callable[..., Any],
        targets: tuple[type[Any] | str, ...],
        *,
        group: str | None,
        inline: bool,
        name: str | None,
        mailbox: Mailbox | None,
        supervision: Supervision | None,
    ) -> Cell:
        """Subscribe `func` now as its own actor (`ActorSystem.on`)."""
        marked = handle(*targets, group=group, inline=inline)(func)
        request = Spawn(marked, name=name, mailbox=mailbox, supervision=supervision)
        return self.spawn_soon(request)

    # -- the CellHost side ------------------------------------------------------------------

    def stopping(self, cell: Cell) -> None:
        """Stop routing to `cell` (it takes no more messages)."""
        self.dispatcher.unsubscribe(cell)

    def stopped(self, cell: Cell) -> None:
        """Forget `cell`: its name is free again."""
        if self.by_name.get(cell.name) is cell:
            del self.by_name[cell.name]
        self.top.pop(cell, None)
        self.dispatcher.unsubscribe(cell)
        if self.collecting:
            # Raised together at shutdown; earlier ones were logged when they happened.
            self.stop_errors.extend(cell.stop_errors)

    async def spawn_child(self, parent: Cell, request: Spawn) -> Cell:
        """Spawn a child of `parent` (see `Actor.spawn`)."""
        request.parent = parent
        return await self.spawn(request)

    def running(self) -> list[Cell]:
        """The cells of every running actor, in start order."""
        return list(self.by_name.values())
