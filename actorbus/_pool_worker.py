"""One worker process of ``actorbus run --workers N``: ``python -m actorbus._pool_worker FD``.

The supervisor (`_pool`) starts it as a fresh interpreter with its end of a control
connection (`_control`) as file descriptor FD, and sends what to run as the first message.
The worker loads the target, names its transport ``<instance>-<i>``, runs the system as
``actorbus run`` does, and reports back: its name, that it runs, its figures, and how it
ended. It stops gracefully on SIGINT/SIGTERM, on the supervisor's ``stop``, and when the
control connection ends (the supervisor died), so no worker outlives its pool.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from ._control import Channel
from ._system import use_transport
from ._worker import TargetError, describe_error, load_target, run_worker

if TYPE_CHECKING:
    from ._system import ActorSystem
    from ._transport import Transport

__all__ = ["WorkerConfig", "host_instance", "instance_base", "main"]

logger: Final = logging.getLogger("actorbus.worker")

LOG_FORMAT: Final = "%(asctime)s %(levelname)s [%(actorbus_instance)s] %(name)s: %(message)s"
"""The workers' log format: every line names the worker (`LogRecord.actorbus_instance`)."""

_NOT_A_NAME: Final = re.compile(r"[^A-Za-z0-9_.-]+")


class Refused(Exception):
    """The target cannot run in this pool (one-line message; restarting would not help)."""


@attrs.frozen
class WorkerConfig:
    """What a worker runs; the supervisor sends it as the ``config`` message."""

    target: str
    index: int
    workers: int
    backend: str = "asyncio"
    use_uvloop: bool = False
    redis_url: str | None = None
    instance: str | None = None
    log_level: str = "INFO"
    status_every: float | None = None
    dashboard: str | None = None
    """``[HOST:]PORT`` of the pool: this worker serves its page on PORT + index."""
    dashboard_token: str | None = None
    report_every: float = 1.0

    def message(self) -> dict[str, Any]:
        """The ``config`` message's value."""
        return attrs.asdict(self)


def host_instance() -> str:
    """The default instance base: this host's name, made a valid instance name."""
    name = _NOT_A_NAME.sub("-", socket.gethostname()).strip("-._")[:80]
    return name or "actorbus"


def instance_base(given: str | None, transport: Transport | None) -> str:
    """The ``<instance>`` of the workers' ``<instance>-<i>`` names.

    ``--instance`` (or ``$ACTORBUS_INSTANCE``) when given, else the durable instance name
    the target's transport was built with, else `host_instance`.
    """
    if given:
        return given
    # RedisTransport gives an anonymous instance a random name: that one is not stable.
    own = getattr(transport, "instance", None)
    if isinstance(own, str) and own and getattr(transport, "durable", True):
        return own
    return host_instance()


def _prepare(system: ActorSystem, config: WorkerConfig) -> str:
    """Give the system its transport under this worker's name; return that name.

    Raises:
        Refused: The target cannot run with ``--workers N``.
    """
    if config.redis_url is not None:
        from .redis import RedisTransport  # noqa: PLC0415 - the optional extra

        name = f"{instance_base(config.instance, None)}-{config.index}"
        try:
            use_transport(system, RedisTransport(config.redis_url, instance=name))
        except ValueError as exc:
            raise Refused(str(exc)) from None
        return name
    transport = system.transport
    name = f"{instance_base(config.instance, transport)}-{config.index}"
    if config.workers > 1:
        if transport is None:
            msg = (
                f"--workers {config.workers} needs a transport: {config.target!r} has none, "
                "so each worker would run its own in-process bus and APP events would not "
                "reach the others; give it one (--redis URL, or "
                "ActorSystem(transport=RedisTransport(...))), or run --workers 1"
            )
            raise Refused(msg)
        from .testing import MemoryTransport  # noqa: PLC0415 - only to refuse it

        if isinstance(transport, MemoryTransport):
            msg = (
                f"--workers {config.workers} cannot share {config.target!r}'s "
                "MemoryTransport: it is an in-process bus, so each worker would have its "
                "own; use RedisTransport (or --redis URL)"
            )
            raise Refused(msg)
    if transport is not None:
        try:
            transport.set_instance(name)
        except (TypeError, ValueError) as exc:
            raise Refused(str(exc)) from None
    return name


