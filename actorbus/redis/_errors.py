"""What can go wrong between the bridge and Redis, as actorbus's own exceptions.

The connection (`actorbus.redis._connection`) is the one place where sockets, TLS, the
RESP parser and the server's error replies meet the bridge: everything they raise or
answer is mapped there to one of these classes. No other module sees an `OSError`, an
anyio stream error or a parser's error. They are all `actorbus.TransportError` (and so
`ConnectionError`), but the bridge catches them and says what happened in its own words;
they reach users only through those messages.

- `ConnectionLost`: Redis could not be reached, the connection broke, or the reply did
  not come in time. A command sent on it may have run; `Unreachable`, its subclass, says
  that the connection could not be opened, so nothing was sent.
- `ReplyError`: Redis answered with an error; `code` is its first word (``NOGROUP``,
  ``BUSYGROUP``, ``NOPERM``, …). The subclasses name the codes the bridge acts on.
- `CrossSlot` and `ClusterMismatch`: raised by the client itself, before anything is sent
  (a command whose keys a Redis Cluster would refuse; a deployment that is not what
  ``cluster=`` says).
"""

from __future__ import annotations

from typing import Final

from actorbus._exceptions import TransportError

__all__ = [
    "TRANSIENT",
    "AuthenticationFailed",
    "ClusterMismatch",
    "ConnectionLost",
    "CrossSlot",
    "GroupExists",
    "NoGroup",
    "PermissionDenied",
    "Redirected",
    "RedisError",
    "ReplyError",
    "Unavailable",
    "Unreachable",
    "reply_error",
]


class RedisError(TransportError):
    """A command could not be carried out by Redis (the base of the client's errors)."""


class ConnectionLost(RedisError):
    """Redis could not be reached, the connection broke, or no reply came in time.

    The connection is closed when this is raised. A command written before it broke may
    have run: Redis may have applied it without the reply getting back.
    """


class Unreachable(ConnectionLost):
    """No connection could be opened (refused, timed out, TLS failed): nothing was sent."""


class CrossSlot(RedisError):
    """A command names keys in different hash slots: a Redis Cluster cannot run it.

    Raised by the client before anything is sent. It is a defect of the code that built
    the command (every command of the bridge keeps its keys in one slot), so it is not a
    `ReplyError`: the bridge's loops do not retry it.
    """


class ClusterMismatch(RedisError):
    """The server is not what ``RedisTransport(cluster=...)`` says (found at start-up)."""


class ReplyError(RedisError):
    """Redis answered a command with an error reply (the command did not run).

    Attributes:
        code: The reply's first word, upper-case, such as ``ERR``, ``NOGROUP``, ``NOPERM``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code: str = message.split(" ", 1)[0] if message else "ERR"


class Unavailable(ReplyError):
    """Redis cannot serve the command now but will later: try again after a backoff.

    ``LOADING`` (a restarted server reading its data), ``READONLY`` (a primary demoted
    during a failover), ``MASTERDOWN``, ``TRYAGAIN`` and ``CLUSTERDOWN``. The command did
    not run.
    """


class Redirected(ReplyError):
    """``MOVED`` or ``ASK`` (Redis Cluster): the key's slot is served by another node.

    Attributes:
        slot: The hash slot of the command's key.
        host: The node that serves it.
        port: Its port.
        ask: True for ``ASK`` (this command only, after ``ASKING``), False for ``MOVED``
            (the slot map changed).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.ask = self.code == "ASK"
        parts = message.split(" ")
        self.slot = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        host, _, port = (parts[2] if len(parts) > 2 else "").rpartition(":")  # noqa: PLR2004
        self.host = host
        self.port = int(port) if port.isdigit() else 0


class AuthenticationFailed(ReplyError):
    """``WRONGPASS`` or ``NOAUTH``: the user name or password is wrong or missing."""


class PermissionDenied(ReplyError):
    """``NOPERM``: the user's ACL does not allow that command or key."""


class NoGroup(ReplyError):
    """``NOGROUP``: the stream or its consumer group does not exist."""


class GroupExists(ReplyError):
    """``BUSYGROUP``: a consumer group with that name exists already."""


_BY_CODE: Final[dict[str, type[ReplyError]]] = {
    "LOADING": Unavailable,
    "READONLY": Unavailable,
    "MASTERDOWN": Unavailable,
    "TRYAGAIN": Unavailable,
    "CLUSTERDOWN": Unavailable,
    "MOVED": Redirected,
    "ASK": Redirected,
    "WRONGPASS": AuthenticationFailed,
    "NOAUTH": AuthenticationFailed,
    "NOPERM": PermissionDenied,
    "NOGROUP": NoGroup,
    "BUSYGROUP": GroupExists,
}


def reply_error(message: str | bytes) -> ReplyError:
    """The exception for the error reply `message` (``NOGROUP No such key ...``)."""
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    return _BY_CODE.get(message.split(" ", 1)[0], ReplyError)(message)


TRANSIENT: Final = (ConnectionLost, Unavailable)
"""Errors that mean "Redis cannot be used right now": back off and try again."""
