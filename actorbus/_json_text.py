"""JSON text as the wire carries it: compact ASCII out, RFC 8259 within limits in.

`write` gives the text `json.dumps(value, separators=(",", ":"), allow_nan=False)` gives.
`read` accepts that text and no more: at most `max_bytes` of UTF-8, RFC 8259 JSON (no
``NaN``, no ``Infinity``, no number too large for a float, no string that is not valid
Unicode), nested at most `MAX_DEPTH` levels. Every fault it finds is a `DecodeError`
saying what was wrong. Only the standard library's public `json` API is used.
"""

from __future__ import annotations

import json
import math
import operator
import re
from itertools import accumulate, repeat
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ._exceptions import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "read", "write", "write_readable"]

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""The default limit on a message's size, in bytes of UTF-8."""
MAX_DEPTH: Final = 64
"""How deeply a message's JSON may nest, the envelope object being the first level."""

# Without the circular-reference check: a value that contains itself ends in
# `RecursionError` like one nested too deeply, and callers report both the same way.
write: Final[Callable[[object], str]] = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, check_circular=False
).encode
"""`value` as compact JSON text, non-ASCII characters escaped (a `str` is quoted).

Raises:
    TypeError: For a value of a type JSON has no form for.
    ValueError: For a float that is not finite.
    RecursionError: For a value nested too deeply, or that contains itself.
"""

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


def read(raw: bytes | bytearray | memoryview | str, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """The JSON value of `raw`, checked against the wire's limits.

    Raises:
        DecodeError: For oversized, non-UTF-8, malformed or too deeply nested JSON.
    """
    if len(raw) > max_bytes:  # a str has no more characters than its UTF-8 has bytes
        msg = f"message of {len(raw)} bytes exceeds max_message_bytes={max_bytes}"
        raise DecodeError(msg)
    text = _text(raw, max_bytes)
    if (fault := _beyond_limits(text, MAX_DEPTH)) is not None:
        msg = f"message JSON {fault}"
        raise DecodeError(msg)
    try:
        return _decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        msg = f"message is not valid JSON: {exc}"
        raise DecodeError(msg) from exc


def write_readable(value: object, depth: int = MAX_DEPTH) -> str:
    """`write(value)`, refused unless `read` accepts it nested in `depth` levels.

    What one program writes, another must be able to read: a value nested too deeply,
    or with a string holding a lone UTF-16 surrogate, is refused here, at the writer,
    rather than dead-lettered (or, for an entity's state, left unloadable) at the reader.

    Raises:
        ValueError: For such a value, or a float that is not finite.
        TypeError: For a value of a type JSON has no form for.
        RecursionError: For a value nested far too deeply, or that contains itself.
    """
    text = write(value)
    if (fault := _beyond_limits(text, depth)) is not None:
        msg = f"its JSON {fault}"
        raise ValueError(msg)
    return text


def _beyond_limits(text: str, depth: int) -> str | None:
    """What in JSON `text` a reader refuses (None: nothing), besides its size and syntax."""
    if text.count("[") + text.count("{") > depth and _depth(text) > depth:
        return f"is nested deeper than {depth} levels"
    if "\\u" in text and _has_lone_surrogate(text):
        return "has a string with a lone UTF-16 surrogate escape (not Unicode text)"
    return None


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
    the decoder rejects the text next.
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
    # json.loads would turn 1e999 into infinity, which `write` refuses to write.
    value = float(text)
    if not math.isfinite(value):
        msg = f"number of {len(text)} characters is too large for a float"
        raise ValueError(msg)
    return value


_decoder: Final = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
