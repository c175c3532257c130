"""Keeping the `@event` type registry from leaking between tests."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from actorbus import _events

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

__all__ = ["isolated_event_registry", "registered_events", "reset_event_registry"]


def registered_events() -> Mapping[str, type[Any]]:
    """A snapshot of the registry: CloudEvents type → class."""
    return _events.registered()


def reset_event_registry() -> None:
    """Forget every type registered with `@event` (actorbus's own types stay).

    Classes defined at module level keep their type but can no longer be rebuilt from
    the wire by type; prefer `isolated_event_registry` around a test.
    """
    _events.reset()


@contextlib.contextmanager
def isolated_event_registry() -> Generator[None, None, None]:
    """Registrations made inside the block are forgotten when it ends; earlier ones stay."""
    saved = _events.snapshot()
    try:
        yield
    finally:
        _events.restore(saved)
