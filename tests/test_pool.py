"""`actorbus run --workers N`: the supervised pool, run as a user runs it (subprocesses).

The targets are in `pool_targets.py`: their workers append what they do to a record file
(`<instance> <pid> <what>`), which is what these tests read. The Redis tests share one
real redis-server; each uses its own application name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from redis_support import RedisServer, new_app

from actorbus import ActorSystem, Envelope, Scope
from actorbus._pool import cpu_count
from actorbus._pool_worker import host_instance, instance_base
from actorbus._transport import Transport
from actorbus._worker import SAME_REQUEST, StopSignals
from actorbus.redis import RedisTransport
from actorbus.testing import MemoryTransport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TESTS = Path(__file__).parent
pytestmark = pytest.mark.slow

BACKENDS = [
    pytest.param(["--backend", "asyncio"], id="asyncio"),
    pytest.param(["--backend", "trio"], id="trio"),
]


class PoolProcess:
    """One `actorbus run ... --workers N` process, with its record file and its output."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.record = tmp_path / "record"
        self.record.touch()
        self._stderr_path = tmp_path / f"stderr-{time.monotonic_ns()}"
        env = {**os.environ, "ACTORBUS_TEST_RECORD": str(self.record), **(env or {})}
        with self._stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "actorbus", "run", *args],
                cwd=TESTS,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # a process group of its own, as in a terminal
            )
        self.workers: set[int] = set()  # every worker pid seen, to clean up after a failure

    @property
    def stderr(self) -> str:
        return self._stderr_path.read_text()

    def lines(self) -> list[tuple[str, int, str]]:
        """The record: (instance, pid, what) per line."""
        found = []
        for line in self.record.read_text().splitlines():
            instance, pid, what = line.split(" ", 2)
            found.append((instance, int(pid), what))
        self.workers |= {pid for _, pid, _ in found}
        return found

    def jobs(self) -> set[int]:
        return {int(what.split()[1]) for _, _, what in self.lines() if what.startswith("job ")}

    def started(self) -> dict[str, int]:
        """The latest pid of each instance that started."""
        return {instance: pid for instance, pid, what in self.lines() if what == "started"}

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            code = self.process.poll()
            assert code is None, f"the pool exited ({code}) before {what}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.stderr}"
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def kill_all(self) -> None:
        """Clean-up: this pool's supervisor and the workers it recorded, whatever is left."""
        self.process.kill()
        self.process.wait()
        for pid in self.workers | set(children(self.process.pid)):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped yet, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[Callable[..., PoolProcess]]:
    started: list[PoolProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> PoolProcess:
        pool = PoolProcess(tmp_path, *args, env=env)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.kill_all()


def publish(url: str, app: str, numbers: range) -> None:
    """Publish a `pool.job` for each number, as another instance of `app`."""

    async def go() -> None:
        async with ActorSystem(app, transport=RedisTransport(url)) as producer:
            await producer.publish_batch(
                Envelope(type="pool.job", data={"n": n}, scope=Scope.APP) for n in numbers
            )

    anyio.run(go)


def redis_env(server: RedisServer, **more: str) -> dict[str, str]:
    return {"ACTORBUS_TEST_APP": new_app("pool"), "ACTORBUS_TEST_REDIS": server.url, **more}


# -- with Redis -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", [*BACKENDS, pytest.param(["--backend", "asyncio", "--uvloop"], id="uvloop")]
)
def test_two_workers_share_a_group_under_their_own_names(
    redis_server: RedisServer, pools: Callable[..., PoolProcess], backend: list[str]
) -> None:
    env = redis_env(redis_server)
    base = new_app("w")
    pool = pools(
        *["pool_targets:make_system", "--workers", "2", "--instance", base, *backend],
        *["--status", "0.2"],
        env=env,
    )
    pool.wait_for(lambda: len(pool.started()) == 2, "both workers started")
    publish(redis_server.url, env["ACTORBUS_TEST_APP"], range(40))
    pool.wait_for(lambda: pool.jobs() == set(range(40)), "every job handled")
    assert pool.stop() == 0, pool.stderr

    handlers = {instance for instance, _, what in pool.lines() if what.startswith("job ")}
    assert handlers == {f"{base}-0", f"{base}-1"}  # both consumed, each under its name
    stopped = {instance for instance, _, what in pool.lines() if what == "stopped"}
    assert stopped == {f"{base}-0", f"{base}-1"}  # on_stop ran: a graceful stop
    stderr = pool.stderr
    assert f"[{base}-0] actorbus.worker" in stderr  # the workers' logs name them
    assert f"[{base}-1] actorbus.worker" in stderr
    status = [line for line in stderr.splitlines() if line.startswith("2/2 workers | ")]
    assert status, stderr
    assert "Recorder: " in status[-1]
    assert "depth" in status[-1]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_worker_is_replaced_and_nothing_is_lost(
    redis_server: RedisServer, pools: Callable[..., PoolProcess], backend: list[str]
) -> None:
    # The target's transport is named "own": the workers are own-0 and own-1.
    env = redis_env(redis_server, ACTORBUS_TEST_DELAY="0.05")
    pool = pools("pool_targets:make_named_system", "--workers", "2", *backend, env=env)
    pool.wait_for(lambda: len(pool.started()) == 2, "both workers started")
    publish(redis_server.url, env["ACTORBUS_TEST_APP"], range(60))
    pool.wait_for(lambda: len(pool.jobs()) >= 10, "some jobs handled")
    victim = pool.started()["own-0"]
    os.kill(victim, signal.SIGKILL)

    pool.wait_for(lambda: pool.started()["own-0"] != victim, "own-0 replaced")
    publish(redis_server.url, env["ACTORBUS_TEST_APP"], range(60, 80))  # events keep flowing
    pool.wait_for(lambda: pool.jobs() == set(range(80)), "every job handled")
    assert pool.stop() == 0, pool.stderr
    assert f"worker own-0 (pid {victim}) was killed by SIGKILL; restarting it" in pool.stderr
    assert not alive(victim)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_stops_gracefully_and_the_pool_resumes_where_it_stopped(
    redis_server: RedisServer, pools: Callable[..., PoolProcess], backend: list[str]
) -> None:
    env = redis_env(redis_server, ACTORBUS_TEST_DELAY="0.05")
    args = ["pool_targets:make_system", "--workers", "2", "--instance", "resume", *backend]
    first = pools(*args, env=env)
    first.wait_for(lambda: len(first.started()) == 2, "both workers started")
    publish(redis_server.url, env["ACTORBUS_TEST_APP"], range(60))
    first.wait_for(lambda: len(first.jobs()) >= 5, "some jobs handled")
    assert first.stop() == 0, first.stderr
    before = first.jobs()
    assert len(before) < 60  # stopped with work left
    assert sorted(i for i, _, what in first.lines() if what == "stopped") == [
        "resume-0",
        "resume-1",
    ]

    # The same names resume the same durable subscriptions: nothing published is lost.
    second = pools(*args, env=env)
    second.wait_for(lambda: before | second.jobs() == set(range(60)), "the rest handled")
    assert second.stop() == 0, second.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_workers_stop_gracefully_when_the_supervisor_is_killed(
    redis_server: RedisServer, pools: Callable[..., PoolProcess], backend: list[str]
) -> None:
    # --redis gives the transport; without --instance the names come from the host's.
    env = redis_env(redis_server, ACTORBUS_REDIS_URL=redis_server.url)
    pool = pools("pool_targets:make_bare_system", "--workers", "2", *backend, env=env)
    pool.wait_for(lambda: len(pool.started()) == 2, "both workers started")
    assert set(pool.started()) == {f"{host_instance()}-0", f"{host_instance()}-1"}
    workers = set(pool.started().values())
    assert workers == set(children(pool.process.pid))
    pool.process.kill()
    pool.process.wait()

    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "orphaned workers still run"
        time.sleep(0.05)
    stopped = {pid for _, pid, what in pool.lines() if what == "stopped"}
    assert stopped == workers  # each ran its on_stop: it stopped gracefully, on its own
    assert "the pool's supervisor is gone: stopping gracefully" in pool.stderr


