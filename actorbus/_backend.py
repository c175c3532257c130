"""Backend fast paths, resolved once per system.

`publish` and `tell` are cancellation points: each call must notice a cancelled scope.
`anyio.lowlevel.checkpoint_if_cancelled()` does that, but on every call it looks the
running backend up (through sniffio), and on asyncio it also finds the task's state in a
`WeakKeyDictionary`; together that costs more than the rest of a `tell`. A system resolves,
once, when it starts:

- `cancelled()`: a synchronous test that is True whenever the caller's cancel scopes
  make the full check raise (it may also be True when it would not; the caller then
  runs the full check). On trio it leaves out the full check's other case, a pending
  KeyboardInterrupt in the main task: that is delivered at the next scheduling point,
  which `publish` and `tell` reach at least every 64 calls;
- the backend's own `checkpoint_if_cancelled` and `checkpoint`.

This is the one module that reaches into anyio's and trio's internals; if they change, the
public functions are used instead (correct, only slower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = [
    "Checkpoints",
    "SocketWaits",
    "clock",
    "event_class",
    "resolve_checkpoints",
    "running_asyncio",
    "socket_waits",
]


def _always() -> bool:
    return True


class Checkpoints(NamedTuple):
    """The running backend's checkpoint functions (see the module docstring)."""

    cancelled: Callable[[], bool]
    check_cancelled: Callable[[], Awaitable[None]]
    schedule: Callable[[], Awaitable[None]]


PUBLIC = Checkpoints(_always, anyio.lowlevel.checkpoint_if_cancelled, anyio.lowlevel.checkpoint)
"""The portable fallback: the full check on every call."""


def resolve_checkpoints() -> Checkpoints:
    """The checkpoint functions of the running backend."""
    try:
        from anyio._core._eventloop import get_async_backend  # noqa: PLC0415

        backend = get_async_backend()
        name = backend.__module__.rpartition(".")[2]
        cancelled = _trio_cancelled() if name == "_trio" else _asyncio_cancelled()
    except Exception:  # pragma: no cover - anyio or trio moved things: stay correct
        return PUBLIC
    return Checkpoints(cancelled, backend.checkpoint_if_cancelled, backend.checkpoint)


class SocketWaits(NamedTuple):
    """The running backend's `anyio.wait_readable` and `anyio.wait_writable`."""

    readable: Callable[[Any], Awaitable[None]]
    writable: Callable[[Any], Awaitable[None]]


def socket_waits() -> SocketWaits | None:
    """`anyio.wait_readable` and `anyio.wait_writable` without a backend lookup per call.

    Both find the running backend (through sniffio) on every call; a connection that
    waits on its socket for every reply resolves them once. None with an anyio too old
    to have them (before 4.7): the caller keeps to anyio's socket streams.
    """
    try:
        from anyio._core._eventloop import get_async_backend  # noqa: PLC0415

        backend: Any = get_async_backend()
        return SocketWaits(backend.wait_readable, backend.wait_writable)
    except Exception:  # pragma: no cover - an older anyio, or it moved things
        return None


def clock() -> Callable[[], float]:
    """`anyio.current_time` without its lookups per call: the running loop's own clock.

    anyio finds the backend (through sniffio) and then the loop, or trio's clock, on
    every call: more than the reading itself costs. This is the running asyncio loop's
    ``time`` or trio's clock's ``current_time`` (a test's `MockClock` included), so it
    stays valid for that run only. Outside a run (or if anyio moved things), anyio's own.
    """
    try:
        if running_asyncio():
            import asyncio  # noqa: PLC0415

            return asyncio.get_running_loop().time
        import trio  # noqa: PLC0415

        return trio.lowlevel.current_clock().current_time
    except Exception:  # no running backend: the public function
        return anyio.current_time


def event_class() -> Callable[[], anyio.Event]:
    """The running backend's `anyio.Event` class, to make events without a backend lookup.

    ``anyio.Event()`` finds the running backend (through sniffio) on every call: about
    three quarters of its cost. Whoever makes an event per message resolves the class
    once (on the backend it runs on) and calls it instead.
    """
    return type(anyio.Event())


def running_asyncio() -> bool:
    """Whether the running backend is asyncio (uvloop included), not trio."""
    try:
        from anyio._core._eventloop import get_async_backend  # noqa: PLC0415

        return get_async_backend().__module__.rpartition(".")[2] == "_asyncio"
    except Exception:  # pragma: no cover - anyio moved things: ask asyncio itself
        import asyncio  # noqa: PLC0415

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True


def _trio_cancelled() -> Callable[[], bool]:
    """The cancel-scope test of `trio.lowlevel.checkpoint_if_cancelled`, without its await."""
    import trio  # noqa: PLC0415
    from trio._core._run import GLOBAL_RUN_CONTEXT  # noqa: PLC0415

    # `trio.lowlevel.current_task()` is this attribute read wrapped in a function call.
    context: Any = GLOBAL_RUN_CONTEXT
    if context.task is not trio.lowlevel.current_task():
        raise LookupError  # pragma: no cover - trio changed: use the public path
    _ = context.task._cancel_status.effectively_cancelled  # AttributeError: use the public path

    def cancelled() -> bool:
        return context.task._cancel_status.effectively_cancelled  # type: ignore[no-any-return]

    return cancelled


def _asyncio_cancelled() -> Callable[[], bool]:
    """Anyio's scope walk (as in its `checkpoint_if_cancelled`) with the task state cached.

    The state of a task is one object for the task's whole life (anyio mutates it as the
    task enters and leaves scopes), so the last task's state is kept and reused. The
    last task is held by a strong reference (a weak one would cost a call per check):
    a finished task, with its result, stays alive until another task of the system
    publishes or tells, or the system is garbage.
    """
    import asyncio  # noqa: PLC0415

    from anyio._backends import _asyncio as anyio_asyncio  # noqa: PLC0415

    task_states: Any = vars(anyio_asyncio)["_task_states"]
    # `asyncio.current_task()` without its argument handling: a system stays on one loop.
    loop = asyncio.get_running_loop()
    current_tasks: Any = vars(asyncio.tasks)["_current_tasks"]
    if current_tasks.get(loop) is not asyncio.current_task():
        raise LookupError  # pragma: no cover - asyncio changed: use the public path
    last: list[Any] = [None, None]  # [task, its TaskState]

    def cancelled() -> bool:
        task: Any = current_tasks.get(loop)
        if task is last[0]:
            state = last[1]
        else:
            state = task_states.get(task) if task is not None else None
            if state is None:
                return False  # not an anyio task: anyio's own check would not raise either
            last[0], last[1] = task, state
        scope = state.cancel_scope
        while scope is not None:
            if scope._cancel_called:
                return True
            if scope._shield:
                return False
            scope = scope._parent_scope
        return False

    return cancelled
