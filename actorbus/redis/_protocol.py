"""Redis commands in the RESP2 wire format, and the key a command is about.

A command is a tuple of arguments (``(b"XACK", key, group, entry_id)``): bytes are sent
as they are, strings as UTF-8, integers in decimal. `pack` turns commands into the bytes
that one write sends; the replies come back in the same order (pipelining).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["BULK", "Command", "bulk", "command_key", "fields_of", "pack", "pack_head"]

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


# Where the (first) key of the commands the bridge sends is; the others have it first.
_KEY_AFTER: Final = {b"XREAD": b"STREAMS", b"XREADGROUP": b"STREAMS"}
_KEY_SECOND: Final = frozenset({b"XGROUP", b"XINFO", b"OBJECT", b"MEMORY"})
_KEY_THIRD: Final = frozenset({b"EVAL", b"EVALSHA"})  # script, number of keys, keys
_NO_KEY: Final = frozenset({b"PING", b"SELECT", b"AUTH", b"INFO", b"CLIENT", b"ASKING"})


def command_key(command: Command) -> bytes | None:
    """The key `command` is about (its first, for the few with several), or None.

    A client for Redis Cluster sends a command to the node serving this key's slot. Every
    command of the bridge has all its keys in one slot (one key, mostly).
    """
    name = _word(command[0]).upper()
    if name in _NO_KEY:
        return None
    if name in _KEY_SECOND:
        position = 2
    elif name in _KEY_THIRD:
        position = 3
    elif name in _KEY_AFTER:
        words = [_word(argument).upper() for argument in command]
        try:
            position = words.index(_KEY_AFTER[name]) + 1
        except ValueError:
            return None
    else:
        position = 1
    return _word(command[position]) if position < len(command) else None


def _word(argument: bytes | str | int) -> bytes:
    if isinstance(argument, bytes):
        return argument
    return argument.encode() if isinstance(argument, str) else b"%d" % argument
