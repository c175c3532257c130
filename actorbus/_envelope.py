"""`Envelope`: an event with its CloudEvents v1.0 context attributes and routing."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import os
import re
import reprlib
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, cast

import attrs

from ._convert import unstructure
from ._events import Scope
from ._exceptions import DecodeError

__all__ = ["Envelope", "named", "new_envelope", "new_id", "wire_id_and_time", "with_data"]

# Ids are a random per-process prefix and a counter: unique across processes with
# overwhelming probability, and an order of magnitude cheaper than uuid4 per event.
_ID_PREFIX: Final = os.urandom(9).hex()
_counter = itertools.count(1)
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
_SCOPE_EXTENSION: Final = "scope"
_NOT_EXTENSIONS: Final = _CONTEXT | {_SCOPE_EXTENSION}
_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_SCOPES: Final = {scope.value: scope for scope in Scope}
# The attributes `actorbus._wire.encode` writes for an envelope with data and no subject
# or headers: the shape `from_cloudevent` reads on its fast path.
_AS_ENCODED: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "datacontenttype", _SCOPE_EXTENSION, "data"}
)
_from_iso: Final = dt.datetime.fromisoformat
# Values from the wire appear in error messages (and logs) shortened: they may be huge.
_SHORT: Final = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80
_shown: Final = _SHORT.repr


def new_id() -> str:
    """A new event id, unique within and (with overwhelming probability) across processes."""
    return _id_text(next(_counter))


def _id_text(counter: int) -> str:
    return f"{_ID_PREFIX}-{counter:x}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        msg = f"Envelope.time must be timezone-aware, got naive {value!r}"
        raise ValueError(msg)
    return value.astimezone(_UTC)


def _freeze_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if not value:
        return _EMPTY
    for key, item in value.items():
        if not _EXTENSION_NAME.fullmatch(key) or key in _CONTEXT or key == _SCOPE_EXTENSION:
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


class _Stamped:
    """`Envelope`'s base: the stamp from which a published envelope's id and time are made.

    `publish` stores the id's counter value and the clock reading (`_stamp`) and leaves
    the `id` and `time` slots empty; the first read of either fills both in (see
    `_Formatted`). The values are exactly those an eager envelope would have had; only
    their formatting (about a tenth of a publish) is left to whoever reads them.
    """

    __slots__ = ("_stamp",)


@attrs.frozen(kw_only=True, weakref_slot=False)  # no weak references: see `_Draft`
class Envelope(_Stamped):
    """An event in transit: CloudEvents v1.0 context attributes, the data, and routing.

    Build one with keyword arguments; every attribute but `type` has a default. An empty
    `source` is filled in with the system name by `ActorSystem.publish`.

    Attributes:
        type: The CloudEvents type (``"order.created"``).
        data: The event: an `@event` instance, or plain data (a dict from the wire).
        source: Who produced it; defaults to the publishing system's name.
        id: Unique id, generated. Use it as the idempotency key under at-least-once.
        specversion: Always ``"1.0"``.
        time: When it was produced, timezone-aware UTC, generated.
        subject: Optional CloudEvents subject.
        datacontenttype: ``"application/json"``.
        scope: `Scope.PROCESS` or `Scope.APP`.
        headers: Extension attributes (``traceparent``, ``correlationid``, …).
    """

    type: str
    data: Any = None
    source: str = ""
    id: str = attrs.field(factory=new_id)
    specversion: str = "1.0"
    time: dt.datetime = attrs.field(factory=_utcnow, converter=_to_utc)
    subject: str | None = None
    datacontenttype: str = "application/json"
    scope: Scope = Scope.PROCESS
    headers: Mapping[str, str] = attrs.field(default=_EMPTY, converter=_freeze_headers)

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents JSON structured-mode dict (JSON-ready; headers as extensions)."""
        id_, time = wire_id_and_time(self)
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": id_,
            "source": self.source,
            "type": self.type,
            "time": time,
            "datacontenttype": self.datacontenttype,
            _SCOPE_EXTENSION: self.scope.value,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        out.update(self.headers)
        if isinstance(self.data, bytes | bytearray):
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.data is not None:
            out["data"] = unstructure(self.data)
        return out

    @classmethod
    def from_cloudevent(cls, event: Mapping[str, Any]) -> Envelope:
        """Read a CloudEvents structured-mode dict back into an envelope.

        `data` stays plain data; the system rebuilds registered event classes from it.

        Raises:
            DecodeError: If an attribute is missing or has the wrong type, naming it.
        """
        # A plain dict only: a subclass may read differently through `[]` and `get`.
        if event.__class__ is dict and event.keys() == _AS_ENCODED:
            envelope = _as_encoded(cast("dict[str, Any]", event))
            if envelope is not None:
                return envelope
        return _read_cloudevent(event)


