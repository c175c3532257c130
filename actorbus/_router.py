"""`Router`: function subscribers declared without a system, bound later."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._handlers import handle, spec_for

if TYPE_CHECKING:
    from ._mailbox import Mailbox
    from ._supervision import Supervision

__all__ = ["Router"]

F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class RouterEntry:
    """One function registered on a router, with its actor settings."""

    func: Callable[..., Any]
    name: str | None
    mailbox: Mailbox | None
    supervision: Supervision | None


class Router:
    """A collection of function subscribers, bound with ``ActorSystem(routers=[...])``.

    Each function becomes its own actor (own mailbox, own supervision) when bound. No
    global registry is involved: the router is just a list.

    Example:
        ```python
        router = Router()

        @router.on(OrderCreated, "payment.*")
        async def audit(event: Envelope) -> None: ...
        ```
    """

    def __init__(self) -> None:
        self._entries: list[RouterEntry] = []

    @property
    def entries(self) -> tuple[RouterEntry, ...]:
        """The registered functions, in registration order."""
        return tuple(self._entries)

    def on(
        self,
        *targets: type[Any] | str,
        group: str | None = None,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        supervision: Supervision | None = None,
        inline: bool = False,
    ) -> Callable[[F], F]:
        """Register a function (sync or async) for event classes and/or type globs.

        Args:
            *targets: Classes (isinstance) and globs over the type; none: the annotation.
            group: Competing-consumer group for APP events.
            name: The actor's name (default: the function's name, made unique).
            mailbox: Mailbox settings of the function's actor.
            supervision: Supervision settings of the function's actor.
            inline: Run a sync function on the event loop instead of a worker thread.

        Raises:
            TypeError: If the function's signature cannot be satisfied (checked now).
        """

        def register(func: F) -> F:
            marked = handle(*targets, group=group, inline=inline)(func)
            spec_for(marked, targets, group=group, inline=inline)  # validate early
            self._entries.append(RouterEntry(marked, name, mailbox, supervision))
            return marked

        return register
