"""JSON Schemas of event data, as actorbus's converter writes and reads it.

The schemas are AsyncAPI Schema Objects (JSON Schema draft 07). Classes (attrs classes,
dataclasses, enums) become named components referenced with ``$ref``, so nested and
recursive classes are described once. A type the converter has no JSON form for (a
``set`` it cannot write, ``bytes``, a ``date``, a union of plain types...) is not guessed:
its schema says so in ``x-actorbus-unsupported`` (and its description), and constrains
only what is known.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import enum
import json
import re
import sys
import types
import typing
from typing import Any, Final

import attrs

from ._convert import unstructure
from ._docstrings import attribute_docs, docstring_summary

__all__ = ["UNSUPPORTED", "SchemaBuilder"]

UNSUPPORTED: Final = "x-actorbus-unsupported"
"""The schema keyword that says why a value has no exact JSON Schema."""

_KEY: Final = re.compile(r"[^A-Za-z0-9._-]")
_INTEGER_TEXT: Final = "^-?[0-9]+$"
_SEQUENCES: Final = frozenset(
    {
        list,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        typing.Sequence,
        typing.List,  # noqa: UP006
    }
)
_SETS: Final = frozenset(
    {
        set,
        frozenset,
        collections.abc.Set,
        collections.abc.MutableSet,
        typing.AbstractSet,
        typing.Set,  # noqa: UP006
        typing.FrozenSet,  # noqa: UP006
    }
)
_MAPPINGS: Final = frozenset(
    {
        dict,
        collections.abc.Mapping,
        collections.abc.MutableMapping,
        typing.Mapping,
        typing.MutableMapping,
        typing.Dict,  # noqa: UP006
    }
)
_PLAIN: Final[dict[object, dict[str, Any]]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    None: {"type": "null"},
    dt.datetime: {
        "type": "string",
        "format": "date-time",
        "description": (
            "ISO 8601 (RFC 3339 for a timezone-aware datetime; a naive one is written "
            "without a UTC offset)"
        ),
    },
}
_NO_JSON: Final[dict[object, str]] = {
    bytes: "bytes have no JSON form in actorbus's converter (only a whole event's data "
    "travels as data_base64)",
    bytearray: "bytes have no JSON form in actorbus's converter",
    dt.date: "a date has no JSON form in actorbus's converter (use a datetime or a string)",
    dt.time: "a time has no JSON form in actorbus's converter (use a string)",
    dt.timedelta: "a timedelta has no JSON form in actorbus's converter (use a number)",
    complex: "a complex number has no JSON form",
}


def _unsupported(reason: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    described = dict(schema or {})
    described[UNSUPPORTED] = reason
    described["description"] = f"Not described exactly: {reason}."
    return described


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "format", "description"}:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _is_enum(annotation: object) -> typing.TypeGuard[type[enum.Enum]]:
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _is_class_schema(annotation: object) -> bool:
    return isinstance(annotation, type) and (
        attrs.has(annotation) or dataclasses.is_dataclass(annotation)
    )


class SchemaBuilder:
    """Builds the schemas of types, collecting named components as it goes.

    Args:
        prefix: Where components live in the document (``#/components/schemas/``).
    """

    def __init__(self, prefix: str = "#/components/schemas/") -> None:
        self.prefix = prefix
        self.components: dict[str, dict[str, Any]] = {}
        self._keys: dict[object, str] = {}

    def key_for(self, owner: object, wanted: str) -> str:
        """A component key for `owner`: `wanted`, made valid and unique (stable per owner)."""
        known = self._keys.get(owner)
        if known is not None:
            return known
        base = _KEY.sub("_", wanted) or "schema"
        key, number = base, 1
        while key in self.components or key in self._keys.values():
            number += 1
            key = f"{base}-{number}"
        self._keys[owner] = key
        return key

    def add(self, key: str, schema: dict[str, Any]) -> dict[str, str]:
        """Store a component of our own under `key`; return a reference to it."""
        self.components[key] = schema
        return {"$ref": f"{self.prefix}{key}"}

    def of(self, annotation: object, where: str) -> dict[str, Any]:
        """The schema of a value annotated `annotation`; `where` names it in notes."""
        try:
            return self._of(annotation, where)
        except RecursionError:  # pragma: no cover - a self-referencing alias
            return _unsupported(f"{where}: the annotation refers to itself")

    # Annotations are runtime objects of many kinds, inspected here: typed as Any.
    def _of(self, annotation: Any, where: str) -> dict[str, Any]:  # noqa: C901, PLR0912
        if isinstance(annotation, str | typing.ForwardRef):
            text = annotation if isinstance(annotation, str) else annotation.__forward_arg__
            return _unsupported(f"the annotation {text!r} of {where} could not be resolved")
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            return self._of(args[0], where)
        if isinstance(annotation, typing.NewType):
            return self._of(annotation.__supertype__, where)
        value = getattr(annotation, "__value__", None)  # `type X = ...` (Python 3.12)
        if value is not None and type(annotation).__name__ == "TypeAliasType":
            return self._of(value, where)
        if annotation is Any or annotation is object:
            return {"description": "Any JSON value."}
        if isinstance(annotation, typing.TypeVar):
            return _unsupported(f"{where} has the type variable {annotation.__name__}")
        plain = _PLAIN.get(annotation) if not origin else None
        if plain is not None:
            return dict(plain)
        if annotation in _NO_JSON:
            return _unsupported(_NO_JSON[annotation])
        if origin in (typing.Union, types.UnionType):
            return self._union(args, where)
        if origin is typing.Literal:
            return self._literal(args, where)
        if _is_enum(annotation):
            return self._enum(annotation)
        if _is_class_schema(annotation):
            return self._class(typing.cast("type[Any]", annotation))
        if origin is tuple or annotation is tuple:
            return self._tuple(args, where)
        container = origin if origin is not None else annotation
        if container in _SEQUENCES:
            items = self._of(args[0], where) if args else {}
            return {"type": "array", "items": items} if items else {"type": "array"}
        if container in _SETS:
            items = self._of(args[0], where) if args else {}
            schema = {"type": "array", "uniqueItems": True, "items": items}
            reason = (
                "actorbus writes no set as JSON (publishing it at APP scope fails); it reads "
                "one from a JSON array"
            )
            return _unsupported(reason, schema)
        if container in _MAPPINGS:
            return self._mapping(args, where)
        if origin is not None and _is_class_schema(origin):
            return _unsupported(f"{where}: generic classes ({annotation!r}) are not described")
        shown = getattr(annotation, "__qualname__", None) or repr(annotation)
        return _unsupported(f"{where}: {shown} has no JSON form in actorbus's converter")

    def _union(self, args: tuple[Any, ...], where: str) -> dict[str, Any]:
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            inner = self._of(options[0], where)
            return _nullable(inner) if len(options) < len(args) else inner
        schema: dict[str, Any] = {"anyOf": [self._of(a, where) for a in options]}
        if len(options) < len(args):
            schema["anyOf"].append({"type": "null"})
        if not all(_is_class_schema(a) for a in options):
            # cattrs tells attrs classes apart by their fields; other unions it cannot read.
            reason = (
                "actorbus's converter cannot rebuild a union of plain types from JSON (only "
                "X | None, and unions of attrs classes or dataclasses)"
            )
            return _unsupported(reason, schema)
        return schema

    def _literal(self, args: tuple[Any, ...], where: str) -> dict[str, Any]:
        values = [a.value if isinstance(a, enum.Enum) else a for a in args]
        if not all(isinstance(v, str | int | float | bool) or v is None for v in values):
            return _unsupported(f"{where}: a literal value has no JSON form")
        return {"enum": values}

    def _enum(self, cls: type[enum.Enum]) -> dict[str, Any]:
        key = self._keys.get(cls)
        if key is None:
            key = self.key_for(cls, _short_name(cls))
            values = [member.value for member in cls]
            schema: dict[str, Any] = {"title": cls.__name__}
            summary, rest = docstring_summary(cls)
            if summary:
                schema["description"] = summary if not rest else f"{summary}\n\n{rest}"
            if all(isinstance(v, str) for v in values):
                schema["type"] = "string"
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                schema["type"] = "integer"
            if all(isinstance(v, str | int | float | bool) or v is None for v in values):
                schema["enum"] = values
            else:
                schema = _unsupported(f"the values of enum {cls.__qualname__} are not JSON")
            schema["x-actorbus-class"] = f"{cls.__module__}.{cls.__qualname__}"
            self.components[key] = schema
        return {"$ref": f"{self.prefix}{key}"}

    def _tuple(self, args: tuple[Any, ...], where: str) -> dict[str, Any]:
        if not args or (len(args) == 2 and args[1] is Ellipsis):  # noqa: PLR2004 - tuple[X, ...]
            items = self._of(args[0], where) if args else {}
            return {"type": "array", "items": items} if items else {"type": "array"}
        if args == ((),):  # tuple[()]
            return {"type": "array", "maxItems": 0}
        return {
            "type": "array",
            "items": [self._of(a, where) for a in args],
            "additionalItems": False,
            "minItems": len(args),
        }

    def _mapping(self, args: tuple[Any, ...], where: str) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object"}
        if not args:
            return schema
        key, value = args
        names = self._key_names(key, where)
        if names is None:
            reason = f"{where}: JSON object keys are strings; {key!r} keys have no string form"
            return _unsupported(reason, {"type": "object"})
        if names:
            schema["propertyNames"] = names
        schema["additionalProperties"] = self._of(value, where)
        return schema

    def _key_names(self, key: object, where: str) -> dict[str, Any] | None:
        """The `propertyNames` of a mapping with `key` keys ({}: any string; None: none)."""
        if key is str or key is Any:
            return {}
        if key is int:
            return {"pattern": _INTEGER_TEXT}
        if isinstance(key, type) and issubclass(key, enum.Enum):
            values = [member.value for member in key]
            return {"enum": values} if all(isinstance(v, str) for v in values) else None
        if typing.get_origin(key) is typing.Literal:
            literal = self._literal(typing.get_args(key), where)
            return literal if all(isinstance(v, str) for v in literal.get("enum", [1])) else None
        return None

    def _class(self, cls: type[Any]) -> dict[str, Any]:
        key = self._keys.get(cls)
        if key is None:
            key = self.key_for(cls, _short_name(cls))
            # Registered before its fields, so that a class that contains itself refers
            # to this component instead of recursing.
            self.components[key] = {}
            self.components[key] = self._fields(cls)
        return {"$ref": f"{self.prefix}{key}"}

    def _fields(self, cls: type[Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "title": cls.__name__}
        summary, rest = docstring_summary(cls)
        if summary:
            schema["description"] = summary if not rest else f"{summary}\n\n{rest}"
        hints = _hints(cls)
        docs = attribute_docs(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, annotation, default in _init_fields(cls):
            where = f"{cls.__qualname__}.{name}"
            field: dict[str, Any] = self.of(hints.get(name, annotation), where)
            if name in docs:
                field = field if "$ref" not in field else {"allOf": [field]}
                note = field.get("description")
                field["description"] = docs[name] if not note else f"{docs[name]} ({note})"
            if default is _REQUIRED:
                required.append(name)
            elif default is not _FACTORY and (written := _json_default(default)) is not None:
                field = field if "$ref" not in field else {"allOf": [field]}
                field["default"] = written[0]
            properties[name] = field
        schema["properties"] = properties
        if required:
            schema["required"] = required
        schema["x-actorbus-class"] = f"{cls.__module__}.{cls.__qualname__}"
        return schema


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved annotations of `cls`; one by one when some cannot be resolved."""
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception:  # noqa: S110 - an unresolvable forward reference: resolve the others
        pass
    found: dict[str, Any] = {}
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    for klass in reversed(cls.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():

            def holder() -> None: ...

            holder.__annotations__ = {name: annotation}
            try:
                found[name] = typing.get_type_hints(
                    holder, globalns=namespace, localns=dict(vars(cls)), include_extras=True
                )[name]
            except Exception:
                found[name] = annotation  # a string: described as unresolved
    return found


_REQUIRED: Final = object()
_FACTORY: Final = object()


def _init_fields(cls: type[Any]) -> list[tuple[str, object, object]]:
    """(name, annotation, default) of the fields the converter writes and reads.

    The converter skips fields that ``__init__`` does not take (``init=False``).
    """
    found: list[tuple[str, object, object]] = []
    if attrs.has(cls):
        for field in attrs.fields(cls):
            if not field.init:
                continue
            default: object = field.default
            if default is attrs.NOTHING:
                default = _REQUIRED
            elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = _FACTORY
            found.append((field.name, field.type, default))
        return found
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = _FACTORY
        else:
            default = _REQUIRED
        found.append((item.name, item.type, default))
    return found


def _json_default(value: object) -> tuple[Any] | None:
    """``(value as JSON data,)``, or None when the default has no JSON form."""
    try:
        data = unstructure(value)
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return (data,)


def _short_name(cls: type[Any]) -> str:
    # A class defined in a function: "make.<locals>.Order" reads best as "Order".
    return cls.__qualname__.rpartition("<locals>.")[2]
