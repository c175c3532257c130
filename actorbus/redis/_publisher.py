"""Publishing: concurrent XADDs coalesced into pipelines, each caller awaiting its own reply.

`Publisher.publish` queues the encoded envelope and waits (up to the publish timeout) until
Redis answered *its* XADD. One task, `Publisher.run`, takes what is queued — waiting for
the first item, then whatever else is already there, up to `batch` — and sends it as one
non-transactional pipeline: one round trip for many events when many tasks publish at
once, and no added delay for a lone publisher. While Redis is unreachable the batch is
retried with a short backoff until each caller's own deadline passes; a caller whose
deadline passed gets `TransportError` and its event is dropped from later attempts, so
an event is never reported published unless Redis accepted it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from coredis.exceptions import RedisError
from coredis.tokens import PureToken

from actorbus._exceptions import TransportError
from actorbus.redis._health import TRANSIENT, Backoff, Counters, Health

if TYPE_CHECKING:
    import coredis

    from actorbus.redis._config import Settings

__all__ = ["Publisher"]


class _Item:
    """One queued XADD and its caller's wake-up."""

    __slots__ = ("abandoned", "done", "entry", "error", "fields", "last_error")

    def __init__(self, fields: dict[bytes, bytes]) -> None:
        self.fields = fields
        self.done = anyio.Event()
        self.entry: bytes | None = None
        self.error: BaseException | None = None
        self.last_error: BaseException | None = None
        self.abandoned = False


class Publisher:
    """Coalesces concurrent XADDs to the events stream `key` into pipelines (module docs)."""

    def __init__(
        self, key: str, settings: Settings, health: Health, counters: Counters, where: str
    ) -> None:
        self._key = key
        self._settings = settings
        self._health = health
        self._counters = counters
        self._where = where
        send, receive = anyio.create_memory_object_stream[_Item](settings.batch * 4)
        self._send = send
        self._receive = receive
        self._trim: dict[str, Any] = {}
        if settings.maxlen is not None:
            self._trim = {
                "trim_strategy": PureToken.MAXLEN,
                "threshold": settings.maxlen,
                "trim_operator": PureToken.APPROXIMATELY,
            }

    async def publish(self, payload: bytes, what: str) -> bytes:
        """Add `payload` to the events stream; return its entry id once Redis accepted it.

        Waits at most `publish_timeout` seconds in all (queueing included). A
        cancellation point; a caller cancelled before its batch was sent is dropped.

        Raises:
            TransportError: If Redis did not accept the entry in time, refused it, or the
                transport is closed. `what` names the event in the message.
        """
        item = _Item({b"e": payload})
        timeout = self._settings.publish_timeout
        try:
            with anyio.fail_after(timeout):
                await self._send.send(item)
                await item.done.wait()
        except TimeoutError:
            item.abandoned = True
            cause = item.last_error
            reason = f" (last error: {self._health.describe(cause)})" if cause else ""
            msg = (
                f"Redis at {self._where} did not accept {what} within publish_timeout="
                f"{timeout}s{reason}; it was not published: publish it again once Redis is "
                "reachable"
            )
            raise TransportError(msg) from cause
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            msg = f"cannot publish {what}: the Redis transport is closed"
            raise TransportError(msg) from None
        except BaseException:
            item.abandoned = True
            raise
        if item.error is not None:
            msg = (
                f"Redis at {self._where} refused {what}: {self._health.describe(item.error)}; "
                "it was not published (check the ACL user's permissions and Redis memory)"
            )
            raise TransportError(msg) from item.error
        assert item.entry is not None  # noqa: S101 - set with done
        return item.entry

    def close(self) -> None:
        """Stop taking entries; `run` returns once it sent what was queued."""
        self._send.close()

    def discard(self) -> None:
        """Release the queue once `run` returned (or never ran): nothing more is sent."""
        self._send.close()
        self._receive.close()

    async def run(self, client: coredis.Redis[bytes]) -> None:
        """Send queued entries in pipelines until `close` (the one publishing task)."""
        with self._receive:
            async for first in self._receive:
                await self._send_batch(client, self._more([first]))

    def _more(self, items: list[_Item]) -> list[_Item]:
        """`items` plus whatever else is queued right now, up to `batch` live ones."""
        items = [item for item in items if not item.abandoned]
        while len(items) < self._settings.batch:
            try:
                item = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            if not item.abandoned:
                items.append(item)
        return items

    async def _send_batch(self, client: coredis.Redis[bytes], items: list[_Item]) -> None:
        # A short backoff: callers are waiting, and their own deadlines bound the retries.
        backoff = Backoff(initial=0.02, maximum=0.5)
        while items:
            try:
                async with client.pipeline(
                    transaction=False, raise_on_error=False, timeout=self._settings.publish_timeout
                ) as pipe:
                    requests = [pipe.xadd(self._key, item.fields, **self._trim) for item in items]
            except TRANSIENT as exc:
                self._health.failed(exc)
                for item in items:
                    item.last_error = exc
                await backoff.sleep()
                items = self._more(items)
                continue
            self._health.succeeded()
            for item, request in zip(items, requests, strict=True):
                try:
                    item.entry = await request
                except (RedisError, TimeoutError) as exc:
                    item.error = exc
                else:
                    self._counters.published += 1
                item.done.set()
            return
