"""The one cattrs converter actorbus owns, and the error messages built from its failures.

Structuring is strict: data from the wire is JSON, so a value must already have the
field's JSON type. cattrs on its own would call ``str([1, 2])`` for a `str` field,
``int(1.7)`` for an `int` and ``list("abc")`` for a `list[str]`; here each of those is a
`DecodeError`. The one allowance is an `int` written as its decimal string, which is how
JSON carries the keys of a ``dict[int, ...]``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast, get_origin

import cattrs
from cattrs.cols import (  # cattrs leaves is_any_set's parameter unannotated
    is_any_set,  # pyright: ignore[reportUnknownVariableType]
    is_sequence,
)

from ._exceptions import DecodeError

__all__ = ["structure", "unstructure"]

T = TypeVar("T")

_converter: Final = cattrs.Converter()
_converter.register_unstructure_hook(dt.datetime, lambda value: value.isoformat())
_converter.register_structure_hook(
    dt.datetime, lambda value, _: value if isinstance(value, dt.datetime) else _parse_time(value)
)


def _parse_time(value: object) -> dt.datetime:
    if not isinstance(value, str):
        msg = f"expected an RFC 3339 timestamp string, got {type(value).__name__}"
        raise TypeError(msg)
    return dt.datetime.fromisoformat(value)


def _mismatch(expected: str, value: object) -> TypeError:
    return TypeError(f"expected {expected}, got {type(value).__name__}")


def _str(value: object, _: object) -> str:
    if isinstance(value, str):
        return value
    raise _mismatch("a string", value)


def _int(value: object, _: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.isascii() and str(number := int(value)) == value:
        return number
    raise _mismatch("an integer", value)


def _float(value: object, _: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _mismatch("a number", value)


def _bool(value: object, _: object) -> bool:
    if isinstance(value, bool):
        return value
    raise _mismatch("true or false", value)


_converter.register_structure_hook(str, _str)
_converter.register_structure_hook(int, _int)
_converter.register_structure_hook(float, _float)
_converter.register_structure_hook(bool, _bool)

_wrapping = threading.local()  # the collection types whose hook is being built, per thread


def _is_collection(type_: Any) -> bool:
    building: set[Any] = getattr(_wrapping, "types", set())
    return type_ not in building and (
        is_sequence(type_) or is_any_set(type_) or get_origin(type_) is tuple
    )


def _collection_hook(type_: Any, converter: cattrs.Converter) -> Callable[[object, Any], Any]:
    """The hook cattrs would use for `type_`, refusing a string or a mapping (iterables)."""
    building: set[Any] = _wrapping.__dict__.setdefault("types", set())
    building.add(type_)
    try:
        inner = converter.get_structure_hook(type_, cache_result=False)
    finally:
        building.discard(type_)

    def structure(value: object, cls: Any) -> Any:
        if isinstance(value, str | bytes | bytearray | Mapping):
            raise _mismatch("a list", cast("object", value))
        return inner(value, cls)

    return structure


_converter.register_structure_hook_factory(_is_collection, _collection_hook)


def structure(data: object, cls: type[T], *, where: str | Callable[[], str]) -> T:
    """Build an instance of `cls` from plain data (a dict from JSON, usually).

    Raises:
        DecodeError: Naming `where` (the actor and handler, or the wire; a function
            making that text is called only then), the class and every field that did
            not fit.
    """
    try:
        return _converter.structure(data, cls)
    except Exception as exc:
        details = "; ".join(cattrs.transform_error(exc, path="data")) or str(exc)
        place = where if isinstance(where, str) else where()
        msg = (
            f"{place}: cannot build {cls.__module__}.{cls.__qualname__} from "
            f"{type(data).__name__} data ({details}); send data whose fields match the class"
        )
        raise DecodeError(msg) from exc


def unstructure(value: object) -> Any:
    """Turn an event (attrs class, dataclass, or plain data) into JSON-ready data."""
    return _converter.unstructure(value)
