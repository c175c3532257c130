"""The wire format: an envelope as CloudEvents JSON (structured mode), and back.

Decoding never imports or builds anything named by the data: the JSON becomes an
`Envelope` whose `data` is plain data; only classes registered with `@event` are built
from it later, by the system. Every failure is a `DecodeError` saying what was wrong.

`decode` accepts what `encode` produces and no more: at most `max_bytes` of UTF-8,
RFC 8259 JSON (no ``NaN``, no ``Infinity``, no number too large for a float, no string
that is not valid Unicode), nested at most `MAX_DEPTH` levels.
"""

from __future__ import annotations

import base64
import json
import json.encoder
import math
import operator
import re
import sys
from itertools import accumulate, repeat
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ._convert import unstructure
from ._envelope import Envelope, named, wire_id_and_time
from ._exceptions import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "decode", "decode_value", "encode", "encode_value"]

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
    """The envelope as CloudEvents JSON bytes (ASCII: other characters are escaped).

    Raises:
        TypeError: If the data cannot be represented as JSON (say which type).
    """
    try:
        return _cloudevent_json(envelope).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        deep = isinstance(exc, RecursionError)
        reason = "it is nested too deeply, or contains itself" if deep else str(exc)
        msg = (
            f"cannot encode {named(envelope)} as JSON: {reason}; "
            "APP-scope events must hold JSON-friendly fields (str, numbers, bools, lists, "
            "dicts, datetimes, nested @event/attrs classes)"
        )
        raise TypeError(msg) from None if deep else exc


def _cloudevent_json(envelope: Envelope) -> str:
    """``json.dumps(envelope.to_cloudevent(), separators=(",", ":"), allow_nan=False)``.

    The same text, written directly: the context attributes are strings (quoted by
    the C function `json.dumps` uses) and only the data goes through an encoder, one
    built once. About a third of the cost of building the dict and dumping it.
    """
    id_, time_ = wire_id_and_time(envelope)
    try:
        text = (
            f'{{"specversion":{_quote(envelope.specversion)},"id":{_quote(id_)},'
            f'"source":{_quote(envelope.source)},"type":{_quote(envelope.type)},'
            f'"time":"{time_}","datacontenttype":{_quote(envelope.datacontenttype)},'
            f'"scope":"{envelope.scope.value}"'
        )
        if envelope.subject is not None:
            text += f',"subject":{_quote(envelope.subject)}'
    except TypeError:  # an envelope built by hand with a context attribute not a str
        names = ("specversion", "id", "source", "type", "datacontenttype", "subject")
        for name in names:
            value = getattr(envelope, name)
            if not isinstance(value, str) and (value is not None or name != "subject"):
                msg = f"its attribute {name!r} must be a string, got {type(value).__name__}"
                raise TypeError(msg) from None
        raise
    for key, value in envelope.headers.items():
        text += f",{_quote(key)}:{_quote(value)}"
    data = envelope.data
    if isinstance(data, bytes | bytearray):
        text += f',"data_base64":"{base64.b64encode(data).decode("ascii")}"'
    elif data is not None:
        text += ',"data":' + _json(unstructure(data))
    return text + "}"


def encode_value(value: object) -> bytes:
    """Any value the wire carries as data (an attrs class, a dataclass…) as JSON bytes.

    The same JSON as an envelope's data: the library's converter, then compact RFC 8259
    JSON (no ``NaN`` or ``Infinity``), ASCII.

    Raises:
        TypeError: If the value cannot be represented as JSON (saying why).
    """
    try:
        return _json(unstructure(value)).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            msg = "it is nested too deeply, or contains itself"
            raise TypeError(msg) from None
        raise TypeError(str(exc)) from exc


def decode_value(raw: bytes | bytearray | memoryview | str) -> Any:
    """JSON bytes (as `encode_value` writes them) back into plain data, checked as `decode`.

    Raises:
        DecodeError: For non-UTF-8, malformed or too deeply nested JSON, or JSON that
            `encode_value` could not have written (``NaN``, lone surrogates...).
    """
    text = _text(raw, sys.maxsize)  # no size limit: the value is our own
    if text.count("[") + text.count("{") >= MAX_DEPTH and _depth(text) >= MAX_DEPTH:
        msg = f"JSON is nested deeper than {MAX_DEPTH - 1} levels"
        raise DecodeError(msg)
    if "\\u" in text and _has_lone_surrogate(text):
        msg = "JSON has a string with a lone UTF-16 surrogate escape (not Unicode text)"
        raise DecodeError(msg)
    try:
        return _decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        msg = f"not valid JSON: {exc}"
        raise DecodeError(msg) from exc


def _refuse_type(value: object) -> NoReturn:
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


def _build_json() -> Callable[[object], str]:
    """``json.dumps(value, separators=(",", ":"), allow_nan=False)`` as one C call.

    `json.dumps` builds its C encoder on every call, a good part of its cost for small
    values; this one is built once. Without the circular-reference markers (a dict
    shared between calls would outlive a failed call): a value that contains itself
    ends in `RecursionError`, which `encode` reports.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_refuse_type).encode
    quote = json.encoder.encode_basestring_ascii
    encoder = make(None, _refuse_type, quote, None, ":", ",", False, False, False)  # noqa: FBT003

    def text(value: object) -> str:
        return "".join(encoder(value, 0))

    return text


_quote: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
_json: Final = _build_json()


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
        value = _decoder.decode(text)
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


_decoder: Final = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
