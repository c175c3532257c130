"""`Probe`: a test actor that records what it receives and awaits expectations.

Modelled on Akka's TestKit probes: subscribe it to classes and globs (or send it
messages), then `await probe.expect(OrderCreated)` for the next message, or
`await probe.expect_no_message(0.1)` to check that nothing more arrives.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio

from actorbus._envelope import Envelope  # noqa: TC001 - resolved at run time by @handle
from actorbus._system import free_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from actorbus._ref import ActorRef
    from actorbus._system import ActorSystem

__all__ = ["Probe"]

T = TypeVar("T")


class Probe:
    """Records the events it receives; `expect` takes them one by one, in order.

    Args:
        system: A running system.
        *targets: Event classes and type globs to subscribe to; default: every event.
        name: The probe actor's name.

    Attributes:
        history: Every envelope received so far, oldest first (expected or not).
    """

    def __init__(
        self, system: ActorSystem, *targets: type[Any] | str, name: str | None = None
    ) -> None:
        self.history: list[Envelope] = []
        self._unread: deque[tuple[object, Envelope]] = deque()
        self._arrived = anyio.Event()
        self._system = system

        async def record(event: object, envelope: Envelope) -> None:
            self.history.append(envelope)
            self._unread.append((event, envelope))
            self._arrived.set()

        name = name or free_name(system, "probe")
        system.on(*(targets or (object, "*")), name=name)(record)
        self.ref: ActorRef = system.actor(name)
        """The probe's actor, to `tell` it things or pass it to the code under test."""

    async def _next(self, timeout: float, what: str) -> tuple[object, Envelope]:
        with anyio.move_on_after(timeout):
            while not self._unread:
                self._arrived = anyio.Event()
                await self._arrived.wait()
            return self._unread.popleft()
        msg = f"probe: expected {what} within {timeout}s, but nothing arrived"
        raise AssertionError(msg)

    @overload
    async def expect(self, what: type[T], *, timeout: float = 1.0) -> T: ...
    @overload
    async def expect(
        self, what: str | Callable[[Any], bool] | None = None, *, timeout: float = 1.0
    ) -> Any: ...

    async def expect(
        self, what: type[Any] | str | Callable[[Any], bool] | None = None, *, timeout: float = 1.0
    ) -> Any:
        """Take the next message and check it; return the event.

        Args:
            what: A class (isinstance), a glob over the type, a predicate on the event,
                or None for anything.
            timeout: Seconds to wait for it.

        Raises:
            AssertionError: If nothing arrives in time, or the next message does not match
                (it is consumed either way).
        """
        label = getattr(what, "__qualname__", repr(what)) if what is not None else "a message"
        event, envelope = await self._next(timeout, label)
        if what is None:
            ok = True
        elif isinstance(what, type):
            ok = isinstance(event, what)
        elif isinstance(what, str):
            ok = fnmatch.fnmatchcase(envelope.type, what)
        else:
            ok = bool(what(event))
        if not ok:
            msg = f"probe: expected {label}, got {envelope.type!r}: {event!r}"
            raise AssertionError(msg)
        return event

    async def expect_envelope(self, *, timeout: float = 1.0) -> Envelope:
        """Take the next message and return its envelope."""
        return (await self._next(timeout, "a message"))[1]

    async def expect_no_message(self, timeout: float = 0.1) -> None:
        """Check that nothing arrives for `timeout` seconds.

        Raises:
            AssertionError: Naming what arrived.
        """
        with anyio.move_on_after(timeout):
            while not self._unread:
                self._arrived = anyio.Event()
                await self._arrived.wait()
        if self._unread:
            event, envelope = self._unread[0]
            msg = f"probe: expected no message, got {envelope.type!r}: {event!r}"
            raise AssertionError(msg)

    async def receive_n(self, count: int, *, timeout: float = 1.0) -> list[object]:
        """Take the next `count` messages, whatever they are; return their events."""
        with anyio.fail_after(timeout):
            return [(await self._next(timeout, f"{count} messages"))[0] for _ in range(count)]
