"""Virtual time for tests: timers fire at once when every task is waiting.

trio has `trio.testing.MockClock(autojump_threshold=0)`; `AutojumpEventLoop` gives
asyncio the same behaviour, so backoff and timeouts can be tested on both backends
without sleeping for real. Only for code that waits on timers and on other tasks: time
jumps while a worker thread or a socket is being waited for, too.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

__all__ = ["AutojumpEventLoop", "autojump_backends"]


class AutojumpEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose clock jumps to the next timer when nothing is ready."""

    def __init__(self) -> None:
        super().__init__()
        self._jumped: float = 0.0

    def time(self) -> float:
        """The loop's clock: real monotonic time plus every jump made so far."""
        real: float = super().time()
        return real + self._jumped

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            first_timer = cast("asyncio.TimerHandle", scheduled[0])
            ahead = first_timer.when() - self.time()
            if ahead > 0:
                self._jumped += ahead
        super()._run_once()  # type: ignore[misc]


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
