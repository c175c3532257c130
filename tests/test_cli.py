"""The `actorbus` command line, run as a user runs it: in a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import TESTS, actorbus_cmd, start_worker, wait_for_mark

import actorbus
from actorbus._worker import SAME_REQUEST

pytestmark = pytest.mark.slow


def test_version_and_help() -> None:
    result = actorbus_cmd("--version")
    assert result.returncode == 0
    assert actorbus.__version__ in result.stdout
    for command in ("run", "handlers", "demo"):
        helped = actorbus_cmd(command, "--help")
        assert helped.returncode == 0
        assert "Examples:" in helped.stdout


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_runs_on_both_backends(backend: str) -> None:
    result = actorbus_cmd("demo", "--backend", backend)
    assert result.returncode == 0, result.stderr
    assert "system stopped cleanly" in result.stdout
    assert "dead letter" in result.stdout


def test_handlers_lists_subscriptions() -> None:
    result = actorbus_cmd("handlers", "worker_targets:system")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ACTOR", "HANDLER", "SUBSCRIPTIONS"]
    assert any(
        "Ticker.tick" in line and "targets.tick" in line and "tickers" in line for line in lines
    )
    assert any("targets.*" in line for line in lines)
    assert any("payment.*" in line for line in lines)


def test_handlers_json() -> None:
    result = actorbus_cmd("handlers", "worker_targets:system", "--json")
    rows = json.loads(result.stdout)
    tick = next(row for row in rows if row["handler"] == "Ticker.tick")
    assert tick["subscriptions"] == ["targets.tick"]
    assert tick["scope"] == "app"
    assert tick["group"] == "tickers"
    assert tick["supervision"] == "RESTART"
    assert tick["mailbox"] == "1000/BLOCK"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:system", "cannot import module 'no_such_module'"),
        ("worker_targets:missing", "has no attribute 'missing'"),
        ("worker_targets:not_a_system", "is int 42, not an ActorSystem"),
        ("worker_targets", "must look like 'module:attribute'"),
        (
            "broken_target:system",
            (
                "importing module 'broken_target' (from 'broken_target:system') raised "
                "RuntimeError: config missing"
            ),
        ),
    ],
)
@pytest.mark.parametrize("command", ["run", "handlers"])
def test_bad_targets_get_one_line_without_traceback(
    command: str, target: str, message: str
) -> None:
    result = actorbus_cmd(command, target)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    "target",
    ["worker_targets:system", "worker_targets:make_system", "worker_targets:make_system_async"],
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_gracefully_on_a_signal(
    tmp_path: Path, backend: str, target: str, signum: int
) -> None:
    worker, marks = start_worker(tmp_path, target, "--backend", backend)
    try:
        worker.send_signal(signum)
        _, stderr = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, stderr
    assert marks.read_text().split() == ["started", "stopped"]  # on_stop ran
    assert "stopping system" in stderr


def test_a_second_signal_forces_the_exit(tmp_path: Path) -> None:
    worker, marks = start_worker(tmp_path, "worker_targets:make_slow_to_stop")
    try:
        worker.send_signal(signal.SIGTERM)
        wait_for_mark(worker, marks, "stopping")  # graceful shutdown is under way, and slow
        time.sleep(SAME_REQUEST)  # sooner, the same signal is the first one delivered twice
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=20)
    finally:
        worker.kill()
    assert worker.returncode == 130
    assert "exiting now" in stderr


def test_one_request_to_the_process_and_its_group_is_one_signal(tmp_path: Path) -> None:
    # `timeout` sends its signal to the process it runs, then to that process's group.
    record, gate = tmp_path / "record", tmp_path / "gate"
    record.touch()
    env = {**os.environ, "ACTORBUS_TEST_RECORD": str(record), "ACTORBUS_TEST_GATE": str(gate)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "actorbus", "run", "pool_targets:make_gated_stop"],
        cwd=TESTS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as `timeout` makes
    )

    def wait_for(what: str) -> None:
        deadline = time.monotonic() + 30
        while what not in record.read_text().split():
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, f"the worker never recorded {what!r}"
            time.sleep(0.05)

    try:
        wait_for("started")
        worker.send_signal(signal.SIGTERM)
        wait_for("stopping")  # the first signal was read
        os.killpg(worker.pid, signal.SIGTERM)
        gate.touch()  # let on_stop finish
        _, stderr = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, stderr
    assert record.read_text().split()[2::3] == ["started", "stopping", "stopped"]
    assert "exiting now" not in stderr


def test_status_reports_throughput_and_depth(tmp_path: Path) -> None:
    worker, _ = start_worker(tmp_path, "worker_targets:system", "--status", "0.2")
    try:
        time.sleep(1.0)  # a few status periods: what is measured is the output, not timing
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0
    status = [line for line in stderr.splitlines() if "depth" in line]
    assert status, stderr
    assert "Ticker: 0/s depth 0" in status[0]
    assert "paid: 0/s depth 0" in status[0]


def test_run_exits_non_zero_once_when_the_system_fails() -> None:
    result = actorbus_cmd("run", "worker_targets:make_failing", "--log-level", "CRITICAL")
    assert result.returncode == 1
    reports = [line for line in result.stderr.splitlines() if line.startswith("actorbus: ")]
    assert reports == ["actorbus: the system failed: RuntimeError: fragile broke on tick 1"]


def test_run_rejects_instance_without_redis() -> None:
    result = actorbus_cmd("run", "worker_targets:system", "--instance", "w1")
    assert result.returncode != 0
    assert "--instance only applies with --redis" in result.stderr
