"""`@event`: declare event classes, their CloudEvents type and their scope.

The type registry maps a CloudEvents ``type`` string to the class that is rebuilt from
the wire. It is the one registry that outlives a system (classes are defined at import
time); tests can reset it with `actorbus.testing.reset_event_registry`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast, dataclass_transform

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._keys import KeySpec

__all__ = ["EventInfo", "Scope", "event", "event_info", "lookup", "type_name"]

T = TypeVar("T", bound=type[Any])

# A CloudEvents type must be a non-empty string; we also keep glob characters out so that
# every type can be subscribed to literally and every glob is recognisable as one.
_TYPE_PATTERN: Final = re.compile(r"[^\s*?\[\]]+")
INFO_ATTRIBUTE: Final = "__actorbus_event__"


class Scope(enum.Enum):
    """How far an event travels.

    `PROCESS` events reach the actors of this `ActorSystem` only. `APP` events reach
    every running instance of the application (every system with the same name) through
    the transport, or only this system when it has no transport.
    """

    PROCESS = "process"
    APP = "app"


@attrs.frozen
class EventInfo:
    """What `@event` recorded about a class: its CloudEvents type, scope and key."""

    type: str
    scope: Scope
    key: KeySpec | None = None


_registry: dict[str, type[Any]] = {}
_builtin: dict[str, type[Any]] = {}


def _validate_type(type_: object) -> str:
    if not isinstance(type_, str) or not _TYPE_PATTERN.fullmatch(type_):
        msg = (
            f"invalid event type {type_!r}: use a non-empty dot-separated string without "
            "spaces or glob characters, for example 'order.created'"
        )
        raise ValueError(msg)
    return type_


@dataclass_transform(frozen_default=True, field_specifiers=(attrs.field,))
def event(
    type: str,  # noqa: A002
    *,
    scope: Scope = Scope.PROCESS,
    key: KeySpec | None = None,
) -> Callable[[T], T]:
    """Declare an event class with its CloudEvents `type`, its default `scope` and its key.

    The class becomes an attrs frozen class unless it already is an attrs class or a
    dataclass, and `type` is registered so the class can be rebuilt from the wire.

    Args:
        type: The CloudEvents type, reverse-DNS-ish and dot-separated (``"order.created"``).
        scope: Where instances travel by default; `publish(scope=...)` can override it.
        key: What an event is about — the name of a field, or a function of the event
            returning a string. Events with one key are handled in publishing order by a
            group (see the guide "Scaling out"); `publish(key=...)` overrides it.

    Raises:
        ValueError: If `type` is not a valid type string, is already registered for a
            different class, or `key` names no field of the class.
        TypeError: If `key` is neither a field name nor a function.
    """
    _validate_type(type)
    if not isinstance(scope, Scope):
        msg = f"scope must be a Scope, got {scope!r}"
        raise TypeError(msg)
    if key is not None and not isinstance(key, str) and not callable(key):
        msg = f"@event key= takes a field name or a function of the event, got {key!r}"
        raise TypeError(msg)

    def register(cls: T) -> T:
        if not attrs.has(cls) and not dataclasses.is_dataclass(cls):
            cls = cast("T", attrs.frozen(cast("Any", cls)))
        if isinstance(key, str) and key not in _field_names(cls):
            msg = (
                f"@event({type!r}, key={key!r}): {cls.__qualname__} has no field {key!r}; "
                f"its fields are {', '.join(_field_names(cls)) or 'none'}"
            )
            raise ValueError(msg)
        existing = _registry.get(type)
        if existing is not None and not _same_class(existing, cls):
            msg = (
                f"event type {type!r} is already registered for "
                f"{existing.__module__}.{existing.__qualname__}; "
                f"choose another type string for {cls.__module__}.{cls.__qualname__}"
            )
            raise ValueError(msg)
        setattr(cls, INFO_ATTRIBUTE, EventInfo(type, scope, key))
        _registry[type] = cls
        return cast("T", cls)

    return register


def _field_names(cls: type[Any]) -> list[str]:
    if attrs.has(cls):
        return [field.name for field in attrs.fields(cls)]
    return [field.name for field in dataclasses.fields(cls)]


def _same_class(a: type[Any], b: type[Any]) -> bool:
    # Re-running a module (runpy, reloads in a REPL) defines an equal class again.
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def info_of(cls: type[Any]) -> EventInfo | None:
    """The `@event` registration of exactly this class (fast path for routing)."""
    info: EventInfo | None = cls.__dict__.get(INFO_ATTRIBUTE)
    return info


def event_info(cls: type[Any]) -> EventInfo | None:
    """The `@event` registration of exactly this class (not inherited), or None."""
    info = cls.__dict__.get(INFO_ATTRIBUTE)
    return info if isinstance(info, EventInfo) else None


def type_name(cls: type[Any]) -> str:
    """The event type of instances of `cls`: its registered type, else its qualified name."""
    info = cls.__dict__.get(INFO_ATTRIBUTE)
    return info.type if info is not None else cls.__qualname__


def lookup(type_: str) -> type[Any] | None:
    """The class registered for `type_`, or None. Never imports anything."""
    return _registry.get(type_)


def registered() -> Mapping[str, type[Any]]:
    """A snapshot of the registry: type string → class."""
    return dict(_registry)


def mark_builtin() -> None:
    """Remember the current registrations as actorbus's own (kept by `reset`)."""
    _builtin.clear()
    _builtin.update(_registry)


def reset() -> None:
    """Forget every user registration; actorbus's own lifecycle events stay."""
    _registry.clear()
    _registry.update(_builtin)


def snapshot() -> dict[str, type[Any]]:
    """The registry as it is now, for `restore`."""
    return dict(_registry)


def restore(saved: Mapping[str, type[Any]]) -> None:
    """Put the registry back as `snapshot` saw it."""
    _registry.clear()
    _registry.update(saved)
