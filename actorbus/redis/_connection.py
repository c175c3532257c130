"""`Connection`: one socket to one Redis server; the one place where bytes meet Redis.

A connection is opened with anyio (`anyio.connect_tcp`, with the endpoint's own
`ssl.SSLContext` for TLS, or `anyio.connect_unix`), logs in (``AUTH`` and ``SELECT`` as
the URL says; RESP2, no ``HELLO``) and then carries exchanges: a batch of commands
written in one send, their replies read in order by **hiredis**'s reader. The same code
runs on asyncio and trio.

Everything that can go wrong is mapped here to `actorbus.redis._errors`: a lost,
refused or timed-out connection raises `ConnectionLost` (after closing the connection,
since later replies could no longer be matched to their commands), and an error reply is
returned in its command's place as a `ReplyError`.
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import hiredis

from actorbus.redis._errors import ConnectionLost, Unreachable, reply_error
from actorbus.redis._protocol import Command, pack

if TYPE_CHECKING:
    from actorbus.redis._endpoint import Endpoint

__all__ = ["Connection", "connect", "unpack"]

_RECEIVE_SIZE: Final = 65536
"""Bytes read from the stream at a time."""
_IDLE: Final = 0.5
"""Seconds without an exchange after which a connection is checked before it is used."""


class _InvalidReply(Exception):
    """Bytes from the server that are not RESP: the connection is out of step."""


class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()
"""What the reader gives back while no whole reply has arrived."""
_LOST: Final = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
    _InvalidReply,
)


async def connect(endpoint: Endpoint, timeout: float) -> Connection:
    """Open a connection to `endpoint` and log in, within `timeout` seconds.

    Raises:
        Unreachable: If the server cannot be reached in time (the TLS error, if any, is
            its ``__cause__``).
        ReplyError: If the server refused the log-in (``WRONGPASS``, ``NOAUTH``, …) or
            the database.
    """
    deadline = anyio.current_time() + timeout
    stream: anyio.abc.ByteStream | None = None
    try:
        with anyio.CancelScope(deadline=deadline):
            stream = await _open(endpoint)
    except _LOST as exc:
        msg = f"cannot reach Redis: {_describe(exc)}"
        raise Unreachable(msg) from exc
    if stream is None:  # the deadline passed
        msg = f"cannot reach Redis: no connection within {timeout}s"
        raise Unreachable(msg)
    connection = Connection(stream)
    handshake: list[Command] = []
    if endpoint.password is not None:
        user = (endpoint.username,) if endpoint.username else ()
        handshake.append((b"AUTH", *user, endpoint.password))
    if endpoint.db:
        handshake.append((b"SELECT", endpoint.db))
    if handshake:
        try:
            replies = await connection.exchange(pack(handshake), len(handshake), deadline)
        except ConnectionLost as exc:  # nothing of the caller's was sent yet
            raise Unreachable(str(exc)) from exc.__cause__
        for reply in replies:
            if isinstance(reply, Exception):
                await connection.aclose()
                raise reply
    return connection


async def _open(endpoint: Endpoint) -> anyio.abc.ByteStream:
    if endpoint.path is not None:
        return await anyio.connect_unix(endpoint.path)
    if endpoint.tls is None:
        return await anyio.connect_tcp(endpoint.host, endpoint.port)
    return await anyio.connect_tcp(
        endpoint.host,
        endpoint.port,
        tls=True,
        ssl_context=endpoint.tls,
        tls_standard_compatible=False,  # Redis closes without a TLS close_notify
    )


def unpack(packed: bytes) -> list[Command]:
    """The commands that `pack` turned into `packed` (RESP arrays of bulk strings)."""
    reader = hiredis.Reader(protocolError=_InvalidReply, notEnoughData=_MISSING)
    reader.feed(packed)
    commands: list[Command] = []
    while (command := reader.gets()) is not _MISSING:
        commands.append(tuple(command))
    return commands


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Connection:
    """One open connection to Redis, used by one task at a time (never concurrently).

    Once an exchange failed (`ConnectionLost`, or a cancellation), the connection is
    closed: its owner opens a new one.
    """

    __slots__ = ("_reader", "_stream", "_used", "closed")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader(
            protocolError=_InvalidReply, replyError=reply_error, notEnoughData=_MISSING
        )
        self._used = time.monotonic()
        self.closed = False

    async def exchange(self, packed: bytes, count: int, deadline: float) -> list[Any]:
        """Write `packed` (`count` commands) and return their `count` replies, in order.

        An error reply is returned in its command's place, as a `ReplyError`. A caller
        cancelled before the write sends nothing. Any failure, a cancellation included,
        closes the connection (a reply still on its way could be taken for the next
        command's).

        Raises:
            ConnectionLost: If the connection was lost or closed, or the replies were not
                all there by `deadline` (`anyio.current_time`); the commands may have run.
        """
        if self.closed:
            msg = "connection to Redis lost: closed"
            raise ConnectionLost(msg)
        stream = self._stream
        reader = self._reader
        try:
            with anyio.CancelScope(deadline=deadline):
                await stream.send(packed)
                replies: list[Any] = []
                while True:
                    reply = reader.gets()
                    if reply is _MISSING:
                        reader.feed(await stream.receive(_RECEIVE_SIZE))
                        continue
                    replies.append(reply)
                    if len(replies) == count:
                        self._used = time.monotonic()
                        return replies
        except _LOST as exc:
            await self.aclose()
            msg = f"connection to Redis lost: {_describe(exc)}"
            raise ConnectionLost(msg) from exc
        except BaseException:
            await self.aclose()
            raise
        await self.aclose()  # the scope's deadline passed
        msg = "no answer from Redis in time"
        raise ConnectionLost(msg)

    def closed_by_peer(self) -> bool:
        """Whether Redis closed the connection while it was idle (a restart, a timeout).

        Checked only after `_IDLE` seconds without an exchange, with one system call
        that does not wait: an idle connection with something to read has been closed
        (RESP2 sends nothing unasked; anything else there would put the replies out of
        step anyway). Opening a new one then spares the next command a failure.
        """
        if self.closed:
            return True
        now = time.monotonic()
        if now - self._used < _IDLE:
            return False
        self._used = now
        sock = self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
        if sock is None:
            return False
        fileno = sock.fileno()
        if fileno < 0:
            return True
        if hasattr(select, "poll"):
            poll = select.poll()
            poll.register(fileno, select.POLLIN)
            return bool(poll.poll(0))
        readable, _, _ = select.select([fileno], [], [], 0)  # pragma: no cover - Windows
        return bool(readable)  # pragma: no cover

    async def aclose(self) -> None:
        """Close at once, unsent data dropped; safe when cancelled."""
        self.closed = True
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self._stream)
