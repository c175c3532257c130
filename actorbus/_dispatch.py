"""The dispatcher: which local actors get an event, and putting it in their mailboxes.

Routes are cached per (event class, event type). When an actor subscribes or stops, only
the cached routes it belongs to are dropped (a reverse index says which), to be resolved
again by the next event of that kind. So routing costs one dict lookup however many
subscriptions exist, stopping an actor costs nothing per other subscriber, and actors
coming and going do not make every event type resolve again. Within a route, actors
whose handlers form a competing-consumer group share each event: one member per group
gets it — the member its key maps to for a keyed event (so one actor handles a key's
events, in order), else the next one in turn. A member that forwards (an entity kind's
shard) hands the event to the entity of its key instead.

Delivery puts the envelope in every target's mailbox: at once when there is room (the
common case, without a coroutine), else waiting for room (BLOCK), dropping (DROP_*) or
failing (FAIL) as each mailbox's overflow policy says. Every message queued counts as
work in flight in the `Runtime` until its actor finished it.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import ActorStopped, MailboxFull
from ._handlers import ANY_GROUP, CACHE_LIMIT
from ._keys import PARTITION_KEY, partition_of
from ._message import Message, Tracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from ._cell import Cell
    from ._envelope import Envelope
    from ._handlers import HandlerSpec
    from ._runtime import Runtime

__all__ = ["REPLY_TO", "TO_GROUP", "Dispatcher", "Route", "answerer", "group_of"]

REPLY_TO: Final = "replyto"
"""The extension attribute marking a received event as a request (its requester)."""
TO_GROUP: Final = "togroup"
"""The extension attribute addressing an event to one group only (an entity kind's, for
the messages of an `EntityRef`): other groups and broadcast subscribers skip it."""

_Key = tuple[type[Any] | None, str]


class Route:
    """The local subscribers of one (class, type): broadcast cells and group members."""

    __slots__ = ("_turns", "broadcast", "groups")

    def __init__(self, broadcast: tuple[Cell, ...], groups: dict[str, tuple[Cell, ...]]) -> None:
        self.broadcast: tuple[Cell, ...] = broadcast
        self.groups: dict[str, tuple[Cell, ...]] = groups
        self._turns = {name: itertools.cycle(members) for name, members in groups.items()}

    def __bool__(self) -> bool:
        return bool(self.broadcast or self.groups)

    def members(self) -> Iterator[Cell]:
        """Every cell of the route (broadcast and group members)."""
        yield from self.broadcast
        for members in self.groups.values():
            yield from members

    def pick(self, group: str, key: str | None = None) -> Cell | None:
        """The member of `group` for an event (None when the group has no local member).

        The member `key` maps to for a keyed event, else the next one in turn; a member
        that forwards (an entity kind's shard) gives the cell of the key instead.
        """
        if key is not None:
            members = self.groups.get(group)
            if not members:
                return None
            member = members[partition_of(key, len(members))]
        else:
            turn = self._turns.get(group)
            if turn is None:
                return None
            member = next(turn)
        return member if member.forward is None else member.forward(key)

    def picks(self, key: str | None = None) -> Iterator[tuple[Cell, str]]:
        """One member of each group (see `pick`), with the group's name."""
        if self.groups:
            if key is not None:
                for name, members in self.groups.items():
                    member = members[partition_of(key, len(members))]
                    yield (member if member.forward is None else member.forward(key)), name
            else:
                for name, turn in self._turns.items():
                    member = next(turn)
                    yield (member if member.forward is None else member.forward(None)), name

    def targets(
        self, group: object = ANY_GROUP, key: str | None = None
    ) -> list[tuple[Cell, str | None]]:
        """(cell, group) pairs for one delivery (a list: built without a generator).

        `ANY_GROUP`: every broadcast cell plus one member of each group (local delivery);
        None: the broadcast cells only; a group name: one member of that group. Group
        members are picked for `key` (see `pick`).
        """
        if isinstance(group, str):
            member = self.pick(group, key)
            return [] if member is None else [(member, group)]
        if group is not None and group is not ANY_GROUP:
            return []
        found: list[tuple[Cell, str | None]] = [(cell, None) for cell in self.broadcast]
        if group is ANY_GROUP:
            found += self.picks(key)
        return found


class Dispatcher:
    """Local subscriptions, the route cache, and delivery to the subscribers' mailboxes."""

    __slots__ = ("_cells", "_groups", "_keys", "_routes", "_subscribed", "generation", "runtime")

    def __init__(self, runtime: Runtime) -> None:
        self.runtime: Runtime = runtime
        self._cells: dict[Cell, None] = {}
        self._routes: dict[_Key, Route] = {}
        self._keys: dict[Cell, set[_Key]] = {}  # the cached routes each cell is in
        self._groups: frozenset[str] | None = None
        self._subscribed: frozenset[str | None] | None = None
        self.generation: int = 0
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

    # -- delivery ------------------------------------------------------------------------

    def deliver(
        self, envelope: Envelope, payload: object, cls: type[Any] | None
    ) -> Awaitable[None] | None:
        """Deliver a published event to every local subscriber (one member per group).

        What fits now is queued at once; the rest is returned as an awaitable that waits
        for room. None means every mailbox took the event at once (no coroutine made).
        Awaiting the rest raises `MailboxFull` (after delivering to everyone else) if a
        FAIL mailbox was full.
        """
        type_ = envelope.type
        route = self._routes.get((cls, type_))  # the cache, without `route`'s call
        if route is None:
            route = self.route(cls, type_)
        broadcast = route.broadcast
        shared: Message | Envelope | None = None
        if broadcast:
            # One item for every broadcast subscriber: the envelope itself when its data is
            # the payload (the actor's loop reads the rest from it), else a `Message`.
            if payload is envelope.data and cls is type(payload):
                shared = envelope
            else:
                shared = Message(payload, envelope, cls, type_, None)
            for index, cell in enumerate(broadcast):
                if not cell.queue.append(shared):
                    self.runtime.inflight += index
                    return self._deliver_rest(route, index, shared, envelope, payload, cls)
            self.runtime.inflight += len(broadcast)
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
        """`deliver`'s part that may wait: broadcast cells from `start`, then the groups."""
        full: MailboxFull | None = None
        if shared is not None:
            for cell in route.broadcast[start:]:
                if cell.queue.append(shared):
                    self.runtime.inflight += 1
                else:
                    error = await _put(cell, shared)
                    full = full or error
        for cell, group in route.picks(envelope.headers.get(PARTITION_KEY)):
            error = await _put(cell, Message(payload, envelope, cls, envelope.type, group))
            full = full or error
        if full is not None:
            raise full

    def offer(
        self, payload: object, envelope: Envelope | None, cls: type[Any] | None, type_: str
    ) -> None:
        """Deliver without ever waiting: a full mailbox drops the event (a dead letter)."""
        key = envelope.headers.get(PARTITION_KEY) if envelope is not None else None
        for cell, group in self.route(cls, type_).targets(ANY_GROUP, key):
            cell.offer(Message(payload, envelope, cls, type_, group))

    async def deliver_received(
        self,
        envelope: Envelope,
        payload: object,
        cls: type[Any] | None,
        group: str | None,
        fence: Callable[[], bool] | None = None,
    ) -> Tracker:
        """Deliver an event a transport received to its local subscribers; see `TransportHost`.

        `group` None delivers to the broadcast subscribers, a group name to one local
        member of that group. A request (an envelope carrying ``replyto``) goes to the
        one local handler that answers it. An envelope addressed to another group
        (``togroup``) has no target here. Waits for mailbox room and returns the tracker
        of the deliveries, whose `Tracker.fence` is `fence`.
        """
        headers = envelope.headers
        key = headers.get(PARTITION_KEY)
        to = headers.get(TO_GROUP) if headers else None
        if to is None or to == group:
            targets = self.route(cls, envelope.type).targets(group, key)
        else:
            targets = []
        if REPLY_TO in envelope.headers:
            chosen = answerer(targets, cls)
            if chosen is not None:
                targets = [chosen]
        delivery = Tracker(len(targets))
        delivery.fence = fence
        if not targets and group is not None and group not in self.groups():
            # The group has no member here any more: leave the event for a live member.
            # (A group that is here but does not subscribe to this type has handled it.)
            delivery.not_handled = True
        for cell, target_group in targets:
            message = Message(payload, envelope, cls, envelope.type, target_group, delivery)
            if cell.queue.append(message):  # room: `put`'s fast path, without its coroutine
                self.runtime.inflight += 1
                continue
            try:
                await cell.put(message)
            except ActorStopped as exc:
                cell.dead_letter(message, exc, unqueued=True)
            except MailboxFull:
                pass  # dead-lettered and its tracker finished by the mailbox
        return delivery


async def _put(cell: Cell, message: Message | Envelope) -> MailboxFull | None:
    """Put `message` in `cell`'s mailbox, waiting for room; return a FAIL mailbox's error."""
    try:
        await cell.put(message)
    except ActorStopped as exc:
        cell.dead_letter(message, exc, unqueued=True)
    except MailboxFull as exc:
        return exc
    return None


def answerer(
    targets: list[tuple[Cell, str | None]], cls: type[Any] | None
) -> tuple[Cell, str | None] | None:
    """The one target that answers a request: a handler naming the class, else the first."""
    return next(
        (t for t in targets if cls is not None and t[0].table.handles_class(cls)),
        targets[0] if targets else None,
    )


def group_of(cell: Cell, spec: HandlerSpec) -> str | None:
    """The group a handler delivers to: its own, else its actor's (None: broadcast)."""
    return spec.group if spec.group is not None else cell.group