async def _follow_supervisor(channel: Channel, stop: anyio.Event) -> None:
    while True:
        message = await channel.receive()
        if message is None:
            if not stop.is_set():
                logger.warning("the pool's supervisor is gone: stopping gracefully")
            stop.set()
            return
        if message[0] == "stop" and not stop.is_set():
            logger.info("stopping gracefully: the supervisor asks")
            stop.set()


async def _report(channel: Channel, every: float | None, system: ActorSystem) -> None:
    await channel.send_quietly("running")
    while every is not None:
        figures = {name: [s.processed, s.depth] for name, s in system.stats().items()}
        await channel.send_quietly("stats", figures)
        await anyio.sleep(every)


def _dashboard(config: WorkerConfig) -> socket.socket | None:
    """This worker's dashboard socket: the pool's port plus its index (0 stays 0: any).

    Raises:
        Refused: The address cannot be bound.
    """
    if config.dashboard is None:
        return None
    from .dashboard._address import listen, parse_listen  # noqa: PLC0415 - only the dashboard

    try:
        host, port = parse_listen(config.dashboard)
        where = f"[{host}]" if ":" in host else host
        return listen(f"{where}:{port + config.index if port else 0}")
    except ValueError as exc:
        raise Refused(str(exc)) from None


async def _serve(sock: socket.socket, config: WorkerConfig, label: _Label) -> int:
    async with await Channel.wrap(sock) as channel:
        try:
            system = await load_target(config.target)
            label.name = _prepare(system, config)
            page = _dashboard(config)
        except (TargetError, Refused) as exc:
            await channel.send_quietly("fatal", str(exc))
            return 1
        await channel.send_quietly("named", label.name)
        if _EARLY_SIGNALS:
            logger.warning(
                "%s received while starting: not starting system %r",
                signal.Signals(_EARLY_SIGNALS[0]).name,
                system.name,
            )
            return 0
        from .dashboard._observe import for_worker  # noqa: PLC0415 - not needed before

        watch = for_worker(
            page,
            token=config.dashboard_token,
            every=config.report_every or 1.0,
            report=config.report_every > 0,
        )

        async def while_running(running: ActorSystem) -> None:
            async with anyio.create_task_group() as beside:
                beside.start_soon(watch, running)
                await _report(channel, config.status_every, running)

        stop = anyio.Event()
        status = 0
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_follow_supervisor, channel, stop)
            try:
                await run_worker(system, stop=stop, while_running=while_running)
            except Exception as exc:  # the supervisor reports it, once
                await channel.send_quietly("failed", describe_error(exc))
                status = 1
            tasks.cancel_scope.cancel()
    return status


class _Label:
    """The name in this worker's log lines (`LOG_FORMAT`): its instance name once known."""

    def __init__(self, name: str) -> None:
        self.name = name
        previous = logging.getLogRecordFactory()

        def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            record.actorbus_instance = self.name
            return record

        logging.setLogRecordFactory(make)


def _first_line(sock: socket.socket) -> bytes:
    """Read the ``config`` line, and not a byte more (what follows is for the channel)."""
    line = b""
    while True:
        seen = sock.recv(65536, socket.MSG_PEEK)
        if not seen:
            msg = "the supervisor closed the control connection before sending the config"
            raise ConnectionError(msg)
        end = seen.find(b"\n")
        line += sock.recv(end + 1 if end >= 0 else len(seen))
        if end >= 0:
            return line


_EARLY_SIGNALS: list[int] = []


def _remember(signum: int, _frame: object) -> None:
    _EARLY_SIGNALS.append(signum)


def main(argv: list[str]) -> int:
    """Run one worker; the exit status (0 after a graceful stop)."""
    # Until `run_worker` handles them (once the target is loaded), SIGINT and SIGTERM,
    # which may reach the whole process group, only mean: do not start.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _remember)
    sock = socket.socket(fileno=int(argv[1]))
    sock.set_inheritable(False)  # a process the worker starts must not keep it open
    config = WorkerConfig(**Channel.decode(_first_line(sock))[1])
    provisional = f"{config.instance or host_instance()}-{config.index}"
    label = _Label(provisional)
    logging.basicConfig(level=config.log_level.upper(), format=LOG_FORMAT)
    options = {"use_uvloop": True} if config.use_uvloop else {}
    status: int = anyio.run(
        _serve, sock, config, label, backend=config.backend, backend_options=options
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
