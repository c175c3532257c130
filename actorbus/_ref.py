"""`ActorRef`: the handle to a running actor, and point-to-point messaging (`tell`, `ask`).

A told message goes straight into the actor's mailbox: no dispatcher, no subscription
lookup beyond the actor's own handler table. `ask` sends with a `Tracker` and waits for
the first handler's reply; `await_reply` is shared with `ActorSystem.request`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ._envelope import Envelope
from ._events import INFO_ATTRIBUTE
from ._exceptions import ActorStopped, AskTimeout
from ._handlers import ANY_GROUP
from ._message import Message, Tracker
from ._records import Terminated
from ._runtime import YIELD_EVERY
from ._wrap import adopt

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._cell import Cell
    from ._records import ActorStats

__all__ = ["ActorRef", "await_reply", "cell_of", "send"]


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

        Waits while a BLOCK mailbox is full. A cancellation and scheduling point as the
        guide on mailboxes says: it checks for cancellation on the first call after the
        calling task waited, whenever it waits, and at least every 64 calls.

        Raises:
            ActorStopped: If the actor has stopped.
            MailboxFull: If its FAIL mailbox is full.
            TypeError: If no handler of the actor accepts `message`.
        """
        cell = self._cell
        runtime = cell.runtime
        runtime.ops += 1
        if runtime.ops >= YIELD_EVERY or runtime.stale():
            await runtime.checkpoint_due()
        # An `@event` object the actor has handlers for goes into its mailbox bare: its
        # loop knows the handlers by its class (`Cell.told`).
        if cell.told.get(type(message)) and cell.queue.append(message):
            runtime.inflight += 1
            return
        await send(cell, message, None)

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
        cell = self._cell
        await cell.runtime.checkpoint()
        what = type(message).__qualname__
        return await await_reply(cell.name, what, timeout, lambda t: send(cell, message, t))

    async def stop(self) -> None:
        """Stop the actor after its current message and wait until it has stopped.

        Messages still waiting are dead-lettered; its children stop first; `on_stop` runs;
        watchers get `Terminated`. Called by the actor on itself, it returns at once.
        """
        await self._cell.stop()

    async def wait_stopped(self) -> Terminated:
        """Wait until the actor has stopped, for whatever reason; return why."""
        await self._cell.wait_stopped()
        return Terminated(self._cell.name, self._cell.reason)


def cell_of(ref: ActorRef) -> Cell:
    """The cell behind a reference (for an actor that watches it)."""
    return ref._cell  # noqa: SLF001 - this module's own class


async def send(cell: Cell, message: object, tracker: Tracker | None) -> None:
    """Put a told message (any object, or an envelope) in `cell`'s mailbox, checked first.

    Raises:
        TypeError: If no handler of the actor accepts it, or the actor is an entity
            kind's shard (entities are sent to with `EntityRef`).
        ActorStopped: If the actor takes no more messages.
        MailboxFull: For a full FAIL mailbox.
    """
    if cell.forward is not None:
        msg = (
            f"actor {cell.name!r} hosts entities and takes no messages itself: send to one "
            f"entity with system.entity(Kind, key).tell(...)"
        )
        raise TypeError(msg)
    if isinstance(message, Envelope):
        envelope, payload, cls = adopt(message, cell.runtime.name)
        type_ = envelope.type
        item: object = Message(payload, envelope, cls, type_, ANY_GROUP, tracker)
    else:
        cls = type(message)
        type_, specs = cell.table.for_tell(cls)
        if tracker is None and specs and INFO_ATTRIBUTE in cls.__dict__:
            cell.told_specs(cls)  # later tells of its class take `tell`'s short path
            item = message
        else:
            item = Message(message, None, cls, type_, ANY_GROUP, tracker, specs)
    if not cell.table.match(cls, type_):
        accepted = (
            ", ".join(s for spec in cell.table.specs for s in spec.subscriptions()) or "nothing"
        )
        msg = (
            f"actor {cell.name!r} has no handler for {type_!r} "
            f"({type(message).__qualname__}); it handles: {accepted}"
        )
        raise TypeError(msg)
    if not cell.accepting:
        msg = (
            f"actor {cell.name!r} has stopped; it cannot take {type_!r}: watch it "
            "(`self.watch(ref)` / `ref.wait_stopped()`) or look it up again with "
            "`system.actor(name)` after a restart"
        )
        raise ActorStopped(msg)
    await cell.put(item)


async def await_reply(
    name: str, what: str, timeout: float, send: Callable[[Tracker], Awaitable[None]]
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
            f"actor {name!r} did not answer {what} within {timeout}s; "
            "raise the timeout or check that the handler returns"
        )
        raise AskTimeout(msg) from None
    return tracker.result()
