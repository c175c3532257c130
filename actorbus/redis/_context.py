"""What the parts of one `RedisTransport` share: URL, keys, settings, health, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import coredis
from coredis.retry import NoRetryPolicy

from actorbus.redis._config import redact_url
from actorbus.redis._health import Counters, Health

if TYPE_CHECKING:
    import ssl

    from actorbus.redis._config import Keys, Settings
    from actorbus.redis._watchdog import Watchdog

__all__ = ["Context"]

_CONNECT_TIMEOUT = 5.0
# Replies slower than this mean a hung server or network: the connection is dropped and
# the command fails with TimeoutError, which the loops treat like a lost connection.
_REPLY_SLACK = 10.0


class Context:
    """The shared state of one transport's tasks (one per transport, never global)."""

    __slots__ = (
        "counters",
        "health",
        "instance",
        "keys",
        "settings",
        "tls",
        "url",
        "watchdog",
        "where",
    )

    def __init__(
        self,
        url: str,
        keys: Keys,
        settings: Settings,
        instance: str,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
        self.where = redact_url(url)
        self.keys = keys
        self.settings = settings
        self.instance = instance
        self.health = Health(url, self.where)
        self.counters = Counters()
        self.watchdog: Watchdog | None = None  # the deadlines of `Link`s, on trio

    def connect(self) -> coredis.Redis[bytes]:
        """A new client, to be entered (``async with``) and left in one task.

        Nothing connects until the first command. Percent-escapes in the URL's user name
        and password are decoded, as in other Redis clients. The client's own retries are
        off: they would silently send an XADD again when its reply is late (a duplicate
        event); the transport retries where it can report it, with backoff. TLS uses the
        transport's own SSL context (`tls_context`), never coredis's lax URL defaults.
        """
        return coredis.Redis.from_url(
            self.url,
            # Given (even None, for redis:// URLs), it keeps coredis from reading the URL's
            # ssl_* arguments itself.
            ssl_context=self.tls,
            retry_policy=NoRetryPolicy(),
            decode_components=True,
            connect_timeout=_CONNECT_TIMEOUT,
            stream_timeout=self.settings.block + self.settings.publish_timeout + _REPLY_SLACK,
        )
