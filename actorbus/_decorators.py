"""`@publish_result` and `@publish_call`: publish from ordinary functions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, ParamSpec, TypeVar, cast

import anyio.from_thread

from ._events import lookup
from ._system import ActorSystem, current_system, emit_call

__all__ = ["publish_call", "publish_result"]

P = ParamSpec("P")
R = TypeVar("R")


def _system(explicit: ActorSystem | None) -> ActorSystem:
    return explicit if explicit is not None else current_system()


def _run_from_sync(make: Callable[[], Awaitable[Any]]) -> None:
    """Run a publish from sync code: only possible from a worker thread of the loop."""
    try:
        anyio.from_thread.run(make)  # type: ignore[arg-type]
    except RuntimeError as exc:
        msg = (
            "a sync function decorated to publish was called on the event loop thread, "
            "where it cannot wait for the publish; make it async, or call it from a worker "
            "thread (sync handlers run in one by default)"
        )
        raise RuntimeError(msg) from exc


def _wrap(
    func: Callable[P, Any],
    before: Callable[[inspect.BoundArguments], Awaitable[None]] | None,
    after: Callable[[inspect.BoundArguments, Any], Awaitable[None]],
) -> Callable[P, Any]:
    signature = inspect.signature(func)

    def bind(*args: Any, **kwargs: Any) -> inspect.BoundArguments:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            bound = bind(*args, **kwargs)
            if before is not None:
                await before(bound)
            result = await func(*args, **kwargs)
            await after(bound, result)
            return result

        return run_async

    @functools.wraps(func)
    def run_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
        bound = bind(*args, **kwargs)
        if before is not None:
            _run_from_sync(functools.partial(before, bound))
        result = func(*args, **kwargs)
        _run_from_sync(functools.partial(after, bound, result))
        return result

    return run_sync


def publish_result(
    event: type[Any] | str,
    *,
    condition: Callable[[Any], bool] | None = None,
    system: ActorSystem | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Publish what the decorated function returns.

    Args:
        event: An event class or type string. A returned instance is published as is; a
            returned mapping becomes ``cls(**result)``; anything else ``cls(result)``.
            For an unregistered type string the result is emitted as ``emit(type, result)``.
        condition: Publish only when ``condition(result)`` is true.
        system: The system to publish to; default `current_system()`.

    Sync functions work when called from a worker thread (as sync handlers are).
    """

    async def after(_: inspect.BoundArguments, result: Any) -> None:
        if condition is not None and not condition(result):
            return
        target = _system(system)
        cls = lookup(event) if isinstance(event, str) else event
        if cls is None:
            await target.emit(cast("str", event), result)
        elif isinstance(result, cls):
            await target.publish(result)
        elif isinstance(result, Mapping):
            await target.publish(cls(**result))
        else:
            await target.publish(cls(result))

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        return cast("Callable[P, R]", _wrap(func, None, after))

    return decorate


def publish_call(
    type: str,  # noqa: A002
    *,
    timing: Literal["before", "after", "both"] = "after",
    system: ActorSystem | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Publish the decorated function's bound arguments as an ad-hoc event of `type`.

    ``timing="before"`` publishes before the call, ``"after"`` after it with ``result``
    added, ``"both"`` does both. The event is ``emit(type, **arguments)``, so function
    subscribers are called with the arguments by name; the envelope's `subject` is
    ``"before"`` or ``"after"``.
    """
    if timing not in ("before", "after", "both"):
        msg = f"publish_call timing must be 'before', 'after' or 'both', got {timing!r}"
        raise ValueError(msg)

    async def publish_before(bound: inspect.BoundArguments) -> None:
        await emit_call(_system(system), type, dict(bound.arguments), "before")

    async def publish_after(bound: inspect.BoundArguments, result: Any) -> None:
        if timing != "before":
            await emit_call(_system(system), type, {**bound.arguments, "result": result}, "after")

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        before = publish_before if timing in ("before", "both") else None
        return cast("Callable[P, R]", _wrap(func, before, publish_after))

    return decorate
