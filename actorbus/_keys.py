"""Event keys: what an event is about (an order, an account), and the partition of a key.

A key travels with its event as the CloudEvents extension attribute ``partitionkey`` (the
CloudEvents Partitioning extension), in the envelope's headers. `@event(key=...)` says how
to read it from an event; `publish(key=...)` gives it for one call.

`partition_of` maps a key to one of `partitions` partitions with CRC-32 (the IEEE 802.3
polynomial of zlib, Java's `java.util.zip.CRC32` and Go's `crc32.ChecksumIEEE`) of the
key's UTF-8 bytes, modulo the number of partitions: the same answer in every process,
version and platform, and for a producer written in another language.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Final

__all__ = ["PARTITION_KEY", "KeySpec", "check_key", "partition_of", "read_key"]

PARTITION_KEY: Final = "partitionkey"
"""The extension attribute (envelope header) carrying an event's key."""

KeySpec = str | Callable[[Any], object]
"""How `@event(key=...)` reads an event's key: an attribute name, or a function."""

_MAX_KEY_CHARS: Final = 1024


def partition_of(key: str, partitions: int) -> int:
    """The partition of `key` among `partitions` (stable everywhere; see the module doc)."""
    return zlib.crc32(key.encode()) % partitions


def check_key(value: object, where: str) -> str:
    """`value` as a key: a non-empty string (an int is written in decimal).

    Raises:
        TypeError: For anything else (the message names `where` the key came from).
        ValueError: For an empty key, or one over 1,024 characters.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        msg = f"{where} must be a string (or an int), got {type(value).__qualname__} {value!r}"
        raise TypeError(msg)
    key = value if isinstance(value, str) else str(value)
    if not key or len(key) > _MAX_KEY_CHARS:
        msg = f"{where} must be 1 to {_MAX_KEY_CHARS} characters, got {len(key)}"
        raise ValueError(msg)
    return key


def read_key(event: object, spec: KeySpec, type_: str) -> str:
    """The key of `event` as `@event(key=spec)` says to read it.

    Raises:
        TypeError, ValueError: If the key is not a non-empty string (see `check_key`).
    """
    if isinstance(spec, str):
        return check_key(getattr(event, spec), f"the key of {type_!r} (its field {spec!r})")
    return check_key(spec(event), f"the key of {type_!r} (from its key function)")
