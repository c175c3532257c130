"""Run an `ActorSystem` for as long as a FastAPI (or Starlette) application runs.

`lifespan` starts the system when the application starts and stops it gracefully when the
application stops; `get_system` is the dependency that gives it to routes::

    from typing import Annotated

    from fastapi import Depends, FastAPI

    from actorbus import ActorSystem
    from actorbus.contrib.fastapi import get_system, lifespan

    app = FastAPI(lifespan=lifespan(lambda: ActorSystem("shop", actors=[Inventory])))


    @app.post("/orders")
    async def place(system: Annotated[ActorSystem, Depends(get_system)]) -> None:
        await system.publish(OrderPlaced("o-1"))

FastAPI and Starlette are built on anyio, like actorbus, so this works on whatever loop the
ASGI server runs: asyncio with uvicorn (or hypercorn), trio with ``hypercorn -k trio``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from typing import TYPE_CHECKING, Any, Final

try:
    from starlette.requests import HTTPConnection  # noqa: TC002 - FastAPI reads the annotation
except ImportError as _missing:  # the extra is not installed
    msg = "actorbus.contrib.fastapi needs FastAPI: pip install 'actorbus[fastapi]'"
    raise ImportError(msg) from _missing

from actorbus._system import ActorSystem

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

__all__ = ["STATE_KEY", "get_system", "lifespan"]

STATE_KEY: Final = "actorbus_system"
"""The key under which the running system is kept in the lifespan state and `app.state`."""

logger: Final = logging.getLogger("actorbus.contrib.fastapi")


async def _build(
    system: ActorSystem | Callable[[], ActorSystem | Awaitable[ActorSystem]],
) -> ActorSystem:
    if isinstance(system, ActorSystem):
        return system
    built: object = system()
    if inspect.isawaitable(built):
        built = await built
    if not isinstance(built, ActorSystem):
        msg = (
            f"lifespan(...) needs an ActorSystem or a factory returning one; the factory "
            f"{system!r} returned a {type(built).__qualname__}"
        )
        raise TypeError(msg)
    return built


def lifespan(
    system: ActorSystem | Callable[[], ActorSystem | Awaitable[ActorSystem]],
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan that runs `system` while the application runs: ``FastAPI(lifespan=...)``.

    At start-up it enters the system (its actors' `on_start` have run, and it publishes
    `SystemStarted`, before the server takes requests); at shutdown it leaves it, which
    stops the system gracefully within its `shutdown_timeout` (mailboxes drained, `on_stop`
    run). The running system is yielded as the lifespan state ``{STATE_KEY: system}`` and
    also set as ``app.state.actorbus_system``, where `get_system` finds it.

    An `ActorSystem` can be entered only once. Pass a factory (a function returning a
    system, or a coroutine function) when the application may start more than once in one
    process, as it does in tests: each start then gets a fresh system.

    The result is an ordinary lifespan function (application → async context manager), so
    it composes: enter it from your own lifespan and pass its state on::

        @contextlib.asynccontextmanager
        async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
            async with actorbus_lifespan(app) as state, open_database() as db:
                yield {**state, "db": db}

    or give it to an ``APIRouter(lifespan=...)``, whose lifespan FastAPI merges into the
    application's.

    Args:
        system: The system, or a (sync or async) factory called at each start-up.

    Raises:
        TypeError: At start-up, if the factory returns something else than a system.
        Exception: At start-up, whatever entering the system raised (an `on_start` that
            failed); the application then does not start. At shutdown, the system's
            failure (an unhandled FAIL_FAST) or its `on_stop` errors.
    """

    @contextlib.asynccontextmanager
    async def run_system(app: Any) -> AsyncGenerator[dict[str, Any]]:
        running = await _build(system)
        app_state = getattr(app, "state", None)
        async with running:
            logger.info("actor system %r started with the application", running.name)
            if app_state is not None:
                setattr(app_state, STATE_KEY, running)
            try:
                yield {STATE_KEY: running}
            finally:
                if app_state is not None and getattr(app_state, STATE_KEY, None) is running:
                    delattr(app_state, STATE_KEY)
                logger.info("application stopping: stopping actor system %r", running.name)

    return run_system


def get_system(connection: HTTPConnection) -> ActorSystem:
    """The application's running `ActorSystem`, as a dependency for routes.

    Use it as ``system: Annotated[ActorSystem, Depends(get_system)]`` in HTTP and
    WebSocket routes. It reads the lifespan state first (so it also works when a
    composed lifespan passes the state on), then ``app.state``.

    Raises:
        RuntimeError: If the application was not given `lifespan` (or has not started).
    """
    state: dict[str, Any] = connection.scope.get("state") or {}
    found = state.get(STATE_KEY)
    if found is None:
        app_state = getattr(connection.scope.get("app"), "state", None)
        found = getattr(app_state, STATE_KEY, None)
    if not isinstance(found, ActorSystem):
        msg = (
            "no ActorSystem runs with this application: create it with "
            "FastAPI(lifespan=actorbus.contrib.fastapi.lifespan(system)), or enter that "
            "lifespan from your own, and let the application start before serving requests"
        )
        raise RuntimeError(msg)  # noqa: TRY004 - a configuration error, not a bad argument
    return found
