"""`Endpoint`: where a Redis server is and how to log in to it, read from a Redis URL."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

if TYPE_CHECKING:
    import ssl

__all__ = ["Endpoint", "endpoint", "node_address"]

_DEFAULT_PORT = 6379


@attrs.frozen(cache_hash=True)  # a key of the connection dicts, looked up per exchange
class Endpoint:
    """One Redis server and the log-in every connection to it does.

    Attributes:
        host: Its host name or address (unused for a Unix socket).
        port: Its TCP port.
        path: The path of its Unix socket, or None for TCP.
        username: The ACL user to log in as (None: ``default``).
        password: The password (None: no ``AUTH``). Never in the repr.
        db: The database to ``SELECT`` (0: none selected).
        tls: The TLS context for ``rediss://`` (None: plain TCP).
        where: The URL with its password hidden, for messages.
    """

    host: str
    port: int
    path: str | None
    username: str | None
    password: str | None = attrs.field(repr=False)
    db: int
    tls: ssl.SSLContext | None = attrs.field(repr=False)
    where: str

    def at(self, host: str, port: int) -> Endpoint:
        """Another server of the same deployment (a cluster node): same log-in and TLS."""
        where = f"{self.where.partition('://')[0]}://{host}:{port}"
        return attrs.evolve(self, host=host, port=port, path=None, where=where)


def node_address(text: str) -> tuple[str, int]:
    """The host and port of ``host:port`` (``[::1]:7000`` for an IPv6 address).

    Raises:
        ValueError: If `text` is not of that form, with a port from 1 to 65535.
    """
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:  # noqa: PLR2004
        msg = (
            f"not a cluster node address: {text!r}; give seeds as 'host:port' strings "
            "(e.g. '10.0.0.2:6379'); they log in as the URL says"
        )
        raise ValueError(msg)
    return host, int(port)


def endpoint(url: str, tls: ssl.SSLContext | None, where: str) -> Endpoint:
    """The endpoint of a checked Redis URL (`actorbus.redis._config.check_url`).

    The user name and password are percent-decoded, as other Redis clients do. The
    database is the ``db`` query argument, else the path's number (``/2``), else 0.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    path: str | None = None
    if parts.scheme == "unix":
        path = unquote(parts.path)
        db_text = query.get("db", ["0"])[-1]
    else:
        db_text = query.get("db", [parts.path.lstrip("/") or "0"])[-1]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return Endpoint(
        host=parts.hostname or "localhost",
        port=parts.port or _DEFAULT_PORT,
        path=path,
        username=username,
        password=password,
        db=int(db_text or 0),
        tls=tls if parts.scheme == "rediss" else None,
        where=where,
    )
