"""Wrapping: from what a caller publishes or tells to an `Envelope` and a handler's payload.

Every path that sends something — `publish`, `tell` with an envelope, `request`, a
transport's received events — turns it into the triple the dispatcher routes:
``(envelope, payload, routing class)``. The payload is what handlers receive (the event
object; dict data of a registered type is rebuilt into its class here), and the routing
class is the payload's class (None for plain data from the wire).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

import attrs

from ._convert import structure
from ._envelope import Envelope, named, new_envelope, with_data
from ._events import INFO_ATTRIBUTE, EventInfo, Scope, lookup
from ._handlers import AdHoc
from ._keys import PARTITION_KEY, check_key, read_key
from ._tracing import outgoing

__all__ = ["Wrapped", "adopt", "keyed", "rebuild", "wrap"]

Wrapped = tuple[Envelope, object, type[Any] | None]
"""(envelope, the payload handlers receive, the class routes are resolved by)."""


def wrap(
    event: object,
    origin: str,
    scope: Scope | None = None,
    source: str | None = None,
    subject: str | None = None,
    headers: Mapping[str, str] | None = None,
    key: object = None,
) -> Wrapped:
    """Build the envelope for `event` (or normalise an `Envelope`) sent by system `origin`.

    The envelope's source is `source`, else `origin`. Its key (the ``partitionkey``
    header) is `key` when given, else what the event's `@event(key=...)` reads.

    Raises:
        TypeError: For an unregistered object with APP scope.
        DecodeError: For an envelope whose dict data does not fit its registered class.
    """
    if key is not None:
        headers = {**(headers or {}), PARTITION_KEY: check_key(key, "publish(key=...)")}
    if isinstance(event, Envelope):
        return adopt(event, origin, scope=scope, source=source, subject=subject, headers=headers)
    cls = type(event)
    info: EventInfo | None = cls.__dict__.get(INFO_ATTRIBUTE)
    if info is None:
        if scope is Scope.APP:
            msg = (
                f"cannot publish a {cls.__qualname__} with APP scope: it is not registered "
                "with @event(...), so other instances could not rebuild it; decorate the "
                "class with @event('some.type', scope=Scope.APP)"
            )
            raise TypeError(msg)
        type_, scope = cls.__qualname__, Scope.PROCESS
    else:
        type_ = info.type
        scope = info.scope if scope is None else scope
        if info.key is not None and key is None:
            headers = {**(headers or {}), PARTITION_KEY: read_key(event, info.key, type_)}
    traced = outgoing(headers, type_)
    envelope = new_envelope(type_, event, source or origin, scope, subject, traced)
    return envelope, event, cls


def keyed(
    event: object,
    info: EventInfo,
    origin: str,
    source: str | None,
    subject: str | None,
    key: object,
) -> Envelope:
    """The envelope `wrap` builds for an `@event` object with a key and no other option.

    The key is `key` when given, else the one `@event(key=...)` reads (`info.key`).

    Raises:
        TypeError, ValueError: For a key that is not a non-empty string.
    """
    if key is None:
        assert info.key is not None  # noqa: S101 - the caller checked one of them is set
        checked = read_key(event, info.key, info.type)
    else:
        checked = check_key(key, "publish(key=...)")
    headers = MappingProxyType({PARTITION_KEY: checked})  # a valid name, a string value
    origin = source or origin
    return new_envelope(info.type, event, origin, info.scope, subject, headers, checked=True)


def adopt(
    envelope: Envelope,
    origin: str,
    *,
    scope: Scope | None = None,
    source: str | None = None,
    subject: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Wrapped:
    """Normalise an envelope sent by system `origin`: source, overrides, trace, payload.

    Explicit `scope`, `source`, `subject` and `headers` (merged over its own) override
    its attributes; an envelope without a source gets `origin`.
    """
    changes: dict[str, Any] = {}
    if scope is not None and scope is not envelope.scope:
        changes["scope"] = scope
    if source or not envelope.source:
        changes["source"] = source or origin
    if subject is not None:
        changes["subject"] = subject
    merged = {**envelope.headers, **headers} if headers is not None else envelope.headers
    traced = outgoing(merged, envelope.type)
    if traced is not envelope.headers:
        changes["headers"] = traced
    if changes:
        envelope = attrs.evolve(envelope, **changes)
    return rebuild(envelope, check_app=True)


def rebuild(envelope: Envelope, *, check_app: bool = False) -> Wrapped:
    """(envelope, payload, routing class): dict data of a registered type is rebuilt.

    Raises:
        DecodeError: If the data does not fit the registered class.
        TypeError: With `check_app`, for APP scope data that could not be rebuilt.
    """
    data = envelope.data
    if type(data) is dict or isinstance(data, Mapping):  # decoded JSON: a dict
        fields = cast("Mapping[str, Any]", data)
        registered = lookup(envelope.type)
        if registered is None:
            return envelope, AdHoc.from_data(fields) or fields, None
        payload = structure(fields, registered, where=lambda: named(envelope))
        return with_data(envelope, payload), payload, registered
    if data is None:
        return envelope, None, None
    cls = cast("type[Any]", type(data))
    if (
        check_app
        and envelope.scope is Scope.APP
        and INFO_ATTRIBUTE not in cls.__dict__
        and not isinstance(data, str | int | float | bool | list)
    ):
        msg = (
            f"cannot publish envelope {envelope.type!r} with APP scope: its data is an "
            f"unregistered {cls.__qualname__}; register it with @event or send plain data"
        )
        raise TypeError(msg)
    return envelope, cast("object", data), cls
