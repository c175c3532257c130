"""Helpers for testing actorbus code on both backends (see the Testing guide)."""

from actorbus._events import registered as registered_events
from actorbus._events import reset as reset_event_registry
from actorbus.testing._clock import AutojumpEventLoop, autojump_backends
from actorbus.testing._memory import MemoryBroker, MemoryTransport

__all__ = [
    "AutojumpEventLoop",
    "MemoryBroker",
    "MemoryTransport",
    "autojump_backends",
    "registered_events",
    "reset_event_registry",
]

for _name in ("AutojumpEventLoop", "MemoryBroker", "MemoryTransport", "autojump_backends"):
    globals()[_name].__module__ = __name__
del _name
