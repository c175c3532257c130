"""What the parts of one `RedisTransport` share: client, keys, settings, health, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from actorbus.redis._client import Client
from actorbus.redis._config import redact_url
from actorbus.redis._endpoint import Endpoint, endpoint, node_address
from actorbus.redis._health import Counters, Health

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

    from actorbus.redis._client import DedicatedConnection
    from actorbus.redis._config import Keys, Settings

__all__ = ["REPLY_SLACK", "Context"]

REPLY_SLACK: Final = 10.0
"""Seconds a reply may take beyond what its command asks Redis to wait (a hung server).

Past that, the connection is dropped and the command fails like a lost connection.
"""


class Context:
    """The shared state of one transport's tasks (one per transport, never global)."""

    __slots__ = (
        "client",
        "counters",
        "health",
        "instance",
        "keys",
        "seeds",
        "settings",
        "url",
        "where",
    )

    def __init__(
        self,
        url: str,
        keys: Keys,
        settings: Settings,
        instance: str,
        tls: ssl.SSLContext | None = None,
        seeds: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.where = redact_url(url)
        self.keys = keys
        self.settings = settings
        self.instance = instance
        self.health = Health(url, self.where)
        self.counters = Counters()
        node = endpoint(url, tls, self.where)
        self.client = Client(node, timeout=settings.publish_timeout + REPLY_SLACK)
        """Commands now and then; nothing connects until the first one."""
        self.seeds: list[Endpoint] = [node.at(*node_address(seed)) for seed in seeds]
        """Other nodes of a cluster to read its slot map from (`Client.start`)."""

    def dedicated(self, key: str) -> DedicatedConnection:
        """A connection of the calling part's own, to the node that serves `key`."""
        return self.client.dedicated(key)
