"""Worker processes for the tests: a script of ``tests/`` run against a real redis-server.

A worker script (``partition_worker.py``, ``entity_worker.py``) takes the application
and a journal file as its first arguments, reads the server's URL from ``REDIS_URL``,
prints ``ready`` once its system runs and writes what it handles to the journal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio

TESTS = Path(__file__).resolve().parent


class Workers:
    """Starts worker scripts; `close` ends every one still running."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, script: str, app: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Run ``python tests/SCRIPT APP JOURNAL *ARGS`` with ``REDIS_URL`` set.

        JOURNAL is a new, empty file in `directory`; the process's stdout is a pipe, for
        `ready`. Returns the process and the journal.
        """
        journal = self.directory / f"worker-{len(self.started)}.txt"
        journal.touch()
        command = [sys.executable, str(TESTS / script), app, str(journal), *args]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, env={**os.environ, "REDIS_URL": self.url}
        )
        self.started.append(process)
        return process, journal

    def close(self) -> None:
        """Kill and reap every worker still running (resumed first: it may be stopped)."""
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


async def ready(process: subprocess.Popen[bytes]) -> None:
    """Wait (a minute at most) for the worker's ``ready`` line."""
    assert process.stdout is not None
    with anyio.fail_after(60):
        line = await anyio.to_thread.run_sync(process.stdout.readline)
    assert line.strip() == b"ready", line
