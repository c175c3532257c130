"""A real ``redis-server`` for tests and benchmarks, started on a free loopback port.

The Redis tests exercise behaviour that depends on Redis semantics (consumer groups, pending
entries, reconnection), so they run against the genuine server, never a mock. This module is
deliberately independent of any Redis client library: readiness is checked with a tiny RESP
exchange over a raw socket, so the fixture keeps working while the client under test is broken.
The same tiny client (`send_raw`, `RawClient`, and `raw_client` for async tests) stands in
for other programs using the same Redis.

Load it as a pytest plugin (``pytest_plugins = ["redis_support"]`` with ``tests`` on the
``pythonpath``) to get three fixtures:

* ``redis_server`` — one server for the whole session, shared by every test that asks for it.
  Tests must not stop or kill it, and should use their own keys.
* ``fresh_redis_server`` — a private server per test, for tests that stop, kill or restart it.
* ``tls_redis_server`` — one server for the whole session that speaks only TLS
  (``rediss://``), with a throwaway certificate authority generated for it.

Every test that uses one of these fixtures is given the ``redis`` marker automatically, so
``pytest -m "not redis"`` deselects them. A missing ``redis-server`` makes those tests fail
(never skip) with the command that installs it.

Example:
    >>> with RedisServer(appendonly=True) as server:  # doctest: +SKIP
    ...     print(server.cli("SET", "k", "v"))
    ...     port = server.port
    ...     server.kill()  # an outage, as a crash would cause
    ...     server.start()  # same port, same data directory (and AOF)
    ...     print(server.port == port, server.cli("GET", "k"))
    OK
    True v

PYTEST_DONT_REWRITE: this module has no assertions to rewrite, and the marker lets a test
module import it before pytest registers it as a plugin without a PytestAssertRewriteWarning
(which ``filterwarnings = error`` would turn into a collection error).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeAlias
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import anyio
import pytest

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping, Sequence
    from types import TracebackType

__all__ = [
    "INSTALL_HINT",
    "ClosedOnExit",
    "RawClient",
    "RedisServer",
    "RedisServerError",
    "Reply",
    "RespError",
    "TLSFiles",
    "dead_key",
    "events_key",
    "find_free_port",
    "fresh_redis_server",
    "new_app",
    "raw_client",
    "redis_cli",
    "redis_server",
    "require_redis_server",
    "send_raw",
    "tls_redis_server",
]

#: The command that installs the server (and ``redis-cli``) on Debian and Ubuntu.
INSTALL_HINT = "apt-get install -y redis-server"
#: The command that installs ``openssl``, which generates the certificates of TLS servers.
OPENSSL_HINT = "apt-get install -y openssl"

_LOOPBACK = "127.0.0.1"
# A start attempt that dies on these log lines lost the race for its port: try another.
_PORT_TAKEN_MARKERS = ("Address already in use", "Could not create server TCP listening socket")
_PORT_ATTEMPTS = 5
_POLL_INTERVAL = 0.01


class RedisServerError(RuntimeError):
    """``redis-server`` could not be started, reached or stopped."""


def find_free_port(host: str = _LOOPBACK) -> int:
    """Return a TCP port on *host* that nothing listens on right now.

    The kernel picks it (bind to port 0). Another process may take it before the caller
    binds it, so callers must be ready to retry; :meth:`RedisServer.start` does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _encode_command(args: Sequence[str | bytes | int]) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        if isinstance(arg, int):
            raw = b"%d" % arg
        else:
            raw = arg if isinstance(arg, bytes) else arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class RespError(Exception):
    """An error reply (``-ERR ...``) read by :func:`send_raw`; returned, not raised."""

    @property
    def code(self) -> str:
        """The error's first word, e.g. ``"NOAUTH"`` or ``"WRONGPASS"``."""
        return str(self.args[0]).split(" ", 1)[0]


#: A decoded RESP2 reply: simple and bulk strings as ``str``, nil as ``None``.
Reply: TypeAlias = "str | int | RespError | list[Reply] | None"


