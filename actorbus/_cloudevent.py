"""CloudEvents v1.0 JSON structured mode: the rules for reading and writing an envelope.

This module knows the format, not the `Envelope` class: readers return the attribute
values in `Envelope`'s field order (`Values`), writers take them. Nothing here imports or
builds a class named by the data; `data` stays plain data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import re
import reprlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, TypeAlias, cast

from . import _json_text
from ._convert import unstructure
from ._events import Scope
from ._exceptions import DecodeError
from ._keys import PARTITION_KEY

__all__ = [
    "BINARY",
    "EMPTY_HEADERS",
    "JSON",
    "Values",
    "check_attributes",
    "check_headers",
    "content_type_for",
    "read",
    "to_dict",
    "to_text",
]

JSON: Final = "application/json"
BINARY: Final = "application/octet-stream"
"""The content type of bytes data when none is given: arbitrary binary data (RFC 2046)."""
EMPTY_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})

Values: TypeAlias = tuple[
    str, Any, str, str, "dt.datetime | None", "str | None", str, Scope, Mapping[str, str]
]
"""(type, data, source, id, time, subject, datacontenttype, scope, headers), checked."""

_UTC: Final = dt.UTC
_REQUIRED: Final = ("specversion", "id", "source", "type")
_CONTEXT: Final = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "datacontenttype",
        "data",
        "data_base64",
    }
)
# CloudEvents extension attribute names: lower-case ASCII letters and digits.
_EXTENSION_NAME: Final = re.compile(r"[a-z0-9]{1,64}")
_SCOPE: Final = "scope"
_NOT_EXTENSIONS: Final = _CONTEXT | {_SCOPE}
_SCOPES: Final = {scope.value: scope for scope in Scope}
# The attributes `to_text` writes for an envelope with a time and data, and no subject or
# headers: the shape `read` checks on its fast path.
_AS_WRITTEN: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "datacontenttype", _SCOPE, "data"}
)
# The same with the one extension of a keyed event, its key.
_AS_WRITTEN_KEYED: Final = _AS_WRITTEN | {PARTITION_KEY}
_from_iso: Final = dt.datetime.fromisoformat
# Values from the wire appear in error messages (and logs) shortened: they may be huge.
_SHORT: Final = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80
_shown: Final = _SHORT.repr
_quote: Final = _json_text.write
# The data's limit: the reader counts the envelope object as the first level.
MAX_DATA_DEPTH: Final = _json_text.MAX_DEPTH - 1
# A tuple: `isinstance` with a union of types (`bytes | bytearray`) is several times slower.
_BINARY_TYPES: Final = (bytes, bytearray)
# The attributes that repeat from event to event (type, source, content type, header
# names) are quoted once: a call of the public JSON encoder costs twice its C quoting.
_quote_word: Final = functools.lru_cache(maxsize=1024)(_json_text.write)


def content_type_for(data: object) -> str:
    """The `datacontenttype` of `data` when none is given: binary for bytes, else JSON."""
    return BINARY if isinstance(data, _BINARY_TYPES) else JSON


def check_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    """`value` as read-only extension attributes, every name and value checked.

    Raises:
        ValueError: For a name that is not a CloudEvents extension name, or is reserved.
        TypeError: For a value that is not a string.
    """
    if not value:
        return EMPTY_HEADERS
    for key, item in value.items():
        if not _EXTENSION_NAME.fullmatch(key) or key in _NOT_EXTENSIONS:
            msg = (
                f"invalid header name {key!r}: headers travel as CloudEvents extension "
                "attributes, so use lower-case letters and digits only (e.g. 'traceparent', "
                "'correlationid') and none of the reserved attribute names"
            )
            raise ValueError(msg)
        if not isinstance(item, str):
            msg = f"header {key!r} must be a string, got {type(item).__name__}"
            raise TypeError(msg)
    return MappingProxyType(dict(value))


# -- writing ------------------------------------------------------------------------------


def check_attributes(
    specversion: object,
    id_: object,
    source: object,
    type_: object,
    datacontenttype: object,
    subject: object,
) -> None:
    """Refuse context attributes that would make an invalid CloudEvent.

    Raises:
        TypeError: If one is not a string (`subject` may be None).
        ValueError: If `source`, `id` or `type` is empty (an envelope built without a
            source, typically).
    """
    if (
        type(specversion) is str
        and type(id_) is str
        and id_
        and type(source) is str
        and source
        and type(type_) is str
        and type_
        and type(datacontenttype) is str
        and (subject is None or type(subject) is str)
    ):
        return
    named = {
        "specversion": specversion,
        "id": id_,
        "source": source,
        "type": type_,
        "datacontenttype": datacontenttype,
        "subject": subject,
    }
    for name, value in named.items():
        if not isinstance(value, str) and (value is not None or name != "subject"):
            msg = f"its attribute {name!r} must be a string, got {type(value).__name__}"
            raise TypeError(msg)
    for name in ("source", "id", "type"):
        if not named[name]:
            hint = (
                "; pass source=... to Envelope, or publish it (publish fills in the system name)"
                if name == "source"
                else ""
            )
            msg = f"its {name!r} is empty, and CloudEvents requires a non-empty {name}{hint}"
            raise ValueError(msg)


def to_text(
    specversion: str,
    id_: str,
    source: str,
    type_: str,
    time: str | None,
    datacontenttype: str,
    scope: Scope,
    subject: str | None,
    headers: Mapping[str, str],
    data: object,
) -> str:
    """The structured-mode JSON text: ``json.dumps(to_dict(...), separators=(",", ":"))``.

    The same text, written directly: the context attributes (which `check_attributes`
    accepted) are quoted one by one, and only the data goes through the JSON encoder.

    Raises:
        ValueError: For data with a float that is not finite, nested deeper than the
            reader's limit, or holding a lone UTF-16 surrogate.
        TypeError: For data JSON cannot hold.
        RecursionError: For data nested too deeply, or that contains itself.
    """
    text = (
        f'{{"specversion":{_quote_word(specversion)},"id":{_quote(id_)},'
        f'"source":{_quote_word(source)},"type":{_quote_word(type_)},'
    )
    if time is not None:
        text += f'"time":"{time}",'
    text += f'"datacontenttype":{_quote_word(datacontenttype)},"scope":"{scope.value}"'
    if subject is not None:
        text += f',"subject":{_quote(subject)}'
    for key, value in headers.items():
        text += f",{_quote_word(key)}:{_quote(value)}"
    if isinstance(data, _BINARY_TYPES):
        text += f',"data_base64":"{base64.b64encode(data).decode("ascii")}"'
    elif data is not None:
        text += ',"data":' + _json_text.write_readable(unstructure(data), MAX_DATA_DEPTH)
    return text + "}"


def to_dict(
    specversion: str,
    id_: str,
    source: str,
    type_: str,
    time: str | None,
    datacontenttype: str,
    scope: Scope,
    subject: str | None,
    headers: Mapping[str, str],
    data: object,
) -> dict[str, Any]:
    """The structured-mode dict (JSON-ready): the value `to_text` writes.

    Raises:
        TypeError: For a context attribute that is not a string.
        ValueError: For an empty `source`, `id` or `type`.
    """
    check_attributes(specversion, id_, source, type_, datacontenttype, subject)
    out: dict[str, Any] = {"specversion": specversion, "id": id_, "source": source, "type": type_}
    if time is not None:
        out["time"] = time
    out["datacontenttype"] = datacontenttype
    out[_SCOPE] = scope.value
    if subject is not None:
        out["subject"] = subject
    out.update(headers)
    if isinstance(data, _BINARY_TYPES):
        out["data_base64"] = base64.b64encode(data).decode("ascii")
    elif data is not None:
        out["data"] = unstructure(data)
    return out


# -- reading ------------------------------------------------------------------------------


def read(event: Mapping[str, Any]) -> Values:
    """The attribute values of a structured-mode dict, every one checked.

    An optional attribute that is absent (or JSON ``null``) stays absent: `time` and
    `subject` are None. A missing `datacontenttype` is ``application/json`` for `data`
    (as the CloudEvents JSON format says) and ``application/octet-stream`` for
    `data_base64` (no assumption about the bytes); a missing `scope` is `Scope.APP`
    (the event came from outside this process).

    Raises:
        DecodeError: If an attribute is missing or has the wrong type or value, naming it.
    """
    # A plain dict only: a subclass may read differently through `[]` and `get`.
    if event.__class__ is dict:
        names = event.keys()
        # A keys view equals a set with the same members (pyright takes them as apart).
        if names in (_AS_WRITTEN, _AS_WRITTEN_KEYED):  # pyright: ignore[reportUnnecessaryContains]
            values = _as_written(cast("dict[str, Any]", event))
            if values is not None:
                return values
    return _read_checked(event)


def _as_written(event: dict[str, Any]) -> Values | None:
    """`_read_checked` for the usual shape, or None: then that reads (and refuses) it.

    The usual shape is what `to_text` writes for an envelope with a time and data and
    no subject or headers but its key, its time in UTC. Checked attribute by attribute,
    without the calls that name the faults (`_read_checked` does when anything is off).
    """
    specversion, id_, source, type_, time_, content_type = (
        event["specversion"],
        event["id"],
        event["source"],
        event["type"],
        event["time"],
        event["datacontenttype"],
    )
    if not (
        type(specversion) is str
        and specversion == "1.0"
        and type(id_) is str
        and id_
        and type(source) is str
        and source
        and type(type_) is str
        and type_
        and type(time_) is str
        and type(content_type) is str
    ):
        return None
    scope = _SCOPES.get(event[_SCOPE]) if type(event[_SCOPE]) is str else None
    if scope is None:
        return None
    try:
        time = _from_iso(time_)
    except ValueError:
        return None
    if time.tzinfo is not _UTC:
        return None
    data = event["data"]
    headers = EMPTY_HEADERS
    key = event.get(PARTITION_KEY)
    if key is not None:
        if type(key) is not str:
            return None
        headers = MappingProxyType({PARTITION_KEY: key})
    return (type_, data, source, id_, time, None, content_type or JSON, scope, headers)


def _read_checked(event: Mapping[str, Any]) -> Values:
    """`read`, every attribute checked and every fault named."""
    if not isinstance(event, Mapping):
        msg = f"a CloudEvent must be a JSON object, got {type(event).__name__}"
        raise DecodeError(msg)
    for name in _REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            got = "missing" if value is None else _shown(value)
            msg = f"CloudEvent attribute {name!r} must be a non-empty string, got {got}"
            raise DecodeError(msg)
    if event["specversion"] != "1.0":
        msg = f"unsupported CloudEvents specversion {_shown(event['specversion'])}; expected '1.0'"
        raise DecodeError(msg)
    headers = _read_extensions(event)
    data = event.get("data")
    binary = "data_base64" in event
    if binary:
        if "data" in event:
            msg = "a CloudEvent carries either 'data' or 'data_base64', not both"
            raise DecodeError(msg)
        data = _read_base64(event["data_base64"])
    time = _read_time(event.get("time"))
    subject = _optional_str(event, "subject")
    content_type = _optional_str(event, "datacontenttype") or (BINARY if binary else JSON)
    scope = _read_scope(event.get(_SCOPE))
    return (
        event["type"],
        data,
        event["source"],
        event["id"],
        time,
        subject,
        content_type,
        scope,
        MappingProxyType(headers) if headers else EMPTY_HEADERS,
    )


def _read_extensions(event: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not event.keys() - _NOT_EXTENSIONS:  # usually none: a set difference in C
        return headers
    for key, value in event.items():  # in the order written
        if key in _NOT_EXTENSIONS:
            continue
        if not isinstance(key, str) or not _EXTENSION_NAME.fullmatch(key):
            msg = (
                f"invalid CloudEvent extension attribute name {_shown(key)}: CloudEvents "
                "extension names are lower-case ASCII letters and digits (at most 64 here)"
            )
            raise DecodeError(msg)
        if value is None:  # JSON null: the attribute is absent
            continue
        if not isinstance(value, str | int | bool):
            msg = f"invalid CloudEvent extension attribute {_shown(key)}={_shown(value)}"
            raise DecodeError(msg)
        # CloudEvents' canonical string forms: a Boolean is "true" / "false".
        headers[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return headers


def _read_base64(value: object) -> bytes:
    if not isinstance(value, str):
        msg = f"CloudEvent attribute 'data_base64' must be a string, got {type(value).__name__}"
        raise DecodeError(msg)
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:
        msg = f"CloudEvent attribute 'data_base64' is not valid base64: {exc}"
        raise DecodeError(msg) from exc


def _optional_str(event: Mapping[str, Any], name: str) -> str | None:
    value = event.get(name)
    if value is not None and not isinstance(value, str):
        msg = f"CloudEvent attribute {name!r} must be a string, got {type(value).__name__}"
        raise DecodeError(msg)
    return value


def _read_scope(value: object) -> Scope:
    if value is None:
        return Scope.APP
    scope = _SCOPES.get(value) if isinstance(value, str) else None
    if scope is None:
        msg = f"CloudEvent attribute 'scope' must be 'app' or 'process', got {_shown(value)}"
        raise DecodeError(msg)
    return scope


def _read_time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"CloudEvent attribute 'time' must be an RFC 3339 string, got {_shown(value)}"
        raise DecodeError(msg)
    try:
        parsed = _from_iso(value)
    except ValueError as exc:
        msg = f"CloudEvent attribute 'time' is not an RFC 3339 timestamp: {_shown(value)}"
        raise DecodeError(msg) from exc
    if parsed.tzinfo is None:
        msg = f"CloudEvent attribute 'time' has no timezone: {_shown(value)}"
        raise DecodeError(msg)
    if parsed.tzinfo is _UTC:
        return parsed  # written with "Z" (or "+00:00"): nothing to convert
    try:
        return parsed.astimezone(_UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is a valid timestamp, not in UTC
        msg = f"CloudEvent attribute 'time' is out of range in UTC: {_shown(value)}"
        raise DecodeError(msg) from exc
