"""The wire format of the transports: an envelope as CloudEvents JSON, and back.

`encode` is `Envelope.to_json` and `decode` is `Envelope.from_json`: the transports
write and read exactly what the public API does. `encode_value` and `decode_value` do the
same for one value (an entity's state): the JSON an envelope's data would be. Decoding
never imports or builds anything named by the data; every failure is a `DecodeError`
saying what was wrong.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _json_text
from ._convert import unstructure
from ._envelope import Envelope
from ._json_text import MAX_DEPTH, MAX_MESSAGE_BYTES

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "decode", "decode_value", "encode", "encode_value"]


def encode(envelope: Envelope) -> bytes:
    """`envelope.to_json()`: CloudEvents JSON bytes (ASCII: other characters are escaped).

    Raises:
        TypeError: If the data cannot be represented as JSON (say which type), or a
            context attribute is not a string.
        ValueError: If the envelope has no source (nor id, nor type).
    """
    return envelope.to_json()


def decode(
    raw: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> Envelope:
    """`Envelope.from_json(raw, max_bytes=max_bytes)`.

    Raises:
        DecodeError: For oversized, non-UTF-8, malformed, too deeply nested JSON, or a
            JSON value that is not a valid CloudEvent.
    """
    return Envelope.from_json(raw, max_bytes=max_bytes)


def encode_value(value: object) -> bytes:
    """Any value the wire carries as data (an attrs class, a dataclass…) as JSON bytes.

    The same JSON as an envelope's data: the library's converter, then compact RFC 8259
    JSON (no ``NaN`` or ``Infinity``), ASCII.

    Raises:
        TypeError: If the value cannot be represented as JSON (saying why), including
            one `decode_value` would refuse (nested deeper than `MAX_DEPTH`, a lone
            UTF-16 surrogate): what is written here can always be read back.
    """
    try:
        return _json_text.write_readable(unstructure(value)).encode()
    except RecursionError:
        msg = "it is nested too deeply, or contains itself"
        raise TypeError(msg) from None
    except (TypeError, ValueError) as exc:
        raise TypeError(str(exc)) from exc


def decode_value(raw: bytes | bytearray | memoryview | str) -> Any:
    """JSON bytes (as `encode_value` writes them) back into plain data, checked as `decode`.

    Raises:
        DecodeError: For non-UTF-8, malformed or too deeply nested JSON, or JSON that
            `encode_value` could not have written (``NaN``, lone surrogates...).
    """
    return _json_text.read(raw, sys.maxsize)  # no size limit: the value is our own
