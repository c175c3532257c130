"""Helpers for testing actorbus code on both backends (see the Testing guide)."""

from actorbus.testing._clock import AutojumpEventLoop, autojump_backends
from actorbus.testing._memory import MemoryBroker, MemoryTransport
from actorbus.testing._registry import (
    isolated_event_registry,
    registered_events,
    reset_event_registry,
)

__all__ = [
    "AutojumpEventLoop",
    "MemoryBroker",
    "MemoryTransport",
    "autojump_backends",
    "isolated_event_registry",
    "registered_events",
    "reset_event_registry",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
