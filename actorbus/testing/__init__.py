"""Helpers for testing actorbus code on both backends (see the Testing guide)."""

from actorbus._public import expose
from actorbus.testing._clock import AutojumpEventLoop, autojump_backends
from actorbus.testing._memory import MemoryBroker, MemoryTransport
from actorbus.testing._probe import Probe
from actorbus.testing._registry import (
    isolated_event_registry,
    registered_events,
    reset_event_registry,
)

__all__ = [
    "AutojumpEventLoop",
    "MemoryBroker",
    "MemoryTransport",
    "Probe",
    "autojump_backends",
    "isolated_event_registry",
    "registered_events",
    "reset_event_registry",
]

expose(globals(), __all__, __name__)