def _as_encoded(event: dict[str, Any]) -> Envelope | None:
    """`_read_cloudevent` for the usual shape, or None: then that reads (and refuses) it.

    The usual shape is what `actorbus._wire.encode` writes for an envelope with data and
    no subject or headers, with its time in UTC. Checked attribute by attribute, without
    the calls that name the faults (`_read_cloudevent` does when anything is off): about
    half the cost of a received event's validation.
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
    scope = _SCOPES.get(event[_SCOPE_EXTENSION]) if type(event[_SCOPE_EXTENSION]) is str else None
    if scope is None:
        return None
    try:
        time = _from_iso(time_)
    except ValueError:
        return None
    if time.tzinfo is not _UTC:
        return None
    return _assemble(
        type_,
        event["data"],
        source,
        id_,
        "1.0",
        time,
        None,
        content_type or "application/json",
        scope,
        _EMPTY,
    )


def _read_cloudevent(event: Mapping[str, Any]) -> Envelope:
    """`Envelope.from_cloudevent`, every attribute checked and every fault named."""
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
    if "data_base64" in event:
        if "data" in event:
            msg = "a CloudEvent carries either 'data' or 'data_base64', not both"
            raise DecodeError(msg)
        data = _read_base64(event["data_base64"])
    time = _read_time(event.get("time"))
    subject = _optional_str(event, "subject")
    content_type = _optional_str(event, "datacontenttype") or "application/json"
    scope = _read_scope(event.get(_SCOPE_EXTENSION, Scope.APP.value))
    # Every value is checked (and the time is in UTC): no converter needs to run.
    return _assemble(
        event["type"],
        data,
        event["source"],
        event["id"],
        "1.0",
        time,
        subject,
        content_type,
        scope,
        MappingProxyType(headers) if headers else _EMPTY,
    )


_clock: Final = time.time_ns
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)


class _Formatted:
    """The `id` or `time` attribute of `Envelope`: its slot, filled from `_stamp` if empty.

    It replaces the slot's own descriptor on the class, so only these two attributes pay
    for a Python-level read; every other attribute stays a plain slot (a `__getattr__`
    on the class would slow down every attribute read instead).
    """

    __slots__ = ("_slot",)

    def __init__(self, slot: Any) -> None:
        self._slot = slot

    def __get__(self, envelope: Envelope | None, owner: type[Any] | None = None) -> Any:
        if envelope is None:
            return self
        try:
            return self._slot.__get__(envelope, owner)
        except AttributeError:
            _format_stamp(envelope)  # re-raises if there is no stamp either
            return self._slot.__get__(envelope, owner)

    def __set__(self, envelope: Envelope, value: object) -> None:
        self._slot.__set__(envelope, value)

    def __delete__(self, envelope: Envelope) -> None:
        self._slot.__delete__(envelope)


_stamp_of: Final = _Stamped.__dict__["_stamp"].__get__
_set_id: Final = Envelope.__dict__["id"].__set__
_set_time: Final = Envelope.__dict__["time"].__set__
for _name in ("id", "time"):
    type.__setattr__(Envelope, _name, _Formatted(Envelope.__dict__[_name]))


def _format_stamp(envelope: Envelope) -> None:
    """Fill in the id and time of an envelope made by `publish` from its stamp."""
    counter, nanoseconds = _stamp_of(envelope)
    _set_id(envelope, _id_text(counter))
    _set_time(envelope, _EPOCH + dt.timedelta(microseconds=nanoseconds // 1000))


def named(envelope: Envelope) -> str:
    """How messages name an envelope: ``event 'order.created' (id …)``."""
    return f"event {envelope.type!r} (id {envelope.id})"


def wire_id_and_time(envelope: Envelope) -> tuple[str, str]:
    """The envelope's id, and its time as CloudEvents writes it (RFC 3339, ``Z``).

    The same text as ``time.isoformat()`` with ``+00:00`` as ``Z``; for an envelope
    made by `publish` it is made from the stamp, without building the `datetime` (the
    date and time to the second are formatted once per second).
    """
    stamp: tuple[int, int] | None = getattr(envelope, "_stamp", None)
    if stamp is None:
        return envelope.id, envelope.time.isoformat().replace("+00:00", "Z")
    global _second  # noqa: PLW0603 - a one-entry cache
    counter, nanoseconds = stamp
    seconds, micros = divmod(nanoseconds // 1000, 1_000_000)
    cached = _second  # one read: another thread may replace it meanwhile
    if cached[0] != seconds:
        cached = _second = (seconds, (_EPOCH + dt.timedelta(seconds=seconds)).isoformat()[:19])
    text = cached[1]
    return _id_text(counter), f"{text}.{micros:06d}Z" if micros else f"{text}Z"


_second: tuple[int, str] = (-1, "")
"""The last second `wire_id_and_time` formatted: (seconds since the epoch, its text)."""


class _Draft(_Stamped):
    """A mutable twin of `Envelope` (the same slots): `new_envelope` is this class.

    A frozen attrs class sets each attribute through `object.__setattr__`, about ten
    times the cost of a plain slot assignment. A draft is filled with plain ones and
    then becomes an `Envelope` by `__class__` assignment, which CPython allows between
    classes of the same slot layout (and only without a `__weakref__` slot, hence
    `weakref_slot=False`).
    """

    __slots__ = Envelope.__slots__
    id: str  # filled by `_assemble`; `__init__` leaves them to the stamp
    time: dt.datetime

    def __init__(
        self,
        type_: str,
        data: object,
        source: str,
        scope: Scope,
        subject: str | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.type = type_
        self.data = data
        self.source = source
        self._stamp = (next(_counter), _clock())  # `id` and `time` stay empty
        self.specversion = "1.0"
        self.subject = subject
        self.datacontenttype = "application/json"
        self.scope = scope
        self.headers = _freeze_headers(headers) if headers else _EMPTY
        _become_envelope(self, "__class__", Envelope)


def _assemble(
    type_: str,
    data: object,
    source: str,
    id_: str,
    specversion: str,
    time: dt.datetime,
    subject: str | None,
    datacontenttype: str,
    scope: Scope,
    headers: Mapping[str, str],
) -> Envelope:
    """An envelope of these values, which must already be what the converters make.

    As cheap as `new_envelope`: a draft filled slot by slot, then made an `Envelope`.
    """
    draft = _new_draft(_Draft)
    draft.type = type_
    draft.data = data
    draft.source = source
    draft.id = id_
    draft.specversion = specversion
    draft.time = time
    draft.subject = subject
    draft.datacontenttype = datacontenttype
    draft.scope = scope
    draft.headers = headers
    _become_envelope(draft, "__class__", Envelope)
    return draft  # type: ignore[return-value] # pyright: ignore[reportReturnType]


def with_data(envelope: Envelope, data: object) -> Envelope:
    """``attrs.evolve(envelope, data=data)``, without running the converters again."""
    return _assemble(
        envelope.type,
        data,
        envelope.source,
        envelope.id,
        envelope.specversion,
        envelope.time,
        envelope.subject,
        envelope.datacontenttype,
        envelope.scope,
        envelope.headers,
    )


_new_draft: Final = object.__new__
_become_envelope: Final = object.__setattr__
"""Sets a draft's `__class__` (the frozen `Envelope.__setattr__` refuses everything)."""
if _Draft.__slots__ != tuple(field.name for field in attrs.fields(Envelope)):  # pragma: no cover
    msg = "Envelope's fields changed: update _Draft"  # a guard for whoever adds a field
    raise RuntimeError(msg)

