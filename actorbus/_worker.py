"""Running an `ActorSystem` as a long-running worker, and describing one.

`load_target` resolves ``module:attr`` (an `ActorSystem`, or a sync or async factory
returning one); `run_worker` runs it until SIGINT/SIGTERM and then shuts it down
gracefully (`StopSignals` says which signal is a second request to stop); `describe`
lists its actors, handlers and subscriptions without starting it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import anyio

from ._declared import subscriptions
from ._events import event_info, type_name
from ._mailbox import Mailbox
from ._supervision import Supervision
from ._system import ActorSystem, use_transport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine

    from ._declared import EntityInfo
    from ._transport import Transport

__all__ = [
    "SAME_REQUEST",
    "StopSignals",
    "TargetError",
    "describe",
    "describe_error",
    "ignore_stop_signals",
    "load_target",
    "run_worker",
]

logger: Final = logging.getLogger("actorbus.worker")

SAME_REQUEST: Final = 1.0
"""Seconds after a stop signal within which the same signal again is the same request."""


class StopSignals:
    """Tells a second request to stop from one request delivered twice.

    The first SIGINT or SIGTERM asks for a graceful stop and a second one forces it, but
    one request can arrive as two signals: ``timeout`` signals the process it runs, then
    that process's group, which the process is in; a process manager may do the same.
    So the same signal again within `SAME_REQUEST` seconds of the first is that request
    again (``"same"``); another signal, or the same one later, is a second request
    (``"second"``).

    Args:
        clock: Seconds, monotonic (the system's monotonic clock by default).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: tuple[int, float] | None = None

    def read(self, signum: int) -> Literal["first", "same", "second"]:
        """What signal `signum`, received now, asks for."""
        now = self._clock()
        first = self._first
        if first is None:
            self._first = (signum, now)
            return "first"
        if first[0] == signum and now - first[1] < SAME_REQUEST:
            return "same"
        return "second"


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (in the main thread; elsewhere nothing).

    For a process whose graceful stop is done: a late copy of the signal that asked for
    it must not kill the process on its way out (status 143 instead of 0).
    """
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


class TargetError(Exception):
    """``module:attr`` could not be turned into an `ActorSystem` (one-line message)."""


def _import(target: str) -> object:
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        msg = f"target {target!r} must look like 'module:attribute' (e.g. 'myapp.workers:system')"
        raise TargetError(msg)
    here = str(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)  # like uvicorn: modules next to where you run it
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import module {module_name!r} (from {target!r}): {exc}"
        raise TargetError(msg) from exc
    except Exception as exc:
        msg = (
            f"importing module {module_name!r} (from {target!r}) raised {type(exc).__name__}: {exc}"
        )
        raise TargetError(msg) from exc
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            msg = f"module {module_name!r} has no attribute {attribute!r} (from {target!r})"
            raise TargetError(msg) from None
    return found


async def load_target(target: str) -> ActorSystem:
    """Resolve ``module:attr`` to an `ActorSystem` (calling a factory if it is one).

    Raises:
        TargetError: Naming the module or attribute that was not found, or what the
            attribute was instead of an `ActorSystem`.
    """
    found = _import(target)
    if not isinstance(found, ActorSystem) and callable(found) and not isinstance(found, type):
        try:
            found = found()
            if inspect.isawaitable(found):
                found = await found
        except Exception as exc:
            msg = f"the factory {target!r} raised {type(exc).__name__}: {exc}"
            raise TargetError(msg) from exc
    if not isinstance(found, ActorSystem):
        msg = (
            f"{target!r} is {type(found).__qualname__} {found!r:.60}, not an ActorSystem or a "
            "factory returning one"
        )
        raise TargetError(msg)
    return found


async def run_worker(
    target: str | ActorSystem,
    *,
    transport: Callable[[], Transport] | None = None,
    status_every: float | None = None,
    on_status: Callable[[str], None] | None = None,
    stop: anyio.Event | None = None,
    while_running: Callable[[ActorSystem], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Run a system until SIGINT or SIGTERM (or `stop`), then stop it gracefully.

    The signal handlers are in place before the system starts. The first signal starts
    a graceful shutdown (stop intake, drain mailboxes within `shutdown_timeout`, run
    `on_stop`); a second one exits the process at once with status 130 (the same signal
    again within `SAME_REQUEST` seconds is the first one delivered twice: see
    `StopSignals`). Once the system has stopped, SIGINT and SIGTERM are ignored until
    the process exits (in the main thread).

    Args:
        target: ``module:attr`` or a system.
        transport: Builds a transport for a system that has none (``--redis``).
        status_every: Report per-actor throughput and mailbox depth this often.
        on_status: Where status lines go.
        stop: Also stops the system gracefully when set (by someone other than a signal,
            so it does not count as a first signal).
        while_running: Started once the system runs; cancelled once it has stopped.

    Raises:
        TargetError: If the target cannot be loaded.
        Exception: What the system failed with (FAIL_FAST), once it has stopped.
    """
    system = target if isinstance(target, ActorSystem) else await load_target(target)
    if transport is not None:
        use_transport(system, transport())
    stop = stop if stop is not None else anyio.Event()
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_watch_signals, signals, system.name, stop)
                async with system:
                    logger.info(
                        "system %r running%s; Ctrl+C or SIGTERM to stop",
                        system.name,
                        "" if system.transport is None else f" with {system.transport!r}",
                    )
                    if status_every is not None:
                        tasks.start_soon(
                            _report_status, system, status_every, on_status or print, stop
                        )
                    if while_running is not None:
                        tasks.start_soon(while_running, system)
                    await stop.wait()
                tasks.cancel_scope.cancel()
    finally:
        ignore_stop_signals()
    logger.info("system %r stopped", system.name)