class _Reader:
    """Reads RESP2 replies from a blocking socket (strings as bytes if `raw`, else text)."""

    def __init__(self, sock: socket.socket, *, raw: bool = False) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._raw = raw

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("redis-server closed the connection")
        self._buffer += chunk

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:].decode(errors="replace")
        if kind == b"+":
            return line[1:] if self._raw else rest
        if kind == b"-":
            return RespError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self._buffer) < size + 2:
                self._fill()
            data = bytes(self._buffer[:size])
            del self._buffer[: size + 2]
            return data if self._raw else data.decode(errors="replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise ConnectionError(f"unexpected RESP reply from redis-server: {line!r}")


def send_raw(
    port: int,
    *commands: Sequence[str],
    host: str = _LOOPBACK,
    timeout: float = 2.0,
    ssl_context: ssl.SSLContext | None = None,
) -> list[Reply]:
    """Send *commands* on one fresh connection and return their decoded replies.

    This is a deliberately tiny RESP2 client, independent of any Redis library, so that
    the fixtures keep working while the client under test is broken. Error replies are
    returned as :class:`RespError` instances rather than raised, so a test can check them.

    Example:
        >>> send_raw(port, ("PING",))  # doctest: +SKIP
        [RespError('NOAUTH Authentication required.')]
        >>> send_raw(port, ("AUTH", password), ("PING",))  # doctest: +SKIP
        ['OK', 'PONG']

    Args:
        port: The server's TCP port.
        *commands: Each command as a sequence of arguments, e.g. ``("AUTH", password)``.
        host: The server's address.
        timeout: Seconds allowed for connecting and for each read.
        ssl_context: Speak TLS with this context (for a server started with ``tls=True``;
            :meth:`TLSFiles.client_context` makes one).

    Returns:
        One reply per command, in order.

    Raises:
        OSError: The server could not be reached, or closed the connection before replying
            to every command (``SHUTDOWN`` does that on success).
    """
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
        if ssl_context is not None:
            sock = stack.enter_context(ssl_context.wrap_socket(sock, server_hostname=host))
        sock.sendall(b"".join(_encode_command(command) for command in commands))
        reader = _Reader(sock)
        return [reader.reply() for _ in commands]


class RawClient:
    """A tiny blocking RESP2 client on one connection: bytes in and out, no Redis library.

    It logs in as the URL says (``AUTH``, ``SELECT``). Calls are serialised by a lock, so
    worker threads may share it (`raw_client` does). An error reply is raised as
    :class:`RespError`. On a Redis Cluster it follows ``MOVED`` and ``ASK`` (each to a
    connection of its own to the node named, logged in the same way), so a test reads
    and writes any key through the URL of any node.

    Example:
        >>> client = RawClient(server.url)  # doctest: +SKIP
        >>> client("XADD", "k", "*", "e", b"{}")  # doctest: +SKIP
        b'1700000000000-0'
    """

    _REDIRECTS = 5

    def __init__(
        self, url: str, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(url)
        self._parts = parts
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._links: dict[tuple[str, int], tuple[socket.socket, _Reader]] = {}
        self._home = (parts.hostname or _LOOPBACK, parts.port or 6379)
        self._link(self._home)

    def _link(self, address: tuple[str, int]) -> tuple[socket.socket, _Reader]:
        link = self._links.get(address)
        if link is not None:
            return link
        sock = socket.create_connection(address, timeout=self._timeout)
        if self._ssl_context is not None:
            sock = self._ssl_context.wrap_socket(sock, server_hostname=self._parts.hostname)
        link = self._links[address] = (sock, _Reader(sock, raw=True))
        parts = self._parts
        login: list[tuple[str | bytes | int, ...]] = []
        if parts.password is not None:
            user = [unquote(parts.username)] if parts.username else []
            login.append(("AUTH", *user, unquote(parts.password)))
        db = parse_qs(parts.query).get("db", [parts.path.lstrip("/") or "0"])[-1]
        if int(db or 0):
            login.append(("SELECT", db))
        for command in login:
            reply = self._exchange(link, command)
            if isinstance(reply, RespError):
                raise reply
        return link

    @staticmethod
    def _exchange(link: tuple[socket.socket, _Reader], args: Sequence[str | bytes | int]) -> Any:
        sock, reader = link
        sock.sendall(_encode_command(args))
        return reader.reply()

    def __call__(self, *args: str | bytes | int) -> Any:
        with self._lock:
            link = self._link(self._home)
            for _ in range(self._REDIRECTS):
                reply = self._exchange(link, args)
                if not (isinstance(reply, RespError) and reply.code in ("MOVED", "ASK")):
                    break
                host, _, port = str(reply.args[0]).split(" ")[2].rpartition(":")
                link = self._link((host or self._home[0], int(port)))
                if reply.code == "ASK":
                    self._exchange(link, ("ASKING",))
        if isinstance(reply, RespError):
            raise reply
        return reply

    def close(self) -> None:
        for sock, _ in self._links.values():
            sock.close()
        self._links.clear()


class AsyncRawClient:
    """`RawClient` for async tests, on either backend: each call runs in a worker thread.

    Stands in for other programs writing to and reading from the same Redis (crashed,
    foreign or malicious clients), independent of the client under test. A few helpers
    turn the replies the tests look at into plain shapes.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: RawClient | None = None

    async def __aenter__(self) -> Self:
        self._client = await anyio.to_thread.run_sync(RawClient, self._url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.close()

    async def __call__(self, *args: str | bytes | int) -> Any:
        if self._client is None:
            raise RuntimeError("use it as `async with raw_client(url) as raw:`")
        return await anyio.to_thread.run_sync(self._client, *args)

    async def xadd(self, key: str, fields: Mapping[str | bytes, str | bytes]) -> bytes:
        """Add an entry with `fields`; return its id."""
        flat = [part for pair in fields.items() for part in pair]
        entry: bytes = await self("XADD", key, "*", *flat)
        return entry

    async def entries(
        self, key: str, start: str | bytes = "-", end: str | bytes = "+"
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """XRANGE: each entry's id and fields."""
        found = await self("XRANGE", key, start, end)
        return [(entry_id, _pairs(values)) for entry_id, values in found]

    async def pending(self, key: str, group: str) -> int:
        """How many entries of `group` are pending (read, not acknowledged)."""
        summary = await self("XPENDING", key, group)
        return int(summary[0])

    async def groups(self, key: str) -> list[dict[bytes, Any]]:
        """XINFO GROUPS, each group as a dict."""
        return [_pairs(info) for info in await self("XINFO", "GROUPS", key)]

    async def consumers(self, key: str, group: str) -> list[dict[bytes, Any]]:
        """XINFO CONSUMERS, each consumer as a dict."""
        return [_pairs(info) for info in await self("XINFO", "CONSUMERS", key, group)]

    async def create_group(self, key: str, group: str, start: str = "$") -> None:
        """XGROUP CREATE ... MKSTREAM."""
        await self("XGROUP", "CREATE", key, group, start, "MKSTREAM")

    async def read_group(
        self, group: str, consumer: str, key: str, count: int = 10
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """XREADGROUP ``>`` (no blocking): the entries read."""
        found = await self(
            "XREADGROUP", "GROUP", group, consumer, "COUNT", count, "STREAMS", key, ">"
        )
        return [(entry_id, _pairs(values)) for entry_id, values in (found[0][1] if found else [])]


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def raw_client(url: str) -> AsyncRawClient:
    """An `AsyncRawClient` for `url`: ``async with raw_client(url) as raw: await raw("PING")``."""
    return AsyncRawClient(url)


def require_redis_server(executable: str = "redis-server") -> str:
    """Return the path of *executable*, or fail the current test saying how to install it.

    Raises:
        pytest.fail.Exception: The server is not installed. Redis tests fail rather than skip
            so that a missing server can never pass CI silently.
    """
    path = shutil.which(executable)
    if path is None:
        pytest.fail(
            f"{executable!r} was not found on PATH, and the Redis tests need a real server. "
            f"Install it with: {INSTALL_HINT}  (as root; on macOS: brew install redis)",
            pytrace=False,
        )
    return path


def redis_cli() -> str:
    """Return the path of ``redis-cli``.

    Raises:
        RedisServerError: ``redis-cli`` is not on ``PATH``; the message says how to install it.
    """
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RedisServerError(f"redis-cli was not found on PATH; install it: {INSTALL_HINT}")
    return cli


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway certificate authority and a server certificate it signed, as PEM files.

    Generated with the ``openssl`` command line (no Python dependency), valid for two days,
    for the names in *hostnames* (DNS names, or IP addresses). Use :meth:`generate`.

    Attributes:
        ca_cert: The authority's certificate: what a client must trust.
        cert: The server's certificate.
        key: The server's private key (unencrypted).
        hostnames: The names and addresses the server certificate is valid for.
    """

    ca_cert: Path
    cert: Path
    key: Path
    hostnames: tuple[str, ...]

    @classmethod
    def generate(
        cls,
        directory: Path,
        hostnames: Sequence[str] = ("localhost", _LOOPBACK),
        *,
        client_auth: bool = False,
    ) -> TLSFiles:
        """Create a new authority and a server certificate for *hostnames* in *directory*.

        With *client_auth* the certificate also serves as a client's: the nodes of a
        Redis Cluster present it to each other on the cluster bus, which checks it.

        Raises:
            RedisServerError: ``openssl`` failed (its output is in the message).
            pytest.fail.Exception: ``openssl`` is not installed.
        """
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.fail(f"the TLS tests need openssl; install it with: {OPENSSL_HINT}")
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
        key, csr, cert = (
            directory / "server.key",
            directory / "server.csr",
            directory / "server.pem",
        )
        names = ",".join(
            f"IP:{name}" if _is_ip_address(name) else f"DNS:{name}" for name in hostnames
        )
        extensions = directory / "server.ext"
        # What a strict verifier (Python 3.13's VERIFY_X509_STRICT) expects of a leaf.
        extensions.write_text(
            f"subjectAltName={names}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth{',clientAuth' if client_auth else ''}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        commands = [
            [openssl, "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
             "-subj", f"/CN=actorbus test CA {secrets.token_hex(4)}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            [openssl, "req", *new_key, "-keyout", key, "-out", csr,
             "-subj", f"/CN={hostnames[0] if hostnames else 'server'}"],
            [openssl, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions],
        ]  # fmt: skip
        for command in commands:
            completed = subprocess.run(
                [str(arg) for arg in command], capture_output=True, text=True, check=False
            )
            if completed.returncode != 0:
                raise RedisServerError(
                    f"openssl {command[1]} failed with status {completed.returncode}: "
                    f"{completed.stderr.strip()}"
                )
        return cls(ca_cert=ca_cert, cert=cert, key=key, hostnames=tuple(hostnames))

    def client_context(self, *, check_hostname: bool = True) -> ssl.SSLContext:
        """An SSL context that trusts this authority (and nothing else)."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.check_hostname = check_hostname
        return context


def _is_ip_address(name: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
    except OSError:
        return False
    return True


@dataclass
class _Resources:
    """What must be released when a server is garbage-collected or the interpreter exits.

    Kept apart from :class:`RedisServer` so that the finalizer holds no reference to it.
    """

    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def release(self) -> None:
        """Kill the process (if any) and delete the data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


class ClosedOnExit:
    """A context manager that `start`s on entering and `close`s on leaving.

    Entering closes it again when starting fails, so that half-started processes and their
    directories never outlive a failed ``with``.
    """

    def start(self) -> Self:
        """Start; return self."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop for good and free what `start` took."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RedisServer(ClosedOnExit):
    """A ``redis-server`` subprocess bound to ``127.0.0.1`` on a free port.

    The server is configured for tests: no RDB snapshots (``save ""``), AOF off unless
    *appendonly* is set (then ``appendfsync everysec``), ``protected-mode no``, and by default
    a random ``requirepass`` so that every client under test has to authenticate. Its data
    directory is a fresh temporary directory, kept across :meth:`stop`/:meth:`start` (so an
    outage can be simulated without losing the port or, with AOF, the data) and deleted by
    :meth:`close`.

    Use it as a context manager: entering starts the server, leaving stops it and deletes
    its directory, even when the block raises. The object is not thread-safe.

    Args:
        password: The ``requirepass`` to set. ``None`` (the default) generates a random one.
            It must not need percent-encoding in a URL (``ValueError`` otherwise).
        requirepass: Set to ``False`` to run without a password (then :attr:`password` is
            ``None`` and :attr:`url` carries no credentials).
        appendonly: Enable the AOF with ``appendfsync everysec``, so that acknowledged writes
            survive :meth:`stop`, :meth:`kill` and :meth:`restart`.
        logfile: Where the server writes its log. By default the log goes to a file in the
            data directory; either way :meth:`log` returns it.
        executable: The ``redis-server`` binary (a name looked up on ``PATH``, or a path).
        startup_timeout: Seconds to wait for the server to answer ``PING`` after a start.
        extra_config: Further ``redis.conf`` directives, e.g. ``{"maxmemory": "64mb"}``.
        tls: Speak only TLS: the server listens on :attr:`port` with ``tls-port`` (its
            plain port is off, ``port 0``), with a certificate signed by a throwaway
            authority generated on the first start (see :attr:`tls_files`). Clients are
            not asked for certificates. :attr:`url` is then a ``rediss://`` URL.
        tls_hostnames: The names and addresses the server certificate is valid for.
        tls_files: With `tls`, the authority and certificate to use instead of new ones
            (the nodes of a cluster share them).
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        requirepass: bool = True,
        appendonly: bool = False,
        logfile: str | os.PathLike[str] | None = None,
        executable: str = "redis-server",
        startup_timeout: float = 10.0,
        extra_config: dict[str, str] | None = None,
        tls: bool = False,
        tls_hostnames: Sequence[str] = ("localhost", _LOOPBACK),
        tls_files: TLSFiles | None = None,
    ) -> None:
        self._executable = executable
        self._tls = tls
        self._tls_hostnames = tuple(tls_hostnames)
        self._tls_files: TLSFiles | None = tls_files if tls else None
        self._raw_context: ssl.SSLContext | None = None
        self._startup_timeout = startup_timeout
        self._appendonly = appendonly
        self._extra_config = dict(extra_config or {})
        if password is not None and quote(password, safe="") != password:
            # url embeds the password verbatim; clients disagree on percent-decoding it.
            raise ValueError(f"choose a password without URL-special characters: {password!r}")
        self._password: str | None = (password or secrets.token_hex(16)) if requirepass else None
        self._port: int | None = None
        directory = Path(tempfile.mkdtemp(prefix="actorbus-redis-"))
        self._logfile = Path(logfile) if logfile is not None else directory / "redis.log"
        self._resources = _Resources(directory)
        # Reap the process and the directory even if the owner forgets to call close().
        self._finalizer = weakref.finalize(self, self._resources.release)

    # -- connection details ------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on (always ``127.0.0.1``)."""
        return _LOOPBACK

    @property
    def port(self) -> int:
        """The server's TCP port, fixed by the first :meth:`start` and kept by restarts.

        Raises:
            RedisServerError: The server was never started.
        """
        if self._port is None:
            raise RedisServerError("the redis-server has not been started yet: call start()")
        return self._port

    @property
    def password(self) -> str | None:
        """The ``requirepass`` password, or ``None`` when the server requires none."""
        return self._password

    @property
    def url(self) -> str:
        """A client URL for database 0, e.g. ``redis://:PASSWORD@127.0.0.1:PORT/0``.

        For a TLS server: ``rediss://:PASSWORD@127.0.0.1:PORT/0?ssl_ca_certs=CA`` (the
        authority's certificate as a query argument, as Redis clients read it).
        """
        credentials = f":{self._password}@" if self._password is not None else ""
        if self._tls_files is None:
            return f"redis://{credentials}{self.host}:{self.port}/0"
        query = urlencode({"ssl_ca_certs": str(self._tls_files.ca_cert)})
        return f"rediss://{credentials}{self.host}:{self.port}/0?{query}"

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (only)."""
        return self._tls

    @property
    def tls_files(self) -> TLSFiles:
        """The authority and certificate of a TLS server (created by the first start).

        Raises:
            RedisServerError: The server does not use TLS, or was never started.
        """
        if self._tls_files is None:
            state = "has not been started yet" if self._tls else "was created without tls=True"
            raise RedisServerError(f"this redis-server has no TLS files: it {state}")
        return self._tls_files

    @property
    def directory(self) -> Path:
        """The server's data directory (its ``dir``), deleted by :meth:`close`."""
        return self._resources.directory

    @property
    def pid(self) -> int | None:
        """The server process id while it runs, else ``None``."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may still be starting up)."""
        return self._process is not None and self._process.poll() is None

    @property
    def _process(self) -> subprocess.Popen[bytes] | None:
        return self._resources.process

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and return once it answers ``PING`` (after ``AUTH``).

        The first start picks a free port, retrying with a new one if another process takes
        it first; later starts reuse the same port and data directory. Starting a running
        server does nothing.

        Returns:
            The server itself, for chaining.

        Raises:
            RedisServerError: The server did not come up within ``startup_timeout``; the
                message includes the end of its log.
            pytest.fail.Exception: ``redis-server`` is not installed.
        """
        if self.running:
            return self
        if not self._finalizer.alive:
            raise RedisServerError("this RedisServer was closed; create a new one")
        executable = require_redis_server(self._executable)
        if self._tls and self._tls_files is None:
            self._tls_files = TLSFiles.generate(self.directory / "tls", self._tls_hostnames)
        if self._port is not None:
            self._launch(executable, self._port)
            return self
        for _ in range(_PORT_ATTEMPTS):
            port = find_free_port()
            try:
                self._launch(executable, port)
            except _PortTakenError:
                continue
            self._port = port
            return self
        raise RedisServerError(
            f"could not find a free port for redis-server after {_PORT_ATTEMPTS} attempts"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (``SHUTDOWN NOSAVE``), keeping port and directory.

        With AOF enabled the server still flushes its AOF on shutdown, so nothing written
        before ``stop`` is lost. Falls back to SIGTERM, then SIGKILL, if the server does not
        exit within *timeout* seconds. Stopping a stopped server does nothing.
        """
        process = self._process
        if process is None or process.poll() is not None:
            self._resources.process = None
            return
        with contextlib.suppress(OSError):
            # The server closes the connection instead of replying when SHUTDOWN succeeds.
            self._send(self.port, ("SHUTDOWN", "NOSAVE"), timeout=timeout)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._resources.process = None

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would; keeps port and directory.

        Returns once the process is gone. With AOF every acknowledged write survives: Redis
        writes the AOF before it replies, and ``everysec`` only delays the ``fsync``, which
        matters for a power loss, not for a process that dies.
        """
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self._resources.process = None

    def restart(self) -> Self:
        """Stop the server gracefully and start it again on the same port and directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server for good and delete its data directory. Safe to call twice."""
        try:
            self.stop()
        finally:
            self._finalizer()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.host}:{self._port} {state} dir={self.directory}>"

    # -- helpers -----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``redis-cli`` against this server and return its standard output.

        The equivalent of ``redis-cli -h 127.0.0.1 -p PORT -a PASSWORD --no-auth-warning
        ARGS...``. ``redis-cli`` ships with the server package. Output is what ``redis-cli``
        prints when not attached to a terminal: raw replies, one per line. Note that
        ``redis-cli`` 7 exits with status 0 after an *error reply*, which then comes back as
        text (``"ERR ..."``, ``"NOAUTH ..."``); check for it if it matters.

        Args:
            *args: The command and its arguments, e.g. ``("XLEN", "stream")``.
            timeout: Seconds before the call is abandoned.

        Returns:
            The standard output, without trailing newlines.

        Raises:
            RedisServerError: ``redis-cli`` is missing, or exited with a non-zero status.
        """
        command = [redis_cli(), "-h", self.host, "-p", str(self.port)]
        if self._tls_files is not None:
            command += ["--tls", "--cacert", str(self._tls_files.ca_cert)]
        if self._password is not None:
            command += ["-a", self._password, "--no-auth-warning"]
        command += list(args)
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if completed.returncode != 0:
            raise RedisServerError(
                f"redis-cli {' '.join(args)} exited with status {completed.returncode}: "
                f"{completed.stderr.strip() or completed.stdout.strip()}"
            )
        return completed.stdout.rstrip("\n")

    def ping(self) -> bool:
        """Return whether the server answers ``PING`` (authenticating first if needed)."""
        if self._port is None:
            return False
        try:
            replies = self._send(self._port, ("PING",), timeout=1.0)
        except OSError:
            return False
        return replies[-1] == "PONG"

    def log(self) -> str:
        """Return the server's log so far (empty if it has not written one)."""
        try:
            return self._logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals ---------------------------------------------------------------------

    def _auth_commands(self) -> list[tuple[str, ...]]:
        return [("AUTH", self._password)] if self._password is not None else []

    def _send(self, port: int, *commands: Sequence[str], timeout: float) -> list[Reply]:
        """:func:`send_raw` after ``AUTH``, over TLS for a TLS server."""
        context = None
        if self._tls_files is not None:
            if self._raw_context is None:
                # The fixture checks that *its* server answers; names are the client's
                # business (a test may give the server a certificate for another name).
                self._raw_context = self._tls_files.client_context(check_hostname=False)
            context = self._raw_context
        return send_raw(
            port, *self._auth_commands(), *commands, timeout=timeout, ssl_context=context
        )

    def _write_config(self, port: int) -> Path:
        directives = {
            "bind": _LOOPBACK,
            "port": str(port),
            "protected-mode": "no",
            "daemonize": "no",
            "dir": str(self.directory),
            "logfile": str(self._logfile),
            "save": '""',
            "appendonly": "yes" if self._appendonly else "no",
            "appendfsync": "everysec",
            **self._extra_config,
        }
        if self._password is not None:
            directives["requirepass"] = self._password
        if self._tls_files is not None:
            directives |= {
                "port": "0",
                "tls-port": str(port),
                "tls-cert-file": str(self._tls_files.cert),
                "tls-key-file": str(self._tls_files.key),
                "tls-ca-cert-file": str(self._tls_files.ca_cert),
                "tls-auth-clients": "no",
            }
        # The password lives in a file rather than on the command line so that ps does not
        # show it; the port is repeated on the command line so that ps identifies a leak.
        config = self.directory / "redis.conf"
        config.write_text("".join(f"{name} {value}\n" for name, value in directives.items()))
        return config

    def _launch(self, executable: str, port: int) -> None:
        """Start the process on *port* and wait until it answers; raise on failure."""
        config = self._write_config(port)
        log_offset = self._logfile.stat().st_size if self._logfile.exists() else 0
        ports = ["--port", str(port)]
        if self._tls_files is not None:
            ports = ["--port", "0", "--tls-port", str(port)]
        process = subprocess.Popen(
            [executable, str(config), *ports],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
        )
        self._resources.process = process
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._resources.process = None
                new_log = self.log()[log_offset:]
                if any(marker in new_log for marker in _PORT_TAKEN_MARKERS):
                    raise _PortTakenError(port)
                raise RedisServerError(
                    f"redis-server exited with status {process.returncode} while starting on "
                    f"port {port}. Last log lines:\n{_tail(new_log)}"
                )
            if self._answers(port, process.pid):
                return
            time.sleep(_POLL_INTERVAL)
        process.kill()
        process.wait()
        self._resources.process = None
        raise RedisServerError(
            f"redis-server did not answer PING on port {port} within {self._startup_timeout}s. "
            f"Last log lines:\n{_tail(self.log()[log_offset:])}"
        )

    def _answers(self, port: int, pid: int) -> bool:
        """Whether *our* process (not another that won the port) answers PING on *port*."""
        try:
            # A short timeout: whatever else may hold the port need not answer at all, and
            # our own process's exit is checked between attempts.
            *_, pong, info = self._send(port, ("PING",), ("INFO", "server"), timeout=0.25)
        except OSError:
            return False
        # A RespError here (-LOADING during AOF replay, for instance) means "not yet".
        return pong == "PONG" and isinstance(info, str) and f"process_id:{pid}\r\n" in info


class _PortTakenError(RedisServerError):
    """Another process bound the chosen port between our probe and the server's bind."""


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


# -- pytest plugin ---------------------------------------------------------------------

_FIXTURES = frozenset({"redis_server", "fresh_redis_server", "tls_redis_server"})


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``redis`` marker, so the plugin also works under ``--strict-markers``."""
    config.addinivalue_line(
        "markers", "redis: needs a real redis-server (started by the redis_server fixture)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a Redis fixture with ``redis``, for ``-m "not redis"``."""
    for item in items:
        if _FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One ``redis-server`` shared by the whole session.

    Do not stop, kill or flush it: other tests use it too. Use keys unique to the test
    (e.g. derived from ``request.node.name``) and ask for ``fresh_redis_server`` instead
    when a test needs to disturb the server.
    """
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A private ``redis-server`` for one test, which may stop, kill or restart it.

    Whatever the test does, the process is reaped and the data directory deleted at teardown.
    """
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_redis_server() -> Iterator[RedisServer]:
    """One TLS-only ``redis-server`` shared by the whole session (see `redis_server`).

    Its :attr:`~RedisServer.url` is ``rediss://`` with the throwaway authority's
    certificate as ``ssl_ca_certs``; :attr:`~RedisServer.tls_files` has the files.
    """
    require_redis_server()
    with RedisServer(tls=True) as server:
        yield server


# -- the keys of an actorbus application (the default prefix) -------------------------------


def new_app(prefix: str = "t") -> str:
    """A fresh application name, so that tests sharing one server never share keys."""
    return f"{prefix}-{secrets.token_hex(4)}"


def events_key(app: str) -> str:
    """The events stream of application `app`."""
    return f"actorbus:app:{app}:events"


def dead_key(app: str) -> str:
    """The dead-letter stream of application `app`."""
    return f"actorbus:app:{app}:dead"


# -- a proxy that holds Redis's replies back ------------------------------------------------


class SlowReplies:
    """A TCP proxy in front of a Redis server that can hold each of its replies back.

    Requests pass at once, so Redis applies a command as usual; its reply reaches the
    client `delay` seconds later (0: at once). For the case where Redis took a command
    and the client has not heard back yet. New connections go to `upstream`, which a test
    may point elsewhere, and `drop` ends the connections under way (clients reconnect).
    Threads, so it works under either backend.
    """

    def __init__(self, server: RedisServer) -> None:
        self.delay = 0.0
        self.upstream = (server.host, server.port)
        self._listener = socket.create_server((server.host, 0))
        self._links: list[socket.socket] = []
        self._drops = 0  # a connection made across a `drop` is dropped too
        self._lock = threading.Lock()  # the accepting thread changes `_links`
        port = self._listener.getsockname()[1]
        self.url = server.url.replace(f"{server.host}:{server.port}/", f"{server.host}:{port}/")
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                client, _ = self._listener.accept()
                with self._lock:
                    drops, upstream = self._drops, self.upstream
                try:
                    server = socket.create_connection(upstream)
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    current = drops == self._drops
                    if current:
                        self._links += [client, server]
                if not current:
                    client.close()
                    server.close()
                    continue
                threading.Thread(target=self._pump, args=(client, server, False)).start()
                threading.Thread(target=self._pump, args=(server, client, True)).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if replies and self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """End the connections under way; the proxy keeps taking new ones."""
        with self._lock:
            links, self._links = self._links, []
            self._drops += 1
        for sock in links:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.drop()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
