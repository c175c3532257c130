"""RESP2 replies out of the bytes a `Link`'s connection receives.

The bridge's own connections (`Link`) parse what Redis sends with **hiredis**'s reader
when it is installed (the ``redis`` extra installs it), else with coredis's parser.
coredis's is compiled with mypyc, but it takes about 5.8 µs for each entry of an
XREADGROUP reply on the benchmark machine, hiredis's C reader 0.8: on the (g)
throughput benchmark that is about a tenth of the CPU time of a handled event (see
``benchmarks/README.md``, "Fifth round").

Either way, the replies have the same shapes (bytes, int, None, lists), and a server
error is returned as the reply's value, as the exception that coredis itself raises for
it (``NOGROUP`` → `StreamConsumerGroupError`, ``READONLY`` → `ReadOnlyError`, ...), so
the rest of the bridge handles them alike (at any depth, though only MULTI/EXEC and
scripts, which the bridge does not use, put errors inside arrays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from coredis.exceptions import InvalidResponse, RedisError, ResponseError
from coredis.parser import NotEnoughData, Parser

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "HAVE_HIREDIS",
    "MISSING",
    "CoredisReplies",
    "HiredisReplies",
    "collect",
    "new_replies",
]


def _load_hiredis() -> Any:
    try:
        import hiredis  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the redis extra installs it
        return None
    return hiredis


_hiredis: Final[Any] = _load_hiredis()
HAVE_HIREDIS: Final = _hiredis is not None
"""Whether hiredis is installed (the ``redis`` extra installs it)."""


class _Missing:
    """The type of `MISSING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What `next` returns while no whole reply has arrived."""


def new_replies() -> HiredisReplies | CoredisReplies:
    """An empty buffer: hiredis's reader when installed, else coredis's parser."""
    if _hiredis is not None:
        return HiredisReplies()
    return CoredisReplies()  # pragma: no cover - the redis extra installs hiredis


def collect(parser: HiredisReplies | CoredisReplies, replies: list[Any], count: int) -> bool:
    """Move the whole replies `parser` holds to `replies`, up to `count` in all.

    Returns whether `replies` has its `count`; if not, the caller feeds `parser` more
    bytes and calls again.
    """
    while len(replies) < count:
        reply = parser.next()
        if reply is MISSING:
            return False
        replies.append(reply)
    return True


def _coredis_error(text: str) -> RedisError:
    """The exception coredis raises for the error reply `text` (e.g. ``NOGROUP ...``)."""
    try:
        return _ERROR_PARSER.parse_error(text)
    except Exception:  # pragma: no cover - coredis moved it: a plain error
        return ResponseError(text)


_ERROR_PARSER: Final = Parser()


class HiredisReplies:
    """A buffer of received bytes, giving back the replies in them: hiredis's C reader.

    ``feed(data)`` adds bytes received from Redis; ``next()`` returns the next whole
    reply (a server error as its coredis exception, at any depth), or `MISSING`, and
    raises `coredis.exceptions.InvalidResponse` if the bytes are not RESP. Both are the
    reader's own methods: no call of ours in between.
    """

    __slots__ = ("feed", "next")

    def __init__(self) -> None:
        reader = _hiredis.Reader(
            protocolError=InvalidResponse, replyError=_coredis_error, notEnoughData=MISSING
        )
        self.feed: Callable[[bytes], object] = reader.feed
        self.next: Callable[[], Any] = reader.gets


class CoredisReplies:
    """`HiredisReplies`, read by coredis's parser."""

    __slots__ = ("_parse", "feed")

    def __init__(self) -> None:
        parser = Parser()
        self.feed: Callable[[bytes], object] = parser.feed
        self._parse = parser.parse

    def next(self) -> Any:
        """See `HiredisReplies`."""
        parsed = self._parse(decode=False)
        if isinstance(parsed, NotEnoughData):
            return MISSING
        return parsed[1]
