"""The parts of a system without an `ActorSystem`, for unit tests of the core's modules.

`parts()` runs a `Runtime`, a `Dispatcher` and the `Actors` registry that spawns cells in
a task group of their own: tests put mailbox items in cells and deliver through the
dispatcher directly, and read the runtime's dead letters and failures.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio

from actorbus._actors import Actors
from actorbus._cell import Cell, Spawn
from actorbus._dispatch import Dispatcher
from actorbus._runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from actorbus._records import DeadLetter


class Parts:
    """A runtime, a dispatcher and the registry of cells, without an `ActorSystem`."""

    def __init__(self) -> None:
        self.runtime = Runtime("cells", None, shutdown_timeout=5.0, max_dead_letters=100)
        self.failures: list[tuple[BaseException, str]] = []
        self.runtime.fail = lambda error, actor: self.failures.append((error, actor))
        self.dispatcher = Dispatcher(self.runtime)
        self.actors = Actors(self.runtime, self.dispatcher, None)

    async def spawn(self, target: Callable[..., Any], *args: Any, **settings: Any) -> Cell:
        return await self.actors.spawn(Spawn(target, args, **settings))

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return list(self.runtime.dead_letters)

    async def drain(self) -> None:
        with anyio.fail_after(60):
            await self.runtime.drain()


@contextlib.asynccontextmanager
async def parts() -> AsyncIterator[Parts]:
    """Running parts; the cells still running are stopped at the end, last started first."""
    found = Parts()
    found.runtime.resolve_backend()
    async with anyio.create_task_group() as tasks:
        found.actors.task_group = tasks
        yield found
        for cell in reversed(list(found.actors.top)):
            await cell.stop()


class Gate:
    """Holds a handler until opened; says when the handler is waiting at it."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.opened = anyio.Event()

    async def hold(self) -> None:
        self.entered.set()
        await self.opened.wait()

    async def reached(self) -> None:
        with anyio.fail_after(60):
            await self.entered.wait()
