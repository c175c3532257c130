from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from actorbus.testing import isolated_event_registry

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["asyncapi_support", "redis_support", "cluster_support"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return request.param


@pytest.fixture(autouse=True)
def _clean_event_registry() -> Iterator[None]:
    """Event types registered by one test do not leak into the next."""
    with isolated_event_registry():
        yield
