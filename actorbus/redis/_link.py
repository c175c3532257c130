"""`Link`: one Redis connection driven by one task, for the bridge's hot paths.

coredis runs a writer task and a reader task behind every connection: each command goes
caller → writer task → socket, and its reply socket → reader task → caller, with a pool
lease and several cancel scopes on the way. On a small machine that costs about
350-470 µs of CPU per awaited command and doubles the round trip (see the Redis section
of ``benchmarks/README.md``). The publisher, each consumer's reader and each acker are
single tasks that own their connection anyway, so they use a `Link` instead: the task
itself writes a batch of commands in one ``send`` and reads the replies as they come,
with hiredis's reader or coredis's parser (`actorbus.redis._resp`; server errors become
the same coredis exception classes the rest of the bridge handles). Everything else
keeps using coredis.

A `Link` connects lazily (AUTH and SELECT as the URL says; ``rediss://`` and ``unix://``
work as with coredis, whose URL parsing it reuses) and reconnects on the next command
after any failure. It speaks RESP2, so replies have the plain shapes documented for each
command.

On asyncio, the connection below a `Link` is an `AsyncioConnection` (a protocol and a
timer): anyio's stream and a cancel scope per exchange for its deadline cost as much CPU
time again as the round trip itself there. On trio, anyio opens the connection and the
exchanges use its socket directly, waiting with `anyio.wait_readable`: trio's socket
methods take an extra trip through the run queue after every send that succeeds at once,
and try a receive before the reply can be there (TLS keeps to anyio's stream). The
transport's `Watchdog` keeps the deadlines instead of a cancel scope per exchange.
"""

from __future__ import annotations

import math
import select
import ssl
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import anyio.abc
import coredis
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import RedisError

from actorbus._backend import clock, resolve_checkpoints, running_asyncio, socket_waits
from actorbus.redis._asyncio_connection import open_asyncio
from actorbus.redis._resp import collect, new_replies

if TYPE_CHECKING:
    import socket
    from collections.abc import Coroutine, Sequence

    from actorbus.redis._context import Context
    from actorbus.redis._watchdog import Watchdog

__all__ = ["BULK", "CONNECT_TIMEOUT", "Command", "Link", "bulk", "link_for", "pack", "pack_head"]

CONNECT_TIMEOUT: Final = 5.0
"""Seconds a `Link` may take to connect and authenticate."""

Command = tuple[bytes | str | int, ...]
"""One command and its arguments, e.g. ``(b"XACK", key, group, entry_id)``."""

_IDLE: Final = 0.5
"""Seconds without a call after which a connection is checked before it is used."""
_RECEIVE_SIZE: Final = 65536
"""Bytes read from a socket at a time."""
_LOST: Final = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


def link_for(context: Context) -> Link:
    """A new `Link` to the transport's Redis, with the transport's own TLS context."""
    return Link(context.url, ssl_context=context.tls, watchdog=context.watchdog)


BULK: Final = b"$%d\r\n%b\r\n"
"""One RESP bulk string, to fill in with ``(len(value), value)``."""


def pack(commands: Sequence[Command]) -> bytes:
    """`commands` in the RESP wire format, ready to be sent together."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        out.extend(map(bulk, command))
    return b"".join(out)


def pack_head(head: Command, more: int) -> bytes:
    """The start of a command of `head` and `more` arguments, packed later (see `BULK`)."""
    return b"*%d\r\n" % (len(head) + more) + b"".join(map(bulk, head))


def bulk(argument: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string."""
    if isinstance(argument, bytes):
        value = argument
    elif isinstance(argument, str):
        value = argument.encode()
    else:
        value = b"%d" % argument
    return BULK % (len(value), value)


