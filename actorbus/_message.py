"""What travels through a mailbox: a message, and the tracker that reports its outcome."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._events import INFO_ATTRIBUTE
from ._handlers import ANY_GROUP

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._envelope import Envelope
    from ._handlers import HandlerSpec

__all__ = ["Delivery", "Message", "Outcome", "Tracker", "local_message"]


class Outcome(enum.Enum):
    """How a delivered message ended, for transports that acknowledge after handling."""

    HANDLED = "handled"
    """Every handler ran (failures were logged, ignored or retried as configured)."""
    DEAD_LETTERED = "dead_lettered"
    """Supervision dead-lettered it (or it could not be decoded)."""
    NOT_HANDLED = "not_handled"
    """It never finished (its actor stopped or crashed first): deliver it again."""


class Tracker:
    """Waits for one or more mailbox messages to finish; carries the first reply.

    Transports get one per received envelope as a `Delivery`: `await delivery.wait()`,
    then read `outcome` (and `result()` for the first handler's reply).
    """

    __slots__ = (
        "_done",
        "commit",
        "dead_error",
        "error",
        "fence",
        "has_reply",
        "not_handled",
        "pending",
        "value",
    )

    def __init__(self, pending: int = 1) -> None:
        self.pending: int = pending
        self.fence: Callable[[], bool] | None = None
        """Set by a transport: False once the message may no longer be handled here (the
        lease on its partition was lost); the actor then leaves it unhandled."""
        self.commit: tuple[str, str, bytes] | None = None
        """Set by an entity that handled the message: ``(namespace, key, state)``, the
        state to save atomically with the message's acknowledgement, and only under a
        valid lease (see `Transport.load_state`)."""
        # Made by the first `wait` that has to wait: most trackers (every delivery of a
        # received event) are only looked at, and an event costs more than the rest.
        self._done: anyio.Event | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.has_reply: bool = False
        self.dead_error: BaseException | None = None
        self.not_handled: bool = False

    def reply(self, value: Any) -> None:
        """Record the reply to an `ask` (the first handler's return value)."""
        if not self.has_reply:
            self.has_reply = True
            self.value = value

    def fail(self, error: BaseException) -> None:
        """Record the exception an `ask` re-raises."""
        if not self.has_reply:
            self.has_reply = True
            self.error = error

    def dead(self, error: BaseException) -> None:
        """Note that supervision dead-lettered the message."""
        if self.dead_error is None:
            self.dead_error = error

    def finish(self, *, handled: bool = True) -> None:
        """One message is done (handled, or given up on when `handled` is False)."""
        if not handled:
            self.not_handled = True
        self.pending -= 1
        if self.pending == 0 and self._done is not None:
            self._done.set()

    async def wait(self) -> None:
        """Wait until every message finished (a checkpoint even if they have)."""
        if self.pending <= 0:
            await anyio.lowlevel.checkpoint()
            return
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()

    @property
    def outcome(self) -> Outcome:
        """The combined outcome, once finished."""
        if self.not_handled:
            return Outcome.NOT_HANDLED
        if self.dead_error is not None:
            return Outcome.DEAD_LETTERED
        return Outcome.HANDLED

    def result(self) -> Any:
        """The reply, or raise the handler's exception."""
        if self.error is not None:
            raise self.error
        return self.value


Delivery = Tracker
"""What `TransportHost.deliver` returns: `wait()`, then `outcome` and `result()`."""


class Message:
    """One mailbox slot: the event, its envelope (built lazily for `tell`) and routing.

    `specs` are the handlers to call when the sender already knows them (`tell`); None
    lets the actor look them up.
    """

    __slots__ = ("cls", "envelope", "event", "group", "specs", "tracker", "type")

    def __init__(
        self,
        event: object,
        envelope: Envelope | None,
        cls: type[Any] | None,
        type_: str,
        group: object,
        tracker: Tracker | None = None,
        specs: tuple[HandlerSpec, ...] | None = None,
    ) -> None:
        self.event: object = event
        self.envelope: Envelope | None = envelope
        self.cls: type[Any] | None = cls
        self.type: str = type_
        self.group: object = group
        self.tracker: Tracker | None = tracker
        self.specs: tuple[HandlerSpec, ...] | None = specs


def local_message(event: object) -> Message:
    """A `Message` for a runtime notice (an `@event` object such as `Terminated`)."""
    cls = type(event)
    return Message(event, None, cls, cls.__dict__[INFO_ATTRIBUTE].type, ANY_GROUP)
