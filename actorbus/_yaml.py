"""A small YAML emitter for JSON-shaped data (dicts, lists, strings, numbers, booleans, None).

The output is block-style YAML 1.2 that reads back (in YAML 1.1 parsers too) as exactly
the data given: strings are left plain only when no YAML parser could take them for
anything else, multi-line text becomes a literal block, and everything else is written
as a JSON string (which YAML's double-quoted style accepts as is).
"""

from __future__ import annotations

import json
import math
import re
import typing
from typing import Final

__all__ = ["to_yaml"]

_INDENT: Final = "  "
# Plain scalars we allow: start with a letter, then nothing YAML gives a meaning to
# (no ": ", " #", flow indicators, quotes or trailing space).
_PLAIN: Final = re.compile(r"[A-Za-z][A-Za-z0-9_./+\-]*(?: [A-Za-z0-9_./+\-()`',]+)*")
# Words that some YAML version reads as a boolean or null.
_RESERVED: Final = frozenset(
    {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}
)
# Characters YAML does not allow unescaped, or reads as line breaks (NEL, LS, PS).
_UNPRINTABLE: Final = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
# Control characters, which a literal block cannot hold either (it has no escapes).
_CONTROL: Final = re.compile("[\x00-\x09\x0b-\x1f]")


def to_yaml(data: object) -> str:
    """`data` (JSON-shaped: what `json.dumps` accepts, no NaN) as a YAML document.

    Raises:
        TypeError: For a value that is not JSON-shaped (a set, bytes, a non-str key).
        ValueError: For a float that is NaN or infinite.
    """
    lines: list[str] = []
    _write(data, "", "", lines)
    return "\n".join(lines) + "\n"


def _write(value: object, indent: str, head: str, lines: list[str]) -> None:
    """Write `value`, whose line starts at `indent` with `head` (``key:``, ``-`` or "")."""
    if isinstance(value, dict) and value:
        mapping = typing.cast("dict[object, object]", value)
        inner = indent + _INDENT if head else indent
        # In a list item, the first key shares the dash's line.
        start = f"{head} " if head.endswith("-") else inner
        if head and not head.endswith("-"):
            lines.append(head)
        for key, item in mapping.items():
            if not isinstance(key, str):
                msg = f"YAML keys must be strings here, got {type(key).__name__} {key!r}"
                raise TypeError(msg)
            _write(item, inner, f"{start}{_string(key)}:", lines)
            start = inner
        return
    if isinstance(value, list) and value:
        if head:
            lines.append(head)
        # A mapping's list sits at the key's indentation; a list in a list is indented.
        inner = indent + _INDENT if head.endswith("-") else indent
        for item in typing.cast("list[object]", value):
            _write(item, inner, f"{inner}-", lines)
        return
    scalar = typing.cast("object", value)
    block = _block(scalar, indent + _INDENT) if isinstance(scalar, str) else None
    text = block[0] if block is not None else _scalar(scalar)
    lines.append(f"{head} {text}" if head else text)
    if block is not None:
        lines.extend(block[1:])


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"{value!r} has no JSON form"
            raise ValueError(msg)
        text = json.dumps(value)
        # YAML 1.1 reads an exponent without a decimal point ("1e+16") as a string.
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    msg = f"cannot write {type(value).__name__} {value!r:.40} as YAML (not JSON-shaped)"
    raise TypeError(msg)


def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    # JSON's escapes are YAML's too; what YAML does not print as is gets escaped as well.
    return _UNPRINTABLE.sub(_escape, json.dumps(text, ensure_ascii=False))


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"  # all of them are in the Basic Multilingual Plane


def _block(text: str, pad: str) -> list[str] | None:
    """`text` as a literal block scalar (``|-`` and its lines), or None if it is not one."""
    if "\n" not in text:
        return None
    if _CONTROL.search(text) or _UNPRINTABLE.search(text):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        return None  # a final line break: keep the quoted form, exact and simple
    if text.startswith((" ", "\n")) or any(line.endswith(" ") for line in lines):
        return None  # the first line sets the indentation; trailing spaces get lost

    return ["|-", *(f"{pad}{line}" if line else "" for line in lines)]