# -- without Redis --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crash_loop_stops_the_pool_with_the_error_once(
    pools: Callable[..., PoolProcess], backend: list[str]
) -> None:
    pool = pools("pool_targets:make_crashing", "--workers", "1", "--max-restarts", "2", *backend)
    assert pool.wait() == 1
    lines = pool.stderr.splitlines()
    error = "RuntimeError: broken at start: the warehouse is down"
    reports = [line for line in lines if line.startswith("actorbus: ")]
    assert len(reports) == 1, lines
    assert "more than --max-restarts 2" in reports[0]
    assert error in reports[0]
    restarts = [line for line in lines if "restarting it in" in line]
    assert len(restarts) == 2, lines
    assert [error in line for line in restarts] == [True, False]  # then "the same error"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:system", "Error: cannot import module 'no_such_module'"),
        ("broken_target:system", "raised RuntimeError: config missing"),
        ("worker_targets:system", "Error: --workers 2 needs a transport: 'worker_targets:sys"),
        ("pool_targets:make_memory_system", "Error: --workers 2 cannot share"),
        ("pool_targets:make_nameless", "Error: Nameless cannot be given an instance name"),
    ],
)
def test_a_target_that_cannot_run_is_reported_once_in_one_line(
    pools: Callable[..., PoolProcess], target: str, message: str
) -> None:
    pool = pools(target, "--workers", "2")
    assert pool.wait() == 1
    lines = pool.stderr.splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_a_second_signal_kills_the_workers(
    tmp_path: Path, pools: Callable[..., PoolProcess]
) -> None:
    marks = tmp_path / "marks"
    marks.touch()
    env = {"ACTORBUS_TEST_MARKS": str(marks)}
    pool = pools("worker_targets:make_slow_to_stop", "--workers", "1", env=env)
    pool.wait_for(lambda: "started" in marks.read_text().split(), "the worker started")
    (worker,) = children(pool.process.pid)
    pool.process.send_signal(signal.SIGTERM)
    pool.wait_for(lambda: "stopping" in marks.read_text().split(), "a slow graceful stop")
    time.sleep(SAME_REQUEST)  # sooner, the same signal is the first one delivered twice
    assert pool.stop(signal.SIGTERM) == 130
    assert "second SIGTERM: killing the workers now" in pool.stderr
    assert not alive(worker)


