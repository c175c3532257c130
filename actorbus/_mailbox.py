"""Bounded mailboxes: the `Mailbox` settings and the queue behind each actor.

The queue has one consumer (the actor's loop) and any number of producers. Capacity
counts the messages waiting, not the one being handled. When it is full, `Overflow`
decides: BLOCK makes the producer wait (backpressure), DROP_NEWEST drops the incoming
message, DROP_OLDEST drops the oldest waiting one, FAIL raises `MailboxFull`.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Final, Generic, TypeVar

import anyio
import attrs

from ._exceptions import ActorStopped, MailboxFull

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DROPPED", "FULL", "QUEUED", "Mailbox", "MailboxQueue", "Overflow"]

T = TypeVar("T")

FULL: Final = 0
QUEUED: Final = 1
DROPPED: Final = 2


class Overflow(enum.Enum):
    """What a full mailbox does with one more message."""

    BLOCK = "block"
    """The sender waits until there is room: backpressure."""
    DROP_NEWEST = "drop_newest"
    """The incoming message is dropped (counted, dead-lettered)."""
    DROP_OLDEST = "drop_oldest"
    """The oldest waiting message is dropped to make room (counted, dead-lettered)."""
    FAIL = "fail"
    """The sender gets `MailboxFull` (the message is counted and dead-lettered)."""


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"Mailbox {attribute.name} must be an integer >= 1, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Mailbox:
    """Mailbox settings: how many messages may wait, and what happens beyond that.

    Use it as a class attribute of an actor (``mailbox = Mailbox(100)``) or pass it to
    `ActorSystem.spawn(..., mailbox=...)`.

    Attributes:
        capacity: Messages that may wait (not counting the one being handled); ≥ 1.
        overflow: What a full mailbox does; `Overflow.BLOCK` by default.
    """

    capacity: int = attrs.field(default=1000, validator=_positive)
    overflow: Overflow = attrs.field(
        default=Overflow.BLOCK, validator=attrs.validators.instance_of(Overflow)
    )


class MailboxQueue(Generic[T]):
    """The bounded FIFO behind one actor: one consumer, many producers.

    `put` waits only when a BLOCK mailbox is full; it is not itself a scheduling point
    (callers decide how often to yield). Blocked producers get room in FIFO order: a slot
    freed for a waiting producer is reserved for it, so a newcomer cannot jump the queue,
    and a producer cancelled after being woken passes its slot on, so none is lost.
    `urgent` messages (system notices such as `Terminated`) bypass the capacity.
    """

    __slots__ = (
        "_closed",
        "_dropped_error",
        "_getter",
        "_on_drop",
        "_reserved",
        "items",
        "putters",
        "settings",
        "urgent_items",
    )

    def __init__(self, settings: Mailbox, on_drop: Callable[[T, Exception, bool], None]) -> None:
        self.settings: Mailbox = settings
        # The single consumer (the actor's loop) takes from these two deques directly;
        # producers go through `append`, `offer`, `put` and `urgent`.
        self.items: deque[T] = deque()
        """The waiting messages, oldest first."""
        self.urgent_items: deque[T] = deque()
        """The waiting system notices, taken before `items`."""
        self.putters: deque[anyio.Event] = deque()
        """Producers waiting for room (BLOCK), first come first served."""
        self._getter: anyio.Event | None = None
        self._reserved = 0  # free slots promised to woken producers
        self._closed = False
        self._on_drop = on_drop
        self._dropped_error: MailboxFull | None = None

    @property
    def depth(self) -> int:
        """Messages waiting (not counting the one being handled)."""
        return len(self.items) + len(self.urgent_items)

    @property
    def closed(self) -> bool:
        """Whether the mailbox takes no more messages."""
        return self._closed

    def _wake_getter(self) -> None:
        getter = self._getter
        if getter is not None:
            self._getter = None
            getter.set()

    def _check_open(self, name: str) -> None:
        if self._closed:
            msg = (
                f"actor {name!r} has stopped and takes no more messages; watch it to know "
                "when it stops, or send to its replacement"
            )
            raise ActorStopped(msg)

    def append(self, item: T) -> bool:
        """Add `item` if the mailbox is open and has room; else do nothing and return False.

        The fast path of `offer`: no overflow policy, no error.
        """
        if (
            len(self.items) + self._reserved < self.settings.capacity
            and not self.putters
            and not self._closed
        ):
            self.items.append(item)
            if self._getter is not None:  # the actor waits (else no call: the hot path)
                self._wake_getter()
            return True
        return False

    def offer(self, item: T, name: str) -> int:
        """Add `item` without waiting, applying the overflow policy when full.

        Dropped items go to the `on_drop` callback with the reason and whether they had
        been queued (DROP_OLDEST) or not (the incoming one).

        Returns:
            `QUEUED` if `item` now waits in the mailbox, `DROPPED` if the overflow policy
            dropped it, `FULL` if it must wait (BLOCK) — the caller then awaits `put`.

        Raises:
            ActorStopped: If the mailbox is closed.
            MailboxFull: For a FAIL mailbox that is full (the item is dead-lettered).
        """
        if self.append(item):
            return QUEUED
        self._check_open(name)
        overflow = self.settings.overflow
        if overflow is Overflow.BLOCK:
            return FULL
        if overflow is Overflow.FAIL:
            full = self._full_error(name)
            self._on_drop(item, full, False)  # noqa: FBT003
            try:
                raise full
            finally:
                del full  # the traceback holds this frame: don't keep `item` alive through it
        # Dropping is how a DROP mailbox sheds load, so it is kept cheap: one error per
        # mailbox (it is recorded, never raised), made on the first drop.
        shared = self._dropped_error
        if shared is None:
            shared = self._dropped_error = self._full_error(name)
        if overflow is Overflow.DROP_OLDEST:
            self._on_drop(self.items.popleft(), shared, True)  # noqa: FBT003
            self.items.append(item)
            self._wake_getter()
            return QUEUED
        self._on_drop(item, shared, False)  # noqa: FBT003
        return DROPPED

    def _full_error(self, name: str) -> MailboxFull:
        return MailboxFull(
            f"mailbox of actor {name!r} is full ({self.settings.capacity} waiting, "
            f"overflow={self.settings.overflow.name}); raise its capacity, slow the sender, "
            "or pick another Overflow policy"
        )

    async def put(self, item: T, name: str) -> int:
        """Add `item`, waiting while a BLOCK mailbox is full (cancellable); see `offer`."""
        status = self.offer(item, name)
        if status is not FULL:
            return status
        waiter = anyio.Event()
        self.putters.append(waiter)
        try:
            await waiter.wait()
        except BaseException:
            if not waiter.is_set():
                self.putters.remove(waiter)
            elif not self._closed:
                self._reserved -= 1
                self.wake_putter()  # our slot was promised to us: hand it on
            raise
        self._check_open(name)
        self._reserved -= 1
        self.items.append(item)
        self._wake_getter()
        return QUEUED

    def urgent(self, item: T) -> bool:
        """Queue a system notice ahead of the user messages, ignoring the capacity.

        Returns:
            Whether it was queued (False once the mailbox is closed).
        """
        if self._closed:
            return False
        self.urgent_items.append(item)
        self._wake_getter()
        return True

    def wake_putter(self) -> None:
        """Let the first waiting producer in, if there is room (after the consumer took one)."""
        putters = self.putters
        if putters and len(self.items) + self._reserved < self.settings.capacity:
            self._reserved += 1
            putters.popleft().set()

    def get_nowait(self) -> T | None:
        """The next message (urgent ones first), or None when none is waiting."""
        if self.urgent_items:
            return self.urgent_items.popleft()
        if self.items:
            item = self.items.popleft()
            if self.putters:
                self.wake_putter()
            return item
        return None

    async def wait(self, new_event: Callable[[], anyio.Event] = anyio.Event) -> None:
        """Wait until a message arrives or the mailbox closes (the single consumer only).

        `new_event` makes the event waited on (the running backend's own constructor,
        resolved once, or `anyio.Event`).
        """
        if self.items or self.urgent_items or self._closed:
            return
        getter = self._getter = new_event()
        await getter.wait()

    def close(self) -> list[T]:
        """Take no more messages; return the ones still waiting. Wakes everyone."""
        self._closed = True
        self._reserved = 0
        left = list(self.urgent_items) + list(self.items)
        self.urgent_items.clear()
        self.items.clear()
        self._wake_getter()
        while self.putters:
            self.putters.popleft().set()  # they see the mailbox closed and raise
        return left
