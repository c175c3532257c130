"""The running backend's primitives, resolved once per system through public APIs.

`anyio.lowlevel.checkpoint_if_cancelled()`, `anyio.Event()` and `anyio.current_time()`
find the running backend on every call. A system asks once, when it starts, for the
backend class behind `anyio.lowlevel.current_token()` (an `anyio.abc.AsyncBackend`) and
calls that class's own functions afterwards: the same functions anyio's public wrappers
call, so the guarantees of the wrappers hold (events and clocks are the running loop's).

`publish` and `tell` must notice a cancelled scope, and the full check through the public
API costs more than the rest of a `tell` (figures in `benchmarks/README.md`). Another task,
a deadline or a signal can cancel a task's scope only while the task waits. So `stale()`
says, cheaply, whether the calling task has waited (or is another task) since it last
checked, and only then does the caller run the full check and mark the task `checked()`.
On trio that uses the task's `custom_sleep_data`, which trio documents as left to
libraries and resets to None whenever the task is rescheduled; on asyncio, the epoch of
the task's last check is kept in a context variable (every task has its own context), and
the epoch changes at the loop's next turn.

What this does not see at once is a change the task makes to its own cancel scopes
without waiting in between: cancelling a scope it is in, entering a scope whose deadline
has already passed (``move_on_after(0)``), leaving a shielded scope into a cancelled one,
or, on trio, being moved into a cancelled nursery by ``task_status.started()``. The next
full check raises it: at the first call after the task waits, and at the latest at the
`YIELD_EVERY`-th call, the scheduling point.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Final, NamedTuple

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["PORTABLE", "Backend", "resolve"]


class Backend(NamedTuple):
    """The running backend's functions (see the module docstring)."""

    check_cancelled: Callable[[], Awaitable[None]]
    """Raise the backend's cancellation exception if the caller's scopes are cancelled."""
    schedule: Callable[[], Awaitable[None]]
    """A full checkpoint: check for cancellation, then let other tasks run."""
    new_event: Callable[[], anyio.Event]
    """Make an `anyio.Event`."""
    clock: Callable[[], float]
    """The running loop's clock (`anyio.current_time`; a test's virtual clock included)."""
    stale: Callable[[], bool]
    """Whether the calling task may have been cancelled since it last `checked()`."""
    checked: Callable[[], None]
    """Record that the calling task has just checked for cancellation."""


def _always() -> bool:
    return True


def _nothing() -> None:
    return None


PORTABLE: Final = Backend(
    anyio.lowlevel.checkpoint_if_cancelled,
    anyio.lowlevel.checkpoint,
    anyio.Event,
    anyio.current_time,
    _always,
    _nothing,
)
"""anyio's public functions themselves, for use outside a run (before a system starts)."""


def resolve() -> Backend:
    """The functions of the backend running the calling task."""
    backend = anyio.lowlevel.current_token().backend_class
    stale, checked = _trio_freshness() if _in_trio() else _asyncio_freshness()
    return Backend(
        backend.checkpoint_if_cancelled,
        backend.checkpoint,
        backend.create_event,
        backend.current_time,
        stale,
        checked,
    )


def _in_trio() -> bool:
    try:
        import trio  # noqa: PLC0415 - trio is optional
    except ImportError:
        return False
    return trio.lowlevel.in_trio_task()


_FRESH: Final = object()
"""What a trio task's `custom_sleep_data` holds between its check and its next wait."""


def _trio_freshness() -> tuple[Callable[[], bool], Callable[[], None]]:
    import trio  # noqa: PLC0415 - trio is optional

    current_task = trio.lowlevel.current_task

    def stale() -> bool:
        return current_task().custom_sleep_data is not _FRESH

    def checked() -> None:
        current_task().custom_sleep_data = _FRESH

    return stale, checked


_CHECKED_IN: Final[contextvars.ContextVar[object]] = contextvars.ContextVar("actorbus_checked_in")
"""The epoch of the current asyncio task's last full check (one variable for every system:
contexts keep their variables alive, so they must not be made per system)."""


def _asyncio_freshness() -> tuple[Callable[[], bool], Callable[[], None]]:
    # Each asyncio task runs in a context of its own: the context variable holds, for the
    # task that checked, the epoch of its check. The epoch changes at the loop's next
    # turn after a check (a callback queued behind everything already ready), before any
    # task that waited can run again.
    loop = asyncio.get_running_loop()
    checked_in = _CHECKED_IN
    epoch: list[object] = [object()]  # unique to this system: another system's never matches
    turn_pending = [False]

    def next_turn() -> None:
        epoch[0] = object()
        turn_pending[0] = False

    def stale() -> bool:
        return checked_in.get(None) is not epoch[0]

    def checked() -> None:
        checked_in.set(epoch[0])
        if not turn_pending[0]:
            turn_pending[0] = True
            loop.call_soon(next_turn)

    return stale, checked
