"""`Board`: the dashboard's latest state, and a way to wait for the next one."""

from __future__ import annotations

from typing import Any

import anyio

__all__ = ["Board"]


class Board:
    """Holds the latest state (a JSON-ready dict) for the page's requests and live streams.

    One writer (the sampler, or the reader of Redis) calls `publish`; any number of
    readers call `wait` with the version they last saw. `close` wakes them all for good.
    """

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.version = 0
        self.closed = False
        self._changed = anyio.Event()

    def publish(self, state: dict[str, Any]) -> None:
        """Make `state` the latest and wake the readers."""
        self.state = state
        self.version += 1
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait(self, seen: int) -> bool:
        """Wait until a version newer than `seen` is there; False once the board is closed."""
        while self.version <= seen and not self.closed:
            await self._changed.wait()
        return not self.closed

    def close(self) -> None:
        """No more states: every `wait` returns False."""
        self.closed = True
        self._changed.set()