class Link:
    """One Redis connection, used by one task at a time (never shared concurrently).

    Args:
        url: The Redis URL (as given to `RedisTransport`).
        connect_timeout: Seconds to connect and authenticate.
        ssl_context: The TLS context for a ``rediss://`` URL; None: the URL's options.
        watchdog: The transport's `Watchdog` (on trio), which keeps the deadlines while it
            runs; without one, each exchange has a cancel scope.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        watchdog: Watchdog | None = None,
    ) -> None:
        # coredis parses the URL (schemes, percent-escapes, query options). Newer versions
        # put the address in `pool.location`, older ones in the connection arguments.
        pool: Any = coredis.ConnectionPool.from_url(url, decode_components=True)
        options: dict[str, Any] = dict(pool.connection_kwargs)
        location = getattr(pool, "location", None)
        self._path: str | None = getattr(location, "path", None) or options.get("path") or None
        self._host: str = getattr(location, "host", None) or options.get("host") or "localhost"
        self._port = int(getattr(location, "port", None) or options.get("port") or 6379)
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self._db: int = int(options.get("db") or 0)
        tls: Any = ssl_context or options.get("ssl_context")
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            tls = tls.get()  # coredis's lazy wrapper of the URL's TLS options
        self._ssl_context: ssl.SSLContext | None = tls
        self._connect_timeout = connect_timeout
        self._watchdog = watchdog
        self._connection: _Connection | None = None
        self._clock = clock()
        self.started = 0
        """Exchanges started: when it moves during a failed `send`, Redis may have the commands."""
        self._closes = 0  # `close` calls: a connection opened meanwhile is not kept

    async def call(self, command: Command, *, timeout: float) -> Any:
        """Send one command and return its reply.

        Raises:
            coredis.exceptions.RedisError: The server's error reply, as coredis maps it,
                or `ConnectionError` as for `pipeline`.
        """
        (reply,) = await self.pipeline([command], timeout=timeout)
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Command], *, timeout: float) -> list[Any]:
        """Send `commands` in one write; return their replies, a server error as its value.

        The connection is closed after any failure — a lost connection, `timeout`
        seconds passing, or a cancellation — since later replies could no longer be
        told apart; the next call reconnects. A command may have run even when this
        raised.

        Raises:
            coredis.exceptions.ConnectionError: If the connection was lost or refused, or
                the replies took longer than `timeout` seconds ("no answer from Redis in
                time").
            coredis.exceptions.RedisError: If connecting was refused (credentials).
        """
        return await self.send(pack(commands), len(commands), timeout=timeout)

    async def send(self, packed: bytes, count: int, *, timeout: float) -> list[Any]:
        """`pipeline` for `count` commands already packed (see `pack`)."""
        try:
            connection = self._connection
            if connection is not None and connection.closed_by_server():
                await self.close()  # while idle (a Redis restart): reconnect quietly
                connection = None
            if connection is None:
                connection = await self._connect()
            self.started += 1
            return await connection.exchange(packed, count, self._clock() + timeout)
        except _LOST as exc:
            await self.close()
            msg = f"connection to Redis lost: {type(exc).__name__}"
            raise RedisConnectionError(msg) from exc
        except TimeoutError as exc:  # (an OSError too)
            await self.close()
            msg = "no answer from Redis in time"
            raise RedisConnectionError(msg) from exc
        except OSError as exc:
            await self.close()
            msg = f"cannot reach Redis: {exc}"
            raise RedisConnectionError(msg) from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection (the next call opens a new one); safe when cancelled.

        A call connecting meanwhile fails (`ConnectionError`) and closes what it opened.
        """
        self._closes += 1
        connection, self._connection = self._connection, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                await connection.aclose()

    async def _connect(self) -> _Connection:
        self._clock = clock()  # this run's: a `Link` may outlive the run it was made in
        closes = self._closes
        with anyio.fail_after(self._connect_timeout):
            connection = await self._open()
            if self._closes != closes:  # closed while connecting
                with anyio.CancelScope(shield=True):
                    await connection.aclose()
                raise anyio.ClosedResourceError
            self._connection = connection
            handshake: list[Command] = []
            if self._password is not None:
                user = (self._username,) if self._username else ()
                handshake.append((b"AUTH", *user, self._password))
            if self._db:
                handshake.append((b"SELECT", self._db))
            if handshake:
                deadline = anyio.current_time() + self._connect_timeout
                for reply in await connection.exchange(pack(handshake), len(handshake), deadline):
                    if isinstance(reply, RedisError):
                        raise reply
        return connection

    async def _open(self) -> _Connection:
        """A new connection: `AsyncioConnection` on asyncio, an anyio stream on trio."""
        tls = self._ssl_context
        path = self._path
        if running_asyncio():
            return await open_asyncio(self._host, self._port, path, tls if path is None else None)
        if path is not None:
            stream: anyio.abc.ByteStream = await anyio.connect_unix(path)
        elif tls is None:
            stream = await anyio.connect_tcp(self._host, self._port)
        else:
            stream = await anyio.connect_tcp(
                self._host, self._port, tls=True, ssl_context=tls, tls_standard_compatible=False
            )
            return _StreamConnection(stream, self._watchdog, raw=False)
        return _StreamConnection(stream, self._watchdog, raw=True)


class _Connection(Protocol):
    """One open connection of a `Link`: `AsyncioConnection`, or `_StreamConnection` on trio."""

    def closed_by_server(self) -> bool: ...

    async def exchange(self, packed: bytes, count: int, deadline: float) -> list[Any]: ...

    async def aclose(self) -> None: ...


class _StreamConnection:
    """A `Link`'s connection opened by anyio (on trio): its socket, or its TLS stream."""

    __slots__ = (
        "__weakref__",
        "_check_cancelled",
        "_clock",
        "_expired",
        "_last_call",
        "_parser",
        "_socket",
        "_stream",
        "_waits",
        "_watchdog",
        "deadline",
    )

    def __init__(
        self, stream: anyio.abc.ByteStream, watchdog: Watchdog | None, *, raw: bool
    ) -> None:
        self._stream = stream
        self._socket: socket.socket | None = None
        waits = socket_waits() if raw else None
        if waits is not None:
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
            if sock is not None:
                self._socket = sock
                self._waits = waits
                self._check_cancelled = resolve_checkpoints().check_cancelled
        self._parser = new_replies()
        self._clock = clock()
        self._last_call = self._clock()
        self._watchdog = watchdog
        self.deadline = math.inf  # of the exchange under way, for the watchdog
        self._expired = False
        if watchdog is not None:
            watchdog.watch(self)

    def closed_by_server(self) -> bool:
        """Whether Redis closed the connection since the last exchange.

        Checked only after `_IDLE` seconds without a call, with one system call: an idle
        connection that has something to read has been closed (RESP2 sends nothing
        unasked; anything else there would desynchronise the replies anyway).
        """
        if self._expired:
            return True  # the watchdog closed it (just after its exchange finished)
        now = self._clock()
        idle, self._last_call = now - self._last_call, now
        if idle < _IDLE:
            return False
        sock = self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
        if sock is None or not hasattr(select, "poll"):  # no poll() on Windows: skip the check
            return False
        if sock.fileno() < 0:
            return True
        poll = select.poll()
        poll.register(sock.fileno(), select.POLLIN)
        return bool(poll.poll(0))

    async def exchange(self, packed: bytes, count: int, deadline: float) -> list[Any]:
        """Write `packed` (`count` commands) and return their `count` replies.

        Raises:
            TimeoutError: If the replies were not all there by `deadline`.
        """
        watchdog = self._watchdog
        if watchdog is not None and watchdog.running:
            self.deadline = deadline  # the watchdog ends the exchange once it is past
            if deadline < watchdog.wakes_at:
                watchdog.sooner(deadline)
            try:
                return await self._exchange(packed, count)
            except _LOST:
                if self._expired:
                    raise TimeoutError from None
                raise
            finally:
                self.deadline = math.inf
        # `fail_after` without its generator-based context manager.
        with anyio.CancelScope(deadline=deadline):
            return await self._exchange(packed, count)
        raise TimeoutError  # the scope caught its own deadline's cancellation

    def _exchange(self, packed: bytes, count: int) -> Coroutine[Any, Any, list[Any]]:
        if self._socket is not None:
            return self._socket_exchange(self._socket, packed, count)
        return self._stream_exchange(packed, count)

    async def _stream_exchange(self, packed: bytes, count: int) -> list[Any]:
        """The exchange through the anyio stream (TLS)."""
        stream = self._stream
        await stream.send(packed)
        parser = self._parser
        replies: list[Any] = []
        while not collect(parser, replies, count):
            parser.feed(await stream.receive())
        return replies

    async def _socket_exchange(self, sock: socket.socket, packed: bytes, count: int) -> list[Any]:
        """The exchange on the stream's socket itself (plain TCP or a unix socket).

        trio's socket operations end with a scheduling checkpoint when they succeed at
        once, so every ``send`` cost a trip through the run queue, and a receive first
        tried the socket that a reply had no time to reach yet. Here the request is
        written without waiting (the caller's cancellation is checked first, so a
        cancelled caller sends nothing) and the replies are read after waiting for the
        socket to be readable: one wait per round trip.
        """
        await self._check_cancelled()
        waits = self._waits
        view = memoryview(packed)
        while view:
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                await waits.writable(sock)
            except OSError as exc:
                raise _lost(sock) from exc
        parser = self._parser
        replies: list[Any] = []
        while not collect(parser, replies, count):
            await waits.readable(sock)
            try:
                data = sock.recv(_RECEIVE_SIZE)
            except BlockingIOError:  # pragma: no cover - woken without data: wait again
                continue
            except OSError as exc:
                raise _lost(sock) from exc
            if not data:
                raise anyio.EndOfStream
            parser.feed(data)
        return replies

    async def expire(self) -> None:
        """The exchange under way is past its deadline (`Watchdog`): end it."""
        self._expired = True
        await anyio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.forget(self)
        await anyio.aclose_forcefully(self._stream)


def _lost(sock: socket.socket) -> Exception:
    """What a failed send or receive on `sock` means, as anyio's stream would say it.

    A socket closed meanwhile (by the watchdog, as the task was being woken) is
    `ClosedResourceError`; anything else (a reset, a broken pipe) `BrokenResourceError`.
    """
    return anyio.ClosedResourceError() if sock.fileno() < 0 else anyio.BrokenResourceError()