new_envelope: Final[
    Callable[[str, object, str, Scope, str | None, Mapping[str, str] | None], Envelope]
] = _Draft  # type: ignore[assignment] # pyright: ignore[reportAssignmentType]
"""An envelope for `publish`: (type, data, source, scope, subject, headers).

Equivalent to the keyword constructor (headers are still validated), without the
converters that a fresh id and a fresh UTC time do not need: the publish hot path.
"""


def _read_extensions(event: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not event.keys() - _NOT_EXTENSIONS:  # usually none: a set difference in C
        return headers
    for key, value in event.items():  # in the order written
        if key in _NOT_EXTENSIONS:
            continue
        if (
            not isinstance(key, str)
            or not _EXTENSION_NAME.fullmatch(key)
            or not isinstance(value, str | int | bool)
        ):
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
    scope = _SCOPES.get(value) if isinstance(value, str) else None
    if scope is None:
        msg = f"CloudEvent attribute 'scope' must be 'app' or 'process', got {_shown(value)}"
        raise DecodeError(msg)
    return scope


def _read_time(value: object) -> dt.datetime:
    if value is None:
        return _utcnow()
    if not isinstance(value, str):
        msg = f"CloudEvent attribute 'time' must be an RFC 3339 string, got {_shown(value)}"
        raise DecodeError(msg)
    try:
        parsed = dt.datetime.fromisoformat(value)
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