async def _watch_signals(signals: AsyncIterator[int], name: str, stop: anyio.Event) -> None:
    # Only signals count: in a pool, the supervisor's request to stop and the signal that
    # caused it (Ctrl+C reaches the whole process group; systemd signals the whole cgroup)
    # may arrive in either order.
    requests = StopSignals()
    async for signum in signals:
        signame = signal.Signals(signum).name
        seen = requests.read(signum)
        if seen == "same":
            logger.info("%s again: the same request to stop, delivered twice", signame)
        elif seen == "second":
            logger.critical("second %s: exiting now", signame)
            os._exit(130)
        else:
            logger.warning(
                "%s received: stopping system %r gracefully (again to force)", signame, name
            )
            stop.set()


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of what a system failed with (a group of one is unwrapped)."""
    if isinstance(exc, BaseExceptionGroup):
        inner: tuple[BaseException, ...] = cast("Any", exc).exceptions
        if len(inner) == 1:
            return describe_error(inner[0])
    plain: BaseException = cast("BaseException", exc)
    return f"{type(plain).__name__}: {plain}"


async def _report_status(
    system: ActorSystem, every: float, out: Callable[[str], None], stop: anyio.Event
) -> None:
    before = {name: stats.processed for name, stats in system.stats().items()}
    while not stop.is_set():
        with anyio.move_on_after(every):
            await stop.wait()
        now = system.stats()
        parts = [
            f"{name}: {(stats.processed - before.get(name, 0)) / every:.0f}/s depth {stats.depth}"
            for name, stats in now.items()
        ]
        before = {name: stats.processed for name, stats in now.items()}
        out(" | ".join(parts) or "no actors")


def describe(system: ActorSystem) -> list[dict[str, Any]]:
    """One row per handler of the system's start-up actors, entity kinds and routers.

    The rows come from `actorbus._declared.subscriptions` (what the AsyncAPI document
    reads too). An entity kind's rows name the kind and its group, and say in ``entity``
    what it keeps (None for the rows of other actors).
    """
    rows: list[dict[str, Any]] = []
    for found in subscriptions(system):
        mailbox = found.mailbox or Mailbox()
        supervision = found.supervision or Supervision()
        rows.append(
            {
                "actor": found.actor,
                "handler": found.handler,
                "subscriptions": [type_name(c) for c in found.classes]
                + [*found.types, *found.globs],
                "scope": ",".join(sorted({_scope_of(c) for c in found.classes})) or "any",
                "group": found.group,
                "mailbox": f"{mailbox.capacity}/{mailbox.overflow.name}",
                "supervision": supervision.policy.name,
                "entity": _entity(found.entity) if found.entity is not None else None,
            }
        )
    return rows


def _scope_of(cls: type[Any]) -> str:
    info = event_info(cls)
    return info.scope.value if info is not None else "process"


def _entity(entity: EntityInfo) -> str:
    """How an entity kind is listed: its state class and its passivation."""
    state = entity.state.__qualname__ if entity.state is not None else "no state"
    after = entity.passivate_after
    idle = "never passivated" if math.isinf(after) else f"passivated after {after:g}s idle"
    return f"entity kind: {state}, {idle}"
