"""The wire format of the transports: an envelope as CloudEvents JSON, and back.

`encode` is `Envelope.to_json` and `decode` is `Envelope.from_json`: the transports
write and read exactly what the public API does. Decoding never imports or builds
anything named by the data; every failure is a `DecodeError` saying what was wrong.
"""

from __future__ import annotations

from ._envelope import Envelope
from ._json_text import MAX_DEPTH, MAX_MESSAGE_BYTES

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "decode", "encode"]


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
