"""`Envelope`: an event with its CloudEvents v1.0 context attributes and routing."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time as _time
from typing import TYPE_CHECKING, Any, Final, overload

import attrs

from . import _cloudevent, _json_text
from ._cloudevent import EMPTY_HEADERS, check_headers, content_type_for
from ._events import Scope

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Envelope", "named", "new_envelope", "new_id", "wire_id_and_time", "with_data"]

# Ids are a random per-process prefix and a counter: unique across processes with
# overwhelming probability, and an order of magnitude cheaper than uuid4 per event.
_ID_PREFIX: Final = os.urandom(9).hex()
_counter = itertools.count(1)
_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_clock: Final = _time.time_ns


def new_id() -> str:
    """A new event id, unique within and (with overwhelming probability) across processes."""
    return _id_text(next(_counter))


def _id_text(counter: int) -> str:
    return f"{_ID_PREFIX}-{counter:x}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


def _to_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        msg = f"Envelope.time must be timezone-aware, got naive {value!r}"
        raise ValueError(msg)
    return value.astimezone(_UTC)


class _FromStamp:
    """The `id` or `time` of an envelope made by `publish`: made from its stamp when read.

    `publish` stores the id's counter value and the clock reading (`_counter` and
    `_nanoseconds`) instead of the two attributes. This descriptor has no ``__set__``,
    so a value in the instance's ``__dict__`` wins over it: it runs only on the first
    read, which stores both values there. They are exactly those an eager envelope would
    have had.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, envelope: None, owner: type[Any] | None = None) -> _FromStamp: ...
    @overload
    def __get__(self, envelope: object, owner: type[Any] | None = None) -> Any: ...
    def __get__(self, envelope: object, owner: type[Any] | None = None) -> Any:
        if envelope is None:
            return self
        values = vars(envelope)
        if "_counter" not in values:  # only an envelope made around attrs' `__init__`
            msg = f"{type(envelope).__name__!r} object has no attribute {self._name!r}"
            raise AttributeError(msg, name=self._name, obj=envelope)
        values["id"] = _id_text(values["_counter"])
        values["time"] = _EPOCH + dt.timedelta(microseconds=values["_nanoseconds"] // 1000)
        return values[self._name]


class _FromData:
    """The `datacontenttype` of an envelope made by `publish`: made from its data when read.

    Like `_FromStamp`, it runs only on the first read, which stores the value in the
    instance: the one the keyword constructor would have given.
    """

    __slots__ = ()

    @overload
    def __get__(self, envelope: None, owner: type[Any] | None = None) -> _FromData: ...
    @overload
    def __get__(self, envelope: object, owner: type[Any] | None = None) -> str: ...
    def __get__(self, envelope: object, owner: type[Any] | None = None) -> str | _FromData:
        if envelope is None:
            return self
        values = vars(envelope)
        content_type = values["datacontenttype"] = content_type_for(values["data"])
        return content_type


class _Stamped:
    """`Envelope`'s base: where an envelope made by `publish` finds what it leaves out.

    `publish` stores only what differs between its envelopes. The `id` and `time` (made
    from the stamp) and the `datacontenttype` (made from the data) wait until something
    reads them: an envelope delivered in the process is usually never asked for them.
    The defaults of `specversion` and `subject` are read from here. (Not `headers`: every
    mailbox reads them, and an attribute found on the class is slower to read.)
    """

    id: _FromStamp = _FromStamp("id")
    time: _FromStamp = _FromStamp("time")
    datacontenttype: _FromData = _FromData()
    specversion: str = "1.0"
    subject: str | None = None


def _default_content_type(envelope: Envelope) -> str:
    return content_type_for(envelope.data)


# A dict class, not a slotted one: attrs sets a frozen dict class's attributes by writing
# to its `__dict__`, and so do `new_envelope` and `_assemble`, in one step each. A slotted
# frozen class could only be filled one `object.__setattr__` call per attribute.
@attrs.frozen(kw_only=True, slots=False)
class Envelope(_Stamped):
    """An event in transit: CloudEvents v1.0 context attributes, the data, and routing.

    Build one with keyword arguments; every attribute but `type` has a default. An empty
    `source` is filled in with the system name by `ActorSystem.publish`; an envelope
    still without one cannot be written as a CloudEvent. Frozen: `attrs.evolve` makes a
    changed copy.

    Attributes:
        type: The CloudEvents type (``"order.created"``).
        data: The event: an `@event` instance, plain data (a dict from the wire), or bytes.
        source: Who produced it; defaults to the publishing system's name.
        id: Unique id, generated. Use it as the idempotency key under at-least-once.
        specversion: Always ``"1.0"``.
        time: When it was produced, timezone-aware UTC: generated for the envelopes you
            build and publish, None for an event read without one (CloudEvents makes it
            optional; nothing is invented on reading).
        subject: Optional CloudEvents subject.
        datacontenttype: ``"application/json"``, or ``"application/octet-stream"`` for
            bytes data; give another to describe your bytes (``"image/png"``).
        scope: `Scope.PROCESS` or `Scope.APP`.
        headers: Extension attributes (``traceparent``, ``correlationid``, …): names of
            lower-case ASCII letters and digits, string values.
    """

    type: str
    data: Any = None
    source: str = ""
    # `_Stamped` provides `id`, `time` and `datacontenttype` for published envelopes
    # (values of these types); attrs' `__init__` stores them in the instance, where they
    # hide its descriptors.
    id: str = attrs.field(factory=new_id)  # pyright: ignore[reportIncompatibleVariableOverride]
    specversion: str = "1.0"
    time: dt.datetime | None = attrs.field(  # pyright: ignore[reportIncompatibleVariableOverride]
        factory=_utcnow, converter=_to_utc
    )
    subject: str | None = None
    datacontenttype: str = attrs.field(  # pyright: ignore[reportIncompatibleVariableOverride]
        default=attrs.Factory(_default_content_type, takes_self=True)
    )
    scope: Scope = Scope.PROCESS
    headers: Mapping[str, str] = attrs.field(default=EMPTY_HEADERS, converter=check_headers)

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents JSON structured-mode dict: JSON-ready, headers as extensions.

        `data` is turned into plain data (attrs classes and dataclasses become dicts,
        datetimes RFC 3339 strings); bytes become ``data_base64``. An absent `time` or
        `subject` is left out. `json.dumps` of the result is what `to_json` writes.

        Raises:
            ValueError: If `source`, `id` or `type` is empty (an envelope built without a
                source and never published: give it one).
            TypeError: If a context attribute is not a string.
        """
        id_, time = wire_id_and_time(self)
        try:
            return _cloudevent.to_dict(
                self.specversion,
                id_,
                self.source,
                self.type,
                time,
                self.datacontenttype,
                self.scope,
                self.subject,
                self.headers,
                self.data,
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"cannot write {named(self)} as a CloudEvent: {exc}") from None

    @classmethod
    def from_cloudevent(cls, event: Mapping[str, Any]) -> Envelope:
        """Read a CloudEvents structured-mode dict back into an envelope.

        `data` stays plain data (`data_base64` becomes bytes); the system rebuilds
        registered event classes from it. Optional attributes that are absent (or JSON
        ``null``) stay absent: `time` and `subject` are None. Without `datacontenttype`,
        `data` is ``application/json`` (as the CloudEvents JSON format says) and
        `data_base64` is ``application/octet-stream``. Without the ``scope`` extension
        the event has `Scope.APP`. Other extension attributes become `headers`, booleans
        and integers in their CloudEvents string form (``"true"``, ``"3"``).

        Raises:
            DecodeError: If an attribute is missing or has the wrong type, naming it.
        """
        return _assemble(*_cloudevent.read(event))

    def to_json(self) -> bytes:
        """The envelope as CloudEvents JSON (structured mode), UTF-8 encoded.

        Compact JSON with every non-ASCII character escaped: the text of
        ``json.dumps(self.to_cloudevent(), separators=(",", ":"))``. This is what the Redis
        transport writes; `from_json` reads it back.

        Raises:
            ValueError: If `source`, `id` or `type` is empty (give the envelope a
                source, or publish it).
            TypeError: If a context attribute is not a string, or the data cannot be
                written as JSON: a type JSON has no form for (the message names it), a
                float that is not finite, nesting too deep, or data that contains itself.
        """
        id_, time = wire_id_and_time(self)
        specversion, source, type_ = self.specversion, self.source, self.type
        content_type, subject = self.datacontenttype, self.subject
        try:
            _cloudevent.check_attributes(specversion, id_, source, type_, content_type, subject)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"cannot write {named(self)} as a CloudEvent: {exc}") from None
        try:
            text = _cloudevent.to_text(
                specversion,
                id_,
                source,
                type_,
                time,
                content_type,
                self.scope,
                subject,
                self.headers,
                self.data,
            )
        except (TypeError, ValueError, RecursionError) as exc:
            deep = isinstance(exc, RecursionError)
            reason = "it is nested too deeply, or contains itself" if deep else str(exc)
            msg = (
                f"cannot encode {named(self)} as JSON: {reason}; APP-scope events must "
                "hold JSON-friendly fields (str, numbers, bools, lists, dicts, datetimes, "
                "nested @event/attrs classes)"
            )
            raise TypeError(msg) from None if deep else exc
        return text.encode()

    @classmethod
    def from_json(
        cls,
        data: bytes | bytearray | memoryview | str,
        *,
        max_bytes: int = _json_text.MAX_MESSAGE_BYTES,
    ) -> Envelope:
        """Read CloudEvents JSON (structured mode) back into an envelope.

        Reads what `to_json` writes, and what other CloudEvents producers write in the
        JSON format, as `from_cloudevent` does. The text is checked before it is parsed:
        at most `max_bytes` of UTF-8 (1 MiB by default), RFC 8259 JSON (no ``NaN`` or
        ``Infinity``, no number too large for a float, no lone UTF-16 surrogate escape),
        nested at most 64 levels (the event object being the first). Nothing named by
        the data is imported or built.

        Raises:
            DecodeError: For oversized, non-UTF-8, malformed or too deeply nested JSON,
                or a JSON value that is not a valid CloudEvent (saying what is wrong).
        """
        return _assemble(*_cloudevent.read(_json_text.read(data, max_bytes)))


def named(envelope: Envelope) -> str:
    """How messages name an envelope: ``event 'order.created' (id …)``."""
    return f"event {envelope.type!r} (id {envelope.id})"


def wire_id_and_time(envelope: Envelope) -> tuple[str, str | None]:
    """The envelope's id, and its time as CloudEvents writes it (RFC 3339, ``Z``) or None.

    The same text as ``time.isoformat()`` with ``+00:00`` as ``Z``; for an envelope
    made by `publish` it is made from the stamp, without building the `datetime` (the
    date and time to the second are formatted once per second).
    """
    values = vars(envelope)
    if "_counter" not in values:  # not made by `publish`
        time = envelope.time
        return envelope.id, None if time is None else time.isoformat().replace("+00:00", "Z")
    global _second  # noqa: PLW0603 - a one-entry cache
    counter, nanoseconds = values["_counter"], values["_nanoseconds"]
    seconds, micros = divmod(nanoseconds // 1000, 1_000_000)
    cached = _second  # one read: another thread may replace it meanwhile
    if cached[0] != seconds:
        cached = _second = (seconds, (_EPOCH + dt.timedelta(seconds=seconds)).isoformat()[:19])
    text = cached[1]
    return _id_text(counter), f"{text}.{micros:06d}Z" if micros else f"{text}Z"


_second: tuple[int, str] = (-1, "")
"""The last second `wire_id_and_time` formatted: (seconds since the epoch, its text)."""

_new: Final = object.__new__
# The frozen `Envelope.__setattr__` refuses every write, its `__dict__` included.
_set_dict: Final = object.__setattr__


def new_envelope(
    type_: str,
    data: object,
    source: str,
    scope: Scope,
    subject: str | None,
    headers: Mapping[str, str] | None,
    *,
    checked: bool = False,
) -> Envelope:
    """An envelope for `publish`, with a fresh id and the time of this call.

    Equal to ``Envelope(type=type_, data=data, source=source, scope=scope,
    subject=subject, headers=headers)`` (headers are validated the same way, unless
    `checked` says they were: a read-only mapping of valid names to strings), without
    running attrs' `__init__`: the id, time and content type are made when first read,
    and the defaults come from the class.
    """
    if not headers:
        headers = EMPTY_HEADERS
    elif not checked:
        headers = check_headers(headers)
    values = {
        "type": type_,
        "data": data,
        "source": source,
        "scope": scope,
        "headers": headers,
        "_counter": next(_counter),
        "_nanoseconds": _clock(),
    }
    if subject is not None:
        values["subject"] = subject
    envelope: Envelope = _new(Envelope)
    _set_dict(envelope, "__dict__", values)
    return envelope


def _assemble(
    type_: str,
    data: object,
    source: str,
    id_: str,
    time: dt.datetime | None,
    subject: str | None,
    datacontenttype: str,
    scope: Scope,
    headers: Mapping[str, str],
) -> Envelope:
    """An envelope of these values, which must already be what the converters make."""
    envelope: Envelope = _new(Envelope)
    _set_dict(
        envelope,
        "__dict__",
        {
            "type": type_,
            "data": data,
            "source": source,
            "id": id_,
            "specversion": "1.0",
            "time": time,
            "subject": subject,
            "datacontenttype": datacontenttype,
            "scope": scope,
            "headers": headers,
        },
    )
    return envelope


def with_data(envelope: Envelope, data: object) -> Envelope:
    """``attrs.evolve(envelope, data=data)``, without running the converters again."""
    copy: Envelope = _new(Envelope)
    # The content type is the original data's, as `evolve` would copy it.
    values = {**vars(envelope), "datacontenttype": envelope.datacontenttype, "data": data}
    _set_dict(copy, "__dict__", values)
    return copy


if {field.name for field in attrs.fields(Envelope)} != {  # pragma: no cover
    "type",
    "data",
    "source",
    "id",
    "specversion",
    "time",
    "subject",
    "datacontenttype",
    "scope",
    "headers",
}:
    msg = "Envelope's fields changed: update new_envelope and _assemble"  # for whoever adds one
    raise RuntimeError(msg)
