"""The supervisor of ``actorbus run --workers N``: worker processes under one-for-one restarts.

The supervisor never imports the target: it starts N fresh interpreters
(`_pool_worker`, as multiprocessing's ``spawn`` start method does: nothing is forked from
a process that may run threads), each with a control connection (`_control`), and keeps
them running as an Erlang/OTP ``one_for_one`` supervisor keeps its children:

- worker 0 starts first; once its system runs (so the target loads and starts), the
  others start together. A target that cannot be run at all (it does not import, or it
  is refused) is reported once, in one line, and nothing is restarted;
- a worker that ends without being asked to, whatever the reason, is restarted alone
  under the same instance name, after a backoff that grows with its own recent
  restarts (`RESTART_BACKOFF`);
- more than ``max_restarts`` restarts (of all the workers together) within
  `RESTART_WINDOW` seconds stop every worker, and the pool exits with status 1 and the
  reason;
- the first SIGINT/SIGTERM asks every worker to stop gracefully and the pool exits 0 once
  all have stopped cleanly; a second one kills them at once (status 130). One request
  delivered twice is not a second one (`StopSignals`: ``timeout`` signals the supervisor,
  then its process group), and a signal once every worker has stopped changes nothing.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import attrs

from ._control import Channel
from ._pool_worker import WorkerConfig
from ._supervision import Backoff
from ._worker import StopSignals

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = ["RESTART_BACKOFF", "RESTART_WINDOW", "Pool", "PoolConfig", "cpu_count"]

logger: Final = logging.getLogger("actorbus.pool")

RESTART_WINDOW: Final = 60.0
"""Seconds over which restarts are counted against ``--max-restarts``."""

RESTART_BACKOFF: Final = Backoff(initial=0.1, maximum=10.0)
"""The wait before a worker's n-th restart within `RESTART_WINDOW`: ``delay(n)``."""

_LAST_WORDS: Final = 2.0
"""Seconds to read what a worker sent before its process ended."""

KILLED: Final = 130
"""The exit status after a second signal (as a shell reports SIGINT)."""


def cpu_count() -> int:
    """The CPUs this process may use (``--workers auto``).

    `os.process_cpu_count` where it exists (Python 3.13+), else the size of the affinity
    mask, else `os.cpu_count`; at least 1.
    """
    process_cpu_count: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)
    if process_cpu_count is not None:
        count = process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS and Windows
        count = os.cpu_count()
    return max(1, count or 1)


@attrs.frozen
class PoolConfig:
    """What ``actorbus run --workers N`` runs (see `WorkerConfig` for the workers' part)."""

    target: str
    workers: int
    backend: str = "asyncio"
    use_uvloop: bool = False
    redis_url: str | None = None
    instance: str | None = None
    log_level: str = "INFO"
    status_every: float | None = None
    max_restarts: int = 5
    dashboard: str | None = None
    dashboard_token: str | None = None
    report_every: float = 1.0

    def worker(self, index: int) -> WorkerConfig:
        """The configuration of worker `index`."""
        return WorkerConfig(
            target=self.target,
            index=index,
            workers=self.workers,
            backend=self.backend,
            use_uvloop=self.use_uvloop,
            redis_url=self.redis_url,
            instance=self.instance,
            log_level=self.log_level,
            status_every=self.status_every,
            dashboard=self.dashboard,
            dashboard_token=self.dashboard_token,
            report_every=self.report_every,
        )


@attrs.define
class _Worker:
    """One run of one worker process, as its control messages describe it."""

    index: int
    process: anyio.abc.Process
    channel: Channel
    name: str
    running: bool = False
    stats: dict[str, list[int]] | None = None
    fatal: str | None = None
    failed: str | None = None

    def __str__(self) -> str:
        return f"worker {self.name} (pid {self.process.pid})"

    def ending(self) -> str:
        """How it ended (once it has)."""
        code = self.process.returncode
        if self.failed is not None:
            return f"failed: {self.failed}"
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        if code == 0:
            return "stopped (status 0) without being asked to by the supervisor"
        return f"exited with status {code}"