def gated_pool(tmp_path: Path, pools: Callable[..., PoolProcess]) -> tuple[PoolProcess, Path]:
    """A pool of one worker, started, whose on_stop waits for the gate file (returned too).

    The worker's target is `pool_targets.make_gated_stop`.
    """
    gate = tmp_path / "gate"
    env = {"ACTORBUS_TEST_GATE": str(gate)}
    pool = pools("pool_targets:make_gated_stop", "--workers", "1", env=env)
    pool.wait_for(lambda: len(pool.started()) == 1, "the worker started")
    return pool, gate


def test_one_request_to_the_process_and_its_group_is_one_signal(
    tmp_path: Path, pools: Callable[..., PoolProcess]
) -> None:
    # `timeout` sends its signal to the process it runs, then to that process's group:
    # the supervisor gets it twice. Found with `timeout N actorbus run ... --dashboard`.
    pool, gate = gated_pool(tmp_path, pools)
    pool.process.send_signal(signal.SIGTERM)
    pool.wait_for(lambda: "stopping the workers gracefully" in pool.stderr, "the first signal")
    os.killpg(pool.process.pid, signal.SIGTERM)  # its own process group (start_new_session)
    pool.wait_for(lambda: any(w == "stopping" for _, _, w in pool.lines()), "its on_stop")
    gate.touch()  # let on_stop finish
    assert pool.wait() == 0, pool.stderr
    assert [what for _, _, what in pool.lines()] == ["started", "stopping", "stopped"]
    assert "second" not in pool.stderr
    assert "SIGTERM again: the same request to stop" in pool.stderr


