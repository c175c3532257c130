"""The dispatcher: which local actors get an event, resolved once per class and type.

Routes are cached per (event class, event type). When an actor subscribes or stops, only
the cached routes it belongs to are dropped (a reverse index says which), to be resolved
again by the next event of that kind. So routing costs one dict lookup however many
subscriptions exist, stopping an actor costs nothing per other subscriber, and actors
coming and going do not make every event type resolve again. Within a route, actors
whose handlers form a competing-consumer group share each event: one member per group
gets it (round-robin).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from ._handlers import ANY_GROUP, CACHE_LIMIT

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._cell import Cell
    from ._handlers import HandlerSpec

__all__ = ["Dispatcher", "Route", "group_of"]

_Key = tuple[type[Any] | None, str]


class Route:
    """The local subscribers of one (class, type): broadcast cells and group members."""

    __slots__ = ("_turns", "broadcast", "groups")

    def __init__(self, broadcast: tuple[Cell, ...], groups: dict[str, tuple[Cell, ...]]) -> None:
        self.broadcast = broadcast
        self.groups = groups
        self._turns = {name: itertools.cycle(members) for name, members in groups.items()}

    def __bool__(self) -> bool:
        return bool(self.broadcast or self.groups)

    def members(self) -> Iterator[Cell]:
        """Every cell of the route (broadcast and group members)."""
        yield from self.broadcast
        for members in self.groups.values():
            yield from members

    def pick(self, group: str) -> Cell | None:
        """The next member of `group` (round-robin), or None when it has no local member."""
        turn = self._turns.get(group)
        return next(turn) if turn is not None else None

    def picks(self) -> Iterator[tuple[Cell, str]]:
        """One member of each group (round-robin), with the group's name."""
        if self.groups:
            for name, turn in self._turns.items():
                yield next(turn), name

    def targets(self, group: object = ANY_GROUP) -> list[tuple[Cell, str | None]]:
        """(cell, group) pairs for one delivery (a list: built without a generator).

        `ANY_GROUP`: every broadcast cell plus one member of each group (local delivery);
        None: the broadcast cells only; a group name: one member of that group.
        """
        if isinstance(group, str):
            member = self.pick(group)
            return [] if member is None else [(member, group)]
        if group is not None and group is not ANY_GROUP:
            return []
        found: list[tuple[Cell, str | None]] = [(cell, None) for cell in self.broadcast]
        if group is ANY_GROUP:
            found += self.picks()
        return found


class Dispatcher:
    """Local subscriptions and the route cache."""

    __slots__ = ("_cells", "_groups", "_keys", "_routes", "_subscribed", "generation")

    def __init__(self) -> None:
        self._cells: dict[Cell, None] = {}
        self._routes: dict[_Key, Route] = {}
        self._keys: dict[Cell, set[_Key]] = {}  # the cached routes each cell is in
        self._groups: frozenset[str] | None = None
        self._subscribed: frozenset[str | None] | None = None
        self.generation = 0
        """Counts the changes of subscriptions, for whoever caches what they imply."""

    def subscribe(self, cell: Cell) -> None:
        """Route events to `cell` from now on."""
        if cell.table.specs:
            self._cells[cell] = None
            self._changed()
            match = cell.table.match
            for key in [key for key in self._routes if match(*key)]:
                self._drop(key)

    def unsubscribe(self, cell: Cell) -> None:
        """Stop routing to `cell`."""
        if self._cells.pop(cell, 0) is None:
            self._changed()
            for key in self._keys.pop(cell, ()):
                self._drop(key)

    def _changed(self) -> None:
        self._groups = self._subscribed = None
        self.generation += 1

    def _drop(self, key: _Key) -> None:
        route = self._routes.pop(key, None)
        if route is not None:
            for cell in route.members():
                keys = self._keys.get(cell)
                if keys is not None:
                    keys.discard(key)

    def route(self, cls: type[Any] | None, type_: str) -> Route:
        """The subscribers of an event of class `cls` (None: plain data) and type `type_`."""
        key = (cls, type_)
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= CACHE_LIMIT:
                self._routes.clear()  # type strings may come from the wire: stay bounded
                self._keys.clear()
            found = self._routes[key] = self._resolve(cls, type_)
            for cell in found.members():
                self._keys.setdefault(cell, set()).add(key)
        return found

    def _resolve(self, cls: type[Any] | None, type_: str) -> Route:
        broadcast: list[Cell] = []
        groups: dict[str, list[Cell]] = {}
        for cell in self._cells:
            specs = cell.table.match(cls, type_)
            if not specs:
                continue
            names = {group_of(cell, spec) for spec in specs}
            for name in names:
                if name is None:
                    broadcast.append(cell)
                else:
                    groups.setdefault(name, []).append(cell)
        return Route(tuple(broadcast), {k: tuple(v) for k, v in groups.items()})

    def groups(self) -> frozenset[str]:
        """Every group name some local subscriber belongs to (cached like the routes)."""
        if self._groups is None:
            self._groups = frozenset(name for name in self._deliveries() if name is not None)
        return self._groups

    def broadcasting(self) -> bool:
        """Whether some local subscriber is in no group (cached like the routes)."""
        return None in self._deliveries()

    def _deliveries(self) -> frozenset[str | None]:
        """The delivery of every subscription: its group, or None (broadcast); cached."""
        if self._subscribed is None:
            self._subscribed = frozenset(
                group_of(cell, spec) for cell in self._cells for spec in cell.table.specs
            )
        return self._subscribed

    def __len__(self) -> int:
        return len(self._cells)


def group_of(cell: Cell, spec: HandlerSpec) -> str | None:
    """The group a handler delivers to: its own, else its actor's (None: broadcast)."""
    return spec.group if spec.group is not None else cell.group
