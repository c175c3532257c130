"""The actorbus pytest plugin (loaded through the ``pytest11`` entry point).

It adds no fixtures that change behaviour unless you ask for them: `actorbus_backends`
is the list of anyio backends actorbus supports, handy for parametrizing your own
``anyio_backend`` fixture.
"""

from __future__ import annotations

import pytest

__all__ = ["actorbus_backends"]

BACKENDS = ("asyncio", "trio")


@pytest.fixture(scope="session")
def actorbus_backends() -> tuple[str, ...]:
    """The anyio backends actorbus runs on: asyncio and trio."""
    return BACKENDS
