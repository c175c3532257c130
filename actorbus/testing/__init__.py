"""Helpers for testing actorbus code on both backends (see the Testing guide)."""

from actorbus._events import registered as registered_events
from actorbus._events import reset as reset_event_registry

__all__ = ["registered_events", "reset_event_registry"]
