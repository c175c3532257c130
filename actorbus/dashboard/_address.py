"""Where the dashboard listens: ``[HOST:]PORT``, bound before anything starts."""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Final

__all__ = ["DEFAULT_HOST", "address", "is_loopback", "listen", "parse_listen"]

logger: Final = logging.getLogger("actorbus.dashboard")

DEFAULT_HOST: Final = "127.0.0.1"


def parse_listen(value: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:PORT`` for IPv6) as (host, port); the host defaults to loopback.

    Raises:
        ValueError: Saying what is expected.
    """
    text = value.strip()
    host, colon, port_text = text.rpartition(":")
    if not colon:
        host, port_text = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the largest TCP port
        msg = (
            f"{value!r} is not [HOST:]PORT (e.g. 8000, 127.0.0.1:8000, [::1]:8000, "
            "0.0.0.0:8000); the port is a number from 0 to 65535"
        )
        raise ValueError(msg)
    return host, port


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(value: str) -> socket.socket:
    """Bind a listening socket to ``[HOST:]PORT``; warn when it is not a loopback address.

    Raises:
        ValueError: For a malformed value, or an address that cannot be bound (in use,
            not this machine's), saying which.
    """
    host, port = parse_listen(value)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        msg = (
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "pick another port (--dashboard HOST:PORT)"
        )
        raise ValueError(msg) from None
    if not is_loopback(host):
        logger.warning(
            "the dashboard listens on %s:%d, which is not a loopback address: anyone who "
            "can reach it sees the application's actors, events and errors. Prefer "
            "127.0.0.1 with an SSH tunnel, and set --dashboard-token",
            host,
            port,
        )
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port/`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
