"""Redis commands in the RESP2 wire format, and the key a command is about.

A command is a tuple of arguments (``(b"XACK", key, group, entry_id)``): bytes are sent
as they are, strings as UTF-8, integers in decimal. `pack` turns commands into the bytes
that one write sends; the replies come back in the same order (pipelining).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BULK",
    "Command",
    "bulk",
    "command_key",
    "command_keys",
    "fields_of",
    "pack",
    "pack_head",
]

Command = tuple[bytes | str | int, ...]
"""One command and its arguments, e.g. ``(b"XACK", key, group, entry_id)``."""

BULK: Final = b"$%d\r\n%b\r\n"
"""One RESP bulk string, to fill in with ``(len(value), value)``."""


def bulk(argument: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string."""
    if isinstance(argument, bytes):
        value = argument
    elif isinstance(argument, str):
        value = argument.encode()
    else:
        value = b"%d" % argument
    return BULK % (len(value), value)


def pack(commands: Sequence[Command]) -> bytes:
    """`commands` in the wire format, ready to be sent together."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        out.extend(map(bulk, command))
    return b"".join(out)


def pack_head(head: Command, more: int) -> bytes:
    """The start of a command of `head` and `more` arguments, packed later (see `BULK`)."""
    return b"*%d\r\n" % (len(head) + more) + b"".join(map(bulk, head))


_TWO_FIELDS: Final = 4
"""The length of an entry's flat field list with two fields and their values."""


def fields_of(values: list[bytes]) -> dict[bytes, bytes]:
    """A stream entry's flat list of fields and values (as Redis sends it) as a dict."""
    if len(values) == _TWO_FIELDS:  # "e" and "t", as the publisher writes them
        return {values[0]: values[1], values[2]: values[3]}
    return dict(zip(values[::2], values[1::2], strict=False))


# Where the keys of a command are. Most have one key, first; these differ.
_KEY_AFTER: Final = {b"XREAD": b"STREAMS", b"XREADGROUP": b"STREAMS"}
_KEY_SECOND: Final = frozenset({b"XGROUP", b"XINFO", b"OBJECT", b"MEMORY"})
_NO_KEY: Final = frozenset(
    {b"PING", b"SELECT", b"AUTH", b"INFO", b"CLIENT", b"ASKING", b"CLUSTER", b"SCRIPT"}
)
_ALL_KEYS: Final = frozenset({b"DEL", b"EXISTS", b"UNLINK", b"TOUCH", b"MGET", b"WATCH"})
_NUMKEYS: Final = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"})


def command_key(command: Command) -> bytes | None:
    """The key `command` is about (its first, for the few with several), or None.

    A client for Redis Cluster sends a command to the node serving this key's slot. Every
    command of the bridge has all its keys in one slot (one key, mostly).
    """
    keys = command_keys(command)
    return keys[0] if keys else None


def command_keys(command: Command) -> list[bytes]:
    """Every key `command` names, in order (none for ``PING``, ``CLUSTER SLOTS``, …).

    Knows the commands of the bridge, the multi-key ones (``DEL``, ``EXISTS``, ``MGET``,
    ``XREAD(GROUP) ... STREAMS``, ``MSET``) and scripts (``EVAL``, ``EVALSHA``, ``FCALL``
    with their ``numkeys``); any other command is taken to have one key, first.
    """
    name = _word(command[0]).upper()
    if name in _NO_KEY:
        return []
    if name in _KEY_SECOND:
        return [_word(command[2])] if len(command) > 2 else []  # noqa: PLR2004
    if name in _KEY_AFTER:
        words = [_word(argument).upper() for argument in command]
        try:
            start = words.index(_KEY_AFTER[name]) + 1
        except ValueError:
            return []
        # STREAMS k1 k2 … id1 id2 …: the first half of what follows are keys.
        return [_word(key) for key in command[start : start + (len(command) - start) // 2]]
    if name in _ALL_KEYS:
        return [_word(key) for key in command[1:]]
    if name in (b"MSET", b"MSETNX"):
        return [_word(key) for key in command[1::2]]
    if name in _NUMKEYS:
        try:
            count = int(_word(command[2]))
        except (IndexError, ValueError):
            return []
        return [_word(key) for key in command[3 : 3 + count]]
    return [_word(command[1])] if len(command) > 1 else []


def _word(argument: bytes | str | int) -> bytes:
    if isinstance(argument, bytes):
        return argument
    return argument.encode() if isinstance(argument, str) else b"%d" % argument