def test_a_signal_that_also_reaches_the_workers_does_not_force_them(
    tmp_path: Path, pools: Callable[..., PoolProcess]
) -> None:
    # Ctrl+C signals the whole process group, systemd the whole control group: a worker
    # may get the signal after its supervisor asked it to stop. That is its first signal.
    pool, gate = gated_pool(tmp_path, pools)
    (worker,) = pool.started().values()
    pool.process.send_signal(signal.SIGTERM)
    pool.wait_for(lambda: any(w == "stopping" for _, _, w in pool.lines()), "its on_stop")
    os.kill(worker, signal.SIGTERM)
    gate.touch()  # let on_stop finish
    assert pool.wait() == 0, pool.stderr
    assert [what for _, _, what in pool.lines()] == ["started", "stopping", "stopped"]


def test_ctrl_c_while_the_workers_start_stops_them_cleanly(
    tmp_path: Path, pools: Callable[..., PoolProcess]
) -> None:
    marks, gate = tmp_path / "marks", tmp_path / "gate"
    marks.touch()
    env = {"ACTORBUS_TEST_MARKS": str(marks), "ACTORBUS_TEST_GATE": str(gate)}
    pool = pools("gated_import_target:system", "--workers", "1", env=env)
    pool.wait_for(lambda: "importing" in marks.read_text().split(), "the worker importing")
    os.killpg(pool.process.pid, signal.SIGINT)  # Ctrl+C: the whole process group
    gate.touch()  # the import ends
    assert pool.wait() == 0, pool.stderr
    assert "SIGINT received while starting: not starting system 'gated-import'" in pool.stderr
    assert "Traceback" not in pool.stderr


def test_the_same_signal_soon_again_is_the_same_request() -> None:
    now = [100.0]
    requests = StopSignals(clock=lambda: now[0])
    assert requests.read(signal.SIGTERM) == "first"
    now[0] += SAME_REQUEST / 2
    assert requests.read(signal.SIGTERM) == "same"
    assert requests.read(signal.SIGINT) == "second"  # another signal: another request
    now[0] += SAME_REQUEST / 2
    assert requests.read(signal.SIGTERM) == "second"


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_workers_takes_a_positive_number_or_auto(
    pools: Callable[..., PoolProcess], value: str
) -> None:
    pool = pools("worker_targets:system", "--workers", value)
    assert pool.wait() == 2
    assert "--workers takes a number >= 1 or 'auto'" in pool.stderr


# -- the rules, in process ------------------------------------------------------------------


def test_auto_is_the_cpus_this_process_may_use() -> None:
    expected = os.process_cpu_count() if hasattr(os, "process_cpu_count") else None
    expected = expected or len(os.sched_getaffinity(0))
    assert cpu_count() == expected


def test_the_instance_base_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "web 01.example.com")
    assert host_instance() == "web-01.example.com"
    anonymous = RedisTransport("redis://localhost:6379/0")
    durable = RedisTransport("redis://localhost:6379/0", instance="shop")
    assert instance_base("given", durable) == "given"  # --instance first
    assert instance_base(None, durable) == "shop"  # then the transport's own name
    assert instance_base(None, anonymous) == "web-01.example.com"  # then the host's
    assert instance_base(None, None) == "web-01.example.com"
    monkeypatch.setattr("socket.gethostname", lambda: "...")
    assert host_instance() == "actorbus"


@pytest.mark.anyio
async def test_set_instance_names_a_transport_or_says_why_not() -> None:
    transport = RedisTransport("redis://localhost:6379/0")
    transport.set_instance("shop-3")
    assert (transport.instance, transport.durable) == ("shop-3", True)
    with pytest.raises(ValueError, match="invalid instance name"):
        transport.set_instance("no spaces")
    memory = MemoryTransport()
    memory.set_instance("m-1")
    assert memory.instance == "m-1"
    assert instance_base(None, memory) == "m-1"
    await memory.close()

    class Bare(Transport):
        async def open(self, *args: object) -> None: ...
        async def add_group(self, *args: object) -> None: ...
        async def start(self, *args: object) -> None: ...
        async def publish(self, *args: object) -> None: ...
        async def request(self, *args: object) -> None: ...
        async def stop_intake(self) -> None: ...
        async def close(self) -> None: ...

    with pytest.raises(TypeError, match="Bare cannot be given an instance name"):
        Bare().set_instance("x-0")
