"""The control channel between a worker pool's supervisor and each of its worker processes.

One connected UNIX socket pair per worker carries JSON lines both ways, each an object with
one key, the message's kind:

- supervisor → worker: ``config`` (first, once: what to run, see `_pool_worker`), then
  ``stop`` (stop gracefully);
- worker → supervisor: ``named`` (the worker's instance name), ``running`` (its system
  runs), ``stats`` (cumulative figures per actor, for ``--status``), ``fatal`` (the target
  cannot be run: restarting would not help) or ``failed`` (the system failed), each with
  a one-line text.

The supervisor keeps its end open while it lives, so the end of the stream tells a worker
that its supervisor is gone, even after ``kill -9``: the kernel closes the socket.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final, Self, cast

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    import socket
    from types import TracebackType

__all__ = ["Channel", "Message"]

_MAX_LINE: Final = 4 * 1024 * 1024
"""Bytes one message may take (``stats`` of a worker with very many actors is the largest)."""

Message = tuple[str, Any]
"""A received message: its kind and its value."""


class Channel:
    """One end of a control connection: JSON-line messages, sent and received in order.

    Sending is safe from several tasks at once (a lock keeps lines whole). Receiving
    belongs to one task.
    """

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._lock = anyio.Lock()

    @classmethod
    async def wrap(cls, sock: socket.socket) -> Self:
        """A channel on a connected UNIX stream socket (which it then owns)."""
        return cls(await anyio.abc.UNIXSocketStream.from_socket(sock))

    async def send(self, kind: str, value: Any = None) -> None:
        """Send one message.

        Raises:
            anyio.BrokenResourceError: The other end is gone.
        """
        line = json.dumps({kind: value}, separators=(",", ":")).encode() + b"\n"
        async with self._lock:
            await self._stream.send(line)

    async def send_quietly(self, kind: str, value: Any = None) -> bool:
        """Send one message; False (and nothing raised) when the other end is gone."""
        try:
            await self.send(kind, value)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        return True

    async def receive(self) -> Message | None:
        """The next message, or None once the other end closed its side (or died).

        Raises:
            ValueError: A line that is not a one-key JSON object (a broken peer).
        """
        try:
            line = await self._reader.receive_until(b"\n", _MAX_LINE)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            return None
        except ConnectionError:
            return None
        except anyio.DelimiterNotFound:
            msg = f"control message longer than {_MAX_LINE} bytes"
            raise ValueError(msg) from None
        return self.decode(line)

    @staticmethod
    def decode(line: bytes) -> Message:
        """Read one message.

        Raises:
            ValueError: A line that is not a one-key JSON object (a broken peer).
        """
        decoded: object = json.loads(line)
        if not isinstance(decoded, dict) or len(cast("dict[str, Any]", decoded)) != 1:
            msg = f"control message must be a one-key JSON object, got {line[:80]!r}"
            raise ValueError(msg)
        ((kind, value),) = cast("dict[str, Any]", decoded).items()
        return kind, value

    async def aclose(self) -> None:
        """Close this end (the other end then receives the end of the stream)."""
        await self._stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
