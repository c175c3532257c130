"""Virtual time for tests: timers fire at once when every task is waiting.

trio has `trio.testing.MockClock(autojump_threshold=0)`; `AutojumpEventLoop` gives
asyncio the same behaviour, so backoff and timeouts can be tested on both backends
without sleeping for real. As with `MockClock`'s default rate of 0, time does not pass on
its own: the clock moves only by jumps, so work between two timers takes no virtual time
however slow the machine is. Only for code that waits on timers and on other tasks: time
jumps while a worker thread or a socket is being waited for, too.

It is built from asyncio's public extension points only: an event loop class takes the
selector it polls (`asyncio.SelectorEventLoop(selector)`) and tells the time through its
`time()` method. When the loop would sleep until its next timer — it asks the selector
to wait that long — and nothing is ready, the selector returns at once and moves the
loop's clock forward by that wait instead.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

__all__ = ["AutojumpEventLoop", "autojump_backends"]


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, instead of waiting for a timer, says how far to jump."""

    def __init__(self) -> None:
        super().__init__()
        self.jumped = 0.0
        """Seconds of virtual time added so far."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:  # nothing to wait for but I/O, or nothing at all
            return super().select(timeout)
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if not ready:
            self.jumped += timeout  # the loop now finds its next timer due
        return ready


class AutojumpEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose clock jumps to the next timer when nothing is ready."""

    def __init__(self) -> None:
        self.__jumps = _JumpingSelector()
        self.__start = time.monotonic()  # what asyncio's own `time()` reads
        super().__init__(self.__jumps)

    def time(self) -> float:
        """The loop's clock: its start time plus every jump made so far (virtual time)."""
        return self.__start + self.__jumps.jumped


def autojump_backends() -> list[tuple[str, dict[str, Any]]]:
    """``anyio_backend`` parameters for virtual time on asyncio and trio.

    Use them to parametrize your ``anyio_backend`` fixture::

        @pytest.fixture(params=autojump_backends(), ids=["asyncio", "trio"])
        def anyio_backend(request):
            return request.param
    """
    from trio.testing import MockClock  # noqa: PLC0415 - trio is optional

    return [
        ("asyncio", {"loop_factory": AutojumpEventLoop}),
        ("trio", {"clock": MockClock(autojump_threshold=0)}),
    ]
