"""Running the `actorbus` command as a user runs it: in a subprocess, from `tests/`.

`worker_targets` (and the other target modules here) are importable from that folder;
a started worker writes its marks ("started", "stopping", "stopped") to the file named by
``ACTORBUS_TEST_MARKS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def actorbus_cmd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m actorbus ARGS``, run to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "actorbus", *args],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def start_worker(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    """``actorbus run ARGS``, returned once its actors started (killed if they never do).

    `env` is added to the environment; the second value is the file of its marks.
    """
    marks = tmp_path / "marks"
    worker = subprocess.Popen(
        [sys.executable, "-m", "actorbus", "run", *args],
        cwd=TESTS,
        env={**os.environ, "ACTORBUS_TEST_MARKS": str(marks), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_mark(worker, marks, "started")
    except BaseException:
        worker.kill()
        worker.communicate()
        raise
    return worker, marks


def wait_for_mark(worker: subprocess.Popen[str], marks: Path, mark: str) -> None:
    """Wait (30 s at most) until `worker` wrote `mark`; fail if it exits first."""
    deadline = time.monotonic() + 30
    while not (marks.exists() and mark in marks.read_text().split()):
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, f"the worker never marked {mark!r}"
        time.sleep(0.05)
