"""`Runtime`: what a system and its actors share while it runs.

One object per `ActorSystem`, below every part of it: the count of messages in flight
(for `drain`), the publishers' checkpoint counter, the backend's primitives, the dead
letters, and the two ways out of an actor's loop that reach the system (a dead letter to
announce, a failure that stops everything). Actors, the dispatcher and the system all hold
it; none of them reaches into another's private state.
"""

from __future__ import annotations

import collections
import contextvars
import logging
from typing import TYPE_CHECKING, Any, Final

from ._backend import PORTABLE, Backend, resolve
from ._records import DeadLetter

if TYPE_CHECKING:
    from collections.abc import Callable

    import anyio

    from ._envelope import Envelope

__all__ = ["YIELD_EVERY", "Runtime", "current_runtime"]

logger: Final = logging.getLogger("actorbus.system")

YIELD_EVERY: Final = 64
"""`publish`, `tell` and every actor's loop let other tasks run at least this often."""

DEAD_LETTER_TYPE: Final = "actorbus.dead_letter"

current_runtime: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar(
    "actorbus_current_runtime", default=None
)
"""The runtime of the running code: set in the body of ``async with ActorSystem(...)``
and by each actor's task, so code running in a handler finds its own system."""


def _ignore(_: DeadLetter) -> None:
    """Where dead letters go before the system announces them (and after it stopped)."""


def _no_failure(error: BaseException, _actor: str) -> None:  # pragma: no cover - replaced
    raise error


class Runtime:
    """The run-time state shared by one system, its actors and its dispatcher.

    Attributes:
        name: The system's (application's) name: the source of the envelopes it makes.
        system: The `ActorSystem` itself, for `current_system()` and `Actor.system`.
        shutdown_timeout: Seconds allowed for draining and stopping at shutdown.
        inflight: Messages put in a local mailbox and not finished yet.
        ops: Calls of `publish`/`tell` since the last scheduling point.
        backend: The running backend's primitives (see `actorbus._backend`).
        dead_letters: The recent dead letters, oldest first (bounded).
        announce: Publishes a dead letter to the local subscribers (set by the system).
        fail: Stops the system because an escalation reached it (set by the system).
    """

    __slots__ = (
        "_idle",
        "announce",
        "backend",
        "dead_letters",
        "fail",
        "inflight",
        "name",
        "ops",
        "shutdown_timeout",
        "stale",
        "system",
    )

    def __init__(
        self, name: str, system: Any, *, shutdown_timeout: float, max_dead_letters: int
    ) -> None:
        self.name: str = name
        self.system: Any = system
        self.shutdown_timeout: float = shutdown_timeout
        self.inflight: int = 0
        self.ops: int = 0
        self.backend: Backend = PORTABLE
        self.stale: Callable[[], bool] = PORTABLE.stale
        self.dead_letters: collections.deque[DeadLetter] = collections.deque(
            maxlen=max_dead_letters
        )
        self.announce: Callable[[DeadLetter], None] = _ignore
        self.fail: Callable[[BaseException, str], None] = _no_failure
        self._idle: anyio.Event | None = None

    def resolve_backend(self) -> None:
        """Take the running backend's primitives (called once, as the system starts)."""
        self.backend = resolve()
        self.stale = self.backend.stale

    # -- work in flight ------------------------------------------------------------------

    def done(self) -> None:
        """One message in flight has finished; wakes `drain` when none is left."""
        self.inflight -= 1
        if self.inflight <= 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def drain(self) -> None:
        """Wait until no message is in flight (see `ActorSystem.drain`)."""
        while self.inflight > 0:
            if self._idle is None:
                self._idle = self.backend.new_event()
            await self._idle.wait()

    # -- checkpoints ---------------------------------------------------------------------

    async def checkpoint(self) -> None:
        """The checkpoint of `publish`, `tell` and their kin (see the Mailboxes guide).

        A full cancellation check when the task may have been cancelled since its last one
        (see `actorbus._backend`), and a scheduling point every `YIELD_EVERY` calls.
        The hot paths inline the test and await `checkpoint_due` only when something is
        due (see `actorbus._backend` for `stale`)::

            runtime.ops += 1
            if runtime.ops >= YIELD_EVERY or runtime.stale():
                await runtime.checkpoint_due()
        """
        self.ops += 1
        if self.ops >= YIELD_EVERY or self.stale():
            await self.checkpoint_due()

    async def checkpoint_due(self) -> None:
        """Yield if this is the `YIELD_EVERY`-th call, else check for cancellation."""
        backend = self.backend
        if self.ops >= YIELD_EVERY:
            self.ops = 0
            await backend.schedule()
        else:
            await backend.check_cancelled()
        backend.checked()

    # -- dead letters --------------------------------------------------------------------

    def dead_letter(self, envelope: Envelope, actor: str, error: BaseException | None) -> None:
        """Record a message that was not handled, and announce it to local subscribers.

        A dead letter about a dead letter is recorded but never announced.
        """
        record = DeadLetter(envelope, actor, error)
        self.dead_letters.append(record)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "dead letter %s (id %s) for %r: %r",
                envelope.type,
                envelope.id,
                actor,
                error,
                extra={"actor": actor, "event_type": envelope.type, "event_id": envelope.id},
            )
        if envelope.type != DEAD_LETTER_TYPE:
            self.announce(record)
