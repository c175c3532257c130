"""`SystemHost`: the side of a running system that its transport sees (`TransportHost`).

An adapter, so that the transport's view of the system — deliver what it received, say
which groups and types are subscribed here, answer a request — is not part of
`ActorSystem`'s public face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dispatch import TO_GROUP, answerer
from ._events import lookup
from ._exceptions import AskTimeout, DecodeError
from ._handlers import ANY_GROUP, CACHE_LIMIT
from ._keys import PARTITION_KEY
from ._message import Message, Tracker
from ._ref import await_reply
from ._wrap import rebuild

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._dispatch import Dispatcher
    from ._envelope import Envelope
    from ._message import Delivery
    from ._runtime import Runtime

__all__ = ["SystemHost", "answer_locally"]

# Wire data is routed by its registered class, or by its JSON value's class.
_WIRE_CLASSES = (None, str, int, float, bool, list)


class SystemHost:
    """Implements `actorbus.TransportHost` for one system."""

    __slots__ = ("_dispatcher", "_runtime", "_wanted", "releasers")

    def __init__(self, runtime: Runtime, dispatcher: Dispatcher) -> None:
        self._runtime = runtime
        self._dispatcher = dispatcher
        self.releasers: list[Callable[[str, frozenset[int]], Awaitable[None]]] = []
        """What `release` runs: each part of the system that keeps state per partition."""
        # `subscribed` answers per (type, group), with the dispatcher generation and the
        # registered class they were computed for.
        self._wanted: dict[tuple[str, str | None], tuple[int, type[Any] | None, bool]] = {}

    @property
    def name(self) -> str:
        """The application name."""
        return self._runtime.name

    def groups(self) -> set[str]:
        """The competing-consumer groups local subscribers belong to."""
        return set(self._dispatcher.groups())

    def broadcasts(self) -> bool:
        """Whether some local subscriber is in no group (receives every APP event)."""
        return self._dispatcher.broadcasting()

    async def deliver(
        self, envelope: Envelope, group: str | None, fence: Callable[[], bool] | None = None
    ) -> Delivery:
        """Put a received envelope in the matching local mailboxes; see `TransportHost`."""
        try:
            envelope, payload, cls = rebuild(envelope)
        except DecodeError as exc:
            self._runtime.dead_letter(envelope, "", exc)
            delivery = Tracker(0)
            delivery.dead(exc)
            return delivery
        return await self._dispatcher.deliver_received(envelope, payload, cls, group, fence)

    def subscribed(self, type_: str, group: str | None) -> bool:
        """Whether `deliver` could give a received event of `type_` to a subscriber here.

        False only when no local subscriber of that delivery (`group`, or None for the
        broadcast subscribers) matches the type, whatever data the event carries, and
        the group is here: `deliver` would then report the event handled without
        handing it to anyone, so a transport may acknowledge it without decoding it.
        """
        registered = lookup(type_)
        dispatcher = self._dispatcher
        key = (type_, group)
        known = self._wanted.get(key)
        if known is not None and known[0] == dispatcher.generation and known[1] is registered:
            return known[2]  # the same subscriptions and registration as when last asked
        answer = any(
            route.broadcast if group is None else group in route.groups
            for cls in (registered, *_WIRE_CLASSES)
            if (route := dispatcher.route(cls, type_))
        ) or (group is not None and group not in dispatcher.groups())
        if len(self._wanted) >= CACHE_LIMIT:
            self._wanted.clear()  # type strings come from the wire: stay bounded
        self._wanted[key] = (dispatcher.generation, registered, answer)
        return answer

    async def answer(self, envelope: Envelope, timeout: float) -> Any:
        """Answer a request received by the transport with one local handler."""
        envelope, payload, cls = rebuild(envelope)
        return await answer_locally(self._dispatcher, envelope, payload, cls, timeout)

    async def release(self, group: str, partitions: frozenset[int]) -> None:
        """Stop what keeps state for `partitions` of `group`; see `TransportHost.release`."""
        for releaser in self.releasers:
            await releaser(group, partitions)


async def answer_locally(
    dispatcher: Dispatcher,
    envelope: Envelope,
    payload: object,
    cls: type[Any] | None,
    timeout: float,
) -> Any:
    """Ask the one local subscriber that answers `envelope` (see `ActorSystem.request`).

    Raises:
        AskTimeout: If nobody here handles it, or no reply came within `timeout`.
    """
    headers = envelope.headers
    route = dispatcher.route(cls, envelope.type)
    # Addressed to one group (an entity kind's): only that group answers.
    target = answerer(
        route.targets(headers.get(TO_GROUP, ANY_GROUP), headers.get(PARTITION_KEY)), cls
    )
    if target is None:
        msg = (
            f"no actor of system {dispatcher.runtime.name!r} handles {envelope.type!r}: spawn "
            "one with a @handle for it before the request (see `actorbus handlers`)"
        )
        raise AskTimeout(msg)
    cell, group = target

    async def send(tracker: Tracker) -> None:
        await cell.put(Message(payload, envelope, cls, envelope.type, group, tracker))

    return await await_reply(cell.name, repr(envelope.type), timeout, send)
