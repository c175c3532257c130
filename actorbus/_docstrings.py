"""What docstrings say about event classes and handlers, for the AsyncAPI document."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Final

__all__ = ["attribute_docs", "docstring_summary"]

# A Google-style "Attributes:" section: its heading and the indented lines after it.
_ATTRIBUTES: Final = re.compile(r"^Attributes:[ \t]*\n(?:(?:[ \t]+\S.*)?\n?)*", re.MULTILINE)


def docstring_summary(obj: object) -> tuple[str | None, str | None]:
    """The first line of `obj`'s own docstring, and the rest (None when absent).

    A dataclass without a docstring gets a generated one (its signature): that is not
    documentation, so it is left out.
    """
    doc = inspect.getdoc(obj) if getattr(obj, "__doc__", None) else None
    if isinstance(obj, type):
        own = obj.__dict__.get("__doc__")
        if not own or (dataclasses.is_dataclass(obj) and own.startswith(f"{obj.__name__}(")):
            doc = None
    if not doc:
        return None, None
    first, _, rest = doc.partition("\n")
    # The Attributes section describes the fields, where the schema shows it.
    rest = _ATTRIBUTES.sub("", rest)
    return first.strip(), rest.strip() or None


def attribute_docs(cls: type[Any]) -> dict[str, str]:
    """Field descriptions from the ``Attributes:`` section of a Google-style docstring."""
    own = cls.__dict__.get("__doc__")
    match = _ATTRIBUTES.search(inspect.cleandoc(own)) if isinstance(own, str) else None
    if match is None:
        return {}
    found: dict[str, str] = {}
    section = match.group(0).splitlines()[1:]
    current: str | None = None
    indent: int | None = None
    for line in section:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break  # the next section
        text = line.strip()
        if width == indent and ":" in text:
            name, _, description = text.partition(":")
            current = name.split(" (")[0].strip()
            found[current] = description.strip()
        elif current is not None:
            found[current] = f"{found[current]} {text}".strip()
    return found
