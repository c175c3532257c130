"""The actorbus pytest plugin (loaded through the ``pytest11`` entry point).

Fixtures, all opt-in by name:

- `actorbus_backends`: the anyio backends actorbus runs on, to parametrize your own
  ``anyio_backend`` fixture (``@pytest.fixture(params=...)``).
- `memory_broker`: a fresh `MemoryBroker` for multi-instance tests without Redis.
- `actor_system`: a running ``ActorSystem("test")`` for the test's duration (an async
  fixture: use it from ``@pytest.mark.anyio`` tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from actorbus._system import ActorSystem
from actorbus.testing._memory import MemoryBroker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["actor_system", "actorbus_backends", "memory_broker"]

BACKENDS = ("asyncio", "trio")


@pytest.fixture(scope="session")
def actorbus_backends() -> tuple[str, ...]:
    """The anyio backends actorbus runs on: asyncio and trio."""
    return BACKENDS


@pytest.fixture
def memory_broker() -> MemoryBroker:
    """A fresh in-memory broker: give ``memory_broker.transport()`` to each system."""
    return MemoryBroker()


@pytest.fixture
async def actor_system() -> AsyncIterator[ActorSystem]:
    """A running ``ActorSystem("test")``, stopped gracefully after the test."""
    async with ActorSystem("test") as system:
        yield system
