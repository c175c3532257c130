"""The wire format: an envelope as CloudEvents JSON (structured mode), and back.

Decoding never imports or builds anything named by the data: the JSON becomes an
`Envelope` whose `data` is plain data; only classes registered with `@event` are built
from it later, by the system. Every failure is a `DecodeError` saying what was wrong.
"""

from __future__ import annotations

import json
from typing import Final

from ._envelope import Envelope
from ._exceptions import DecodeError

__all__ = ["MAX_MESSAGE_BYTES", "decode", "encode"]

MAX_MESSAGE_BYTES: Final = 1024 * 1024
_MAX_DEPTH: Final = 64


def encode(envelope: Envelope) -> bytes:
    """The envelope as CloudEvents JSON bytes.

    Raises:
        TypeError: If the data cannot be represented as JSON (say which type).
    """
    try:
        return json.dumps(envelope.to_cloudevent(), separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        msg = (
            f"cannot encode event {envelope.type!r} (id {envelope.id}) as JSON: {exc}; "
            "APP-scope events must hold JSON-friendly fields (str, numbers, bools, lists, "
            "dicts, datetimes, nested @event/attrs classes)"
        )
        raise TypeError(msg) from exc


def decode(raw: bytes | str, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Read CloudEvents JSON bytes back into an envelope.

    Raises:
        DecodeError: For oversized, non-UTF-8, malformed, too deeply nested JSON, or a
            JSON value that is not a valid CloudEvent.
    """
    size = len(raw)
    if size > max_bytes:
        msg = f"message of {size} bytes exceeds max_message_bytes={max_bytes}"
        raise DecodeError(msg)
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode()
        except UnicodeDecodeError as exc:
            msg = f"message is not UTF-8: {exc}"
            raise DecodeError(msg) from exc
    # Counting brackets runs at C speed; the exact depth is only computed when it might matter.
    if raw.count("[") + raw.count("{") > _MAX_DEPTH and _depth(raw) > _MAX_DEPTH:
        msg = f"message JSON is nested deeper than {_MAX_DEPTH} levels"
        raise DecodeError(msg)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        msg = f"message is not valid JSON: {exc}"
        raise DecodeError(msg) from exc
    return Envelope.from_cloudevent(value)


def _depth(text: str) -> int:
    """An upper bound of the JSON nesting depth, without parsing (brackets in strings count)."""
    deepest = depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
