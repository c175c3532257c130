"""Chaos run: worker processes killed with SIGKILL, Redis stopped and killed, poison events.

Run ``python benchmarks/chaos.py --help``. What one run does:

- starts a private redis-server (AOF with ``appendfsync everysec``, or no persistence at
  all; ``--persistence both`` runs one of each), and ``--workers`` worker processes of one
  application (`chaos_worker.py`: a broadcast subscriber and a member of group ``work``
  each); half the worker slots are durable (a stable ``instance=`` name), half anonymous;
- publishes ``--events`` APP events from this process at ``--rate`` per second, each with
  a unique envelope id and its sequence number; ~1 % are poison (both handlers raise every
  time: supervision retries, then dead-letters them). A publish that raises
  `TransportError` (Redis is down) is retried with the same envelope until Redis accepts it;
  it counts once, when accepted;
- meanwhile, every ``--kill-interval`` seconds, SIGKILLs a random worker and starts its
  replacement (alternately a durable slot, which keeps its name, and an anonymous one,
  which gets a fresh name); at a third and two thirds of the events it stops Redis with
  ``SHUTDOWN`` and (AOF only) kills it with SIGKILL, keeps it down ``--outage`` seconds and
  restarts it on the same port;
- then waits (at most ``--settle`` s) until everything owed was handled, stops the workers
  gracefully, and accounts for every event from the workers' journals, the shared
  idempotency ledger and the dead-letter stream (see `Accounting` for the exact rules).

It prints a one-screen table, writes ``--json``, and exits 1 if an event was lost that
publish had reported accepted (``lost`` is not 0), a poison event is missing from the
dead-letter stream, or a worker crashed. Losses that Redis's own persistence settings
allow — everything not yet handled when a Redis without persistence stops, and up to
about 2 s of writes before a SIGKILL with ``appendfsync everysec`` — are counted apart
(``lost by Redis``) and do not fail the run.

``--partitions P --keys K`` (P > 1) gives each event one of K keys and the application P
partitions (``--lease`` seconds of lease): each key's events are published in order by one
publishing task, and each partition of group ``work`` is owned by one worker at a time.
The run then also counts **per-key order violations** in the group: among the events that
the group handled exactly once (an event handled again after a failure — a worker killed
before its acknowledgement, a Redis restart — is left out, as the contract allows), one
handled after a later event of its key (a greater sequence number, by the time of the
journal lines, which all processes of the machine write with one clock). Anything but 0
fails the run; duplicates are counted as before.

``--soak N`` instead runs N events (no Redis faults, a kill every ``--soak-kill-interval``
s sparing slot 0) and samples Redis ``used_memory``, the events stream's length, pending
entries, the dead-letter stream and the workers' RSS: it fails if the stream or memory
keeps growing (see `soak_verdicts`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from actorbus import ActorSystem, Envelope, Scope, TransportError
from actorbus.redis import RedisTransport

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from chaos_worker import GROUP, TRANSPORT_SETTINGS, Tick  # noqa: E402
from redis_support import RedisServer, send_raw  # noqa: E402

from actorbus._keys import PARTITION_KEY  # noqa: E402
from actorbus.redis._config import Keys  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

WORKER = HERE / "chaos_worker.py"
FSYNC_WINDOW = 2.0
"""Seconds of writes before a SIGKILL that ``appendfsync everysec`` may lose (Redis docs:
"you can lose 1 second worth of data"; the write itself may be postponed up to 2 s while a
previous fsync is still running)."""
READY_TIMEOUT = 60.0
PUBLISH_TASKS = 8
MiB = 1024 * 1024


# -- configuration ----------------------------------------------------------------------------


@dataclass
class Config:
    events: int = 10_000
    workers: int = 3
    persistence: str = "aof"  # "aof" or "none" (one run)
    appendfsync: str = "everysec"
    backend: str = "asyncio"
    rate: float = 500.0
    kill_interval: float = 2.0
    poison_every: int = 100
    outage: float = 2.0
    settle: float = 120.0
    redis_faults: bool = True
    soak: bool = False
    soak_kill_interval: float = 10.0
    dead_maxlen: int = 10_000
    seed: int = 0
    keep: bool = False
    partitions: int = 1
    keys: int = 0
    lease: float = 2.0

    def key(self, seq: int) -> str | None:
        """The key of event `seq` (None without keys)."""
        return f"k{seq % self.keys}" if self.keys else None

    def faults(self) -> list[str]:
        if not self.redis_faults or self.soak:
            return []
        return ["shutdown", "sigkill"] if self.persistence == "aof" else ["shutdown"]


# -- worker processes -------------------------------------------------------------------------


@dataclass
class Proc:
    """One worker process (a slot runs a sequence of them: generations)."""

    slot: int
    gen: int
    durable: bool
    journal: Path
    started: float
    popen: subprocess.Popen[bytes] = field(repr=False)
    instance: str | None = None
    ready: float | None = None
    killed: float | None = None
    exited: float | None = None
    crashed: bool = False
    first_handled: float | None = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def summary(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "gen": self.gen,
            "durable": self.durable,
            "instance": self.instance,
            "pid": self.popen.pid,
            "started": self.started,
            "ready": self.ready,
            "killed": self.killed,
            "exited": self.exited,
            "crashed": self.crashed,
            "returncode": self.popen.returncode,
        }


class Workers:
    """The worker slots: start, kill, replace, stop; the journals they write."""

    def __init__(self, cfg: Config, server: RedisServer, app: str, workdir: Path) -> None:
        self.cfg = cfg
        self.server = server
        self.app = app
        self.workdir = workdir
        self.ledger = workdir / "ledger.txt"
        self.procs: list[Proc] = []
        self.current: dict[int, Proc] = {}
        self.start_failures = 0
        self.crashes: list[dict[str, Any]] = []
        self.stopping = False

    def durable_slot(self, slot: int) -> bool:
        return slot % 2 == 0

    def name(self, slot: int) -> str:
        return f"w{slot}"

    def _spawn(self, slot: int) -> Proc:
        gen = sum(1 for p in self.procs if p.slot == slot)
        durable = self.durable_slot(slot)
        journal = self.workdir / f"journal-{slot}-{gen}.txt"
        stderr = (self.workdir / f"stderr-{slot}-{gen}.txt").open("wb")
        command = [sys.executable, str(WORKER), self.app, str(journal), str(self.ledger)]
        command += ["--backend", self.cfg.backend, "--dead-maxlen", str(self.cfg.dead_maxlen)]
        command += ["--partitions", str(self.cfg.partitions), "--lease", str(self.cfg.lease)]
        if durable:
            command += ["--instance", self.name(slot)]
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "REDIS_URL": self.server.url},
        )
        stderr.close()
        proc = Proc(slot, gen, durable, journal, time.time(), popen)
        self.procs.append(proc)
        self.current[slot] = proc
        return proc

    async def start(self, slot: int) -> Proc:
        """Start a process in `slot` and wait until it is ready; retry if start-up fails
        (Redis may be down at that moment)."""
        deadline = time.monotonic() + READY_TIMEOUT * 3
        while True:
            proc = self._spawn(slot)
            assert proc.popen.stdout is not None
            line = await anyio.to_thread.run_sync(proc.popen.stdout.readline)
            if line.startswith(b"ready "):
                proc.ready = time.time()
                proc.instance = line.split()[1].decode()
                return proc
            await anyio.to_thread.run_sync(proc.popen.wait)
            proc.exited = time.time()
            self.start_failures += 1
            if time.monotonic() > deadline:
                tail = (self.workdir / f"stderr-{slot}-{proc.gen}.txt").read_text()[-2000:]
                raise RuntimeError(f"worker slot {slot} does not start:\n{tail}")
            await anyio.sleep(0.5)

    async def kill(self, proc: Proc) -> None:
        proc.killed = time.time()
        proc.popen.send_signal(signal.SIGKILL)
        await anyio.to_thread.run_sync(proc.popen.wait)
        proc.exited = time.time()

    async def watch(self) -> None:
        """Restart workers that exit on their own (a crash: counted, reported)."""
        while True:
            await anyio.sleep(0.5)
            for slot, proc in list(self.current.items()):
                if proc.ready is None or proc.killed is not None or proc.alive or self.stopping:
                    continue
                proc.exited = time.time()
                proc.crashed = True
                stderr = self.workdir / f"stderr-{slot}-{proc.gen}.txt"
                self.crashes.append(
                    {**proc.summary(), "stderr": stderr.read_text(errors="replace")[-3000:]}
                )
                await self.start(slot)

    async def stop_all(self) -> None:
        self.stopping = True
        live = [p for p in self.current.values() if p.alive]
        for proc in live:
            proc.popen.send_signal(signal.SIGTERM)
        for proc in live:
            try:
                await anyio.to_thread.run_sync(proc.popen.wait, 30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                await anyio.to_thread.run_sync(proc.popen.wait)
                proc.crashed = True
                self.crashes.append({**proc.summary(), "stderr": "did not stop within 30 s"})
            proc.exited = time.time()
        for proc in self.procs:
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()

    def rss(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for slot, proc in sorted(self.current.items()):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[f"slot{slot}.gen{proc.gen}"] = int(line.split()[1]) * 1024
        return out


# -- journals ---------------------------------------------------------------------------------


@dataclass
class Handled:
    """What the journals say was handled (by sequence number)."""

    broadcast: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    per_proc_broadcast: dict[int, int] = field(default_factory=Counter)
    group: Counter[int] = field(default_factory=Counter)
    group_skipped: int = 0
    group_order: list[tuple[float, str, int]] = field(default_factory=list)  # (time, key, seq)
    foreign: int = 0
    torn: int = 0


class Journals:
    """Reads the workers' journals incrementally (they only ever grow)."""

    def __init__(self, workers: Workers, ids: dict[int, str]) -> None:
        self.workers = workers
        self.ids = ids
        self.offsets: dict[Path, int] = {}
        self.handled = Handled()

    def refresh(self) -> Handled:
        h = self.handled
        for index, proc in enumerate(self.workers.procs):
            path = proc.journal
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.offsets[path] = self.offsets.get(path, 0) + end
            for raw in data[:end].splitlines():
                parts = raw.decode(errors="replace").split()
                if len(parts) < 4 or parts[0] not in ("b", "g"):
                    h.torn += 1
                    continue
                kind, event_id, seq, ts = parts[0], parts[1], int(parts[2]), float(parts[3])
                if self.ids.get(seq) != event_id:
                    h.foreign += 1
                    continue
                if proc.first_handled is None:
                    proc.first_handled = ts
                if kind == "b":
                    h.broadcast[proc.instance or f"?{index}"][seq] += 1
                    h.per_proc_broadcast[index] += 1
                else:
                    h.group[seq] += 1
                    h.group_skipped += parts[4] == "0"
                    if len(parts) > 5 and parts[5] != "-":
                        h.group_order.append((ts, parts[5], seq))
        return h

    def first_handled_after(self, when: float) -> dict[int, float]:
        """For each process: its first journal line at or after `when` (unix time)."""
        out: dict[int, float] = {}
        for index, proc in enumerate(self.workers.procs):
            if not proc.journal.exists():
                continue
            with proc.journal.open("rb") as f:
                for raw in f:
                    parts = raw.split()
                    if len(parts) >= 4 and float(parts[3]) >= when:
                        out[index] = float(parts[3])
                        break
        return out


