"""The one cattrs converter actorbus owns, and the error messages built from its failures."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, TypeVar

import cattrs

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


def structure(data: object, cls: type[T], *, where: str) -> T:
    """Build an instance of `cls` from plain data (a dict from JSON, usually).

    Raises:
        DecodeError: Naming `where` (the actor and handler, or the wire), the class and
            every field that did not fit.
    """
    try:
        return _converter.structure(data, cls)
    except Exception as exc:
        details = "; ".join(cattrs.transform_error(exc, path="data")) or str(exc)
        msg = (
            f"{where}: cannot build {cls.__module__}.{cls.__qualname__} from "
            f"{type(data).__name__} data ({details}); send data whose fields match the class"
        )
        raise DecodeError(msg) from exc


def unstructure(value: object) -> Any:
    """Turn an event (attrs class, dataclass, or plain data) into JSON-ready data."""
    return _converter.unstructure(value)