class Pool:
    """Runs and supervises the worker processes of one ``actorbus run --workers N``.

    After `run`: `fatal` is the one-line reason why the target cannot be run (nothing was
    restarted), and `reports` the lines that explain a non-zero status otherwise.
    """

    def __init__(self, config: PoolConfig, *, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.fatal: str | None = None
        self.reports: list[str] = []
        self._out = out
        self._status = 0
        self._live: dict[int, _Worker] = {}
        self._started: set[int] = set()  # the workers that have run once
        self._restarts: collections.deque[float] = collections.deque()
        # anyio primitives need a running event loop: created in `run`.
        self._stopping: anyio.Event | None = None
        self._first_up: anyio.Event | None = None

    async def run(self) -> int:
        """Run the pool until it is stopped or gives up; return the exit status."""
        self._stopping, self._first_up = anyio.Event(), anyio.Event()
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._watch_signals, signals)
                if self.config.status_every is not None:
                    tasks.start_soon(self._print_status, self.config.status_every)
                logger.debug("starting %d workers of %r", self.config.workers, self.config.target)
                async with anyio.create_task_group() as slots:
                    slots.start_soon(self._slot, 0)
                    await self._first_up.wait()
                    if not self._stopping.is_set():
                        for index in range(1, self.config.workers):
                            slots.start_soon(self._slot, index)
                tasks.cancel_scope.cancel()
        return self._status

    async def _slot(self, index: int) -> None:
        """Keep worker `index` running until the pool stops (one_for_one)."""
        assert self._stopping is not None  # noqa: S101 - set by `run`
        mine: collections.deque[float] = collections.deque()
        last_ending = ""  # a crash loop's error is logged once, not at every restart
        while not self._stopping.is_set():
            worker = await self._run_once(index)
            if self._stopping.is_set():
                if worker.process.returncode != 0 and self._status != KILLED:
                    self._fail(f"{worker} {worker.ending()} while stopping")
                return
            if worker.fatal is not None:
                logger.debug("%s cannot run the target: %s", worker, worker.fatal)
                self.fatal = self.fatal or worker.fatal
                await self._give_up()
                return
            now = anyio.current_time()
            for restarts in (self._restarts, mine):
                restarts.append(now)
                while restarts[0] < now - RESTART_WINDOW:
                    restarts.popleft()
            if len(self._restarts) > self.config.max_restarts:
                self._fail(
                    f"the worker pool stopped: workers ended {len(self._restarts)} times "
                    f"within {RESTART_WINDOW:.0f} s, more than --max-restarts "
                    f"{self.config.max_restarts} allows; the last: {worker} {worker.ending()}"
                )
                await self._give_up()
                return
            delay = RESTART_BACKOFF.delay(len(mine))
            ending = worker.ending()
            logger.warning(
                "%s %s; restarting it in %.1f s (%d restart%s within %.0f s; more than %d "
                "stop the pool)",
                worker,
                "failed again, with the same error" if ending == last_ending else ending,
                delay,
                len(self._restarts),
                "" if len(self._restarts) == 1 else "s",
                RESTART_WINDOW,
                self.config.max_restarts,
            )
            last_ending = ending
            with anyio.move_on_after(delay):
                await self._stopping.wait()

    async def _run_once(self, index: int) -> _Worker:
        """Start worker `index`, follow it until its process ends, and return it."""
        assert self._stopping is not None  # noqa: S101 - set by `run`
        ours, theirs = socket.socketpair()
        try:
            process = await anyio.open_process(
                [sys.executable, "-m", "actorbus._pool_worker", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=None,  # the workers write where the supervisor writes
                stderr=None,
                pass_fds=[theirs.fileno()],
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        channel = await Channel.wrap(ours)
        worker = _Worker(index, process, channel, name=str(index))
        try:
            await channel.send_quietly("config", self.config.worker(index).message())
            self._live[index] = worker
            if self._status == KILLED:  # a second signal came while this one was starting
                process.kill()
            elif self._stopping.is_set():  # asked while this one was starting
                await channel.send_quietly("stop")
            heard_all = anyio.Event()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._listen, worker, heard_all)
                await process.wait()
                # Its last words (why it failed) may still be in the socket. The end of
                # the stream comes with the process's end, unless a process it forked
                # holds the socket: then do not wait for that one.
                with anyio.move_on_after(_LAST_WORDS):
                    await heard_all.wait()
                tasks.cancel_scope.cancel()
        finally:
            # Cancelled (the supervisor itself fails): closing the channel is enough, the
            # worker then stops gracefully on its own.
            self._live.pop(index, None)
            with anyio.CancelScope(shield=True):
                await channel.aclose()
        await process.aclose()
        return worker

    async def _listen(self, worker: _Worker, heard_all: anyio.Event) -> None:
        async for kind, value in self._messages(worker):
            if kind == "named":
                worker.name = str(value)
            elif kind == "running":
                worker.running = True
                self._on_running(worker)
            elif kind == "stats" and isinstance(value, dict):
                worker.stats = value
            elif kind == "fatal":
                worker.fatal = str(value)
            elif kind == "failed":
                worker.failed = str(value)
        heard_all.set()

    def _on_running(self, worker: _Worker) -> None:
        assert self._first_up is not None  # noqa: S101 - set by `run`
        if worker.index in self._started:
            logger.info("%s running again", worker)
            return
        logger.debug("%s running", worker)
        self._started.add(worker.index)
        if worker.index == 0:
            self._first_up.set()
        if len(self._started) == self.config.workers:
            logger.info(
                "%d worker%s of %r running (supervisor pid %d); Ctrl+C or SIGTERM to stop",
                self.config.workers,
                "s" if self.config.workers > 1 else "",
                self.config.target,
                os.getpid(),
            )

    async def _messages(self, worker: _Worker) -> AsyncIterator[tuple[str, Any]]:
        while True:
            try:
                message = await worker.channel.receive()
            except ValueError as exc:
                logger.error("%s sent a broken control message: %s", worker, exc)  # noqa: TRY400
                return
            if message is None:
                return
            yield message

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        requests = StopSignals()
        async for signum in signals:
            name = signal.Signals(signum).name
            seen = requests.read(signum)
            if seen == "same":
                logger.info("%s again: the same request to stop, delivered twice", name)
                continue
            if seen == "second":
                live = [w for w in self._live.values() if w.process.returncode is None]
                if not live:  # the graceful stop is done: nothing to force
                    logger.info("%s again: every worker has stopped already", name)
                    continue
                logger.critical("second %s: killing the workers now", name)
                self._status = KILLED
                for worker in live:
                    worker.process.kill()
                continue
            logger.warning("%s received: stopping the workers gracefully (again to force)", name)
            await self._stop()

    async def _stop(self) -> None:
        """Ask every worker to stop gracefully, and start no more."""
        assert self._stopping is not None  # noqa: S101 - set by `run`
        assert self._first_up is not None  # noqa: S101 - set by `run`
        self._stopping.set()
        self._first_up.set()
        for worker in list(self._live.values()):
            await worker.channel.send_quietly("stop")

    async def _give_up(self) -> None:
        """Stop every worker because of a failure (the status is 1)."""
        self._status = self._status or 1
        await self._stop()

    def _fail(self, report: str) -> None:
        self._status = self._status or 1
        self.reports.append(report)

    async def _print_status(self, every: float) -> None:
        """Every `every` seconds, one line: each actor's rate and depth over all workers."""
        printed: dict[int, tuple[int, dict[str, int]]] = {}
        while True:
            await anyio.sleep(every)
            rates: dict[str, float] = {}
            depths: dict[str, int] = {}
            for index, worker in list(self._live.items()):
                if worker.stats is None:
                    continue
                pid, before = printed.get(index, (-1, {}))
                if pid != worker.process.pid:
                    before = {}  # a new process: its counters started at 0
                for name, (processed, depth) in worker.stats.items():
                    rates[name] = rates.get(name, 0.0) + (processed - before.get(name, 0)) / every
                    depths[name] = depths.get(name, 0) + depth
                printed[index] = (worker.process.pid, {n: p for n, (p, _) in worker.stats.items()})
            running = sum(1 for worker in self._live.values() if worker.running)
            parts = [f"{name}: {rates[name]:.0f}/s depth {depths[name]}" for name in rates]
            self._out(" | ".join([f"{running}/{self.config.workers} workers", *parts]))
