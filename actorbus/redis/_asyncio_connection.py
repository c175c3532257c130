"""A `Link`'s connection on asyncio: a protocol that parses replies as they arrive.

On asyncio, an anyio socket stream reaches the socket through a protocol, an
`asyncio.Event` per read, and after every send a shielded cancel scope and a scheduler
round; the deadline of each exchange is another cancel scope. Together that doubled the
CPU time of a command's round trip (about 83 µs against 43 µs on the benchmark machine,
see ``benchmarks/README.md``). `AsyncioConnection` is the same exchange written against
asyncio's own transport API: the protocol feeds the parser from ``data_received`` and wakes
the one waiting caller through a future; the deadline is kept by a timer
(``loop.call_at``, one per connection, see `_Protocol`) that fails the exchange. A
cancelled caller sends nothing, and a cancellation (anyio cancels asyncio tasks) still
ends the wait at once. Plain TCP, TLS and Unix sockets all work this way; on trio, see
`_StreamConnection` in `actorbus.redis._link`.
"""

from __future__ import annotations

import asyncio
import math
import socket
from typing import TYPE_CHECKING, Any, Final

import anyio

from actorbus._backend import resolve_checkpoints
from actorbus.redis._resp import collect, new_replies

if TYPE_CHECKING:
    import ssl

    from actorbus._backend import Checkpoints

__all__ = ["AsyncioConnection", "open_asyncio"]

_EARLY: Final = 0.001
"""Seconds before its deadline an exchange may be failed (the loop runs timers that early)."""


async def open_asyncio(
    host: str, port: int, path: str | None, ssl_context: ssl.SSLContext | None
) -> AsyncioConnection:
    """Connect to Redis (a Unix socket if `path`, else TCP, with TLS if `ssl_context`).

    Raises:
        OSError: If the connection was refused or failed.
    """
    loop = asyncio.get_running_loop()
    if path is not None:
        _, protocol = await loop.create_unix_connection(_Protocol, path)
    else:
        _, protocol = await loop.create_connection(
            _Protocol,
            host,
            port,
            ssl=ssl_context,
            server_hostname=host if ssl_context is not None else None,
        )
    return AsyncioConnection(loop, protocol, resolve_checkpoints())


class _Protocol(asyncio.Protocol):
    """Buffers replies in the parser, wakes whoever waits for them, keeps the deadline.

    The deadline of the exchange under way is kept by one timer per connection, which
    stays armed between exchanges: an exchange only moves it when its deadline is
    earlier. When the timer fires, it fails the exchange under way if that one's
    deadline has come, or moves itself to that deadline, or (between exchanges) ends.
    A timer per exchange cost a `call_at`, a `cancel`, and the timer heap's upkeep.
    """

    def __init__(self) -> None:
        self.parser = new_replies()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.failure: BaseException | type[BaseException] | None = None  # why replies stop
        self.deadline = math.inf  # of the exchange under way (loop time)
        self._timer: asyncio.Handle | None = None
        self._armed = math.inf  # when the timer fires

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport: Redis closed the connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self.failure is None:
            self.failure = anyio.EndOfStream() if exc is None else anyio.BrokenResourceError()
            self.failure.__cause__ = exc
        self._stop_timer()
        self._wake()

    def fail(self, failure: BaseException | type[BaseException]) -> None:
        """End the exchange under way with `failure` (and the connection with it)."""
        if self.failure is None:
            self.failure = failure
        self._stop_timer()
        self._wake()

    def keep(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """An exchange starts that must end by `deadline`."""
        self.deadline = deadline
        timer = self._timer
        if timer is None or self._armed > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._expire, loop)
            self._armed = deadline  # (uvloop's handle of a near timer has no `when()`)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        deadline = self.deadline
        if deadline == math.inf:
            return  # between exchanges: the next one arms the timer again
        if deadline - loop.time() <= _EARLY:
            self.fail(TimeoutError)
        else:
            self._timer = loop.call_at(deadline, self._expire, loop)
            self._armed = deadline

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioConnection:
    """One connection to Redis on asyncio, used by one task at a time (see `Link`)."""

    __slots__ = ("_checkpoints", "_loop", "_protocol", "_transport")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: _Protocol, checkpoints: Checkpoints
    ) -> None:
        self._loop = loop
        self._protocol = protocol
        self._transport: Any = protocol.transport
        self._checkpoints = checkpoints

    def closed_by_server(self) -> bool:
        """Whether the connection ended since the last exchange (Redis closed it)."""
        return self._protocol.failure is not None

    async def exchange(self, packed: bytes, count: int, deadline: float) -> list[Any]:
        """Write `packed` (`count` commands) and return their `count` replies.

        Raises:
            TimeoutError: If the replies were not all there by `deadline` (loop time).
            anyio.EndOfStream: If Redis closed the connection.
            anyio.BrokenResourceError: If the connection failed.
        """
        if self._checkpoints.cancelled():  # a cancelled caller sends nothing
            await self._checkpoints.check_cancelled()
        protocol = self._protocol
        loop = self._loop
        protocol.keep(loop, deadline)
        try:
            if protocol.failure is None:
                self._transport.write(packed)
            replies: list[Any] = []
            while not collect(protocol.parser, replies, count):
                if protocol.failure is not None:
                    raise protocol.failure
                waiter = protocol.waiter = loop.create_future()
                await waiter
            return replies
        finally:
            protocol.deadline = math.inf

    async def aclose(self) -> None:
        """Close at once, unsent data dropped (no await: safe when cancelled)."""
        self._protocol.fail(anyio.ClosedResourceError())
        self._transport.abort()
