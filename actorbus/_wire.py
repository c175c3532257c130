"""The wire format: an envelope as CloudEvents JSON (structured mode), and back.

Decoding never imports or builds anything named by the data: the JSON becomes an
`Envelope` whose `data` is plain data; only classes registered with `@event` are built
from it later, by the system. Every failure is a `DecodeError` saying what was wrong.

`decode` accepts what `encode` produces and no more: at most `max_bytes` of UTF-8,
RFC 8259 JSON (no ``NaN``, no ``Infinity``, no number too large for a float, no string
that is not valid Unicode), nested at most `MAX_DEPTH` levels.
"""

from __future__ import annotations

import json
import math
import operator
import re
from itertools import accumulate, repeat
from typing import Final, NoReturn

from ._envelope import Envelope
from ._exceptions import DecodeError

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "decode", "encode"]

MAX_MESSAGE_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 64
"""How deeply a message's JSON may nest, the envelope object being the first level."""

# Reduces JSON text without its strings to its brackets, every one of them "[" or "]".
_BRACKETS: Final = str.maketrans(
    {chr(code): None for code in range(128)} | {"{": "[", "[": "[", "}": "]", "]": "]"}
)
# "[" is 91 and "]" is 93 in ASCII: 92 minus a bracket's code is its change in depth.
_BETWEEN_BRACKETS: Final = 92
# A UTF-16 surrogate written as an escape; valid only as a high-low pair.
_SURROGATE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_PAIR_OR_BACKSLASH: Final = re.compile(
    r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


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


def decode(
    raw: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> Envelope:
    """Read CloudEvents JSON bytes back into an envelope.

    Raises:
        DecodeError: For oversized, non-UTF-8, malformed, too deeply nested JSON, or a
            JSON value that is not a valid CloudEvent.
    """
    if len(raw) > max_bytes:  # a str has no more characters than its UTF-8 has bytes
        msg = f"message of {len(raw)} bytes exceeds max_message_bytes={max_bytes}"
        raise DecodeError(msg)
    text = _text(raw, max_bytes)
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        msg = f"message JSON is nested deeper than {MAX_DEPTH} levels"
        raise DecodeError(msg)
    if "\\u" in text and _has_lone_surrogate(text):
        msg = "message JSON has a string with a lone UTF-16 surrogate escape (not Unicode text)"
        raise DecodeError(msg)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        msg = f"message is not valid JSON: {exc}"
        raise DecodeError(msg) from exc
    return Envelope.from_cloudevent(value)


def _text(raw: bytes | bytearray | memoryview | str, max_bytes: int) -> str:
    """`raw` as text that is valid Unicode and at most `max_bytes` of UTF-8."""
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError as exc:  # a str may hold lone surrogates; UTF-8 cannot
            msg = f"message is not valid Unicode: {exc}"
            raise DecodeError(msg) from exc
        if len(raw) > max_bytes:
            msg = f"message of {len(raw)} bytes exceeds max_message_bytes={max_bytes}"
            raise DecodeError(msg)
    try:
        return bytes(raw).decode()
    except UnicodeDecodeError as exc:
        msg = f"message is not UTF-8: {exc}"
        raise DecodeError(msg) from exc


def _depth(text: str) -> int:
    """The nesting depth of JSON `text`; brackets inside strings do not count.

    Only string methods run per character, at C speed. Each ``replace`` pass removes the
    innermost containers, one level of depth: wide, shallow JSON (the usual bracket-heavy
    message) is gone in a few passes. When a pass stops paying off (narrow, deep JSON),
    the depth of what is left is counted. For malformed JSON the answer means nothing, and
    `json.loads` rejects the text next.
    """
    skeleton = _outside_strings(text).translate(_BRACKETS)
    if "[" * (MAX_DEPTH + 1) in skeleton:
        return MAX_DEPTH + 1
    removed = 0
    while skeleton and removed <= MAX_DEPTH:
        shorter = skeleton.replace("[]", "")
        if len(shorter) * 4 > len(skeleton) * 3:
            break
        skeleton = shorter
        removed += 1
    steps = map(operator.sub, repeat(_BETWEEN_BRACKETS), skeleton.encode())
    return removed + max(accumulate(steps), default=0)


def _outside_strings(text: str) -> str:
    """JSON `text` without its strings (keys and values): what is left is structure."""
    if "\\" in text:
        # Escaped backslashes first (so `\\"` ends a string), then escaped quotes: every
        # quote left delimits a string.
        text = text.replace("\\\\", "").replace('\\"', "")
    return "".join(text.split('"')[::2])


def _has_lone_surrogate(text: str) -> bool:
    """Whether a string of JSON `text` escapes half of a UTF-16 surrogate pair alone.

    `json.loads` accepts it, but the result cannot be encoded as UTF-8: it would fail
    later, far from here (a Redis key, a reply, a log file).
    """
    return (
        _SURROGATE.search(text) is not None
        and _SURROGATE.search(_PAIR_OR_BACKSLASH.sub("", text)) is not None
    )


def _refuse_constant(name: str) -> NoReturn:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _finite_float(text: str) -> float:
    # json.loads would turn 1e999 into infinity, which `encode` refuses to write.
    value = float(text)
    if not math.isfinite(value):
        msg = f"number of {len(text)} characters is too large for a float"
        raise ValueError(msg)
    return value