# -- Redis inspection (a tiny RESP client, independent of the client under test) --------------


class Inspector:
    def __init__(self, server: RedisServer, app: str, partitions: int = 1) -> None:
        self.server = server
        self.streams = Keys("actorbus", app, partitions).streams
        self.dead = f"actorbus:app:{app}:dead"
        self.dead_seen: dict[str, dict[str, str]] = {}  # dead entry id -> fields
        self._dead_after = "-"

    def call(self, *command: str, timeout: float = 10.0) -> Any:
        auth = [("AUTH", self.server.password)] if self.server.password else []
        reply = send_raw(self.server.port, *auth, command, timeout=timeout)[-1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def poll_dead(self) -> None:
        """Collect new dead letters (kept here: a Redis without persistence loses them)."""
        with contextlib.suppress(OSError):
            while True:
                entries = self.call("XRANGE", self.dead, self._dead_after, "+", "COUNT", "1000")
                if not entries:
                    return
                for entry_id, flat in entries:
                    self.dead_seen[entry_id] = dict(zip(flat[::2], flat[1::2], strict=True))
                self._dead_after = "(" + entries[-1][0]

    def stream_groups(self, stream: str) -> dict[str, dict[str, Any]]:
        try:
            infos = self.call("XINFO", "GROUPS", stream)
        except Exception:  # no stream (yet, or any more)
            return {}
        out = {}
        for flat in infos:
            info = dict(zip(flat[::2], flat[1::2], strict=True))
            out[info["name"]] = info
        return out

    def groups(self) -> dict[str, dict[str, Any]]:
        """The consumer groups found on every stream (pending summed over the streams)."""
        per_stream = [self.stream_groups(stream) for stream in self.streams]
        names = set.intersection(*(set(groups) for groups in per_stream)) if per_stream else set()
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            infos = [groups[name] for groups in per_stream]
            lags = [info.get("lag") for info in infos]
            out[name] = {
                **infos[0],
                "pending": sum(int(info["pending"]) for info in infos),
                "lag": None if None in lags else sum(int(lag) for lag in lags),
            }
        return out

    def unacked(self) -> dict[str, set[str]]:
        """Per consumer group: the event ids in Redis it has not acknowledged yet."""
        out: dict[str, set[str]] = defaultdict(set)
        for stream in self.streams:
            entries = self.call("XRANGE", stream, "-", "+", timeout=30)
            event_of = {
                entry_id: _event_id(dict(zip(f[::2], f[1::2], strict=True)))
                for entry_id, f in entries
            }
            for name, info in self.stream_groups(stream).items():
                last = _sid(info["last-delivered-id"])
                pending = self.call("XPENDING", stream, name, "-", "+", "1000000", timeout=30)
                ids = {event_of.get(p[0]) for p in pending}
                ids |= {e for entry_id, e in event_of.items() if _sid(entry_id) > last}
                out[name] |= {i for i in ids if i}
        return dict(out)

    def memory(self) -> dict[str, Any]:
        info = self.call("INFO", "memory")
        used = next(
            int(line.split(":")[1]) for line in info.splitlines() if line.startswith("used_memory:")
        )
        groups = self.groups()
        return {
            "used_memory": used,
            "events_len": sum(int(self.call("XLEN", stream)) for stream in self.streams),
            "dead_len": int(self.call("XLEN", self.dead)),
            "groups": len(groups),
            "pending": sum(int(g["pending"]) for g in groups.values()),
        }


def _sid(text: str) -> tuple[int, int]:
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


def _event_id(fields: dict[str, str]) -> str | None:
    try:
        return json.loads(fields.get("e", ""))["id"]
    except (ValueError, KeyError, TypeError):
        return None


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Published:
    seq: int
    id: str
    poison: bool
    sent: float = 0.0  # when the publish call that Redis accepted began
    accepted: float | None = None  # when it returned
    failures: int = 0


@dataclass
class RedisFault:
    kind: str
    snapshot_at: float = 0.0
    down_at: float = 0.0
    up_at: float = 0.0
    unacked: dict[str, set[str]] = field(default_factory=dict)
    recreated: dict[str, float] = field(default_factory=dict)  # group -> first seen again


@dataclass
class Kill:
    at: float
    slot: int
    durable: bool
    victim: str | None
    replacement: int | None = None  # index into Workers.procs


class Run:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.app = f"chaos-{secrets.token_hex(4)}"
        self.workdir = Path(tempfile.mkdtemp(prefix="actorbus-chaos-"))
        self.server = RedisServer(
            appendonly=cfg.persistence == "aof", extra_config={"appendfsync": cfg.appendfsync}
        )
        self.workers = Workers(cfg, self.server, self.app, self.workdir)
        self.inspector = Inspector(self.server, self.app, cfg.partitions)
        self.published: list[Published] = []
        for seq in range(cfg.events):
            poison = cfg.poison_every > 0 and seq % cfg.poison_every == cfg.poison_every // 2
            self.published.append(Published(seq, Envelope(type="x").id, poison))
        self.ids = {p.seq: p.id for p in self.published}
        self.journals = Journals(self.workers, self.ids)
        self.accepted = 0
        self.publishing_done = False
        self.publish_started = 0.0
        self.publish_ended = 0.0
        self.lock = anyio.Lock()
        self.kills: list[Kill] = []
        self.redis_faults: list[RedisFault] = []
        self.samples: list[dict[str, Any]] = []
        self.redis_down = False

    # -- producer --

    async def produce(self, system: ActorSystem) -> None:
        counter = iter(self.published)
        start = time.monotonic()
        self.publish_started = time.time()

        async def publisher(items: Iterator[Published]) -> None:
            for item in items:
                delay = start + item.seq / self.cfg.rate - time.monotonic()
                if delay > 0:
                    await anyio.sleep(delay)
                key = self.cfg.key(item.seq)
                envelope = Envelope(
                    type="chaos.tick",
                    data=Tick(item.seq, item.poison, key),
                    id=item.id,
                    scope=Scope.APP,
                    source="chaos-producer",
                    headers={PARTITION_KEY: key} if key is not None else {},
                )
                while True:
                    item.sent = time.time()
                    try:
                        await system.publish(envelope)
                    except TransportError:
                        item.failures += 1
                        await anyio.sleep(0.1)
                        continue
                    item.accepted = time.time()
                    self.accepted += 1
                    break

        async with anyio.create_task_group() as tg:
            for task in range(PUBLISH_TASKS):
                if self.cfg.keys:
                    # Each key's events from one task, in order (as the contract asks).
                    own = [p for p in self.published if self._task_of(p) == task]
                    tg.start_soon(publisher, iter(own))
                else:
                    tg.start_soon(publisher, counter)
        self.publish_ended = time.time()
        self.publishing_done = True

    def _task_of(self, item: Published) -> int:
        """The publishing task of a keyed event: the same for every event of a key."""
        return item.seq % self.cfg.keys % PUBLISH_TASKS

    # -- faults --

    async def kill_loop(self) -> None:
        durable_turn = True
        interval = self.cfg.soak_kill_interval if self.cfg.soak else self.cfg.kill_interval
        if interval <= 0:
            return
        spared = {0} if self.cfg.soak else set()
        async with anyio.create_task_group() as tg:
            while not self.publishing_done:
                await anyio.sleep(interval * self.rng.uniform(0.75, 1.25))
                if self.publishing_done:
                    break
                async with self.lock:
                    candidates = [
                        slot
                        for slot, p in self.workers.current.items()
                        if p.ready is not None
                        and p.alive
                        and slot not in spared
                        and self.workers.durable_slot(slot) == durable_turn
                    ]
                    if not candidates:
                        candidates = [
                            slot
                            for slot, p in self.workers.current.items()
                            if p.ready is not None and p.alive and slot not in spared
                        ]
                    ready = [p for p in self.workers.current.values() if p.ready and p.alive]
                    if not candidates or len(ready) < 2:  # never the last running worker
                        continue
                    slot = self.rng.choice(candidates)
                    victim = self.workers.current[slot]
                    kill = Kill(time.time(), slot, victim.durable, victim.instance)
                    self.kills.append(kill)
                    await self.workers.kill(victim)
                    durable_turn = not durable_turn
                    tg.start_soon(self._replace, kill)

    async def _replace(self, kill: Kill) -> None:
        proc = await self.workers.start(kill.slot)
        kill.replacement = self.workers.procs.index(proc)

    async def redis_fault_loop(self) -> None:
        async with anyio.create_task_group() as tg:
            await self._redis_faults(tg)

    async def _redis_faults(self, tg: anyio.abc.TaskGroup) -> None:
        faults = self.cfg.faults()
        for n, kind in enumerate(faults, start=1):
            threshold = self.cfg.events * n / (len(faults) + 1)
            while self.accepted < threshold:  # noqa: ASYNC110 - polls the producer's count
                await anyio.sleep(0.05)
            async with self.lock:
                fault = RedisFault(kind)
                self.inspector.poll_dead()
                fault.snapshot_at = time.time()
                if self.cfg.persistence == "none":
                    fault.unacked = await anyio.to_thread.run_sync(self.inspector.unacked)
                fault.down_at = time.time()
                self.redis_down = True
                if kind == "shutdown":
                    await anyio.to_thread.run_sync(self.server.stop)
                else:
                    await anyio.to_thread.run_sync(self.server.kill)
                await anyio.sleep(self.cfg.outage)
                await anyio.to_thread.run_sync(self.server.start)
                fault.up_at = time.time()
                self.redis_down = False
                self.redis_faults.append(fault)
                if self.cfg.persistence == "none":
                    tg.start_soon(self._watch_groups, fault)

    async def _watch_groups(self, fault: RedisFault) -> None:
        """Note when each consumer group, lost with Redis's data, exists again."""
        wanted = {f"g:{GROUP}"} | {
            f"b:{self.workers.name(slot)}"
            for slot in range(self.cfg.workers)
            if self.workers.durable_slot(slot)
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not wanted <= set(fault.recreated):
            with contextlib.suppress(OSError):
                groups = await anyio.to_thread.run_sync(self.inspector.groups)
                now = time.time()
                for name in groups:
                    fault.recreated.setdefault(name, now)
            await anyio.sleep(0.05)

    async def monitor(self) -> None:
        next_sample = 0.0
        while True:
            if not self.redis_down:
                await anyio.to_thread.run_sync(self.inspector.poll_dead)
            if self.cfg.soak and time.monotonic() >= next_sample and not self.redis_down:
                next_sample = time.monotonic() + 5.0
                await self.sample()
            await anyio.sleep(1.0)

    async def sample(self, label: str = "") -> None:
        with contextlib.suppress(OSError):
            memory = await anyio.to_thread.run_sync(self.inspector.memory)
            self.samples.append(
                {
                    "t": round(time.time() - self.publish_started, 1),
                    "accepted": self.accepted,
                    "label": label,
                    **memory,
                    "rss": self.workers.rss(),
                }
            )

    # -- settling and accounting --

    def outstanding(self) -> int:
        """How many owed deliveries are still missing, Redis's own losses apart."""
        accounting = self.account()
        return accounting.lost + len(accounting.poison_missing)

    def account(self) -> Accounting:
        handled = self.journals.refresh()
        return Accounting(self, handled)

    async def settle(self) -> float:
        started = time.monotonic()
        deadline = started + self.cfg.settle
        while time.monotonic() < deadline:
            await anyio.to_thread.run_sync(self.inspector.poll_dead)
            if self.outstanding() == 0:
                break
            await anyio.sleep(1.0)
        return time.monotonic() - started

    async def main(self) -> dict[str, Any]:
        started = time.monotonic()
        await anyio.to_thread.run_sync(self.server.start)
        async with anyio.create_task_group() as tg:
            async with anyio.create_task_group() as starting:
                for slot in range(self.cfg.workers):
                    starting.start_soon(self.workers.start, slot)
            tg.start_soon(self.workers.watch)
            tg.start_soon(self.monitor)
            transport = RedisTransport(
                self.server.url,
                publish_timeout=1.0,
                partitions=self.cfg.partitions,
                lease=self.cfg.lease,
                **TRANSPORT_SETTINGS,
            )
            async with ActorSystem(self.app, transport=transport) as producer:
                if self.cfg.soak:
                    await self.sample("start")
                async with anyio.create_task_group() as faults:
                    faults.start_soon(self.kill_loop)
                    faults.start_soon(self.redis_fault_loop)
                    if self.cfg.soak:
                        faults.start_soon(self._soak_marks)
                    await self.produce(producer)
            settle = await self.settle()
            if self.cfg.soak:
                await self.sample("end")
            await self.workers.stop_all()
            await anyio.to_thread.run_sync(self.inspector.poll_dead)
            end_groups = await anyio.to_thread.run_sync(self.inspector.groups)
            tg.cancel_scope.cancel()
        wall = time.monotonic() - started
        return self.report(wall, settle, end_groups)

    async def _soak_marks(self) -> None:
        for fraction, label in ((0.05, "early"), (0.5, "middle")):
            while self.accepted < self.cfg.events * fraction:  # noqa: ASYNC110 - a count
                await anyio.sleep(0.2)
            await self.sample(label)
        while not self.publishing_done:  # noqa: ASYNC110 - a flag the producer sets
            await anyio.sleep(0.2)
        await self.sample("published")

    def report(self, wall: float, settle: float, end_groups: dict[str, Any]) -> dict[str, Any]:
        acc = self.account()
        recovery_kills = []
        for kill in self.kills:
            proc = self.workers.procs[kill.replacement] if kill.replacement is not None else None
            recovery_kills.append(
                {
                    "at": round(kill.at - self.publish_started, 2),
                    "slot": kill.slot,
                    "durable": kill.durable,
                    "victim": kill.victim,
                    "replacement": proc.instance if proc else None,
                    "ready_s": _delta(proc.ready if proc else None, kill.at),
                    "handling_s": _delta(proc.first_handled if proc else None, kill.at),
                }
            )
        recovery_redis = []
        procs = self.workers.procs
        for fault in self.redis_faults:
            after = self.journals.first_handled_after(fault.up_at)
            live = [
                i
                for i, p in enumerate(self.workers.procs)
                if p.ready is not None
                and p.ready <= fault.up_at
                and (p.killed or 1e18) > fault.up_at
            ]
            # A worker killed before it handled anything after the restart has no say.
            handling = [after.get(i) for i in live if after.get(i) or procs[i].killed is None]
            firsts = [
                p.accepted for p in self.published if p.accepted and p.accepted >= fault.up_at
            ]
            recovery_redis.append(
                {
                    "kind": fault.kind,
                    "at": round(fault.down_at - self.publish_started, 2),
                    "down_s": round(fault.up_at - fault.down_at, 2),
                    "first_publish_s": _delta(min(firsts, default=None), fault.up_at),
                    "first_handled_s": _delta(min(after.values(), default=None), fault.up_at),
                    "groups_back_s": {
                        name: round(at - fault.up_at, 2)
                        for name, at in sorted(fault.recreated.items())
                        if not name.startswith("b:~")
                    },
                    "all_workers_handling_s": None
                    if None in handling
                    else _delta(max(handling, default=None), fault.up_at),
                }
            )
        soak = soak_verdicts(self.samples, self.cfg.dead_maxlen) if self.cfg.soak else None
        ok = acc.lost == 0 and not acc.poison_missing and not self.workers.crashes
        ok = ok and acc.ledger_duplicates == 0 and acc.handled.foreign == 0
        ok = ok and acc.order["violations"] == 0
        if soak is not None:
            ok = ok and soak["bounded"]
        return {
            "ok": ok,
            "config": asdict(self.cfg),
            "app": self.app,
            "wall_s": round(wall, 1),
            "settle_s": round(settle, 1),
            "publish_s": round(self.publish_ended - self.publish_started, 1),
            **acc.summary(),
            "kills": recovery_kills,
            "redis_faults": recovery_redis,
            "worker_start_failures": self.workers.start_failures,
            "crashes": self.workers.crashes,
            "end_groups": {
                name: {"pending": int(g["pending"]), "lag": g.get("lag")}
                for name, g in end_groups.items()
            },
            # g:work and the durable instances' groups: all acknowledged after a clean stop
            "pending_at_end": sum(
                int(g["pending"]) for name, g in end_groups.items() if not name.startswith("b:~")
            ),
            "processes": [p.summary() for p in self.workers.procs],
            "samples": self.samples,
            "soak": soak,
            "workdir": str(self.workdir),
        }


def _delta(value: float | None, since: float) -> float | None:
    return None if value is None else round(value - since, 2)


class Accounting:
    """Who owed what, and what is missing.

    - **group** ``work``: every accepted non-poison event, handled at least once by some
      member (a journal line or a ledger entry).
    - **broadcast**, durable instance ``wN``: every accepted non-poison event published
      (the publish call begun) after its first process was ready, handled by some process
      with that name (it resumes after a kill: what was pending in the killed process and
      what was published meanwhile). Anonymous instance still running at the end: every
      event published after it was ready. A killed anonymous instance owes nothing: its
      subscription dies with it (what it handled is reported, not checked).
    - **poison**: every accepted poison event is in the dead-letter stream for group
      ``g:work`` with its ``PoisonError``.
    - A missing event is **lost by Redis** (not counted as lost) when Redis's own
      persistence setting allows it: without persistence, it was still unacknowledged by
      that subscriber's consumer group when Redis stopped (snapshot taken just before, or
      accepted after the snapshot), or it was accepted after the restart but before that
      consumer group existed again (Redis lost the group; a member recreates it when it
      starts, at the end of the stream, unless a member ran across the restart); with AOF
      ``everysec`` and a SIGKILL, it was accepted within `FSYNC_WINDOW` s before the kill.
      Everything else missing is **lost**.
    """

    def __init__(self, run: Run, handled: Handled) -> None:
        self.run = run
        self.handled = handled
        cfg = run.cfg
        accepted = [p for p in run.published if p.accepted is not None]
        self.accepted = accepted
        self.by_id = {p.id: p for p in accepted}
        normal = [p for p in accepted if not p.poison]
        ledger = _read_lines(run.workers.ledger)
        ledger_counts = Counter(ledger)
        self.ledger_duplicates = sum(n - 1 for n in ledger_counts.values())
        seq_of = {p.id: p.seq for p in run.published}
        group_done = set(handled.group) | {seq_of[i] for i in ledger_counts if i in seq_of}

        # owed: subscriber -> (consumer group in Redis, events owed)
        self.owed: dict[str, tuple[str, list[Published]]] = {"group": (f"g:{GROUP}", normal)}
        done: dict[str, set[int]] = {"group": group_done}
        procs = run.workers.procs
        names = {p.instance for p in procs if p.durable and p.instance}
        for name in sorted(names):
            first_ready = min(p.ready for p in procs if p.instance == name and p.ready)
            self.owed[f"broadcast {name}"] = (
                f"b:{name}",
                [p for p in normal if p.sent > first_ready],
            )
            done[f"broadcast {name}"] = set(handled.broadcast.get(name, ()))
        for proc in procs:
            if not proc.durable and proc.ready and proc.killed is None and not proc.crashed:
                self.owed[f"broadcast {proc.instance}"] = (
                    f"b:{proc.instance}",
                    [p for p in normal if p.sent > proc.ready],
                )
                done[f"broadcast {proc.instance}"] = set(handled.broadcast.get(proc.instance, ()))

        self.missing: dict[str, list[Published]] = {}
        self.lost_by_redis: dict[str, list[Published]] = {}
        self.lost_items: dict[str, list[Published]] = {}
        for who, (group, owed) in self.owed.items():
            missing = [p for p in owed if p.seq not in done[who]]
            self.missing[who] = missing
            excused = [p for p in missing if self._redis_lost(p, group)]
            self.lost_by_redis[who] = excused
            excused_ids = {p.seq for p in excused}
            self.lost_items[who] = [p for p in missing if p.seq not in excused_ids]
        self.lost = sum(len(v) for v in self.lost_items.values())

        # poison: dead letters of group g:work
        dead = run.inspector.dead_seen.values()
        poison_dead: dict[str, list[str]] = defaultdict(list)
        self.dead_groups: Counter[str] = Counter()
        self.dead_non_poison: list[str] = []
        for fields in dead:
            event_id = _event_id(fields)
            self.dead_groups[fields.get("group", "?").split(":")[0]] += 1
            item = self.by_id.get(event_id or "")
            if item is not None and not item.poison:
                self.dead_non_poison.append(
                    f"{event_id} {fields.get('group')} {fields.get('error')}"
                )
            if fields.get("group") == f"g:{GROUP}" and "PoisonError" in fields.get("error", ""):
                poison_dead[event_id or ""].append(fields["error"])
        poison = [p for p in accepted if p.poison]
        self.poison = poison
        self.poison_dead = poison_dead
        self.order = order_violations(handled)
        missing_poison = [p for p in poison if p.id not in poison_dead]
        self.poison_lost_by_redis = [p for p in missing_poison if self._redis_lost(p, f"g:{GROUP}")]
        excused = {p.seq for p in self.poison_lost_by_redis}
        self.poison_missing = [p for p in missing_poison if p.seq not in excused]
        self.cfg = cfg

    def _redis_lost(self, item: Published, group: str) -> bool:
        """Whether Redis's persistence setting allows `item` to be missing for `group`.

        Redis took the event at some moment between `sent` and `accepted` (the publish
        call's start and return), so a window counts if that interval meets it.
        """
        assert item.accepted is not None
        for fault in self.run.redis_faults:
            if self.run.cfg.persistence == "none":
                if item.id in fault.unacked.get(group, ()):
                    return True
                # Taken after the snapshot and before the restart, or after the restart
                # but before the group, lost with Redis's data, existed again.
                back = max(fault.up_at, fault.recreated.get(group, 0.0))
                if item.accepted >= fault.snapshot_at and item.sent < back:
                    return True
            elif (
                fault.kind == "sigkill"
                and self.run.cfg.appendfsync != "always"
                and item.accepted >= fault.down_at - FSYNC_WINDOW
                and item.sent < fault.up_at
            ):
                return True
        return False

    def summary(self) -> dict[str, Any]:
        h = self.handled
        group_deliveries = sum(h.group.values())
        broadcast_deliveries = sum(sum(c.values()) for c in h.broadcast.values())
        broadcast_unique = sum(len(c) for c in h.broadcast.values())
        killed_anon = [
            p
            for p in self.run.workers.procs
            if not p.durable and (p.killed is not None or p.crashed)
        ]
        procs = self.run.workers.procs
        return {
            "published": len(self.accepted),
            "publish_failures": sum(p.failures for p in self.run.published),
            "events_retried": sum(1 for p in self.run.published if p.failures),
            "poison_published": len(self.poison),
            "group": {
                "owed": len(self.owed["group"][1]),
                "handled": len(self.owed["group"][1]) - len(self.missing["group"]),
                "deliveries": group_deliveries,
                "duplicates": group_deliveries - len(h.group),
                "skipped_by_ledger": h.group_skipped,
                "lost_by_redis": len(self.lost_by_redis["group"]),
                "lost": len(self.lost_items["group"]),
            },
            "ledger_duplicates": self.ledger_duplicates,
            "broadcast": {
                who: {
                    "owed": len(owed),
                    "handled": len(owed) - len(self.missing[who]),
                    "lost_by_redis": len(self.lost_by_redis[who]),
                    "lost": len(self.lost_items[who]),
                    "duplicates": sum(h.broadcast.get(who.split()[1], Counter()).values())
                    - len(h.broadcast.get(who.split()[1], ())),
                }
                for who, (_, owed) in self.owed.items()
                if who != "group"
            },
            "broadcast_deliveries": broadcast_deliveries,
            "broadcast_duplicates": broadcast_deliveries - broadcast_unique,
            "killed_anonymous_handled": sum(
                h.per_proc_broadcast.get(procs.index(p), 0) for p in killed_anon
            ),
            "poison": {
                "published": len(self.poison),
                "dead_lettered": sum(1 for p in self.poison if p.id in self.poison_dead),
                "missing": [p.id for p in self.poison_missing],
                "lost_by_redis": len(self.poison_lost_by_redis),
                "example_error": next(iter(self.poison_dead.values()), [""])[0],
            },
            "dead_letters": dict(self.dead_groups),
            "dead_non_poison": self.dead_non_poison[:20],
            "lost_by_redis": sum(len(v) for v in self.lost_by_redis.values())
            + len(self.poison_lost_by_redis),
            "lost": self.lost + len(self.poison_missing),
            "lost_examples": {
                who: [
                    (p.seq, p.id, round(p.accepted - self.run.publish_started, 3)) for p in v[:10]
                ]
                for who, v in self.lost_items.items()
                if v
            },
            "order": self.order,
            "journal_torn_lines": h.torn,
            "journal_foreign_lines": h.foreign,
        }


def order_violations(handled: Handled) -> dict[str, Any]:
    """Per-key order in the group, over the events it handled exactly once (module docs)."""
    once = {seq for seq, count in handled.group.items() if count == 1}
    by_key: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for ts, key, seq in handled.group_order:
        if seq in once:
            by_key[key].append((ts, seq))
    violations: list[tuple[str, int, int]] = []
    for key, handlings in by_key.items():
        highest = -1
        for _, seq in sorted(handlings):
            if seq < highest:
                violations.append((key, seq, highest))
            highest = max(highest, seq)
    return {
        "keys": len(by_key),
        "checked": sum(len(v) for v in by_key.values()),
        "violations": len(violations),
        "examples": violations[:10],  # (key, seq, a greater seq of that key handled before)
    }


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line]


def soak_verdicts(samples: list[dict[str, Any]], dead_maxlen: int) -> dict[str, Any]:
    """Bounded = no growth worth the name between the middle and the end of the soak.

    The stream must stay trimmed (below 20,000 entries however many were published), and
    from the middle sample to the end Redis ``used_memory`` and the RSS of the worker that
    lived through the whole soak (slot 0) may grow by at most 8 MiB each — a leak of
    ~80 bytes per event over the second half would exceed it. The dead-letter stream must
    stay near ``dead_maxlen`` (2,000 in a soak, which dead-letters ~8,000); pending
    entries are reported.
    """
    by_label = {s["label"]: s for s in samples if s["label"]}
    middle, end = by_label.get("middle"), by_label.get("end")
    if middle is None or end is None:
        return {"bounded": False, "reason": "missing samples"}

    def rss0(sample: dict[str, Any]) -> int:
        return next((v for k, v in sample["rss"].items() if k.startswith("slot0.")), 0)

    max_len = max(s["events_len"] for s in samples)
    max_dead = max(s["dead_len"] for s in samples)
    growth_redis = end["used_memory"] - middle["used_memory"]
    growth_rss = rss0(end) - rss0(middle)
    checks = {
        "stream_trimmed": max_len < 20_000,
        # MAXLEN ~ removes whole nodes (100 entries): a little above the cap is normal.
        "dead_letters_capped": max_dead <= dead_maxlen * 1.2 + 200,
        "redis_memory": growth_redis <= 8 * MiB,
        "worker_rss": growth_rss <= 8 * MiB,
    }
    return {
        "bounded": all(checks.values()),
        "checks": checks,
        "max_events_len": max_len,
        "max_dead_len": max_dead,
        "redis_growth_middle_to_end": growth_redis,
        "slot0_rss_growth_middle_to_end": growth_rss,
    }


# -- output -----------------------------------------------------------------------------------


def _fmt(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    return f"{statistics.median(got):.2f} / {max(got):.2f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def table(results: list[dict[str, Any]]) -> str:
    cols = [f"{r['config']['persistence']} ({r['config']['backend']})" for r in results]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, get: Any) -> None:
        rows.append((label, [str(get(r)) for r in results]))

    row("published (accepted by Redis)", lambda r: r["published"])
    row(
        "  publishes retried after TransportError",
        lambda r: f"{r['events_retried']} events, {r['publish_failures']} failures",
    )
    row("  poison among them", lambda r: r["poison_published"])
    row("group 'work': handled / owed", lambda r: f"{r['group']['handled']} / {r['group']['owed']}")
    row(
        "  deliveries / duplicates",
        lambda r: f"{r['group']['deliveries']} / {r['group']['duplicates']}",
    )
    row("  duplicates skipped by ledger (by id)", lambda r: r["group"]["skipped_by_ledger"])
    row("  side effects applied twice", lambda r: r["ledger_duplicates"])
    if any(r["config"]["keys"] for r in results):
        row(
            "  per-key order: violations / checked",
            lambda r: f"{r['order']['violations']} / {r['order']['checked']}",
        )
    row(
        "broadcast checked: handled / owed",
        lambda r: " ".join(
            f"{w.split()[1]}:{v['handled']}/{v['owed']}" for w, v in r["broadcast"].items()
        ),
    )
    row("  broadcast duplicates (all instances)", lambda r: r["broadcast_duplicates"])
    row("  handled by killed anonymous (not owed)", lambda r: r["killed_anonymous_handled"])
    row(
        "poison in dead-letter stream (g:work)",
        lambda r: f"{r['poison']['dead_lettered']} / {r['poison']['published']}",
    )
    row("  dead letters by group kind", lambda r: r["dead_letters"])
    row("  non-poison dead letters", lambda r: len(r["dead_non_poison"]))
    row("lost by Redis persistence setting", lambda r: r["lost_by_redis"])
    row("LOST (accepted, never handled)", lambda r: r["lost"])
    row(
        "worker kills (durable/fresh) / crashes",
        lambda r: (
            f"{len(r['kills'])} ({sum(k['durable'] for k in r['kills'])}/"
            f"{sum(not k['durable'] for k in r['kills'])}) / {len(r['crashes'])}"
        ),
    )
    row(
        "kill -> replacement ready, s (med/max)", lambda r: _fmt([k["ready_s"] for k in r["kills"]])
    )
    row("kill -> replacement handling, s", lambda r: _fmt([k["handling_s"] for k in r["kills"]]))
    for n in range(max(len(r["redis_faults"]) for r in results)):

        def fault(r: dict[str, Any], n: int = n) -> str:
            if n >= len(r["redis_faults"]):
                return "-"
            f = r["redis_faults"][n]
            return (
                f"{f['kind']}: down {f['down_s']}s, publish +{_s(f['first_publish_s'])}, "
                f"handle +{_s(f['first_handled_s'])}, all +{_s(f['all_workers_handling_s'])}"
            )

        row(f"Redis fault {n + 1} (after restart)", fault)
    row("pending at end (g:work, durable b:)", lambda r: r["pending_at_end"])
    row(
        "publish / settle / wall, s",
        lambda r: f"{r['publish_s']} / {r['settle_s']} / {r['wall_s']}",
    )
    row("verdict", lambda r: "OK" if r["ok"] else "FAILED")
    width = max(len(label) for label, _ in rows)
    colw = [max(len(c), *(len(v[i]) for _, v in rows)) for i, c in enumerate(cols)]
    lines = [" " * width + " | " + " | ".join(c.ljust(w) for c, w in zip(cols, colw, strict=True))]
    lines.append("-" * len(lines[0]))
    for label, values in rows:
        lines.append(
            label.ljust(width)
            + " | "
            + " | ".join(v.ljust(w) for v, w in zip(values, colw, strict=True))
        )
    return "\n".join(lines)


def soak_table(result: dict[str, Any]) -> str:
    lines = ["sample     accepted  used_memory  events_len  dead_len  pending  worker RSS (MiB)"]
    for s in result["samples"]:
        if not s["label"]:
            continue
        rss = " ".join(f"{k.split('.')[0]}={v / MiB:.1f}" for k, v in s["rss"].items())
        lines.append(
            f"{s['label']:<10} {s['accepted']:>8}  {s['used_memory'] / MiB:>8.2f}MiB  "
            f"{s['events_len']:>10}  {s['dead_len']:>8}  {s['pending']:>7}  {rss}"
        )
    lines.append(f"verdicts: {result['soak']}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    from importlib import metadata  # noqa: PLC0415

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version,
        **{name: metadata.version(name) for name in ("anyio", "trio", "hiredis")},
        "loadavg": os.getloadavg(),
    }


def run_one(cfg: Config) -> dict[str, Any]:
    run = Run(cfg)
    try:
        result = anyio.run(run.main, backend=cfg.backend)
    finally:
        run.server.close()
    if result["ok"] and not cfg.keep:
        shutil.rmtree(run.workdir, ignore_errors=True)
        result["workdir"] = None
    return result


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[Config]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--persistence", choices=["aof", "none", "both"], default="both")
    parser.add_argument("--appendfsync", choices=["everysec", "always"], default="everysec")
    parser.add_argument(
        "--backend",
        default="asyncio",
        help="asyncio, trio, or one per persistence mode (trio,asyncio with --persistence both)",
    )
    parser.add_argument("--rate", type=float, default=500.0, help="events published per second")
    parser.add_argument(
        "--kill-interval", type=float, default=2.0, help="s between worker kills (0: none)"
    )
    parser.add_argument(
        "--poison-every", type=int, default=100, help="one poison event in N (0: none)"
    )
    parser.add_argument("--outage", type=float, default=2.0, help="s Redis stays down per fault")
    parser.add_argument("--settle", type=float, default=120.0, help="max s to wait for stragglers")
    parser.add_argument("--no-redis-faults", action="store_true")
    parser.add_argument(
        "--soak", type=int, default=0, metavar="N", help="soak run of N events instead"
    )
    parser.add_argument("--soak-kill-interval", type=float, default=10.0)
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the app")
    parser.add_argument("--keys", type=int, default=0, help="keys of the events (0: none)")
    parser.add_argument("--lease", type=float, default=2.0, help="s of partition lease")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the journals and logs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    modes = ["aof", "none"] if args.persistence == "both" else [args.persistence]
    if args.soak and args.persistence == "both":
        modes = ["aof"]
    backends = args.backend.split(",")
    if len(backends) == 1:
        backends *= len(modes)
    if len(backends) != len(modes) or not set(backends) <= {"asyncio", "trio"}:
        parser.error("--backend: asyncio or trio, or one per persistence mode")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    configs = [
        Config(
            events=args.soak or args.events,
            workers=args.workers,
            persistence=mode,
            appendfsync=args.appendfsync,
            backend=backend,
            rate=args.rate,
            kill_interval=args.kill_interval,
            poison_every=args.poison_every,
            outage=args.outage,
            settle=args.settle,
            redis_faults=not args.no_redis_faults,
            soak=bool(args.soak),
            soak_kill_interval=args.soak_kill_interval,
            # A soak dead-letters ~4 % of its events (poison, in each broadcast group too):
            # a lower cap shows that the dead-letter stream stays bounded.
            dead_maxlen=2_000 if args.soak else 10_000,
            seed=seed,
            keep=args.keep,
            partitions=args.partitions,
            keys=args.keys,
            lease=args.lease,
        )
        for mode, backend in zip(modes, backends, strict=True)
    ]
    return args, configs


def main(argv: list[str] | None = None) -> int:
    args, configs = parse(argv)
    results = []
    for cfg in configs:
        print(
            f"chaos: {'soak ' if cfg.soak else ''}{cfg.events} events, {cfg.workers} workers, "
            f"persistence={cfg.persistence} ({cfg.appendfsync}), backend={cfg.backend}, "
            f"rate={cfg.rate}/s, partitions={cfg.partitions}, keys={cfg.keys}, seed={cfg.seed}",
            flush=True,
        )
        results.append(run_one(cfg))
    print(table(results))
    for result in results:
        if result["soak"] is not None:
            print(soak_table(result))
        for name, examples in result["lost_examples"].items():
            print(f"LOST for {name} (seq, id, accepted at s): {examples}")
        if result["order"]["violations"]:
            print(f"per-key order violations (key, seq, greater seq before): {result['order']}")
        if result["poison"]["missing"]:
            print(f"poison not dead-lettered: {result['poison']['missing'][:10]}")
        for crash in result["crashes"]:
            print(f"worker crashed: {crash}")
        if result["workdir"]:
            print(f"journals and worker logs kept in {result['workdir']}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"machine": machine(), "results": results}, indent=1, default=str)
        )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
